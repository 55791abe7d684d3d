//! The vendors: one module each, with the same shape — `Config` (its
//! `[vendors.<name>]` table), a client for the admin API, the workflows as
//! journaled steps, and the vendor's quirks written down where they bite.
//!
//! Each vendor implements [`adapter::Vendor`] over its own request type and
//! workflows; [`adapter::Adapter`] makes it the engine's `Connector`.
//!
//! Adding a vendor: its folder here, its folder in `services/vendor-sim`, one
//! arm in [`registry::connector`], and the rest of the checklist in
//! docs/engineers/adding-a-vendor.md.

pub mod adapter;
pub mod catalog;
pub mod http;
pub mod ratelimit;
pub mod registry;
pub mod vendor_config;

pub mod calendly;
pub mod circleci;
pub mod crowdstrike;
pub mod github;
pub mod jira;
pub mod pipedrive;

pub use registry::{build_registry, VendorConfigError};
