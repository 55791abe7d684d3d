//! Runs: one per (event, vendor), and the states they move through (CONTRACT §3).

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    RetryScheduled,
    Succeeded,
    /// The vendor's API cannot do it; the run says exactly what a person must do.
    NeedsManualAction,
    /// Gave up; the run says why.
    Dead,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Queued,
        RunState::Running,
        RunState::RetryScheduled,
        RunState::Succeeded,
        RunState::NeedsManualAction,
        RunState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::RetryScheduled => "retry_scheduled",
            RunState::Succeeded => "succeeded",
            RunState::NeedsManualAction => "needs_manual_action",
            RunState::Dead => "dead",
        }
    }

    /// Terminal runs are never executed again unless an operator replays them.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::NeedsManualAction | RunState::Dead)
    }

    pub const TERMINAL: [&'static str; 3] = ["succeeded", "needs_manual_action", "dead"];
    pub const UNFINISHED: [&'static str; 3] = ["queued", "running", "retry_scheduled"];
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
