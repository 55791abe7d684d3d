//! Everything lifecycle keeps in its SQL database.
//!
//! The database is the source of truth: a run's state, attempts and next
//! attempt time live here, and the broker only carries pointers to runs. Every
//! state change is a conditional `UPDATE` (on state, lease owner or dispatch
//! sequence), so two workers, a sweeper and an operator can never both win.

pub mod approvals;
pub mod audit;
pub mod db;
pub mod drift;
pub mod edits;
pub mod engine;
pub mod entity;
pub mod events;
pub mod group;
#[cfg(feature = "harness")]
pub mod harness;
pub mod hris;
pub mod lanes;
pub mod new_run;
pub mod notifications;
pub mod outbox;
pub mod push;
pub mod reconcile;
pub mod runs;
pub mod safety;
pub mod scim;
pub mod scim_bulk;
pub mod steps;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod webhooks;

pub use db::{begin_write, connect, connect_with, migrate, Db};
pub use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("stored data is not what this version expects: {0}")]
    Corrupt(String),
    /// A journal write by a worker that no longer holds the run's lease (it
    /// expired and another worker claimed the run): refused, nothing written.
    #[error("the run's lease is lost: another worker owns the run now")]
    LeaseLost,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
