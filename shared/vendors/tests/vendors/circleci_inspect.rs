//! CircleCI: reconcile's directory, the access an event asks for, and plans, against the
//! simulator in process.
//!
//! CircleCI's API v2 definition publishes no operation that lists an organization's members, so
//! the connector says it is not reconcilable and reads nothing. Plans make the workflows' own
//! reads (`/me`, `/me/collaborations`, cached) and stop where the runs do, with their words.

use crate::common::*;
use lifecycle_engine::StepError;
use serde_json::{json, Value};

const CI: VendorKind = VendorKind::Circleci;

fn person(kind: &str, email: &str, login: &str) -> Value {
    json!({
        "type": kind,
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": {"id": format!("E-{login}"), "email": email, "given_name": "Test", "family_name": login},
        "apps": { "circleci": {"login": login} }
    })
}

#[tokio::test]
async fn the_directory_cannot_be_read_and_the_connector_says_why_without_a_request() {
    let w = World::new(CI).await;
    let why = w.connector.not_reconcilable().expect("CircleCI is not reconcilable");
    for needed in ["publishes no operation that lists an organization's members", "getCollaborations", "by hand"] {
        assert!(why.contains(needed), "{needed:?} missing from: {why}");
    }
    let read = w.connector.directory(&|_: usize| {}).await;
    let Err(StepError::Permanent { message }) = read else { panic!("{read:?}") };
    assert_eq!(message, why);
    assert_eq!(w.request_count(), 0, "nothing asked of CircleCI");
    // Nothing to compare either.
    let app = spec(&person("joiner", "ada@example.com", "ada-gh"), CI).input.app;
    assert_eq!(w.connector.desired_access(&app), None);
}

/// A plan stops where the run stops, with the run's own message, and writes nothing.
#[tokio::test]
async fn each_plan_stops_where_the_run_does_with_its_message() {
    let w = World::new(CI).await;
    for (kind, email, login) in [
        ("joiner", "ada@example.com", "ada-gh"),
        ("mover", "grace@example.com", "grace-gh"),
        ("leaver", "alan@example.com", "alan-gh"),
        ("leaver", "admin@example.com", "sim-admin"),
    ] {
        let event = person(kind, email, login);
        let plan = w.connector.plan(&spec(&event, CI)).await.unwrap();
        assert!(plan.actions.is_empty(), "{kind} {login}: {plan:?}");
        let stop = plan.stop.clone().unwrap_or_else(|| panic!("{kind} {login}: the plan stops"));
        assert_eq!(stop.state.as_str(), "needs_manual_action");
        let run = w.start(&event).await;
        assert_eq!(stop.message, run.outcome().summary, "{kind} {login}");
    }
    assert_eq!(w.writes(), 0, "plans and runs wrote nothing");
    assert_eq!(
        w.requests(),
        routes(&[("GET /me", 1), ("GET /me/collaborations", 1)]),
        "the plans' reads, once, then the worker's cache"
    );

    // The token's own user joining: nothing to do, no stop.
    let plan = w.connector.plan(&spec(&person("joiner", "admin@example.com", "sim-admin"), CI)).await.unwrap();
    assert_eq!((plan.stop.clone(), plan.actions.len()), (None, 0), "{plan:?}");
    assert!(plan.notes[0].contains("nothing to do"), "{plan:?}");
}

#[tokio::test]
async fn a_plan_for_an_org_the_token_does_not_see_is_dead_with_the_runs_message() {
    let w = World::with(CI, json!({"org_slug": "gh/no-such-org"})).await;
    let event = person("leaver", "ada@example.com", "ada-gh");
    let plan = w.connector.plan(&spec(&event, CI)).await.unwrap();
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state.as_str(), "dead");
    let run = w.start(&event).await;
    let StepError::Permanent { message } = run.error() else { panic!("{:?}", run.error()) };
    assert_eq!(&stop.message, message);
    assert!(stop.message.contains("gh/no-such-org"), "{}", stop.message);
}
