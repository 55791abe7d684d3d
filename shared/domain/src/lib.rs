//! Validated domain types shared by every lifecycle crate.
//!
//! Values here can only hold valid data ("parse, don't validate"): an
//! [`EmployeeEmail`] is a syntactically valid address, an [`IdempotencyKey`]
//! is 1-255 visible ASCII characters, an [`Event`] has passed every rule of
//! the intake contract. Nothing in this crate does I/O.

pub mod apps;
pub mod drift;
pub mod email;
pub mod event;
pub mod event_type;
pub mod field;
pub mod idempotency;
pub mod json;
pub mod pipedrive_webhook;
pub mod plan;
pub mod reconcile;
pub mod run;
pub mod step;
pub mod text;
pub mod vendor;

pub use apps::AppRequest;
pub use drift::DriftKind;
pub use email::EmployeeEmail;
pub use event::{Employee, Event, RunInput};
pub use event_type::EventType;
pub use field::FieldError;
pub use idempotency::IdempotencyKey;
pub use plan::StopState;
pub use reconcile::FindingKind;
pub use run::{RunState, Workflow};
pub use step::{Access, StepStatus};
pub use vendor::VendorKind;
