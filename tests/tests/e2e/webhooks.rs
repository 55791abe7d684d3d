//! Pipedrive webhooks (docs/contract.md §2) end to end, with payloads of both
//! versions built from Pipedrive's documentation (tests/fixtures/pipedrive-webhooks).

use lifecycle_domain::{RunState, Workflow};
use lifecycle_e2e::stack::{pipedrive_joiner, pipedrive_leaver, pipedrive_webhook_fixture, PIPEDRIVE_TOKEN};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use lifecycle_store::drift::{self, DriftFilter};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// The SQL that counts the deal reassignment runs (the name from the type).
fn reassignments() -> String {
    format!("runs WHERE workflow = '{}'", Workflow::ReassignDeals.as_str())
}

fn user_id(state: &Value, email: &str) -> i64 {
    state["pipedrive"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .unwrap_or_else(|| panic!("no Pipedrive user {email}"))["id"]
        .as_i64()
        .unwrap()
}

/// What someone does by hand in Pipedrive: deactivate a user.
async fn deactivate_in_pipedrive(stack: &Stack, id: i64) {
    let r = stack
        .http
        .put(format!("{}/pipedrive/api/v1/users/{id}", stack.sim_url))
        .header("x-api-token", PIPEDRIVE_TOKEN)
        .json(&json!({"active_flag": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
}

async fn post_ok(stack: &Stack, body: &Value) -> (Value, bool) {
    let started = Instant::now();
    let r = stack.post_webhook(body).await;
    let elapsed = started.elapsed();
    let status = r.status();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}\n{}", stack.logs());
    assert!(elapsed < Duration::from_secs(1), "answered in {elapsed:?}");
    (serde_json::from_str(&text).unwrap(), replayed)
}

async fn drift_of(stack: &Stack, kind: &str) -> Vec<drift::Drift> {
    drift::list(&stack.store, &DriftFilter { kind: Some(kind.parse().unwrap()), ..Default::default() }).await.unwrap()
}

async fn deals_owned_by(stack: &Stack, owner: i64) -> usize {
    let state = stack.sim_state().await;
    state["pipedrive"]["deals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "open" && d["user_id"].as_i64() == Some(owner))
        .count()
}

async fn v1_deactivation_outside_lifecycle_moves_open_deals_to_the_successor_once(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "wh-v1-deact")).await;
    stack
        .sim_seed(json!({"pipedrive": {
            // Grace is one of the simulator's standing users.
            "users": [{"name": "Linus Leaver", "email": "linus@example.com", "role": "Sales Rep"}],
            "deals": [
                {"title": "Acme renewal", "owner_email": "linus@example.com"},
                {"title": "Globex expansion", "owner_email": "linus@example.com"}
            ]
        }}))
        .await;
    // HR told us who succeeds Linus (in an event that did not touch Pipedrive).
    let mut leaver = pipedrive_leaver("E-42", "linus@example.com", Some("grace@example.com"));
    leaver["apps"] = json!({"calendly": {}});
    stack.accept(&leaver).await;
    let state = stack.sim_state().await;
    let (linus, grace) = (user_id(&state, "linus@example.com"), user_id(&state, "grace@example.com"));
    deactivate_in_pipedrive(&stack, linus).await;

    let body = pipedrive_webhook_fixture("v1-user-deactivated.json", linus, "Linus@Example.com");
    let (answer, replayed) = post_ok(&stack, &body).await;
    assert!(!replayed);
    assert_eq!(answer["action"], "pipedrive.user_deactivated", "{answer}");
    assert_eq!(answer["runs"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["runs"][0]["workflow"], "reassign_deals");

    // Pipedrive retries the same delivery (retry 1): recognised, not acted on again.
    let mut retry = body.clone();
    retry["retry"] = json!(1);
    let (again, replayed) = post_ok(&stack, &retry).await;
    assert!(replayed);
    assert_eq!(again["event_id"], answer["event_id"]);

    let event_id = answer["event_id"].as_str().unwrap();
    let runs = stack.wait_event(event_id, WAIT).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    assert_eq!(runs[0].person_key, "linus@example.com");
    assert!(runs[0].outcome.as_deref().unwrap().contains("grace@example.com"), "{:?}", runs[0].outcome);
    assert_eq!(deals_owned_by(&stack, grace).await, 2);
    assert_eq!(deals_owned_by(&stack, linus).await, 0);
    assert_eq!(stack.count("events WHERE source = 'pipedrive_webhook'").await, 1);
    assert_eq!(stack.count(&reassignments()).await, 1);
    let drift = drift_of(&stack, "user_deactivated_outside").await;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].email.as_deref(), Some("linus@example.com"));
    assert_eq!(drift[0].vendor_user_id.as_deref(), Some(linus.to_string().as_str()));
}

async fn v2_deactivation_without_successor_goes_to_the_fallback_owner(backend: Backend) {
    // The worker starts later, so the reassignment is still waiting when the second delivery comes.
    let mut stack = Stack::start(
        StackOptions::new(backend, "wh-v2-deact")
            .workers(0)
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__FALLBACK_OWNER_EMAIL", "admin@sim.example"),
    )
    .await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Linus Leaver", "email": "linus@example.com", "role": "Sales Rep"}],
            "deals": [{"title": "Initech pilot", "owner_email": "linus@example.com"}]
        }}))
        .await;
    let state = stack.sim_state().await;
    let (linus, admin) = (user_id(&state, "linus@example.com"), user_id(&state, "admin@sim.example"));
    deactivate_in_pipedrive(&stack, linus).await;

    let body = pipedrive_webhook_fixture("v2-user-deactivated.json", linus, "linus@example.com");
    let (answer, _) = post_ok(&stack, &body).await;
    assert_eq!(answer["runs"][0]["workflow"], "reassign_deals", "{answer}");
    // The second attempt of the same event (v2 `meta.attempt`): the same delivery.
    let mut retry = body.clone();
    retry["meta"]["attempt"] = json!(2);
    let (again, replayed) = post_ok(&stack, &retry).await;
    assert!(replayed && again["event_id"] == answer["event_id"]);
    // The same change through a v1 webhook configured alongside: another
    // delivery, but the reassignment already under way is not started twice.
    let v1 = pipedrive_webhook_fixture("v1-user-deactivated.json", linus, "linus@example.com");
    let (other, replayed) = post_ok(&stack, &v1).await;
    assert!(!replayed);
    assert!(other["runs"].as_array().unwrap().is_empty(), "{other}");
    assert!(other["note"].as_str().unwrap().contains("already under way"), "{other}");
    stack.start_worker();

    let runs = stack.wait_event(answer["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    assert!(runs[0].outcome.as_deref().unwrap().contains("fallback owner"), "{:?}", runs[0].outcome);
    assert_eq!(deals_owned_by(&stack, admin).await, 1);
    assert_eq!(stack.count(&reassignments()).await, 1);
}

async fn deactivation_by_our_own_leaver_starts_no_second_reassignment(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "wh-own-leaver")).await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Linus Leaver", "email": "linus@example.com", "role": "Sales Rep"}],
            "deals": [{"title": "Acme renewal", "owner_email": "linus@example.com"}]
        }}))
        .await;
    let accepted = stack.accept(&pipedrive_leaver("E-42", "linus@example.com", Some("grace@example.com"))).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    let linus = user_id(&stack.sim_state().await, "linus@example.com");

    // Pipedrive reports the deactivation our leaver just made.
    let body = pipedrive_webhook_fixture("v2-user-deactivated.json", linus, "linus@example.com");
    let (answer, _) = post_ok(&stack, &body).await;
    assert!(answer["runs"].as_array().unwrap().is_empty(), "{answer}");
    assert!(answer["note"].as_str().unwrap().contains(&runs[0].id), "{answer}");
    assert_eq!(stack.count(&reassignments()).await, 0);
    assert!(drift_of(&stack, "user_deactivated_outside").await.is_empty());
    // Why is kept with the delivery, for operators.
    let ev = lifecycle_store::events::get(&stack.store, answer["event_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert!(ev.response_body.contains("leaver run"), "{}", ev.response_body);
}

async fn a_user_added_outside_an_hr_joiner_is_drift(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "wh-added")).await;
    // Added by hand (v1).
    let body = pipedrive_webhook_fixture("v1-user-added.json", 501, "shadow@example.com");
    let (answer, _) = post_ok(&stack, &body).await;
    assert_eq!(answer["action"], "pipedrive.user_added");
    // Added by our joiner (v2): HR sent a joiner for that address.
    stack.accept(&pipedrive_joiner("E-7", "ada@example.com", "Sales Rep")).await;
    let body = pipedrive_webhook_fixture("v2-user-created.json", 502, "Ada@example.com");
    post_ok(&stack, &body).await;

    let drift = drift_of(&stack, "user_added_outside_hr").await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].email.as_deref(), Some("shadow@example.com"));
    assert_eq!(drift[0].vendor_user_id.as_deref(), Some("501"));
    assert!(drift[0].details.contains("no HR joiner"), "{}", drift[0].details);
    assert_eq!(drift[0].event_id.as_deref(), answer["event_id"].as_str());
    // Operators see it (the ctl prints the same view as JSON).
    let view = lifecycle_ops::list_drift(&stack.store, &DriftFilter::default()).await.unwrap();
    assert_eq!(view.len(), 1);
    let out = std::process::Command::new(lifecycle_e2e::process::bin_dir().join("lifecycle-ctl"))
        .args(["drift", "list", "--json"])
        .env("LIFECYCLE_DATABASE__URL", &stack.db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["kind"], "user_added_outside_hr");
    assert_eq!(listed[0]["email"], "shadow@example.com");
}

async fn a_deleted_user_ends_the_waiting_runs_that_can_no_longer_succeed(backend: Backend) {
    // No worker: the runs stay waiting.
    let stack = Stack::start(StackOptions::new(backend, "wh-deleted").workers(0)).await;
    let mut mover = pipedrive_joiner("E-9", "mona@example.com", "Manager");
    mover["type"] = json!("mover");
    let mover = stack.accept(&mover).await;
    let leaver = stack.accept(&pipedrive_leaver("E-9", "mona@example.com", None)).await;
    let other = stack.accept(&pipedrive_joiner("E-10", "someone@example.com", "Sales Rep")).await;

    let body = pipedrive_webhook_fixture("v2-user-deleted.json", 77, "mona@example.com");
    let (answer, _) = post_ok(&stack, &body).await;
    assert_eq!(answer["ended_runs"].as_array().unwrap().len(), 2, "{answer}");

    let mover_run = &stack.runs_of(mover["event_id"].as_str().unwrap()).await[0];
    assert_eq!(mover_run.state, RunState::NeedsManualAction);
    assert!(mover_run.outcome.as_deref().unwrap().contains("deleted in Pipedrive"), "{:?}", mover_run.outcome);
    let leaver_run = &stack.runs_of(leaver["event_id"].as_str().unwrap()).await[0];
    assert_eq!(leaver_run.state, RunState::Succeeded, "the leaver's goal is met by the deletion");
    assert_eq!(leaver_run.access.map(|a| a.as_str()), Some("absent"));
    assert_eq!(
        stack.runs_of(other["event_id"].as_str().unwrap()).await[0].state,
        RunState::Queued,
        "someone else's run is untouched"
    );
    let drift = drift_of(&stack, "user_deleted").await;
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].email.as_deref(), Some("mona@example.com"));
}

async fn bad_credentials_are_refused_and_write_nothing(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "wh-auth")).await;
    let body = pipedrive_webhook_fixture("v2-user-created.json", 5, "x@example.com");
    for (user, pass) in [("pipedrive-hooks", "wrong-password"), ("someone", "test-webhook-password"), ("", "")] {
        let r = stack.post_webhook_as(&body, user, pass).await;
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    }
    let r = stack.http.post(format!("{}/v1/webhooks/pipedrive", stack.producer_url)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The intake's bearer token is not a webhook credential.
    let r = stack
        .http
        .post(format!("{}/v1/webhooks/pipedrive", stack.producer_url))
        .bearer_auth(lifecycle_e2e::stack::INTAKE_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(stack.count("events").await, 0);
    assert_eq!(stack.count("drift").await, 0);
}

async fn other_objects_are_acknowledged_and_not_stored(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "wh-other")).await;
    for fixture in ["v1-deal-updated.json", "v2-deal-changed.json"] {
        let body: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}/fixtures/pipedrive-webhooks/{fixture}", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
        )
        .unwrap();
        let (answer, _) = post_ok(&stack, &body).await;
        assert_eq!(answer["status"], "ignored", "{answer}");
    }
    // A malformed body is refused, so Pipedrive retries it.
    let r = stack.post_webhook(&json!({"meta": {"action": "change"}})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(stack.count("events").await, 0);
}

/// A delivery that names no Pipedrive user, names a field of the other
/// version, or repeats a key: a 400 naming the field, and nothing written.
async fn malformed_deliveries_are_refused_naming_the_field(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "wh-precise")).await;
    let v2 = pipedrive_webhook_fixture("v2-user-deactivated.json", 17, "linus@example.com");
    let mut abc = v2.clone();
    abc["meta"]["entity_id"] = json!("abc");
    abc["data"]["id"] = json!("abc");
    let mut flag = v2.clone();
    flag["data"]["active_flag"] = json!("no");
    let text = v2.to_string();
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("non-numeric-user-id", abc.to_string(), Some("meta.entity_id"), "positive integer"),
        ("v2-active-flag", flag.to_string(), Some("data.active_flag"), "data.active_flag: must be a boolean"),
        ("repeated-key", format!(r#"{{"data":null,{}"#, &text[1..]), Some("data"), "more than once"),
        ("empty-array", "[]".into(), None, "the body must be a JSON object"),
    ];
    for (name, body, field, words) in cases {
        let r = stack
            .http
            .post(format!("{}/v1/webhooks/pipedrive", stack.producer_url))
            .basic_auth(lifecycle_e2e::stack::WEBHOOK_USER, Some(lifecycle_e2e::stack::WEBHOOK_PASSWORD))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "case {name}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "case {name}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["type"], "/problems/invalid-webhook", "case {name}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(words), "case {name}: {p}");
        assert!(!detail.contains("current."), "case {name}: a v2 delivery has no `current`: {p}");
        if let Some(field) = field {
            assert_eq!(p["errors"][0]["field"], field, "case {name}: {p}");
        }
    }
    assert_eq!(stack.count("events").await, 0);
    assert_eq!(stack.count("runs").await, 0);
    assert_eq!(stack.count("drift").await, 0);
}

both_databases!(
    v1_deactivation_outside_lifecycle_moves_open_deals_to_the_successor_once,
    v2_deactivation_without_successor_goes_to_the_fallback_owner,
    deactivation_by_our_own_leaver_starts_no_second_reassignment,
    a_user_added_outside_an_hr_joiner_is_drift,
    a_deleted_user_ends_the_waiting_runs_that_can_no_longer_succeed,
    bad_credentials_are_refused_and_write_nothing,
    other_objects_are_acknowledged_and_not_stored,
    malformed_deliveries_are_refused_naming_the_field,
);
