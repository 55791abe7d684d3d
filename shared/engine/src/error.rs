//! How a step (and so a run) can fail. The variant decides what happens next;
//! the engine never inspects message text.

use crate::storage::StorageError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying later: 429, 5xx, timeouts, connection errors. When the
    /// vendor said how long to wait, `retry_after` carries it and is honoured.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// Will not succeed by retrying: validation errors, 403, an unknown role.
    /// The run ends `dead` with this message.
    #[error("{message}")]
    Permanent { message: String },
    /// The vendor's API cannot do it; the message says what a person must do.
    /// The run ends `needs_manual_action`.
    #[error("{message}")]
    NeedsPerson { message: String },
    /// The worker is shutting down: the run is handed back between steps.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// The journal could not be written; the run is retried.
    #[error("journal unavailable: {0}")]
    Journal(StorageError),
    /// This worker no longer holds the run's lease (another worker claimed it,
    /// or the lease ran out before the worker could extend it): it stops the
    /// run where it is and writes nothing more; the run's owner carries on.
    #[error("lease lost: another worker owns the run now")]
    LeaseLost,
}

/// A journal write refused because the lease is lost is [`StepError::LeaseLost`].
impl From<StorageError> for StepError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::LeaseLost => StepError::LeaseLost,
            other => StepError::Journal(other),
        }
    }
}

impl StepError {
    pub fn transient(message: impl Into<String>) -> Self {
        StepError::Transient { message: message.into(), retry_after: None }
    }
    pub fn transient_after(message: impl Into<String>, retry_after: Duration) -> Self {
        StepError::Transient { message: message.into(), retry_after: Some(retry_after) }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError::Permanent { message: message.into() }
    }
    pub fn needs_person(message: impl Into<String>) -> Self {
        StepError::NeedsPerson { message: message.into() }
    }

    /// Prefixes the message with what was being done ("assign role: ...").
    pub fn context(self, what: &str) -> Self {
        match self {
            StepError::Transient { message, retry_after } => {
                StepError::Transient { message: format!("{what}: {message}"), retry_after }
            }
            StepError::Permanent { message } => StepError::Permanent { message: format!("{what}: {message}") },
            StepError::NeedsPerson { message } => StepError::NeedsPerson { message: format!("{what}: {message}") },
            other => other,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            StepError::Transient { .. } => "transient",
            StepError::Permanent { .. } => "permanent",
            StepError::NeedsPerson { .. } => "needs_person",
            StepError::Interrupted => "interrupted",
            StepError::Journal(_) => "journal",
            StepError::LeaseLost => "lease_lost",
        }
    }
}
