//! Operator operations, independent of how they are invoked (CLI, admin
//! API, console): each returns plain serializable views.

pub mod drift;
pub mod views;

pub use drift::{list_drift, DriftView};

pub use views::{event_detail, list_runs, run_detail, EventDetail, RunDetail, RunSummary, StepAttemptView, StepView};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] lifecycle_store::StoreError),
}
