//! What lifecycle knows of the people at one vendor: each person's latest
//! run in force there and anywhere, and their logins.

use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunInput, RunState, VendorKind, Workflow};
use lifecycle_engine::Account;
use lifecycle_store::reconcile as store;
use lifecycle_store::runs::Run;
use lifecycle_store::Db;
use std::collections::HashMap;

/// What lifecycle knows of the people at one vendor.
#[derive(Default)]
pub struct Known {
    /// Each person's latest run in force at the vendor, by lower-cased address.
    pub(super) at_vendor: HashMap<String, Latest>,
    /// Each person's latest run in force at any vendor: whether they left.
    pub(super) anywhere: HashMap<String, Latest>,
    /// Lower-cased vendor login -> address, from the latest runs at a vendor that knows people
    /// by login (GitHub, CircleCI): its accounts carry a login and seldom an address.
    by_login: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub(super) struct Latest {
    pub(super) run_id: String,
    pub(super) event_id: String,
    pub(super) workflow: Workflow,
    pub(super) state: RunState,
    pub(super) input: Option<RunInput>,
    pub(super) at: DateTime<Utc>,
    /// When its event arrived.
    pub(super) received_at: DateTime<Utc>,
}

impl Latest {
    fn of(run: Run) -> Self {
        Latest {
            input: serde_json::from_str(&run.input).ok(),
            received_at: run.created_at,
            event_id: run.event_id,
            run_id: run.id,
            workflow: run.workflow,
            state: run.state,
            at: run.finished_at.unwrap_or(run.created_at),
        }
    }
    pub(super) fn at_work(&self) -> bool {
        matches!(self.state, RunState::Queued | RunState::Running | RunState::RetryScheduled)
    }
    pub(super) fn describe(&self) -> String {
        format!("{} run {} ({}, {})", self.workflow, self.run_id, self.state, self.at.format("%Y-%m-%d %H:%M UTC"))
    }
}

impl Known {
    pub async fn load(db: &Db, vendor: VendorKind) -> Result<Self, OpsError> {
        let mut known = Known::default();
        for run in store::latest_runs(db, Some(vendor)).await? {
            known.at_vendor(Latest::of(run));
        }
        for run in store::latest_runs(db, None).await? {
            let person = run.person_key.clone();
            known.anywhere.insert(person, Latest::of(run));
        }
        Ok(known)
    }

    /// A person's latest run at the vendor, under their address and their login there.
    pub(super) fn at_vendor(&mut self, latest: Latest) {
        if let Some(input) = &latest.input {
            let person = input.employee.email.normalized();
            if let Some(login) = input.app.login() {
                self.by_login.insert(login.to_lowercase(), person.clone());
            }
            self.at_vendor.insert(person, latest);
        }
    }

    /// The person's latest run in force at the vendor, else anywhere.
    pub(super) fn latest(&self, person: &str) -> Option<&Latest> {
        self.at_vendor.get(person).or_else(|| self.anywhere.get(person))
    }

    /// Whose account it is: by its address, else by its login through the person's latest run
    /// at the vendor (a login-based vendor's members have no address to match).
    pub(super) fn person_of(&self, account: &Account) -> Option<String> {
        let by_email = account
            .email
            .as_ref()
            .map(|e| e.to_lowercase())
            .filter(|e| self.at_vendor.contains_key(e) || self.anywhere.contains_key(e));
        by_email.or_else(|| self.by_login.get(&account.login.as_ref()?.to_lowercase()).cloned())
    }
}
