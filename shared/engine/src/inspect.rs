//! What a vendor module reports without changing anything at the vendor: its
//! directory of accounts (for reconcile) and a plan (what a run would do now).
//! Both are made from reads only, through the same client and rate limiter as
//! the vendor's runs.

use serde::Serialize;
use std::collections::BTreeSet;

/// An account as the vendor holds it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The vendor's own id of the account (user id, account id, membership URI...).
    pub vendor_id: String,
    /// The account's address, lower-cased, when the vendor has one: how it
    /// is matched to a person's events.
    pub email: Option<String>,
    /// The vendor login, for a vendor that knows people by login rather than
    /// address: matched to the login in the person's events. (None sets it today:
    /// CircleCI, which knows logins, publishes no directory read.)
    pub login: Option<String>,
    /// For people: "Ada Lovelace", a login, or the address.
    pub name: String,
    pub status: AccountStatus,
    /// The access it has, in the terms events use (see
    /// [`Connector::desired_access`](crate::Connector::desired_access)):
    /// compared with what the person's latest event asked for.
    pub access: BTreeSet<String>,
    /// The vendor's own reason this account is not ours to remove (the
    /// organisation's owner, the API credential's own user): reported as
    /// such, never turned into a leaver run.
    pub protected: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Can sign in and use what it has.
    Active,
    /// Invited; becomes active when the person accepts.
    Invited,
    /// Exists but cannot be used.
    Deactivated,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Invited => "invited",
            AccountStatus::Deactivated => "deactivated",
        }
    }

    /// Whether the account gives access (an invitation does, once accepted).
    pub fn has_access(self) -> bool {
        matches!(self, AccountStatus::Active | AccountStatus::Invited)
    }
}

/// Which accounts a directory read covers, and how far it got: reported
/// after each page so a long read shows progress.
pub trait Progress: Send + Sync {
    fn accounts_read(&self, so_far: usize);
}

impl<F: Fn(usize) + Send + Sync> Progress for F {
    fn accounts_read(&self, so_far: usize) {
        self(so_far)
    }
}

/// What a run of a workflow would do now, found by reads only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// In order: each change the run would make.
    pub actions: Vec<PlannedAction>,
    /// Where the run would stop short of its end, and why (a person must act,
    /// or the run would die): the message the run itself would give.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<PlanStop>,
    /// Facts found on the way that change nothing ("found user 55 (ada@…)").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One change a run would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedAction {
    /// The journal key of the step that would make it (`ensure_user`,
    /// `assign_role:3`): so a plan can be held against the run that follows.
    pub step: String,
    /// For people: "create Pipedrive user ada@example.com".
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStop {
    /// The state the run would end in.
    pub state: lifecycle_domain::StopState,
    pub message: String,
}

impl Plan {
    pub fn new() -> Self {
        Self::default()
    }
    /// A change the run would make at step `step`.
    pub fn act(&mut self, step: impl Into<String>, text: impl Into<String>) -> &mut Self {
        self.actions.push(PlannedAction { step: step.into(), text: text.into() });
        self
    }
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }
    /// The run would end `needs_manual_action` here, saying `message`.
    pub fn needs_person(mut self, message: impl Into<String>) -> Self {
        self.stop = Some(PlanStop { state: lifecycle_domain::StopState::NeedsManualAction, message: message.into() });
        self
    }
    /// The run would end `dead` here, saying `message`.
    pub fn dead(mut self, message: impl Into<String>) -> Self {
        self.stop = Some(PlanStop { state: lifecycle_domain::StopState::Dead, message: message.into() });
        self
    }
    /// Ends the plan where `error` would end the run: a permanent error or a
    /// person's task stops it; anything else (the vendor busy or down) is
    /// not an answer about the run, so it is returned.
    pub fn stopped_by(self, error: crate::StepError) -> Result<Self, crate::StepError> {
        match error {
            crate::StepError::Permanent { message } => Ok(self.dead(message)),
            crate::StepError::NeedsPerson { message } => Ok(self.needs_person(message)),
            other => Err(other),
        }
    }
}

/// The access `app` asks for, in the terms of [`Account::access`]: the
/// helper vendors use to name each kind of grant apart ("group:abc",
/// "product:jira-software").
pub fn tagged<'a>(tag: &str, names: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    names.into_iter().map(|n| format!("{tag}:{n}")).collect()
}
