//! Runs: one per (event, vendor), and the states they move through (CONTRACT §3).

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Its event's `effective_at` (less the vendor's lead) has not come.
    Scheduled,
    Queued,
    Running,
    RetryScheduled,
    Succeeded,
    /// The vendor's API cannot do it; the run says exactly what a person must do.
    NeedsManualAction,
    /// Gave up; the run says why.
    Dead,
    /// A newer event (by `occurred_at`) for the same person and vendor wins;
    /// the run names it. Never executed.
    Superseded,
    /// Withdrawn before it started; the run says by whom. Never executed.
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 9] = [
        RunState::Scheduled,
        RunState::Queued,
        RunState::Running,
        RunState::RetryScheduled,
        RunState::Succeeded,
        RunState::NeedsManualAction,
        RunState::Dead,
        RunState::Superseded,
        RunState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::RetryScheduled => "retry_scheduled",
            RunState::Succeeded => "succeeded",
            RunState::NeedsManualAction => "needs_manual_action",
            RunState::Dead => "dead",
            RunState::Superseded => "superseded",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Terminal runs are never executed again unless an operator replays them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded
                | RunState::NeedsManualAction
                | RunState::Dead
                | RunState::Superseded
                | RunState::Cancelled
        )
    }

    pub const TERMINAL: [&'static str; 5] = ["succeeded", "needs_manual_action", "dead", "superseded", "cancelled"];
    pub const UNFINISHED: [&'static str; 4] = ["scheduled", "queued", "running", "retry_scheduled"];
}

#[derive(Debug, thiserror::Error)]
#[error("unknown run state '{0}'")]
pub struct UnknownRunState(pub String);

impl FromStr for RunState {
    type Err = UnknownRunState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownRunState(s.to_string()))
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run does at its vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    Joiner,
    Mover,
    Leaver,
    /// Pipedrive only: a user was deactivated outside our workflows and their
    /// open deals still need a new owner (started by a Pipedrive webhook).
    ReassignDeals,
}

impl Workflow {
    pub const ALL: [Workflow; 4] = [Workflow::Joiner, Workflow::Mover, Workflow::Leaver, Workflow::ReassignDeals];

    pub fn as_str(self) -> &'static str {
        match self {
            Workflow::Joiner => "joiner",
            Workflow::Mover => "mover",
            Workflow::Leaver => "leaver",
            Workflow::ReassignDeals => "reassign_deals",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown workflow '{0}'")]
pub struct UnknownWorkflow(pub String);

impl FromStr for Workflow {
    type Err = UnknownWorkflow;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Workflow::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownWorkflow(s.to_string()))
    }
}

impl fmt::Display for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
