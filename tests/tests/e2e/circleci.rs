//! CircleCI workflows end to end: producer -> RabbitMQ -> worker -> simulator.

use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// The simulator's gh/sim-org (the configured org) and its same-named Bitbucket twin.
const ORG_ID: &str = "610fae58-cf36-4c1d-b310-cf1332493ef4";
const BB_ORG_ID: &str = "e9ebb5a5-5ae3-4607-9071-e5c9df787bdf";
const ALAN_ID: &str = "1a527c1d-5289-4d64-b976-03e5eb5370f8";
const GRACE_ID: &str = "dffac8e5-5c5f-4ee2-b2b7-4d82448d5afc";

fn event(kind: &str, id: &str, email: &str, login: &str) -> Value {
    json!({
        "type": kind,
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": { "id": id, "email": email, "given_name": "Test", "family_name": "Person" },
        "apps": { "circleci": { "login": login } }
    })
}

/// The run of `vendor` among the event's runs, once every run has ended.
async fn run_of(stack: &Stack, body: &Value, vendor: VendorKind) -> lifecycle_store::entity::run::Model {
    let accepted = stack.accept(body).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    runs.into_iter().find(|r| r.vendor == vendor).expect("a run for the vendor")
}

fn is_member(state: &Value, login: &str) -> bool {
    state["circleci"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["org_id"] == ORG_ID && m["login"].as_str().is_some_and(|l| l.eq_ignore_ascii_case(login)))
}

fn log(state: &Value) -> Vec<Value> {
    state["circleci"]["log"].as_array().cloned().unwrap_or_default()
}

fn at(call: &Value) -> DateTime<Utc> {
    call["at"].as_str().unwrap().parse().unwrap()
}

fn describe(run: &lifecycle_store::entity::run::Model, stack: &Stack) -> String {
    format!("state {} outcome {:?} error {:?}\n{}", run.state, run.outcome, run.last_error, stack.logs())
}

async fn joiner_who_is_not_a_member_needs_a_person_to_invite_them(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-joiner")).await;
    // The contract's example event, unchanged: ada-gh is not a member of gh/sim-org.
    let contract_example = lifecycle_e2e::stack::contract_joiner();
    let run = run_of(&stack, &contract_example, VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    assert_eq!(run.access.as_deref(), Some("absent"));
    let outcome = run.outcome.as_deref().unwrap();
    for needed in ["ada-gh", "gh/sim-org", "cannot invite", "invite ada-gh", "web app", "SSO", "re-check this run"] {
        assert!(outcome.contains(needed), "{needed:?} missing from: {outcome}");
    }
    let state = stack.sim_state().await;
    assert!(!is_member(&state, "ada-gh"));
    assert!(log(&state).is_empty(), "nothing changed at CircleCI");
}

async fn joiner_who_is_already_a_member_succeeds_as_active(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-member")).await;
    // VCS logins are case-insensitive.
    let run = run_of(&stack, &event("joiner", "E-2", "grace@example.com", "GRACE-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    assert_eq!(run.access.as_deref(), Some("active"));
    let outcome = run.outcome.as_deref().unwrap();
    assert!(outcome.contains("grace-gh is already a member") && outcome.contains(GRACE_ID), "{outcome}");
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, [format!("member:{GRACE_ID}")]);
    assert!(log(&stack.sim_state().await).is_empty());
}

async fn org_uuid_comes_from_collaborations_and_the_slug_never_reaches_a_path(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-org")).await;
    let run = run_of(&stack, &event("leaver", "E-3", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));

    let calls = stack.sim_calls("circleci").await;
    assert_eq!(calls[0]["path"], "/me/collaborations", "{calls:#?}");
    let org_calls: Vec<&str> =
        calls.iter().map(|c| c["path"].as_str().unwrap()).filter(|p| p.starts_with("/org/")).collect();
    assert!(!org_calls.is_empty());
    for path in &org_calls {
        assert!(path.starts_with(&format!("/org/{ORG_ID}/")), "not the gh/sim-org UUID: {path}");
        assert!(!path.contains(BB_ORG_ID), "picked the same-named Bitbucket org: {path}");
    }
    for c in &calls {
        let path = c["path"].as_str().unwrap();
        assert!(!path.contains("sim-org"), "a slug reached a path: {path}");
    }
    // The org's UUID is cached by the worker (no step of its own); the member's step records it.
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let found = steps.iter().find(|s| s.key == "find_member").expect("a find_member step");
    assert!(found.output.as_deref().unwrap().contains(ORG_ID), "{:?}", found.output);
}

async fn leaver_deletes_the_member_and_its_204_is_the_proof(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-leaver")).await;
    let run = run_of(&stack, &event("leaver", "E-4", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    assert_eq!(run.access.as_deref(), Some("removed"));

    let state = stack.sim_state().await;
    assert!(!is_member(&state, "alan-gh"));
    assert!(is_member(&state, "grace-gh"), "nobody else was touched");
    let log = log(&state);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["action"], "member.remove");
    assert_eq!(log[0]["user_id"], ALAN_ID);

    let member_path = format!("/org/{ORG_ID}/members/{ALAN_ID}");
    let calls = stack.sim_calls("circleci").await;
    let delete = calls
        .iter()
        .position(|c| c["method"] == "DELETE" && c["path"] == member_path.as_str())
        .expect("a DELETE of the member");
    assert_eq!(calls[delete]["status"], 204);
    assert!(
        !calls.iter().skip(delete + 1).any(|c| c["path"] == member_path.as_str()),
        "the 204 is the proof: no GET confirms it again: {calls:#?}"
    );
    assert_eq!(calls.iter().filter(|c| c["method"] == "DELETE").count(), 1);

    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["find_member", &format!("remove_member:{ALAN_ID}")]);
}

async fn leaver_outcome_says_personal_api_tokens_are_not_revoked(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-tokens")).await;
    // grace-gh has a personal token in the simulator.
    let run = run_of(&stack, &event("leaver", "E-5", "grace@example.com", "grace-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    let outcome = run.outcome.as_deref().unwrap();
    for needed in [
        "removed grace-gh",
        "personal API tokens are NOT revoked",
        "Ask grace-gh to revoke them",
        "Personal API Tokens",
        "SSO",
    ] {
        assert!(outcome.contains(needed), "{needed:?} missing from: {outcome}");
    }
    // And it is true: the token still authenticates after the removal.
    let me = stack
        .http
        .get(format!("{}/circleci/api/v2/me", stack.sim_url))
        .header("Circle-Token", "circleci-member-token")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
    assert!(!is_member(&stack.sim_state().await, "grace-gh"));
}

async fn leaver_finds_a_member_past_the_first_hundred_through_page_tokens(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-pages")).await;
    let mut users: Vec<Value> = (0..150).map(|i| json!({"login": format!("member-{i:03}")})).collect();
    users.push(json!({"login": "zed-gh", "name": "Zed Last"}));
    let memberships: Vec<Value> = users.iter().map(|u| json!({"org": "gh/sim-org", "login": u["login"]})).collect();
    stack.sim_seed(json!({"circleci": {"users": users, "memberships": memberships}})).await;

    let run = run_of(&stack, &event("leaver", "E-6", "zed@example.com", "zed-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    assert_eq!(run.access.as_deref(), Some("removed"));
    let state = stack.sim_state().await;
    assert!(!is_member(&state, "zed-gh"));
    // 4 fixture members of gh/sim-org, 1 of bb/sim-org, 151 seeded; only zed left.
    assert_eq!(state["circleci"]["memberships"].as_array().unwrap().len(), 155);

    let list_path = format!("/org/{ORG_ID}/members");
    let pages: Vec<Value> =
        stack.sim_calls("circleci").await.into_iter().filter(|c| c["path"] == list_path.as_str()).collect();
    assert_eq!(pages.len(), 2, "155 members at 100 a page: {pages:#?}");
    assert!(pages[0]["query"].as_str().unwrap().contains("page-size=100"));
    assert!(!pages[0]["query"].as_str().unwrap().contains("page-token"));
    assert!(pages[1]["query"].as_str().unwrap().contains("page-token="), "the second page follows the token");
}

async fn leaver_who_is_not_a_member_succeeds_as_absent(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-absent")).await;
    let run = run_of(&stack, &event("leaver", "E-7", "nobody@example.com", "nobody-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    assert_eq!(run.access.as_deref(), Some("absent"));
    assert!(run.outcome.as_deref().unwrap().contains("not a member"), "{:?}", run.outcome);
    assert!(stack.sim_calls("circleci").await.iter().all(|c| c["method"] == "GET"), "nothing was deleted");
    assert!(log(&stack.sim_state().await).is_empty());
}

async fn a_429_without_retry_after_is_recovered_by_the_clients_own_backoff(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-429")).await;
    stack
        .sim_fault(json!({"vendor": "circleci", "method": "GET", "path": "/org/*/members",
                          "kind": "status", "status": 429, "count": 2}))
        .await;
    let run = run_of(&stack, &event("leaver", "E-8", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    assert_eq!(run.access.as_deref(), Some("removed"));
    assert_eq!(run.attempts, 3, "two 429s, then success");
    let state = stack.sim_state().await;
    assert_eq!(state["circleci"]["counters"]["rate_limited"], 2);
    assert!(!is_member(&state, "alan-gh"));

    // The simulator named no wait; the client paused on its own before every retry.
    let calls = stack.sim_calls("circleci").await;
    for (i, c) in calls.iter().enumerate().filter(|(_, c)| c["status"] == 429) {
        let next = calls.get(i + 1).expect("a request after the 429");
        let gap = at(next) - at(c);
        assert!(gap >= chrono::Duration::milliseconds(200), "retried {gap:?} after a 429: {calls:#?}");
    }
}

async fn a_5xx_after_the_removal_landed_is_retried_and_removes_exactly_once(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-5xx")).await;
    // CircleCI removes the member, then the response is lost to a 503.
    stack
        .sim_fault(json!({"vendor": "circleci", "method": "DELETE", "path": "/org/*/members/*",
                          "kind": "apply_then_fail", "status": 503}))
        .await;
    let run = run_of(&stack, &event("leaver", "E-9", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    assert_eq!(run.access.as_deref(), Some("removed"));
    assert_eq!(run.attempts, 2);
    assert!(run.outcome.as_deref().unwrap().contains("removed alan-gh"), "{:?}", run.outcome);

    let state = stack.sim_state().await;
    assert!(!is_member(&state, "alan-gh"));
    assert_eq!(log(&state).len(), 1, "removed exactly once");
    let calls = stack.sim_calls("circleci").await;
    let deletes: Vec<&Value> = calls.iter().filter(|c| c["method"] == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "the in-doubt retry looked instead of deleting again: {calls:#?}");
    assert_eq!(deletes[0]["status"], 503);

    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let remove = steps.iter().find(|s| s.key == format!("remove_member:{ALAN_ID}")).unwrap();
    assert_eq!(remove.attempts, 2);
    assert!(remove.output.as_deref().unwrap().contains("\"adopted\":true"), "{:?}", remove.output);
}

async fn a_token_that_is_not_an_org_admins_ends_dead_with_what_to_fix(backend: Backend) {
    // grace-gh's token: a contributor of gh/sim-org, not an admin.
    let stack = Stack::start(
        StackOptions::new(backend, "ci-403").env("LIFECYCLE_VENDORS__CIRCLECI__TOKEN", "circleci-member-token"),
    )
    .await;
    let run = run_of(&stack, &event("leaver", "E-10", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Dead, "{}", describe(&run, &stack));
    assert_eq!(run.attempts, 1, "a permanent error is not retried");
    let outcome = run.outcome.as_deref().unwrap();
    for needed in ["403", "not belong to an admin", "gh/sim-org", "vendors.circleci.token", "replay this run"] {
        assert!(outcome.contains(needed), "{needed:?} missing from: {outcome}");
    }
    assert!(!outcome.contains("circleci-member-token"), "never the token itself");
    let state = stack.sim_state().await;
    assert!(is_member(&state, "alan-gh"), "nothing was removed");
    assert!(log(&state).is_empty());
}

async fn the_token_owner_is_never_removed(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-owner")).await;
    let run = run_of(&stack, &event("leaver", "E-11", "admin@example.com", "sim-admin"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    let outcome = run.outcome.as_deref().unwrap();
    assert!(outcome.contains("owns the API token") && outcome.contains("vendors.circleci.token"), "{outcome}");
    let state = stack.sim_state().await;
    assert!(is_member(&state, "sim-admin"));
    assert!(log(&state).is_empty());
}

both_databases!(
    joiner_who_is_not_a_member_needs_a_person_to_invite_them,
    joiner_who_is_already_a_member_succeeds_as_active,
    org_uuid_comes_from_collaborations_and_the_slug_never_reaches_a_path,
    leaver_deletes_the_member_and_its_204_is_the_proof,
    leaver_outcome_says_personal_api_tokens_are_not_revoked,
    leaver_finds_a_member_past_the_first_hundred_through_page_tokens,
    leaver_who_is_not_a_member_succeeds_as_absent,
    a_429_without_retry_after_is_recovered_by_the_clients_own_backoff,
    a_5xx_after_the_removal_landed_is_retried_and_removes_exactly_once,
    a_token_that_is_not_an_org_admins_ends_dead_with_what_to_fix,
    the_token_owner_is_never_removed,
);
