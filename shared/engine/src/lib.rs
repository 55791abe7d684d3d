//! Durable execution of runs.
//!
//! Vendor modules describe a workflow as a sequence of named steps through
//! [`Steps`]; they never touch the queue or the database. The engine owns the
//! rest: the step journal (a completed step is never repeated, its recorded
//! output is returned instead), claiming runs, retries through the delay
//! queues, per-person ordering, dead letters, and the sweeper that republishes
//! runs whose message was lost.

mod connector;
mod error;
mod executor;
pub mod inspect;
pub mod lease;
pub mod memory;
pub mod retry;
mod scheduler;
mod steps;
pub mod storage;
mod sweeper;

pub use connector::{Access, Connector, Outcome, Registry, RunSpec};
pub use error::StepError;
pub use executor::{spec, wake_after, wake_next, Disposition, Executor, ExecutorConfig};
pub use inspect::{Account, AccountStatus, Plan, PlanStop, PlannedAction, Progress};
pub use lease::{check_before_send, Lease};
pub use scheduler::Scheduler;
pub use steps::{Attempt, Steps};
pub use storage::{
    Claim, Claimed, DueRun, Ended, Finish, Journal, RunRecord, RunStore, Schedule, Started, StepRecord, StepWrite,
    StorageError,
};
pub use sweeper::Sweeper;
