//! What the engine needs from storage, in its own terms.
//!
//! The engine owns these traits and their value types (a crate of their own,
//! low in the layers, so that `lifecycle-store` implements them over SQL,
//! `lifecycle_store::engine::Storage`, without depending on the engine). The
//! contract every implementation keeps:
//!
//! - every transition is conditional and says whether it won (a `bool`, or
//!   `None` for a new dispatch sequence it did not get): two workers, a
//!   sweeper and an operator never both win;
//! - a run's writes while it executes (extend, finish, retry, release, and
//!   every journal write) apply only while the writer holds the run's lease
//!   (`running`, its owner): a journal write refused for that is
//!   [`StorageError::LeaseLost`], and nothing is written;
//! - a claim refuses while an earlier run for the same person and vendor is
//!   unfinished (a `scheduled` one holds nothing back).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lifecycle_domain::{Access, RunState, StepStatus, VendorKind, Workflow};
use std::time::Duration;

/// Storage failed: the database is unreachable or refused, or a guarded write
/// found the lease lost.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A journal write by a worker that no longer holds the run's lease:
    /// refused, nothing written.
    #[error("the run's lease is lost: another worker owns the run now")]
    LeaseLost,
    /// Anything else: the storage's own error, as it describes itself.
    #[error(transparent)]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// A run as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub seq: i64,
    pub event_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub person_key: String,
    pub state: RunState,
    /// The `RunInput` as JSON.
    pub input: String,
    pub attempts: i32,
    pub dispatch_seq: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub blocked_by: Option<String>,
    pub last_error: Option<String>,
    pub replays: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub effective_at: Option<DateTime<Utc>>,
    pub rechecked_by: Option<String>,
    pub traceparent: Option<String>,
}

impl RunRecord {
    /// Where the run's age is measured from: its creation, or its last
    /// replay, or when its event takes effect if that is later.
    pub fn age_baseline(&self) -> DateTime<Utc> {
        let base = self.replayed_at.unwrap_or(self.created_at);
        self.effective_at.filter(|e| *e > base).unwrap_or(base)
    }
}

/// A run claimed as its message was sent, in one step: as it stood just
/// before the claim (its `attempts` not yet counting this one).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub run: RunRecord,
    pub has_journal: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    pub state: RunState,
    pub outcome: &'a str,
    pub access: Option<Access>,
    pub last_error: Option<&'a str>,
}

/// A run ended; `next` is the earliest unfinished run after it for the same
/// person and vendor (the one that may be waiting for it), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub next: Option<String>,
}

/// Runs: claimed, extended, ended, parked and woken.
#[async_trait]
pub trait RunStore: Send + Sync {
    async fn get(&self, id: &str) -> StorageResult<Option<RunRecord>>;
    /// Claims the run a message names in one step, when the storage can and
    /// the run is ready as sent (current dispatch sequence, due within
    /// `early`, claimable, no earlier unfinished run). None: not claimed this
    /// way; the caller reads the run to find out why and claims with
    /// [`RunStore::claim`].
    async fn claim_as_sent(
        &self,
        run_id: &str,
        dispatch_seq: i64,
        owner: &str,
        lease: Duration,
        early: Duration,
    ) -> StorageResult<Option<Claimed>>;
    /// Takes the run for `owner` until now + `lease`, if the message's
    /// dispatch sequence is current, it is waiting (or running under an
    /// expired lease), and no earlier run for the person and vendor is unfinished.
    async fn claim(&self, run: &RunRecord, dispatch_seq: i64, owner: &str, lease: Duration) -> StorageResult<bool>;
    /// False: the lease was lost.
    async fn extend_lease(&self, id: &str, owner: &str, lease: Duration) -> StorageResult<bool>;
    /// Records a terminal state while `owner` holds the run (None if not).
    async fn finish_then_next(&self, id: &str, owner: &str, finish: Finish<'_>) -> StorageResult<Option<Ended>>;
    /// `retry_scheduled` at `at` with a new dispatch sequence (returned), while held.
    async fn schedule_retry(
        &self,
        id: &str,
        owner: &str,
        current_seq: i64,
        at: DateTime<Utc>,
        error: &str,
    ) -> StorageResult<Option<i64>>;
    /// Hands the run back untouched (the attempt does not count), while held.
    async fn release(&self, id: &str, owner: &str) -> StorageResult<bool>;
    async fn earlier_unfinished(
        &self,
        vendor: VendorKind,
        person_key: &str,
        seq: i64,
    ) -> StorageResult<Option<RunRecord>>;
    async fn next_unfinished(&self, vendor: VendorKind, person_key: &str, seq: i64)
        -> StorageResult<Option<RunRecord>>;
    /// Parks a waiting run behind `blocked_by`, re-checked at `recheck_at`.
    async fn block(
        &self,
        id: &str,
        dispatch_seq: i64,
        blocked_by: &str,
        recheck_at: DateTime<Utc>,
    ) -> StorageResult<bool>;
    /// A new dispatch sequence for an unfinished run (due now with `due_now`).
    async fn redispatch(&self, id: &str, expected_seq: i64, due_now: bool) -> StorageResult<Option<i64>>;
    /// Runs whose dispatch seems lost, oldest first, at most `limit`.
    async fn overdue(&self, grace: Duration, limit: u64) -> StorageResult<Vec<RunRecord>>;
}

/// A scheduled run that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRun {
    pub id: String,
    pub dispatch_seq: i64,
    pub vendor: VendorKind,
    pub workflow: Workflow,
}

/// What became of a due run the scheduler tried to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Now `queued` with this dispatch sequence: publish it.
    Queued(i64),
    /// Past a blast-radius threshold: `held`, not to be published.
    Held,
    /// Needs an approver: `awaiting_approval`, not to be published.
    AwaitingApproval,
    /// Another scheduler won it (or it was withdrawn meanwhile).
    Lost,
}

/// Scheduled runs: which are due, and starting them (one scheduler wins each).
#[async_trait]
pub trait Schedule: Send + Sync {
    /// Scheduled runs due at `now`, at most `limit`, oldest first.
    async fn due(&self, now: DateTime<Utc>, limit: u64) -> StorageResult<Vec<RunRecord>>;
    /// Starts `runs` together; one answer per run, in order.
    async fn start_due(&self, runs: &[DueRun]) -> StorageResult<Vec<Started>>;
}

/// One step of a run's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub id: i64,
    pub run_id: String,
    pub key: String,
    pub position: i32,
    pub idempotency_key: String,
    pub status: StepStatus,
    pub attempts: i32,
    /// The output, as the JSON text the step recorded.
    pub output: Option<String>,
    pub last_error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt, as the storage keeps them (JSON).
    pub history: Option<String>,
}

/// A new attempt of one step, written by the worker holding the run.
#[derive(Debug, Clone, Copy)]
pub struct StepWrite<'a> {
    pub run_id: &'a str,
    pub owner: &'a str,
    pub key: &'a str,
    pub position: i32,
    /// The step as last recorded, if it was.
    pub previous: Option<&'a StepRecord>,
    /// Which attempt of the run this is.
    pub run_attempt: i32,
}

/// A run's step journal. Every write is refused with
/// [`StorageError::LeaseLost`] (nothing written) once the writer no longer
/// holds the run's lease.
#[async_trait]
pub trait Journal: Send + Sync {
    /// The run's steps, by position.
    async fn load(&self, run_id: &str) -> StorageResult<Vec<StepRecord>>;
    /// A new attempt of a step begins now (`running`); returns the step as it now stands.
    async fn begin(&self, step: StepWrite<'_>) -> StorageResult<StepRecord>;
    /// The attempt begun last ended: `output` on success, `error` on failure.
    async fn finish(
        &self,
        begun: &StepRecord,
        owner: &str,
        output: Option<&str>,
        error: Option<&str>,
        duration_ms: i64,
    ) -> StorageResult<StepRecord>;
    /// A step that only read, already succeeded with `output`: one write.
    async fn record_read(&self, step: StepWrite<'_>, output: &str, duration_ms: i64) -> StorageResult<StepRecord>;
}
