//! The contract's own example, touching every vendor at once, and
//! "apply, then fail the response" on every vendor's write endpoints.

use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::sim::list;
use lifecycle_e2e::stack::{contract_joiner, contract_leaver};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

fn by_vendor(
    runs: &[lifecycle_store::entity::run::Model],
) -> std::collections::BTreeMap<VendorKind, &lifecycle_store::entity::run::Model> {
    runs.iter().map(|r| (r.vendor, r)).collect()
}

fn count_where(state: &Value, vendor: &str, key: &str, field: &str, value: &str) -> usize {
    list(state, vendor, key)
        .into_iter()
        .filter(|x| x[field].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value)))
        .count()
}

fn log_count(state: &Value, vendor: &str, action: &str) -> usize {
    list(state, vendor, "log").into_iter().filter(|e| e["action"] == action).count()
}

async fn the_contract_example_joins_and_leaves_every_vendor(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "contract-5")).await;
    let joined = stack.accept(&contract_joiner()).await;
    assert_eq!(joined["runs"].as_array().unwrap().len(), VendorKind::ALL.len());
    let runs = stack.wait_event(joined["event_id"].as_str().unwrap(), WAIT).await;
    let r = by_vendor(&runs);
    for v in
        [VendorKind::Pipedrive, VendorKind::Crowdstrike, VendorKind::Jira, VendorKind::Calendly, VendorKind::Github]
    {
        assert_eq!(
            r[&v].state,
            RunState::Succeeded,
            "{v}: {:?} / {:?}\n{}",
            r[&v].outcome,
            r[&v].last_error,
            stack.logs()
        );
    }
    assert_eq!(r[&VendorKind::Pipedrive].access.map(|a| a.as_str()), Some("active"));
    assert_eq!(r[&VendorKind::Crowdstrike].access.map(|a| a.as_str()), Some("active"));
    assert_eq!(r[&VendorKind::Jira].access.map(|a| a.as_str()), Some("active"));
    assert_eq!(r[&VendorKind::Calendly].access.map(|a| a.as_str()), Some("invited"));
    assert_eq!(r[&VendorKind::Github].access.map(|a| a.as_str()), Some("invited"));
    assert!(
        r[&VendorKind::Calendly].outcome.as_deref().unwrap().contains("pending acceptance"),
        "{:?}",
        r[&VendorKind::Calendly].outcome
    );
    assert_eq!(r[&VendorKind::Circleci].state, RunState::NeedsManualAction, "{:?}", r[&VendorKind::Circleci].outcome);
    assert!(
        r[&VendorKind::Circleci].outcome.as_deref().unwrap().contains("ada-gh"),
        "says who to invite: {:?}",
        r[&VendorKind::Circleci].outcome
    );

    let state = stack.sim_state().await;
    assert_eq!(count_where(&state, "pipedrive", "users", "email", "ada@example.com"), 1);
    let cs: Vec<&Value> =
        list(&state, "crowdstrike", "users").into_iter().filter(|u| u["username"] == "ada@example.com").collect();
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0]["roles"], json!(["falcon_analyst"]));
    let jira: Vec<&Value> =
        list(&state, "jira", "users").into_iter().filter(|u| u["emailAddress"] == "ada@example.com").collect();
    assert_eq!(jira.len(), 1);
    assert!(jira[0]["groups"].as_array().unwrap().contains(&json!("276f955c-63d7-42c8-9520-92d01dca0625")));
    let invites: Vec<&Value> =
        list(&state, "calendly", "invitations").into_iter().filter(|i| i["email"] == "ada@example.com").collect();
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0]["status"], "pending");
    let invites: Vec<&Value> =
        list(&state, "github", "invitations").into_iter().filter(|i| i["login"] == "ada-gh").collect();
    assert_eq!(invites.len(), 1);
    assert_eq!((&invites[0]["state"], &invites[0]["teams"]), (&json!("pending"), &json!(["platform"])));

    let left = stack.accept(&contract_leaver()).await;
    let runs = stack.wait_event(left["event_id"].as_str().unwrap(), WAIT).await;
    let r = by_vendor(&runs);
    for v in
        [VendorKind::Pipedrive, VendorKind::Crowdstrike, VendorKind::Jira, VendorKind::Calendly, VendorKind::Github]
    {
        assert_eq!(r[&v].state, RunState::Succeeded, "{v}: {:?} / {:?}", r[&v].outcome, r[&v].last_error);
    }
    assert_eq!(r[&VendorKind::Pipedrive].access.map(|a| a.as_str()), Some("deactivated"));
    assert_eq!(r[&VendorKind::Crowdstrike].access.map(|a| a.as_str()), Some("removed"));
    assert_eq!(r[&VendorKind::Jira].access.map(|a| a.as_str()), Some("removed"));
    assert_eq!(r[&VendorKind::Github].access.map(|a| a.as_str()), Some("removed"), "the invitation cancelled");
    // CircleCI's API publishes no member operation: a person removes them, as the run says.
    let circleci = r[&VendorKind::Circleci];
    assert_eq!(circleci.state, RunState::NeedsManualAction, "{:?}", circleci.outcome);
    assert!(circleci.outcome.as_deref().unwrap().contains("cannot remove ada-gh"), "{:?}", circleci.outcome);
    let state = stack.sim_state().await;
    assert!(list(&state, "crowdstrike", "users").iter().all(|u| u["username"] != "ada@example.com"));
    assert!(list(&state, "calendly", "invitations")
        .iter()
        .filter(|i| i["email"] == "ada@example.com")
        .all(|i| i["status"] == "revoked"));
    let pd: Vec<&Value> =
        list(&state, "pipedrive", "users").into_iter().filter(|u| u["email"] == "ada@example.com").collect();
    assert_eq!(pd[0]["active_flag"], false);
}

async fn apply_then_fail_on_every_vendors_writes_creates_no_duplicates(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "apply-fail-5")).await;
    let writes = [
        ("pipedrive", "POST", "/api/v1/users"),
        ("pipedrive", "POST", "/api/v1/roles/*/assignments"),
        ("crowdstrike", "POST", "/user-management/entities/users/v1"),
        ("crowdstrike", "POST", "/user-management/entities/user-role-actions/v1"),
        ("jira", "POST", "/user"),
        ("jira", "POST", "/group/user"),
        ("calendly", "POST", "/organizations/*/invitations"),
        ("github", "POST", "/orgs/*/invitations"),
    ];
    for (vendor, method, path) in writes {
        stack.sim_fault(json!({"vendor": vendor, "method": method, "path": path, "kind": "apply_then_fail", "status": 502, "count": 1})).await;
    }
    let joined = stack.accept(&contract_joiner()).await;
    let runs = stack.wait_event(joined["event_id"].as_str().unwrap(), WAIT).await;
    let r = by_vendor(&runs);
    for v in
        [VendorKind::Pipedrive, VendorKind::Crowdstrike, VendorKind::Jira, VendorKind::Calendly, VendorKind::Github]
    {
        assert_eq!(r[&v].state, RunState::Succeeded, "{v}: {:?} / {:?}", r[&v].outcome, r[&v].last_error);
        assert!(r[&v].attempts > 1, "{v} met its fault and retried");
    }
    let state = stack.sim_state().await;
    assert_eq!(count_where(&state, "pipedrive", "users", "email", "ada@example.com"), 1);
    assert_eq!(log_count(&state, "pipedrive", "user.create"), 1);
    assert_eq!(log_count(&state, "pipedrive", "role.assign"), 1);
    assert_eq!(count_where(&state, "crowdstrike", "users", "username", "ada@example.com"), 1);
    assert_eq!(log_count(&state, "crowdstrike", "user.create"), 1);
    assert_eq!(log_count(&state, "crowdstrike", "role.grant"), 1);
    assert_eq!(count_where(&state, "jira", "users", "emailAddress", "ada@example.com"), 1);
    assert_eq!(log_count(&state, "jira", "user.create"), 1);
    assert_eq!(log_count(&state, "jira", "group.add"), 1);
    assert_eq!(count_where(&state, "calendly", "invitations", "email", "ada@example.com"), 1);
    assert_eq!(log_count(&state, "calendly", "invitation.create"), 1);
    assert_eq!(count_where(&state, "github", "invitations", "login", "ada-gh"), 1);
    assert_eq!(log_count(&state, "github", "invitation.create"), 1);

    // And the removals, with their answers lost too.
    let removals = [
        ("pipedrive", "PUT", "/api/v1/users/*"),
        ("crowdstrike", "POST", "/user-management/entities/user-role-actions/v1"),
        ("crowdstrike", "DELETE", "/user-management/entities/users/v1"),
        ("jira", "DELETE", "/group/user"),
        ("jira", "DELETE", "/user"),
        ("calendly", "DELETE", "/organizations/*/invitations/*"),
        ("github", "DELETE", "/orgs/*/memberships/*"),
    ];
    for (vendor, method, path) in removals {
        stack.sim_fault(json!({"vendor": vendor, "method": method, "path": path, "kind": "apply_then_fail", "status": 504, "count": 1})).await;
    }
    let left = stack.accept(&contract_leaver()).await;
    let runs = stack.wait_event(left["event_id"].as_str().unwrap(), WAIT).await;
    for run in &runs {
        // CircleCI writes nothing (no published member operation): a person's task.
        let want = if run.vendor == VendorKind::Circleci { RunState::NeedsManualAction } else { RunState::Succeeded };
        assert_eq!(run.state, want, "{}: {:?} / {:?}", run.vendor, run.outcome, run.last_error);
    }
    let state = stack.sim_state().await;
    assert_eq!(log_count(&state, "pipedrive", "user.deactivate"), 1);
    assert_eq!(log_count(&state, "crowdstrike", "role.revoke"), 1);
    assert_eq!(log_count(&state, "crowdstrike", "user.delete"), 1);
    assert_eq!(log_count(&state, "jira", "group.remove"), 1);
    assert_eq!(log_count(&state, "jira", "user.delete"), 1);
    assert_eq!(log_count(&state, "calendly", "invitation.revoke"), 1);
    assert_eq!(log_count(&state, "github", "invitation.cancel"), 1);
}

both_databases!(
    the_contract_example_joins_and_leaves_every_vendor,
    apply_then_fail_on_every_vendors_writes_creates_no_duplicates
);
