//! Runs: one per (event, vendor), and the states they move through (docs/contract.md §3).
//!
//! [`RunState`] and [`Workflow`] are what the `runs` table's `state` and
//! `workflow` columns hold: sea-orm active enums stored as the same strings
//! the API and the CLI print (`needs_manual_action`, `reassign_deals`), so a
//! run read from the database can only be in a state that exists.

use sea_orm::sea_query::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumIter, DeriveActiveEnum)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum RunState {
    /// Its event's `effective_at` (less the vendor's lead) has not come.
    #[sea_orm(string_value = "scheduled")]
    Scheduled,
    /// Waiting for a worker (or behind an earlier run of the same person at the vendor).
    #[sea_orm(string_value = "queued")]
    Queued,
    /// A worker holds it and is doing its steps.
    #[sea_orm(string_value = "running")]
    Running,
    /// An attempt failed in a way that may pass; it runs again later.
    #[sea_orm(string_value = "retry_scheduled")]
    RetryScheduled,
    /// Done: the vendor shows what was asked.
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// The vendor's API cannot do it; the run says exactly what a person must do.
    #[sea_orm(string_value = "needs_manual_action")]
    NeedsManualAction,
    /// Gave up; the run says why.
    #[sea_orm(string_value = "dead")]
    Dead,
    /// A newer event (by `occurred_at`) for the same person and vendor wins;
    /// the run names it. Never executed.
    #[sea_orm(string_value = "superseded")]
    Superseded,
    /// Withdrawn before it started; the run says by whom. Never executed.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Past a blast-radius threshold (`[safety]`): not started, nothing sent to
    /// the vendor, until an operator releases it (`queued`) or cancels it.
    #[sea_orm(string_value = "held")]
    Held,
    /// Its vendor × workflow needs an approver (`[approval]`): not started,
    /// nothing sent to the vendor, until an approver approves it (`queued`) or
    /// rejects it, or its deadline passes (`rejected`).
    #[sea_orm(string_value = "awaiting_approval")]
    AwaitingApproval,
    /// Refused by an approver (the run says who and why) or not decided by its
    /// deadline. Never executed.
    #[sea_orm(string_value = "rejected")]
    Rejected,
}

impl RunState {
    pub const ALL: [RunState; 12] = [
        RunState::Scheduled,
        RunState::Queued,
        RunState::Running,
        RunState::RetryScheduled,
        RunState::Succeeded,
        RunState::NeedsManualAction,
        RunState::Dead,
        RunState::Superseded,
        RunState::Cancelled,
        RunState::Held,
        RunState::AwaitingApproval,
        RunState::Rejected,
    ];

    pub const fn as_str(self) -> &'static str {
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
            RunState::Held => "held",
            RunState::AwaitingApproval => "awaiting_approval",
            RunState::Rejected => "rejected",
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
                | RunState::Rejected
        )
    }

    /// The states [`is_terminal`](RunState::is_terminal) says yes to.
    pub const TERMINAL: [RunState; 6] = [
        RunState::Succeeded,
        RunState::NeedsManualAction,
        RunState::Dead,
        RunState::Superseded,
        RunState::Cancelled,
        RunState::Rejected,
    ];
    /// The others: waiting for their time, their turn, a worker, a retry or an
    /// operator's release (`held`: it keeps later runs of the person behind it,
    /// so effects stay in order), an approver (`awaiting_approval`: it keeps
    /// later runs behind it too, but a later event replaces it as it replaces
    /// a scheduled run), or being worked on.
    pub const UNFINISHED: [RunState; 6] = [
        RunState::Scheduled,
        RunState::Queued,
        RunState::Running,
        RunState::RetryScheduled,
        RunState::Held,
        RunState::AwaitingApproval,
    ];
    /// Waiting for a worker to claim them (now or at their next attempt).
    pub const WAITING: [RunState; 2] = [RunState::Queued, RunState::RetryScheduled];
    /// Not executed, and never will be: a newer event won, someone withdrew it,
    /// or an approver refused it (or no one approved it in time).
    pub const NEVER_RAN: [RunState; 3] = [RunState::Superseded, RunState::Cancelled, RunState::Rejected];
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumIter, DeriveActiveEnum)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum Workflow {
    /// A new person: an account with the requested access.
    #[sea_orm(string_value = "joiner")]
    Joiner,
    /// A person whose access changed: the vendor converges to it.
    #[sea_orm(string_value = "mover")]
    Mover,
    /// A person who left: their access removed.
    #[sea_orm(string_value = "leaver")]
    Leaver,
    /// Pipedrive only: a user was deactivated outside our workflows and their
    /// open deals still need a new owner (started by a Pipedrive webhook).
    #[sea_orm(string_value = "reassign_deals")]
    ReassignDeals,
}

impl Workflow {
    pub const ALL: [Workflow; 4] = [Workflow::Joiner, Workflow::Mover, Workflow::Leaver, Workflow::ReassignDeals];

    pub const fn as_str(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    /// One name per state everywhere: the column, the JSON, `as_str`, the parser.
    #[test]
    fn a_state_has_one_name_in_the_column_the_json_and_the_text() {
        assert_eq!(RunState::iter().collect::<Vec<_>>(), RunState::ALL, "ALL lists every state");
        for s in RunState::ALL {
            assert_eq!(s.to_value(), s.as_str(), "stored as its name");
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str(), "serialized as its name");
            assert_eq!(s.as_str().parse::<RunState>().unwrap(), s);
            assert_eq!(RunState::TERMINAL.contains(&s), s.is_terminal());
            assert_ne!(RunState::TERMINAL.contains(&s), RunState::UNFINISHED.contains(&s), "{s}: one or the other");
        }
        assert!("Dead".parse::<RunState>().is_err() && "".parse::<RunState>().is_err());
    }

    #[test]
    fn a_workflow_has_one_name_in_the_column_the_json_and_the_text() {
        assert_eq!(Workflow::iter().collect::<Vec<_>>(), Workflow::ALL, "ALL lists every workflow");
        for w in Workflow::ALL {
            assert_eq!(w.to_value(), w.as_str(), "stored as its name");
            assert_eq!(serde_json::to_value(w).unwrap(), w.as_str(), "serialized as its name");
            assert_eq!(w.as_str().parse::<Workflow>().unwrap(), w);
        }
        assert!("hire".parse::<Workflow>().is_err());
    }

    /// The command line takes the same names (`--state needs_manual_action`).
    #[cfg(feature = "clap")]
    #[test]
    fn the_command_line_takes_the_same_names() {
        use clap::ValueEnum;
        for s in RunState::value_variants() {
            assert_eq!(s.to_possible_value().unwrap().get_name(), s.as_str());
        }
        for w in Workflow::value_variants() {
            assert_eq!(w.to_possible_value().unwrap().get_name(), w.as_str());
        }
        assert_eq!(RunState::value_variants(), RunState::ALL);
        assert_eq!(Workflow::value_variants(), Workflow::ALL);
    }
}
