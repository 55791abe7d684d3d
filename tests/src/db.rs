//! A fresh database per test: the store's own (`lifecycle_store::testing`), shared with the
//! in-process tests of the other crates.

pub use lifecycle_store::testing::{postgres_admin_url, Backend, TestDb};
