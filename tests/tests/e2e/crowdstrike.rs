//! CrowdStrike Falcon workflows end to end: producer -> RabbitMQ -> worker -> simulator.

use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::stack::contract_joiner;
use lifecycle_e2e::{both_databases, on_database, Backend, Stack, StackOptions};
use lifecycle_store::entity::run::Model as Run;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn joiner(id: &str, email: &str, roles: &[&str]) -> Value {
    json!({
        "type": "joiner",
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": { "id": id, "email": email, "given_name": "Ada", "family_name": "Lovelace" },
        "apps": { "crowdstrike": { "roles": roles } }
    })
}

fn mover(id: &str, email: &str, roles: &[&str]) -> Value {
    json!({
        "type": "mover",
        "employee": { "id": id, "email": email },
        "apps": { "crowdstrike": { "roles": roles } }
    })
}

fn leaver(id: &str, email: &str) -> Value {
    json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "employee": { "id": id, "email": email },
        "apps": { "crowdstrike": {} }
    })
}

/// Posts the event and returns its CrowdStrike run once every run of the event has ended.
async fn run_of(stack: &Stack, event: &Value) -> Run {
    let accepted = stack.accept(event).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    runs.into_iter().find(|r| r.vendor == VendorKind::Crowdstrike).expect("a CrowdStrike run")
}

fn cs(state: &Value) -> &Value {
    &state["crowdstrike"]
}

fn user(state: &Value, username: &str) -> Option<Value> {
    cs(state)["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(username)))
        .cloned()
}

fn roles_of(state: &Value, username: &str) -> Vec<String> {
    let u = user(state, username).unwrap_or_else(|| panic!("no Falcon user {username}"));
    u["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
}

fn actions(state: &Value) -> Vec<String> {
    cs(state)["log"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

fn route_count(state: &Value, route: &str) -> u64 {
    cs(state)["counters"]["by_route"][route].as_u64().unwrap_or(0)
}

fn explain(stack: &Stack, run: &Run) -> String {
    format!("state {} outcome {:?} last_error {:?}\n{}", run.state, run.outcome, run.last_error, stack.logs())
}

async fn joiner_creates_the_user_then_grants_its_roles(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-joiner")).await;
    let run = run_of(&stack, &contract_joiner()).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let outcome = run.outcome.as_deref().unwrap();
    assert!(outcome.contains("created CrowdStrike Falcon user") && outcome.contains("falcon_analyst"), "{outcome}");

    let state = stack.sim_state().await;
    let ada = user(&state, "ada@example.com").expect("the user exists in Falcon");
    assert_eq!(ada["first_name"], "Ada");
    assert_eq!(ada["last_name"], "Lovelace");
    assert_eq!(roles_of(&state, "ada@example.com"), ["falcon_analyst"]);
    assert_eq!(actions(&state), ["user.create", "role.grant"], "created, then granted: two steps at the vendor");

    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    // The roles checked against the cached catalogue (no step); the grant's answer is the proof.
    assert_eq!(keys, ["ensure_user", "grant_roles"]);
    assert!(steps.iter().all(|s| s.status == lifecycle_store::steps::SUCCEEDED));
    let ensure = &steps[0];
    assert!(ensure.output.as_deref().unwrap().contains(ada["uid"].as_str().unwrap()), "{:?}", ensure.output);
}

async fn joiner_recovers_from_a_429_and_a_failed_grant_without_duplicates(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-faults")).await;
    // A one-second window keeps the 429's X-RateLimit-RetryAfter short.
    stack.sim_config(json!({"crowdstrike": {"rate_limit": {"window_ms": 1000}}})).await;
    stack
        .sim_fault(json!({"vendor": "crowdstrike", "method": "POST", "path": "/user-management/entities/users/v1",
                          "kind": "status", "status": 429}))
        .await;
    // The grant happens, but the answer is a 502: the next attempt must look before granting again.
    stack
        .sim_fault(
            json!({"vendor": "crowdstrike", "method": "POST", "path": "/user-management/entities/user-role-actions/v1",
                          "kind": "apply_then_fail", "status": 502}),
        )
        .await;
    let run = run_of(&stack, &joiner("E-2", "ada@example.com", &["falcon_analyst", "detection_monitor"])).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    assert!(run.attempts >= 3, "a 429 and a 502 each cost an attempt: {}", run.attempts);

    let state = stack.sim_state().await;
    assert_eq!(cs(&state)["counters"]["rate_limited"], 1);
    assert_eq!(roles_of(&state, "ada@example.com"), ["detection_monitor", "falcon_analyst"]);
    let users = cs(&state)["users"].as_array().unwrap();
    assert_eq!(users.iter().filter(|u| u["username"] == "ada@example.com").count(), 1, "created once");
    assert_eq!(actions(&state), ["user.create", "role.grant"], "the in-doubt grant was adopted, not repeated");
    assert_eq!(route_count(&state, "POST /user-management/entities/user-role-actions/v1"), 1);

    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let grant = steps.iter().find(|s| s.key == "grant_roles").unwrap();
    assert_eq!(grant.attempts, 2);
    assert!(
        grant.output.as_deref().unwrap().contains("\"adopted\":[\"detection_monitor\",\"falcon_analyst\"]"),
        "{:?}",
        grant.output
    );
}

async fn leaver_revokes_every_role_then_deletes_the_user(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-leaver")).await;
    stack
        .sim_seed(json!({"crowdstrike": {"users": [
            {"username": "leaver@example.com", "first_name": "Lea", "last_name": "Ver",
             "roles": ["falcon_admin", "falcon_analyst", "remote_responder"]}
        ]}}))
        .await;
    let uid = user(&stack.sim_state().await, "leaver@example.com").unwrap()["uid"].as_str().unwrap().to_string();
    let run = run_of(&stack, &leaver("E-3", "leaver@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert_eq!(run.access.map(|a| a.as_str()), Some("removed"));
    assert!(run.outcome.as_deref().unwrap().contains("falcon_admin, falcon_analyst, remote_responder"));

    let state = stack.sim_state().await;
    assert!(user(&state, "leaver@example.com").is_none(), "deleted");
    let log = cs(&state)["log"].as_array().unwrap();
    let acts = actions(&state);
    assert_eq!(acts, ["role.revoke", "role.revoke", "role.revoke", "user.delete"], "every role revoked, then deleted");
    let revoked: Vec<&str> = log[..3].iter().map(|e| e["role_id"].as_str().unwrap()).collect();
    assert_eq!(revoked, ["falcon_admin", "falcon_analyst", "remote_responder"]);
    assert!(log.iter().all(|e| e["user_uuid"] == uid.as_str()));
    assert_eq!(log[3]["roles_at_delete"], json!([]), "nothing left to lose at deletion");
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

async fn leaver_adopts_a_revoke_and_a_deletion_whose_answers_were_lost(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-lost")).await;
    stack
        .sim_seed(json!({"crowdstrike": {"users": [
            {"username": "lost@example.com", "first_name": "Lo", "last_name": "St", "roles": ["falcon_admin", "falcon_analyst"]}
        ]}}))
        .await;
    stack
        .sim_fault(
            json!({"vendor": "crowdstrike", "method": "POST", "path": "/user-management/entities/user-role-actions/v1",
                          "kind": "apply_then_fail", "status": 503}),
        )
        .await;
    stack
        .sim_fault(json!({"vendor": "crowdstrike", "method": "DELETE", "path": "/user-management/entities/users/v1",
                          "kind": "apply_then_fail", "then": "drop"}))
        .await;
    let run = run_of(&stack, &leaver("E-30", "lost@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert_eq!(run.access.map(|a| a.as_str()), Some("removed"));
    assert!(run.attempts >= 3, "{}", run.attempts);
    let state = stack.sim_state().await;
    assert!(user(&state, "lost@example.com").is_none());
    assert_eq!(actions(&state), ["role.revoke", "role.revoke", "user.delete"]);
    assert_eq!(
        route_count(&state, "POST /user-management/entities/user-role-actions/v1"),
        1,
        "both roles revoked in one request, never again"
    );
    assert_eq!(
        route_count(&state, "DELETE /user-management/entities/users/v1"),
        1,
        "deleted once, then confirmed gone"
    );
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let revoke = steps.iter().find(|s| s.key == "revoke_roles").unwrap();
    let adopted = revoke.output.as_deref().unwrap().contains("\"adopted\":[\"falcon_admin\",\"falcon_analyst\"]");
    assert_eq!((revoke.attempts, adopted), (2, true));
    let delete = steps.iter().find(|s| s.key == "delete_user").unwrap();
    assert_eq!((delete.attempts, delete.output.as_deref().unwrap().contains("\"adopted\":true")), (2, true));
}

async fn leaver_without_an_account_succeeds_as_absent(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-absent")).await;
    let run = run_of(&stack, &leaver("E-4", "nobody@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert_eq!(run.access.map(|a| a.as_str()), Some("absent"));
    assert!(run.outcome.as_deref().unwrap().contains("nothing to remove"));
    let state = stack.sim_state().await;
    assert!(actions(&state).is_empty(), "nothing changed at the vendor");
    assert_eq!(cs(&state)["users"].as_array().unwrap().len(), 2, "the fixture's users are untouched");
}

async fn unknown_role_is_dead_naming_the_role_and_creates_nobody(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-badrole")).await;
    let run = run_of(&stack, &joiner("E-5", "bob@example.com", &["detection_monitor", "Falcon_Analyst"])).await;
    assert_eq!(run.state, RunState::Dead, "{}", explain(&stack, &run));
    assert_eq!(run.attempts, 1, "a permanent error is not retried");
    let outcome = run.outcome.as_deref().unwrap();
    assert!(
        outcome.contains("no role with the id \"Falcon_Analyst\"")
            && outcome.contains("did you mean \"falcon_analyst\"")
            && outcome.contains("case-sensitive")
            && outcome.contains("nothing was created"),
        "{outcome}"
    );
    let state = stack.sim_state().await;
    assert!(user(&state, "bob@example.com").is_none(), "no user without its roles");
    assert_eq!(route_count(&state, "POST /user-management/entities/users/v1"), 0, "validated before creating");
    assert!(actions(&state).is_empty());
}

async fn mover_grants_missing_roles_and_revokes_extra_ones(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-mover")).await;
    stack
        .sim_seed(json!({"crowdstrike": {"users": [
            {"username": "mo@example.com", "first_name": "Mo", "last_name": "Ver",
             "roles": ["falcon_admin", "detection_monitor"]}
        ]}}))
        .await;
    let run = run_of(&stack, &mover("E-6", "mo@example.com", &["falcon_analyst", "detection_monitor"])).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let state = stack.sim_state().await;
    assert_eq!(roles_of(&state, "mo@example.com"), ["detection_monitor", "falcon_analyst"]);
    let log = cs(&state)["log"].as_array().unwrap();
    assert_eq!(actions(&state), ["role.grant", "role.revoke"]);
    assert_eq!(log[0]["role_ids"], json!(["falcon_analyst"]));
    assert_eq!(log[1]["role_id"], "falcon_admin");
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    assert!(steps.iter().any(|s| s.key == "revoke_roles"));

    // A mover for someone with no account: a person must decide.
    let run = run_of(&stack, &mover("E-7", "ghost@example.com", &["falcon_analyst"])).await;
    assert_eq!(run.state, RunState::NeedsManualAction);
    assert_eq!(run.access.map(|a| a.as_str()), Some("absent"));
    assert!(run.outcome.as_deref().unwrap().contains("send a joiner event"));
}

async fn a_joiner_for_an_existing_user_adopts_it_without_a_duplicate(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-adopt")).await;
    stack
        .sim_seed(json!({"crowdstrike": {"users": [
            {"username": "Ada@Example.com", "first_name": "A.", "last_name": "King", "roles": ["falcon_console_guest"]}
        ]}}))
        .await;
    let run = run_of(&stack, &joiner("E-8", "ada@example.com", &["falcon_analyst"])).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert!(run.outcome.as_deref().unwrap().contains("found existing"), "{:?}", run.outcome);
    let state = stack.sim_state().await;
    assert_eq!(cs(&state)["users"].as_array().unwrap().len(), 3, "no duplicate");
    let ada = user(&state, "ada@example.com").unwrap();
    assert_eq!((ada["first_name"].as_str(), ada["last_name"].as_str()), (Some("Ada"), Some("Lovelace")));
    assert_eq!(roles_of(&state, "ada@example.com"), ["falcon_analyst"], "converged to what the event asks");
    assert_eq!(actions(&state), ["user.update", "role.grant", "role.revoke"]);
}

async fn the_token_is_refreshed_when_it_expires_mid_run(backend: Backend) {
    let stack =
        Stack::start(StackOptions::new(backend, "cs-expiry").sim_arg("--crowdstrike-token-ttl").sim_arg("2")).await;
    // The grant waits 2.5 s in the network: the 2-second token has expired when Falcon reads it.
    stack
        .sim_fault(
            json!({"vendor": "crowdstrike", "method": "POST", "path": "/user-management/entities/user-role-actions/v1",
                          "kind": "latency", "latency_ms": 2500}),
        )
        .await;
    let run = run_of(&stack, &joiner("E-9", "ada@example.com", &["falcon_analyst"])).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&stack, &run));
    assert_eq!(run.attempts, 1, "refreshed and resent within the attempt, no retry needed");
    let state = stack.sim_state().await;
    assert_eq!(roles_of(&state, "ada@example.com"), ["falcon_analyst"]);
    assert_eq!(cs(&state)["tokens"]["issued"], 2, "one token, then one refresh");

    let grants: Vec<u64> = stack
        .sim_calls("crowdstrike")
        .await
        .iter()
        .filter(|c| c["method"] == "POST" && c["path"] == "/user-management/entities/user-role-actions/v1")
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(grants, [401, 200], "the expired token was refused, the fresh one accepted");
}

async fn one_token_is_shared_by_concurrent_runs(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cs-shared")).await;
    for i in 0..6 {
        stack.accept(&joiner(&format!("E-1{i}"), &format!("p{i}@example.com"), &["falcon_console_guest"])).await;
    }
    let runs = stack.wait_all(WAIT).await;
    assert_eq!(runs.len(), 6);
    assert!(
        runs.iter().all(|r| r.state == RunState::Succeeded),
        "{:?}",
        runs.iter().map(|r| &r.outcome).collect::<Vec<_>>()
    );
    let state = stack.sim_state().await;
    assert_eq!(cs(&state)["users"].as_array().unwrap().len(), 8);
    assert_eq!(route_count(&state, "POST /oauth2/token"), 1, "six runs, one token");
}

async fn a_wrong_region_is_dead_with_a_message_naming_the_region(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "cs-region")
            .env("LIFECYCLE_VENDORS__CROWDSTRIKE__REGION", "eu-1")
            .env("LIFECYCLE_VENDORS__CROWDSTRIKE__BASE_URL", "{sim}/crowdstrike/eu-1"),
    )
    .await;
    let run = run_of(&stack, &joiner("E-20", "ada@example.com", &["falcon_analyst"])).await;
    assert_eq!(run.state, RunState::Dead, "{}", explain(&stack, &run));
    assert_eq!(run.attempts, 1);
    let outcome = run.outcome.as_deref().unwrap();
    assert!(
        outcome.contains("region eu-1")
            && outcome.contains("check that vendors.crowdstrike.region is the region of your Falcon tenant")
            && outcome.contains("replay"),
        "{outcome}"
    );
    assert!(!outcome.contains("cs-client-secret"), "never the secret: {outcome}");
    let state = stack.sim_state().await;
    assert!(user(&state, "ada@example.com").is_none());
    assert_eq!(cs(&state)["tokens"]["issued"], 0);
}

async fn a_client_without_the_write_scope_is_dead_naming_the_scope(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "cs-scope")
            .env("LIFECYCLE_VENDORS__CROWDSTRIKE__CLIENT_ID", "reader")
            .env("LIFECYCLE_VENDORS__CROWDSTRIKE__CLIENT_SECRET", "reader-secret"),
    )
    .await;
    stack
        .sim_seed(json!({"crowdstrike": {"api_clients": [
            {"client_id": "reader", "client_secret": "reader-secret", "scopes": ["user-management:read"]}
        ]}}))
        .await;
    let run = run_of(&stack, &joiner("E-21", "ada@example.com", &["falcon_analyst"])).await;
    assert_eq!(run.state, RunState::Dead, "{}", explain(&stack, &run));
    let outcome = run.outcome.as_deref().unwrap();
    assert!(
        outcome.contains("needs the user-management:write scope") && outcome.contains("API clients and keys"),
        "{outcome}"
    );
    assert!(user(&stack.sim_state().await, "ada@example.com").is_none());
}

// Recovery (a 429 or 5xx, an answer lost after a write) on both databases; the rest of the
// vendor's behaviour once, shared between them (`on_database!`).
both_databases!(
    joiner_recovers_from_a_429_and_a_failed_grant_without_duplicates,
    leaver_adopts_a_revoke_and_a_deletion_whose_answers_were_lost,
);
on_database!(
    Sqlite:
    joiner_creates_the_user_then_grants_its_roles,
    leaver_without_an_account_succeeds_as_absent,
    mover_grants_missing_roles_and_revokes_extra_ones,
    the_token_is_refreshed_when_it_expires_mid_run,
    a_wrong_region_is_dead_with_a_message_naming_the_region,
);
on_database!(
    Postgres:
    leaver_revokes_every_role_then_deletes_the_user,
    unknown_role_is_dead_naming_the_role_and_creates_nobody,
    a_joiner_for_an_existing_user_adopts_it_without_a_duplicate,
    one_token_is_shared_by_concurrent_runs,
    a_client_without_the_write_scope_is_dead_naming_the_scope,
);
