//! Test fixtures shared by the reconcile modules' tests: people, runs, accounts.

use super::known::{Known, Latest};
use chrono::Utc;
use lifecycle_domain::apps::AppRequest;
use lifecycle_domain::{RunInput, RunState, Workflow};
use lifecycle_engine::{Account, AccountStatus};
use lifecycle_store::reconcile::Seen;
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub(super) fn input(vendor: &str, email: &str, app: Value) -> RunInput {
    let mut app = app;
    app["vendor"] = json!(vendor);
    serde_json::from_value(json!({
        "event_type": "joiner",
        "employee": { "id": "E-1", "email": email },
        "app": app,
    }))
    .expect("a run input")
}

pub(super) fn latest(workflow: Workflow, state: RunState, input: RunInput) -> Latest {
    Latest {
        run_id: "run-1".into(),
        event_id: "event-1".into(),
        workflow,
        state,
        input: Some(input),
        at: Utc::now(),
        received_at: Utc::now(),
    }
}

pub(super) fn account(email: &str, status: AccountStatus, access: &[&str]) -> Account {
    Account {
        vendor_id: format!("id-{email}"),
        email: Some(email.into()),
        login: None,
        name: email.into(),
        status,
        access: access.iter().map(|s| s.to_string()).collect(),
        protected: None,
    }
}

/// Pipedrive's terms: the role name is the access.
pub(super) fn role(app: &AppRequest) -> Option<BTreeSet<String>> {
    match app {
        AppRequest::Pipedrive(p) => Some(p.role.iter().cloned().collect()),
        _ => None,
    }
}

pub(super) fn known(people: &[(&str, Workflow, RunState)]) -> Known {
    let mut k = Known::default();
    for (email, workflow, state) in people {
        let l = latest(*workflow, *state, input("pipedrive", email, json!({ "role": "Sales Rep" })));
        k.at_vendor.insert(email.to_string(), l.clone());
        k.anywhere.insert(email.to_string(), l);
    }
    k
}

pub(super) fn kinds(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter().map(|s| (s.kind.to_string(), s.account_key.clone())).collect()
}
