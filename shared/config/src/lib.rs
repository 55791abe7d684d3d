//! Settings for every lifecycle binary.
//!
//! Sources, later ones winning: built-in defaults, a TOML file (`--config`,
//! or `LIFECYCLE_CONFIG`), then environment variables `LIFECYCLE_<SECTION>__<KEY>`
//! (a double underscore descends one level: `LIFECYCLE_BROKER__URL`,
//! `LIFECYCLE_VENDORS__PIPEDRIVE__API_TOKEN`).
//!
//! Secrets are [`Secret`]s: given inline or read from a file
//! (`api_token = { file = "/run/secrets/pipedrive" }`, or
//! `LIFECYCLE_VENDORS__PIPEDRIVE__API_TOKEN__FILE=/run/secrets/pipedrive`),
//! and their `Debug`/`Display` never show the value.

pub mod approval;
pub mod hris;
mod intake;
pub mod notifications;
pub mod reconcile;
pub mod reference;
mod retry;
mod runtime;
pub mod safety;
mod schedule;
pub mod scim;
mod secret;
mod settings;

pub use approval::ApprovalSettings;
pub use hris::HrisSettings;
pub use intake::IntakeToken;
pub use notifications::NotificationSettings;
pub use reconcile::ReconcileSettings;
pub use safety::SafetySettings;
pub use scim::{GroupApps, ScimSettings};
pub use secret::Secret;
pub use settings::*;
