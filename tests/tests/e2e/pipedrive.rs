//! Pipedrive workflows end to end: producer -> RabbitMQ -> worker -> simulator.

use lifecycle_domain::RunState;
use lifecycle_e2e::stack::{pipedrive_joiner, pipedrive_leaver};
use lifecycle_e2e::{both_databases, on_database, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn users(state: &Value) -> Vec<Value> {
    state["pipedrive"]["users"].as_array().cloned().unwrap_or_default()
}

fn user_by_email(state: &Value, email: &str) -> Option<Value> {
    users(state).into_iter().find(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
}

fn role_id(state: &Value, name: &str) -> i64 {
    state["pipedrive"]["roles"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["id"].as_i64().unwrap()
}

async fn joiner_ends_with_the_user_existing_with_its_role(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-joiner")).await;
    let accepted = stack.accept(&pipedrive_joiner("E-1", "ada@example.com", "Sales Rep")).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].state,
        RunState::Succeeded,
        "outcome: {:?} / {:?}\n{}",
        runs[0].outcome,
        runs[0].last_error,
        stack.logs()
    );
    assert_eq!(runs[0].access.map(|a| a.as_str()), Some("active"));

    let state = stack.sim_state().await;
    let user = user_by_email(&state, "ada@example.com").expect("the user exists in Pipedrive");
    assert_eq!(user["active_flag"], true);
    // addUser takes no name (Pipedrive removed it in 2023): the person sets it on accepting.
    assert_eq!(user["name"], "ada@example.com");
    assert_eq!(user["role_id"].as_i64(), Some(role_id(&state, "Sales Rep")));

    // The journal holds every step with its vendor ids.
    let steps = lifecycle_store::steps::load(&stack.store, &runs[0].id).await.unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    // The role comes from the cached catalogue and the assignment's answer is
    // the proof: no resolve or verify steps (issue 12).
    let role = role_id(&state, "Sales Rep");
    assert_eq!(keys, ["ensure_user".to_string(), format!("assign_role:{role}")], "{keys:?}");
    assert!(steps.iter().all(|s| s.status == lifecycle_store::steps::SUCCEEDED));
    let ensure = steps.iter().find(|s| s.key == "ensure_user").unwrap();
    assert!(ensure.output.as_deref().unwrap().contains(&user["id"].to_string()), "{:?}", ensure.output);
}

async fn leaver_reassigns_every_open_deal_before_deactivating(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-leaver")).await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Leaving Person", "email": "leaver@example.com", "role": "Sales Rep"}],
            "deals": [
                {"title": "Deal A", "owner_email": "leaver@example.com"},
                {"title": "Deal B", "owner_email": "leaver@example.com"},
                {"title": "Deal C", "owner_email": "leaver@example.com"},
                {"title": "Closed deal", "owner_email": "leaver@example.com", "status": "won"}
            ]
        }}))
        .await;
    let accepted = stack.accept(&pipedrive_leaver("E-2", "leaver@example.com", Some("grace@example.com"))).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    assert_eq!(runs[0].access.map(|a| a.as_str()), Some("deactivated"));

    let state = stack.sim_state().await;
    let leaver = user_by_email(&state, "leaver@example.com").unwrap();
    let grace = user_by_email(&state, "grace@example.com").unwrap();
    assert_eq!(leaver["active_flag"], false);
    let deals = state["pipedrive"]["deals"].as_array().unwrap();
    for d in deals {
        if d["status"] == "open" {
            assert_eq!(d["user_id"], grace["id"], "open deal {} not reassigned", d["title"]);
            assert_eq!(d["owner_history"].as_array().unwrap().len(), 2, "reassigned exactly once: {d}");
        } else {
            assert_eq!(d["user_id"], leaver["id"], "a closed deal is left alone");
        }
    }

    // Order of effects at the vendor: three reassignments, then the deactivation.
    let log: Vec<&Value> =
        state["pipedrive"]["log"].as_array().unwrap().iter().filter(|e| e["action"] != "user.create").collect();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    let deactivated_at = actions.iter().position(|a| *a == "user.deactivate").expect("the user was deactivated");
    let reassigned: Vec<usize> =
        actions.iter().enumerate().filter(|(_, a)| **a == "deal.update").map(|(i, _)| i).collect();
    assert_eq!(reassigned.len(), 3, "{actions:?}");
    assert!(
        reassigned.iter().all(|i| *i < deactivated_at),
        "a deal was reassigned after the deactivation: {actions:?}"
    );
}

async fn leaver_without_successor_uses_the_fallback_owner(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "pd-fallback")
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__FALLBACK_OWNER_EMAIL", "admin@sim.example"),
    )
    .await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Solo", "email": "solo@example.com"}],
            "deals": [{"title": "Only deal", "owner_email": "solo@example.com"}]
        }}))
        .await;
    let accepted = stack.accept(&pipedrive_leaver("E-3", "solo@example.com", None)).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0].outcome);
    assert!(runs[0].outcome.as_deref().unwrap().contains("fallback owner"), "{:?}", runs[0].outcome);
    let state = stack.sim_state().await;
    assert_eq!(state["pipedrive"]["deals"][0]["user_id"], 1, "went to the admin, the fallback owner");
}

async fn a_successor_who_cannot_take_deals_is_passed_over_and_the_outcome_says_why(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "pd-passover")
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__FALLBACK_OWNER_EMAIL", "admin@sim.example"),
    )
    .await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [
                {"name": "First Leaver", "email": "first@example.com"},
                {"name": "Second Leaver", "email": "second@example.com"},
                {"name": "Gone Successor", "email": "gone@example.com", "active_flag": false}
            ],
            "deals": [
                {"title": "First's deal", "owner_email": "first@example.com"},
                {"title": "Second's deal", "owner_email": "second@example.com"}
            ]
        }}))
        .await;
    // One names a deactivated successor, the other one Pipedrive does not know.
    let first = stack.accept(&pipedrive_leaver("E-20", "first@example.com", Some("gone@example.com"))).await;
    let second = stack.accept(&pipedrive_leaver("E-21", "second@example.com", Some("unknown@example.com"))).await;
    let state = stack.sim_state().await;
    let admin = user_by_email(&state, "admin@sim.example").unwrap()["id"].clone();
    for (accepted, why) in [
        (first, "the named successor gone@example.com is deactivated in Pipedrive"),
        (second, "the named successor unknown@example.com has no Pipedrive user"),
    ] {
        let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
        assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
        let outcome = runs[0].outcome.as_deref().unwrap();
        assert!(
            outcome.contains("to fallback owner admin@sim.example")
                && outcome.contains(why)
                && outcome.contains("passed over"),
            "{outcome}"
        );
        // The timeline says it too: the step that chose the owner records whom it passed over.
        let steps = lifecycle_store::steps::load(&stack.store, &runs[0].id).await.unwrap();
        let chosen = steps.iter().find(|s| s.key == "resolve_successor").expect("a resolve_successor step");
        let output: Value = serde_json::from_str(chosen.output.as_deref().unwrap()).unwrap();
        assert_eq!(output["source"], "fallback owner", "{output}");
        assert!(
            output["passed_over"].as_str().unwrap().contains(why.trim_start_matches("the named successor ")),
            "{output}"
        );
    }
    let state = stack.sim_state().await;
    for d in state["pipedrive"]["deals"].as_array().unwrap() {
        assert_eq!(d["user_id"], admin, "every deal went to the fallback owner: {d}");
    }
}

async fn leaver_with_deals_and_nobody_to_take_them_needs_a_person(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-noowner")).await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Solo", "email": "solo@example.com"}],
            "deals": [{"title": "Only deal", "owner_email": "solo@example.com"}]
        }}))
        .await;
    let accepted = stack.accept(&pipedrive_leaver("E-4", "solo@example.com", Some("nobody@example.com"))).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::NeedsManualAction);
    let outcome = runs[0].outcome.as_deref().unwrap();
    assert!(
        outcome.contains("nobody@example.com has no Pipedrive user") && outcome.contains("not deactivated"),
        "{outcome}"
    );
    let state = stack.sim_state().await;
    assert_eq!(
        user_by_email(&state, "solo@example.com").unwrap()["active_flag"],
        true,
        "never deactivated with deals left"
    );
}

async fn the_last_admin_is_not_deactivated(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-lastadmin")).await;
    let accepted = stack.accept(&pipedrive_leaver("E-0", "admin@sim.example", Some("grace@example.com"))).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::NeedsManualAction);
    assert!(runs[0].outcome.as_deref().unwrap().contains("last active admin"), "{:?}", runs[0].outcome);
    let state = stack.sim_state().await;
    assert_eq!(user_by_email(&state, "admin@sim.example").unwrap()["active_flag"], true);
}

async fn unknown_role_is_dead_with_a_reason_and_creates_nobody(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-badrole")).await;
    let accepted = stack.accept(&pipedrive_joiner("E-5", "bob@example.com", "Astronaut")).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Dead);
    let outcome = runs[0].outcome.as_deref().unwrap();
    assert!(outcome.contains("no role named \"Astronaut\"") && outcome.contains("Sales Rep"), "{outcome}");
    assert!(user_by_email(&stack.sim_state().await, "bob@example.com").is_none(), "no user without a role");
    assert_eq!(runs[0].attempts, 1, "a permanent error is not retried");
}

async fn mover_converges_the_role(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-mover")).await;
    stack
        .sim_seed(json!({"pipedrive": {"users": [{"name": "Mo Ver", "email": "mo@example.com", "role": "Sales Rep"}]}}))
        .await;
    let event = json!({"type": "mover", "employee": {"id": "E-6", "email": "mo@example.com"}, "apps": {"pipedrive": {"role": "Sales Manager"}}});
    let accepted = stack.accept(&event).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0].outcome);
    let state = stack.sim_state().await;
    assert_eq!(
        user_by_email(&state, "mo@example.com").unwrap()["role_id"].as_i64(),
        Some(role_id(&state, "Sales Manager"))
    );
}

async fn a_rejoining_user_is_reactivated_not_duplicated(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-rejoin")).await;
    stack
        .sim_seed(
            json!({"pipedrive": {"users": [{"name": "Re Joiner", "email": "re@example.com", "active_flag": false}]}}),
        )
        .await;
    let accepted = stack.accept(&pipedrive_joiner("E-7", "RE@example.com", "Sales Rep")).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0].outcome);
    let state = stack.sim_state().await;
    let matching: Vec<Value> = users(&state)
        .into_iter()
        .filter(|u| u["email"].as_str().unwrap().eq_ignore_ascii_case("re@example.com"))
        .collect();
    assert_eq!(matching.len(), 1);
    assert_eq!(matching[0]["active_flag"], true);
}

async fn joiner_and_leaver_recover_from_a_429_and_a_5xx(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "pd-faults")).await;
    stack.sim_seed(json!({"pipedrive": {"users": [{"name": "Going", "email": "going@example.com"}], "deals": [{"title": "D", "owner_email": "going@example.com"}]}})).await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users", "kind": "status", "status": 429, "count": 1})).await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/roles/*/assignments", "kind": "status", "status": 503, "count": 1})).await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "PATCH", "path": "/api/v2/deals/*", "kind": "status", "status": 429, "count": 1})).await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "PUT", "path": "/api/v1/users/*", "kind": "status", "status": 500, "count": 1})).await;
    let j = stack.accept(&pipedrive_joiner("E-8", "faulty@example.com", "Sales Rep")).await;
    let l = stack.accept(&pipedrive_leaver("E-9", "going@example.com", Some("grace@example.com"))).await;
    let jr = stack.wait_event(j["event_id"].as_str().unwrap(), WAIT).await;
    let lr = stack.wait_event(l["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(
        (jr[0].state, lr[0].state),
        (RunState::Succeeded, RunState::Succeeded),
        "{:?} / {:?}",
        jr[0].outcome,
        lr[0].outcome
    );
    assert!(
        jr[0].attempts >= 3 && lr[0].attempts >= 3,
        "each met its 429 and its 5xx: {} / {}",
        jr[0].attempts,
        lr[0].attempts
    );
    let state = stack.sim_state().await;
    assert_eq!(state["pipedrive"]["counters"]["rate_limited"], 2);
    assert_eq!(
        user_by_email(&state, "faulty@example.com").unwrap()["role_id"].as_i64(),
        Some(role_id(&state, "Sales Rep"))
    );
    assert_eq!(user_by_email(&state, "going@example.com").unwrap()["active_flag"], false);
}

// Recovery (a 429 or 5xx, an answer lost after a write) on both databases; the rest of the
// vendor's behaviour once, shared between them (`on_database!`).
both_databases!(joiner_and_leaver_recover_from_a_429_and_a_5xx, leaver_reassigns_every_open_deal_before_deactivating,);
on_database!(
    Sqlite:
    joiner_ends_with_the_user_existing_with_its_role,
    a_successor_who_cannot_take_deals_is_passed_over_and_the_outcome_says_why,
    the_last_admin_is_not_deactivated,
    mover_converges_the_role,
);
on_database!(
    Postgres:
    leaver_without_successor_uses_the_fallback_owner,
    leaver_with_deals_and_nobody_to_take_them_needs_a_person,
    unknown_role_is_dead_with_a_reason_and_creates_nobody,
    a_rejoining_user_is_reactivated_not_duplicated,
);
