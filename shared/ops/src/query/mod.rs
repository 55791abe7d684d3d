//! What the front ends (the console, the admin API, the ctl) read, and the
//! filters they read it with: the only way they reach the store, so that a
//! query, or what a row means, is written once here rather than in each of
//! them. Store row and filter types are re-exported where ops adds nothing.

pub mod audit;
pub mod deliveries;
pub mod findings;
pub mod passes;
pub mod runs;

// The connection, for the front ends that open one (the ctl) or hold one
// (the admin listener's state). `scim-door` adds `ops::db` with the same
// items; the two are to be unified.
pub use lifecycle_store::{connect, migrate, Db, DbErr};

/// Which migrations are applied and which are pending, by name.
pub async fn migration_status(db: &Db) -> Result<(Vec<String>, Vec<String>), DbErr> {
    lifecycle_store::db::migration_status(db).await
}
