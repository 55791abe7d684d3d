//! Calendly workflows end to end: producer -> RabbitMQ -> worker -> simulator.

use chrono::Utc;
use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::{both_databases, call_at_ms, on_database, Backend, Stack, StackOptions};
use lifecycle_store::entity::run::Model as Run;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn joiner(id: &str, email: &str) -> Value {
    json!({
        "type": "joiner",
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": { "id": id, "email": email, "given_name": "Ada", "family_name": "Lovelace" },
        "apps": { "calendly": {} }
    })
}

fn leaver(id: &str, email: &str) -> Value {
    json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "employee": { "id": id, "email": email },
        "apps": { "calendly": {} }
    })
}

/// Posts the event and waits for its (only) run to end.
async fn run_event(stack: &Stack, event: &Value) -> Run {
    let accepted = stack.accept(event).await;
    let mut runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs.len(), 1);
    runs.remove(0)
}

fn explain(run: &Run, stack: &Stack) -> String {
    format!("state {} / outcome {:?} / last error {:?}\n{}", run.state, run.outcome, run.last_error, stack.logs())
}

fn outcome(run: &Run) -> &str {
    run.outcome.as_deref().unwrap_or_default()
}

fn memberships(state: &Value) -> Vec<Value> {
    state["calendly"]["memberships"].as_array().cloned().unwrap_or_default()
}

fn membership(state: &Value, email: &str) -> Option<Value> {
    memberships(state).into_iter().find(|m| m["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
}

fn invitations_of(state: &Value, email: &str) -> Vec<Value> {
    state["calendly"]["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .cloned()
        .collect()
}

fn actions(state: &Value) -> Vec<String> {
    state["calendly"]["log"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

/// A stack whose simulator and worker both allow many requests, for tests that are not about
/// rate limits: short 2 s windows, so an injected 429's X-RateLimit-Reset is short too.
async fn roomy_stack(backend: Backend, name: &str) -> Stack {
    let stack = Stack::start(
        StackOptions::new(backend, name)
            .env("LIFECYCLE_VENDORS__CALENDLY__RATE_LIMIT__REQUESTS", "1000")
            .env("LIFECYCLE_VENDORS__CALENDLY__RATE_LIMIT__PER", "1m"),
    )
    .await;
    stack.sim_config(json!({"calendly": {"rate_limit": {"requests": 1000, "window_ms": 2000}}})).await;
    stack
}

async fn joiner_ends_invited_pending_acceptance(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-joiner")).await;
    let run = run_event(&stack, &joiner("E-1", "ada@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("invited"), "a pending invitation is not an active user");
    assert!(outcome(&run).contains("invited, pending acceptance"), "{}", outcome(&run));

    let state = stack.sim_state().await;
    let invitations = invitations_of(&state, "ada@example.com");
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0]["status"], "pending");
    assert!(membership(&state, "ada@example.com").is_none(), "not a member until accepted");

    // The journal holds the step with the vendor ids: one step, the look-up inside it (the
    // organization's URI is the worker's cache, not a step).
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["invite"]);
    let invite = steps[0].output.as_deref().unwrap();
    assert!(invite.contains(invitations[0]["uuid"].as_str().unwrap()), "{invite}");

    // Identifiers in queries are full URIs, never bare UUIDs; the person is found by e-mail.
    let org = state["calendly"]["organization"]["uri"].as_str().unwrap();
    for call in stack.sim_calls("calendly").await {
        if call["path"] == "/organization_memberships" {
            let query = call["query"].as_str().unwrap();
            assert!(query.contains("organization=http%3A%2F%2F"), "{query}");
            assert!(query.contains(&org.replace(':', "%3A").replace('/', "%2F")), "{query}");
            assert!(query.contains("email=ada%40example.com"), "{query}");
            assert!(query.contains("count=100"), "{query}");
        }
    }
}

async fn a_second_joiner_does_not_invite_again(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-twice")).await;
    let first = run_event(&stack, &joiner("E-2", "ada@example.com")).await;
    assert_eq!(first.state, RunState::Succeeded, "{}", explain(&first, &stack));
    let second = run_event(&stack, &joiner("E-2", "Ada@Example.com")).await;
    assert_eq!(second.state, RunState::Succeeded, "{}", explain(&second, &stack));
    assert_eq!(second.access.map(|a| a.as_str()), Some("invited"));
    assert!(outcome(&second).contains("already pending"), "{}", outcome(&second));

    let state = stack.sim_state().await;
    assert_eq!(invitations_of(&state, "ada@example.com").len(), 1);
    assert_eq!(actions(&state), ["invitation.create"], "one invitation, sent once");
    let posts = stack.sim_calls("calendly").await.into_iter().filter(|c| c["method"] == "POST").count();
    assert_eq!(posts, 1, "the second run never tried to invite");
}

async fn a_member_is_active_and_left_alone_by_joiner_and_mover(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-member")).await;
    let run = run_event(&stack, &joiner("E-3", "grace@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    assert!(outcome(&run).contains("already a member"), "{}", outcome(&run));
    let mover =
        json!({"type": "mover", "employee": {"id": "E-3", "email": "grace@example.com"}, "apps": {"calendly": {}}});
    let run = run_event(&stack, &mover).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let state = stack.sim_state().await;
    assert!(actions(&state).is_empty(), "nothing changed: {:?}", actions(&state));
    assert!(invitations_of(&state, "grace@example.com").is_empty());
}

async fn joiner_and_leaver_recover_from_a_429_and_a_5xx(backend: Backend) {
    let stack = roomy_stack(backend, "cal-faults").await;
    stack
        .sim_fault(json!({"vendor": "calendly", "method": "GET", "path": "/organization_memberships", "kind": "status", "status": 429}))
        .await;
    stack
        .sim_fault(json!({"vendor": "calendly", "method": "POST", "path": "/organizations/*/invitations", "kind": "status", "status": 503}))
        .await;
    let run = run_event(&stack, &joiner("E-4", "ada@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("invited"));
    assert_eq!(run.attempts, 3, "one retry after the 429, one after the 503");

    // Ada accepts the emailed invitation.
    stack.sim_seed(json!({"calendly": {"accept_invitations": ["ada@example.com"]}})).await;
    let state = stack.sim_state().await;
    assert_eq!(membership(&state, "ada@example.com").expect("a member now")["role"], "user");

    stack
        .sim_fault(json!({"vendor": "calendly", "method": "DELETE", "path": "/organization_memberships/*", "kind": "status", "status": 500}))
        .await;
    let run = run_event(&stack, &leaver("E-4", "ada@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("removed"));
    assert!(outcome(&run).contains("account itself remains"), "{}", outcome(&run));

    let state = stack.sim_state().await;
    assert!(membership(&state, "ada@example.com").is_none());
    let account = state["calendly"]["users"].as_array().unwrap().iter().find(|u| u["email"] == "ada@example.com");
    assert!(account.expect("the account stays")["current_organization"].is_null());
    assert_eq!(actions(&state), ["invitation.create", "membership.delete"]);
    assert_eq!(state["calendly"]["counters"]["rate_limited"], 1);
}

async fn an_invitation_whose_answer_was_lost_is_adopted_not_sent_twice(backend: Backend) {
    let stack = roomy_stack(backend, "cal-indoubt").await;
    stack
        .sim_fault(json!({"vendor": "calendly", "method": "POST", "path": "/organizations/*/invitations", "kind": "apply_then_fail", "status": 502}))
        .await;
    let run = run_event(&stack, &joiner("E-5", "ada@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("invited"));
    assert!(outcome(&run).contains("invited, pending acceptance"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    assert_eq!(invitations_of(&state, "ada@example.com").len(), 1, "no duplicate invitation");
    assert_eq!(actions(&state), ["invitation.create"]);
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let invite = steps.iter().find(|s| s.key == "invite").unwrap();
    assert_eq!(invite.attempts, 2);
    assert!(invite.output.as_deref().unwrap().contains("\"adopted\":true"), "{:?}", invite.output);
}

async fn leaver_with_only_a_pending_invitation_revokes_it(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-revoke")).await;
    stack.sim_seed(json!({"calendly": {"invitations": [{"email": "newbie@example.com"}]}})).await;
    let run = run_event(&stack, &leaver("E-6", "newbie@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("absent"), "they never were a member");
    assert!(outcome(&run).contains("revoked the pending Calendly invitation"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    let invitations = invitations_of(&state, "newbie@example.com");
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0]["status"], "revoked");
    assert_eq!(actions(&state), ["invitation.revoke"]);
}

async fn leaver_of_someone_never_invited_is_absent(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-absent")).await;
    let run = run_event(&stack, &leaver("E-7", "stranger@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("absent"));
    assert!(actions(&stack.sim_state().await).is_empty());
}

async fn the_owner_is_not_removed_and_a_person_is_told_what_to_do(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-owner")).await;
    let run = run_event(&stack, &leaver("E-0", "owner@sim.example")).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", explain(&run, &stack));
    let what = outcome(&run);
    assert!(what.contains("is the owner of the Calendly organization"), "{what}");
    assert!(what.contains("transfer the organization's ownership") && what.contains("replay"), "{what}");
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let state = stack.sim_state().await;
    assert_eq!(membership(&state, "owner@sim.example").unwrap()["role"], "owner");
    assert!(stack.sim_calls("calendly").await.iter().all(|c| c["method"] != "DELETE"), "no removal was even tried");
}

async fn leaver_finds_a_member_past_the_first_page_of_100(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-pages")).await;
    let members: Vec<Value> = (0..150).map(|i| json!({"email": format!("member{i:03}@example.com")})).collect();
    stack.sim_seed(json!({"calendly": {"members": members}})).await;
    let run = run_event(&stack, &leaver("E-8", "member149@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("removed"));

    let state = stack.sim_state().await;
    assert!(membership(&state, "member149@example.com").is_none());
    assert_eq!(memberships(&state).len(), 152, "only that one removed");
    let lists: Vec<String> = stack
        .sim_calls("calendly")
        .await
        .into_iter()
        .filter(|c| c["method"] == "GET" && c["path"] == "/organization_memberships")
        .map(|c| c["query"].as_str().unwrap().to_owned())
        .collect();
    // Found by Calendly's e-mail filter: one request, whatever their place in the list.
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert!(!lists[0].contains("page_token") && lists[0].contains("email=member149%40example.com"), "{lists:?}");
    assert!(lists.iter().all(|q| q.contains("count=100")), "{lists:?}");
}

async fn a_429_retry_after_is_honoured_before_calling_again(backend: Backend) {
    // Three requests per 10 s window at the simulator; the worker's own budget is set high so
    // that the 429 is the vendor's to give.
    let stack = Stack::start(
        StackOptions::new(backend, "cal-429")
            .env("LIFECYCLE_VENDORS__CALENDLY__RATE_LIMIT__REQUESTS", "1000")
            .env("LIFECYCLE_VENDORS__CALENDLY__RATE_LIMIT__PER", "1m"),
    )
    .await;
    const WINDOW: i64 = 10_000;
    stack.sim_config(json!({"calendly": {"rate_limit": {"requests": 3, "window_ms": WINDOW}}})).await;
    // Start early in a window, so that the run's four requests meet in one window.
    let into = Utc::now().timestamp_millis().rem_euclid(WINDOW);
    if into > 1_500 {
        tokio::time::sleep(Duration::from_millis((WINDOW - into + 100) as u64)).await;
    }
    let run = run_event(&stack, &joiner("E-9", "ada@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("invited"));

    let calls = stack.sim_calls("calendly").await;
    let limited: Vec<usize> = (0..calls.len()).filter(|&i| calls[i]["status"] == 429).collect();
    assert!(!limited.is_empty(), "the fourth request of the window was refused: {calls:?}");
    for &i in &limited {
        let refused = call_at_ms(&calls[i]);
        // X-RateLimit-Reset (seconds, the only wait Calendly documents) pointed at the end of
        // the window the 429 came from.
        let window_end = (refused - 100).div_euclid(WINDOW) * WINDOW + WINDOW;
        let next = calls.get(i + 1).expect("the run called again after the 429");
        assert!(
            call_at_ms(next) >= window_end,
            "called again {} ms after a 429, before its window ended ({} ms after it): {calls:?}",
            call_at_ms(next) - refused,
            window_end - refused
        );
    }
    let state = stack.sim_state().await;
    assert_eq!(actions(&state), ["invitation.create"]);
}

async fn a_token_without_admin_rights_ends_dead_saying_what_to_fix(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "cal-perm").env("LIFECYCLE_VENDORS__CALENDLY__TOKEN", "a-plain-members-token"),
    )
    .await;
    stack
        .sim_seed(json!({"calendly": {"members": [{"email": "plain@example.com", "role": "user", "token": "a-plain-members-token"}]}}))
        .await;
    let run = run_event(&stack, &joiner("E-10", "ada@example.com")).await;
    assert_eq!(run.state, RunState::Dead, "{}", explain(&run, &stack));
    assert_eq!(run.attempts, 1, "a permanent error is not retried");
    let why = outcome(&run);
    assert!(why.contains("403") && why.contains("owner or admin") && why.contains("vendors.calendly.token"), "{why}");
    assert!(!why.contains("a-plain-members-token"), "never a secret in a message");
    let state = stack.sim_state().await;
    assert!(invitations_of(&state, "ada@example.com").is_empty());
}

async fn the_contract_example_event_invites_ada(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "cal-contract")).await;
    let event = lifecycle_e2e::stack::contract_joiner();
    let accepted = stack.accept(&event).await;
    let event_id = accepted["event_id"].as_str().unwrap().to_owned();
    let run = lifecycle_e2e::eventually(WAIT, "the Calendly run to end", || async {
        stack.runs_of(&event_id).await.into_iter().find(|r| {
            r.vendor == VendorKind::Calendly
                && matches!(r.state, RunState::Succeeded | RunState::NeedsManualAction | RunState::Dead)
        })
    })
    .await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("invited"));
    assert_eq!(invitations_of(&stack.sim_state().await, "ada@example.com").len(), 1);
}

// Recovery (a 429 or 5xx, an answer lost after a write) on both databases; the rest of the
// vendor's behaviour once, shared between them (`on_database!`).
both_databases!(
    joiner_and_leaver_recover_from_a_429_and_a_5xx,
    an_invitation_whose_answer_was_lost_is_adopted_not_sent_twice,
);
on_database!(
    Sqlite:
    joiner_ends_invited_pending_acceptance,
    a_member_is_active_and_left_alone_by_joiner_and_mover,
    leaver_of_someone_never_invited_is_absent,
    leaver_finds_a_member_past_the_first_page_of_100,
    a_token_without_admin_rights_ends_dead_saying_what_to_fix,
);
on_database!(
    Postgres:
    a_second_joiner_does_not_invite_again,
    leaver_with_only_a_pending_invitation_revokes_it,
    the_owner_is_not_removed_and_a_person_is_told_what_to_do,
    a_429_retry_after_is_honoured_before_calling_again,
    the_contract_example_event_invites_ada,
);
