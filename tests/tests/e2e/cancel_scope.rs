//! What an intake token may reach (issue 25): cancels only of the intake's
//! own events, each audited under the token's label; plans only with the
//! `plans` scope. No worker runs here, so every run stays queued (not started).

use lifecycle_domain::RunState;
use lifecycle_e2e::stack::INTAKE_TOKEN;
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

const SCIM_TOKEN: &str = "e2e-scim-token-0123456789";
const PLANNER_TOKEN: &str = "e2e-planner-token-0123456789";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Started {
    stack: Stack,
    _config: tempfile::TempDir,
}

/// SCIM on (Okta's mapping: everyone → Calendly), two labelled intake tokens
/// (only `it-desk` may plan), and no worker.
async fn start(backend: Backend, name: &str) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scim.toml");
    let mapping = lifecycle_config::scim::example_mapping();
    std::fs::write(&file, format!("[scim]\ntokens = [\"{SCIM_TOKEN}\"]\n{mapping}")).unwrap();
    let tokens = format!(
        r#"[{{token="{INTAKE_TOKEN}", label="workday"}}, {{token="{PLANNER_TOKEN}", label="it-desk", plans=true}}]"#
    );
    let opts = StackOptions::new(backend, name)
        .workers(0)
        .env("LIFECYCLE_CONFIG", file.to_str().unwrap())
        .env("LIFECYCLE_PRODUCER__INTAKE_TOKENS", &tokens);
    Started { stack: Stack::start(opts).await, _config: dir }
}

async fn scim(stack: &Stack, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let r = stack
        .http
        .request(method, format!("{}/scim/v2{path}", stack.producer_url))
        .bearer_auth(SCIM_TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn rows(stack: &Stack, sql: &str) -> Vec<sea_orm::QueryResult> {
    let db = &stack.store;
    db.query_all(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap()
}

async fn audit(stack: &Stack) -> Vec<(String, String, String, String)> {
    rows(stack, "SELECT actor, action, target_id, reason FROM audit_log ORDER BY id")
        .await
        .iter()
        .map(|r| {
            let s = |c: &str| r.try_get::<Option<String>>("", c).unwrap().unwrap_or_default();
            (s("actor"), s("action"), s("target_id"), s("reason"))
        })
        .collect()
}

async fn runs_of(stack: &Stack, event_id: &str) -> Vec<lifecycle_store::entity::run::Model> {
    lifecycle_store::runs::for_event(&stack.store, event_id).await.unwrap()
}

/// A SCIM deactivation's leaver is out of an intake token's reach: its
/// cancel is 404 (as `GET` is) and a `cancel` event for the person passes it
/// by; the run, the SCIM user and the audit log are as they were.
async fn an_intake_token_cannot_cancel_another_sources_runs(backend: Backend) {
    let s = start(backend, "cancel-scope-scim").await;
    let stack = &s.stack;
    const EMAIL: &str = "ada.scope@example.com";
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": EMAIL,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": true, "value": EMAIL, "type": "work"}], "active": true
    });
    let (status, created) = scim(stack, reqwest::Method::POST, "/Users", user).await;
    assert_eq!(status, 201, "{created}");
    let uid = created["id"].as_str().unwrap().to_string();
    let off = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let (status, _) = scim(stack, reqwest::Method::PATCH, &format!("/Users/{uid}"), off).await;
    assert_eq!(status, 200);
    let leaver = rows(stack, "SELECT id FROM events WHERE source = 'scim' AND event_type = 'leaver'").await;
    assert_eq!(leaver.len(), 1);
    let leaver: String = leaver[0].try_get("", "id").unwrap();
    let before = runs_of(stack, &leaver).await;
    assert_eq!(before.iter().map(|r| r.state).collect::<Vec<_>>(), [RunState::Queued]);

    let get = stack
        .http
        .get(format!("{}/v1/events/{leaver}", stack.producer_url))
        .bearer_auth(INTAKE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 404);
    let (status, body) = stack.post_cancel(&leaver).await;
    assert_eq!(status, 404, "as for GET: {body}");
    assert_eq!(body["detail"], format!("no event {leaver}"), "{body}");

    // HR's cancel for the same person: the SCIM runs are not its to withdraw, nor to name.
    let cancel = stack.accept(&json!({"type": "cancel", "employee": {"id": "E-ada", "email": EMAIL}})).await;
    assert_eq!((&cancel["cancelled"], &cancel["started"]), (&json!([]), &json!([])), "{cancel}");

    let after = runs_of(stack, &leaver).await;
    assert_eq!((after[0].state, &after[0].outcome), (RunState::Queued, &before[0].outcome), "untouched");
    // Every cancel is audited under the token's label, this one too (it withdrew nothing).
    let cancel_id = cancel["event_id"].as_str().unwrap().to_string();
    let audit = audit(stack).await;
    assert_eq!(audit.len(), 1, "only HR's cancel event: {audit:?}");
    let (actor, action, target, reason) = &audit[0];
    assert_eq!(
        (actor.as_str(), action.as_str(), target, reason.as_str()),
        ("intake:workday", "event.cancel", &cancel_id, "a cancel event")
    );
    let (status, user) = scim(stack, reqwest::Method::GET, &format!("/Users/{uid}"), Value::Null).await;
    assert_eq!((status, &user["active"]), (200, &json!(false)), "{user}");
}

/// An intake cancel of an intake event: audited under the token's label, and
/// the run's outcome names the real event id.
async fn an_intake_cancel_is_audited_with_the_tokens_label(backend: Backend) {
    let s = start(backend, "cancel-scope-audit").await;
    let stack = &s.stack;
    let accepted = stack
        .accept(&json!({"type": "leaver", "employee": {"id": "E-bob", "email": "bob@example.com"}, "apps": {"calendly": {}}}))
        .await;
    let event_id = accepted["event_id"].as_str().unwrap().to_string();
    let run_id = accepted["runs"][0]["run_id"].as_str().unwrap().to_string();
    let (status, body) = stack.post_cancel(&event_id).await;
    assert_eq!((status, body), (200, json!({"cancelled": [run_id], "started": []})));

    let run = lifecycle_store::runs::get(&stack.store, &run_id).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Cancelled);
    let outcome = run.outcome.unwrap_or_default();
    assert!(outcome.contains(&format!("POST /v1/events/{event_id}/cancel")), "{outcome}");
    assert!(outcome.contains("workday") && !outcome.contains("{id}"), "{outcome}");
    let audit = audit(stack).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let (actor, action, target, reason) = &audit[0];
    assert_eq!((actor.as_str(), action.as_str(), target), ("intake:workday", "event.cancel", &event_id));
    assert_eq!(reason, &format!("POST /v1/events/{event_id}/cancel"));
}

/// `POST /v1/plans` reads the vendors' directories: 403 for an intake token
/// without the `plans` scope (and no request to the vendor), 200 with it.
async fn plans_need_the_plans_scope(backend: Backend) {
    let s = start(backend, "cancel-scope-plans").await;
    let stack = &s.stack;
    let joiner = lifecycle_e2e::stack::pipedrive_joiner("E-9", "zed@example.com", "Sales Rep");
    let plan = |token: &'static str| {
        let joiner = joiner.clone();
        async move {
            let r = stack
                .http
                .post(format!("{}/v1/plans", stack.producer_url))
                .bearer_auth(token)
                .json(&joiner)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let calls_before = stack.sim_calls("pipedrive").await.len();
    let (status, body) = plan(INTAKE_TOKEN).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap_or("").contains("plans = true"), "{body}");
    assert_eq!(stack.sim_calls("pipedrive").await.len(), calls_before, "nothing was read");
    let (status, body) = plan(PLANNER_TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["vendors"][0]["vendor"], "pipedrive", "{body}");
    assert!(stack.sim_calls("pipedrive").await.len() > calls_before, "the plan read Pipedrive");
}

both_databases!(
    an_intake_token_cannot_cancel_another_sources_runs,
    an_intake_cancel_is_audited_with_the_tokens_label,
    plans_need_the_plans_scope,
);
