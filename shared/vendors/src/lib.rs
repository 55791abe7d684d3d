//! The vendors: one module each, with the same shape — `Config` (its
//! `[vendors.<name>]` table), a client for the admin API, the workflows as
//! journaled steps, and the vendor's quirks written down where they bite.
//!
//! Adding a vendor: a module here, a simulator file in `services/vendor-sim`,
//! and one line in [`registry`].

pub mod catalog;
pub mod http;
pub mod ratelimit;
pub mod registry;

pub mod calendly;
pub mod circleci;
pub mod crowdstrike;
pub mod jira;
pub mod pipedrive;

pub use registry::{build_registry, VendorConfigError};
