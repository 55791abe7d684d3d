//! CircleCI workflows end to end: producer -> RabbitMQ -> worker -> simulator.
//!
//! CircleCI's API v2 definition publishes no organization-member operation: every workflow
//! reads `GET /me` and `GET /me/collaborations` (once per worker and `catalog_max_age`) and
//! hands over to a person with the exact steps, `needs_manual_action`; nothing changes at
//! CircleCI, and no request leaves the definition.

use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::{both_databases, on_database, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// The simulator's gh/sim-org (the configured org).
const ORG_ID: &str = "610fae58-cf36-4c1d-b310-cf1332493ef4";
/// The only paths the client may ask for: getCurrentUser and getCollaborations.
const PATHS: [&str; 2] = ["/me", "/me/collaborations"];

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

fn contains_all(text: &str, needed: &[&str]) {
    for n in needed {
        assert!(text.contains(n), "{n:?} missing from: {text}");
    }
}

/// Every call the worker made was a GET of the definition's two user operations.
async fn only_definition_calls(stack: &Stack) -> Vec<Value> {
    let calls = stack.sim_calls("circleci").await;
    for c in &calls {
        let path = c["path"].as_str().unwrap();
        assert!(c["method"] == "GET" && PATHS.contains(&path), "not an operation the client may use: {c}");
    }
    calls
}

async fn joiner_needs_a_person_to_invite_them_and_nothing_else_is_asked(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-joiner")).await;
    // The contract's example event, unchanged: ada-gh at CircleCI.
    let contract_example = lifecycle_e2e::stack::contract_joiner();
    let run = run_of(&stack, &contract_example, VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    assert_eq!(run.access, None, "no published read tells their access");
    contains_all(
        run.outcome.as_deref().unwrap(),
        &[
            "lifecycle cannot add ada-gh to the CircleCI organization gh/sim-org",
            "publishes no endpoint that invites or adds a member",
            "Invite ada-gh to the GitHub organization sim-org",
            "a re-check of this run cannot see the change",
        ],
    );
    let calls = only_definition_calls(&stack).await;
    assert_eq!(calls.len(), 2, "the token, then the org: {calls:#?}");
    assert!(calls.iter().all(|c| c["status"] == 200), "{calls:#?}");
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    assert!(steps.is_empty(), "nothing journaled: {steps:?}");
    let state = stack.sim_state().await;
    assert!(!is_member(&state, "ada-gh"));
    assert!(log(&state).is_empty(), "nothing changed at CircleCI");
}

async fn leaver_needs_a_person_to_remove_them_and_nothing_changes(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-leaver")).await;
    let run = run_of(&stack, &event("leaver", "E-4", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    assert_eq!(run.access, None);
    contains_all(
        run.outcome.as_deref().unwrap(),
        &[
            "lifecycle cannot remove alan-gh from the CircleCI organization gh/sim-org",
            "remove alan-gh from it (https://github.com/orgs/sim-org/people",
            "does not revoke their personal API tokens",
            "User Settings > Personal API Tokens",
            "SSO",
        ],
    );
    let state = stack.sim_state().await;
    assert!(is_member(&state, "alan-gh"), "lifecycle removed nobody");
    assert!(log(&state).is_empty());
    only_definition_calls(&stack).await;

    // A mover too: a person's task, the same two cached reads, no request at all now.
    let before = stack.sim_calls("circleci").await.len();
    let run = run_of(&stack, &event("mover", "E-5", "grace@example.com", "grace-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    assert!(run.outcome.as_deref().unwrap().contains("If grace-gh is not a member yet"), "{:?}", run.outcome);
    assert_eq!(only_definition_calls(&stack).await.len(), before, "the worker kept the token and the org");
}

async fn the_tokens_own_user_joins_as_active_and_is_never_handed_over_for_removal(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-owner")).await;
    let run = run_of(&stack, &event("joiner", "E-11", "admin@example.com", "sim-admin"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", describe(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let run = run_of(&stack, &event("leaver", "E-11", "admin@example.com", "sim-admin"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    let outcome = run.outcome.as_deref().unwrap();
    contains_all(outcome, &["owns the API token", "vendors.circleci.token", "gives no steps to remove them"]);
    assert!(!outcome.contains("Remove from organization"), "{outcome}");
    let state = stack.sim_state().await;
    assert!(is_member(&state, "sim-admin"));
    assert!(log(&state).is_empty());
    only_definition_calls(&stack).await;
}

async fn a_429_without_retry_after_is_recovered_by_the_clients_own_backoff(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ci-429")).await;
    stack
        .sim_fault(json!({"vendor": "circleci", "method": "GET", "path": "/me/collaborations",
                          "kind": "status", "status": 429, "count": 2}))
        .await;
    let run = run_of(&stack, &event("leaver", "E-8", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    assert_eq!(run.attempts, 3, "two 429s, then the answer");
    let state = stack.sim_state().await;
    assert_eq!(state["circleci"]["counters"]["rate_limited"], 2);

    // The simulator named no wait; the client paused on its own before every retry.
    let calls = only_definition_calls(&stack).await;
    for (i, c) in calls.iter().enumerate().filter(|(_, c)| c["status"] == 429) {
        let next = calls.get(i + 1).expect("a request after the 429");
        let gap = at(next) - at(c);
        assert!(gap >= chrono::Duration::milliseconds(200), "retried {gap:?} after a 429: {calls:#?}");
    }
}

async fn a_rejected_token_ends_dead_with_what_to_fix(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "ci-401").env("LIFECYCLE_VENDORS__CIRCLECI__TOKEN", "not-a-circleci-token"),
    )
    .await;
    let run = run_of(&stack, &event("leaver", "E-10", "alan@example.com", "alan-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::Dead, "{}", describe(&run, &stack));
    assert_eq!(run.attempts, 1, "a permanent error is not retried");
    let outcome = run.outcome.as_deref().unwrap();
    contains_all(outcome, &["401", "vendors.circleci.token", "replay this run"]);
    assert!(!outcome.contains("not-a-circleci-token"), "never the token itself");
    only_definition_calls(&stack).await;
}

/// Reads of the token's own user and organizations need no admin: a contributor's token does.
async fn a_members_token_is_enough(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "ci-member-token")
            .env("LIFECYCLE_VENDORS__CIRCLECI__TOKEN", "circleci-member-token"),
    )
    .await;
    let run = run_of(&stack, &event("joiner", "E-12", "ada@example.com", "ada-gh"), VendorKind::Circleci).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", describe(&run, &stack));
    assert!(run.outcome.as_deref().unwrap().contains("Invite ada-gh"), "{:?}", run.outcome);
    only_definition_calls(&stack).await;
}

// Recovery (a 429 or 5xx, an answer lost after a write) on both databases; the rest of the
// vendor's behaviour once, shared between them (`on_database!`).
both_databases!(a_429_without_retry_after_is_recovered_by_the_clients_own_backoff,);
on_database!(
    Sqlite:
    joiner_needs_a_person_to_invite_them_and_nothing_else_is_asked,
    the_tokens_own_user_joins_as_active_and_is_never_handed_over_for_removal,
    a_members_token_is_enough,
);
on_database!(
    Postgres:
    leaver_needs_a_person_to_remove_them_and_nothing_changes,
    a_rejected_token_ends_dead_with_what_to_fix,
);
