//! Operator operations, independent of how they are invoked (`lifecycle-ctl`,
//! the admin API, the console): each returns plain serializable views, and
//! every change is audited. Keeping them here means the three front ends
//! cannot drift apart in what a replay or a discard means.

pub mod actions;
pub mod approvals;
pub mod bulk;
pub mod db;
pub mod drift;
pub mod edit;
pub mod filter;
pub mod hris;
pub mod intake;
pub mod lanes;
pub mod notifications;
pub mod outbox;
pub mod overview;
pub mod pipedrive_webhook;
pub mod plan;
pub mod push;
pub mod query;
pub mod reconcile;
pub mod safety;
pub mod schedule;
pub mod scim;
pub mod views;

pub use actions::{
    check_recheckable, check_replayable, discard, recheck, recheck_all, replay, replay_all, Discarded, NotReplayed,
    ReplaySummary, Replayed,
};
pub use drift::{list_drift, DriftView};
pub use overview::{audit_log, counts, employee, status_of, AuditView, Counts, EmployeeApp, EmployeeView};
pub use schedule::{cancel_event, cancel_event_from, cancel_run, upcoming, Upcoming, UpcomingDay, UpcomingRun};
pub use views::{event_detail, list_runs, run_detail, EventDetail, RunDetail, RunSummary, StepAttemptView, StepView};

/// What the operations that read the vendors need: their connectors (each
/// with its client and rate limiter), the reconcile settings, and the lead
/// times that fixes' events are scheduled with.
#[derive(Clone, Default)]
pub struct Vendors {
    pub registry: lifecycle_engine::Registry,
    pub reconcile: std::sync::Arc<lifecycle_config::ReconcileSettings>,
    pub schedule: std::sync::Arc<lifecycle_config::ScheduleSettings>,
    /// The blast-radius guard that fixes' leavers are admitted under (`[safety]`).
    pub safety: std::sync::Arc<lifecycle_store::safety::Guard>,
}

impl Vendors {
    pub fn new(registry: lifecycle_engine::Registry, settings: &lifecycle_config::Settings) -> Self {
        Self {
            registry,
            reconcile: std::sync::Arc::new(settings.reconcile.clone()),
            schedule: std::sync::Arc::new(settings.schedule.clone()),
            safety: std::sync::Arc::new(approvals::guard(settings)),
        }
    }
}

/// Why an operation did not happen. The variants say what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No such run or event: check the id.
    #[error("{0}")]
    NotFound(String),
    /// The operation does not apply to it (its state, or a later run overtook it).
    #[error("{0}")]
    Refused(String),
    /// The operator may not do this (not among a run's approvers).
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong (a missing reason, an unknown vendor): fix it.
    #[error("{0}")]
    Invalid(String),
    /// A vendor could not be read (down, refusing the credential): trying
    /// again later may work; the message says what it answered.
    #[error("{0}")]
    Vendor(String),
    /// The database failed: trying again later may work.
    #[error(transparent)]
    Store(#[from] lifecycle_store::StoreError),
}
