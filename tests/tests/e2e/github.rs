//! GitHub workflows end to end: producer -> RabbitMQ -> worker -> simulator (`/github`, the
//! organisation `sim-org`, the token of its owner `sim-admin`; the stack's managed teams are
//! `platform` and `security`).

use lifecycle_domain::RunState;
use lifecycle_e2e::{both_databases, call_at_ms, on_database, Backend, Stack, StackOptions};
use lifecycle_store::entity::run::Model as Run;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn event(ty: &str, id: &str, email: &str, github: Value) -> Value {
    let mut employee = json!({ "id": id, "email": email });
    if ty != "leaver" {
        employee["given_name"] = json!("Sam");
        employee["family_name"] = json!("Person");
    }
    json!({
        "type": ty,
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": employee,
        "apps": { "github": github }
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

fn gh<'a>(state: &'a Value, key: &str) -> Vec<&'a Value> {
    state["github"][key].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

/// The member's organisation role, or `None` when not a member.
fn role_of(state: &Value, login: &str) -> Option<String> {
    gh(state, "members").into_iter().find(|m| m["login"] == login).map(|m| m["role"].as_str().unwrap().to_owned())
}

/// The slugs of the teams `login` is in.
fn teams_of(state: &Value, login: &str) -> Vec<String> {
    let mut teams: Vec<String> = gh(state, "teams")
        .into_iter()
        .filter(|t| t["members"].as_array().unwrap().iter().any(|m| m["login"] == login))
        .map(|t| t["slug"].as_str().unwrap().to_owned())
        .collect();
    teams.sort();
    teams
}

fn invitations(state: &Value, pick: impl Fn(&Value) -> bool) -> Vec<&Value> {
    gh(state, "invitations").into_iter().filter(|i| pick(i)).collect()
}

fn actions(state: &Value) -> Vec<String> {
    gh(state, "log").iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

async fn a_joiner_is_invited_once_with_role_and_teams(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "gh-joiner")).await;
    // ada-gh is a GitHub account of the fixture, not a member of sim-org.
    let joiner =
        event("joiner", "E-1", "ada@example.com", json!({"login": "ada-gh", "role": "admin", "teams": ["platform"]}));
    let run = run_event(&stack, &joiner).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("invited"), "a pending invitation is not a member");
    assert!(outcome(&run).contains("pending acceptance"), "{}", outcome(&run));

    let state = stack.sim_state().await;
    let sent = invitations(&state, |i| i["login"] == "ada-gh");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["state"], "pending");
    assert_eq!(sent[0]["role"], "admin");
    assert_eq!(sent[0]["teams"], json!(["platform"]));
    assert_eq!(role_of(&state, "ada-gh"), None, "not a member until they accept");

    // Sent again (a replay by the HR system): already invited, nothing sent twice.
    let again = run_event(&stack, &joiner).await;
    assert_eq!(again.state, RunState::Succeeded, "{}", explain(&again, &stack));
    assert_eq!(again.access.map(|a| a.as_str()), Some("invited"));
    assert!(outcome(&again).contains("already invited"), "{}", outcome(&again));
    let state = stack.sim_state().await;
    assert_eq!(invitations(&state, |i| i["login"] == "ada-gh").len(), 1);
    assert_eq!(actions(&state).iter().filter(|a| *a == "invitation.create").count(), 1);

    // Without a login: invited by e-mail, as a member, to no team.
    let by_email = event("joiner", "E-2", "new.hire@example.com", json!({}));
    let run = run_event(&stack, &by_email).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("invited"));
    let state = stack.sim_state().await;
    let sent = invitations(&state, |i| i["email"] == "new.hire@example.com");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0]["role"].as_str(), sent[0]["login"].is_null()), (Some("direct_member"), true));
}

async fn a_mover_converges_role_and_managed_teams(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "gh-mover")).await;
    // alan-gh: an active member, in platform, maintainer of security (the fixture).
    let before = stack.sim_state().await;
    assert_eq!(role_of(&before, "alan-gh").as_deref(), Some("member"));
    assert_eq!(teams_of(&before, "alan-gh"), ["platform", "security"]);

    let mover =
        event("mover", "E-3", "alan@example.com", json!({"login": "alan-gh", "role": "admin", "teams": ["sales-eng"]}));
    let run = run_event(&stack, &mover).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let state = stack.sim_state().await;
    assert_eq!(role_of(&state, "alan-gh").as_deref(), Some("admin"));
    assert_eq!(teams_of(&state, "alan-gh"), ["sales-eng"], "out of both managed teams, into the one asked for");

    // Teams only: back into platform; the role is kept, and so is sales-eng (no managed team).
    let mover = event("mover", "E-3", "alan@example.com", json!({"login": "alan-gh", "teams": ["platform"]}));
    let run = run_event(&stack, &mover).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    let state = stack.sim_state().await;
    assert_eq!(role_of(&state, "alan-gh").as_deref(), Some("admin"));
    assert_eq!(teams_of(&state, "alan-gh"), ["platform", "sales-eng"]);

    // A pending invitee cannot be moved yet: a person replays it once they have accepted.
    stack.sim_seed(json!({"github": {"invitations": [{"login": "ada-gh", "teams": ["platform"]}]}})).await;
    let mover = event("mover", "E-1", "ada@example.com", json!({"login": "ada-gh", "teams": ["security"]}));
    let run = run_event(&stack, &mover).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", explain(&run, &stack));
    assert!(outcome(&run).contains("not accepted"), "{}", outcome(&run));
}

async fn a_leaver_loses_membership_and_e_mail_invitations(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "gh-leaver")).await;
    stack
        .sim_seed(json!({"github": {
            "users": [{"login": "kim-gh", "name": "Kim"}],
            "members": [{"login": "kim-gh", "role": "member"}],
            "invitations": [{"email": "kim@example.com", "role": "direct_member", "teams": ["platform"]}]
        }}))
        .await;
    let leaver = event("leaver", "E-4", "kim@example.com", json!({"login": "kim-gh"}));
    let run = run_event(&stack, &leaver).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("removed"));
    let said = outcome(&run);
    for part in ["removed kim-gh", "forks", "cancelled the pending invitation"] {
        assert!(said.contains(part), "{part:?} in {said}");
    }
    let state = stack.sim_state().await;
    assert_eq!(role_of(&state, "kim-gh"), None, "the membership is gone");
    let sent = invitations(&state, |i| i["email"] == "kim@example.com");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["state"], "cancelled");

    // Again: nothing left to remove, nothing written.
    let writes = actions(&state).len();
    let again = run_event(&stack, &leaver).await;
    assert_eq!(again.state, RunState::Succeeded, "{}", explain(&again, &stack));
    assert_eq!(again.access.map(|a| a.as_str()), Some("absent"));
    assert_eq!(actions(&stack.sim_state().await).len(), writes);

    // An outside collaborator (linus-gh, in the fixture) is a person's call unless the event says so.
    let leaver = event("leaver", "E-5", "linus@example.com", json!({"login": "linus-gh"}));
    let run = run_event(&stack, &leaver).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", explain(&run, &stack));
    assert!(outcome(&run).contains("outside collaborator"), "{}", outcome(&run));
    let leaver =
        event("leaver", "E-5", "linus@example.com", json!({"login": "linus-gh", "remove_outside_collaborator": true}));
    let run = run_event(&stack, &leaver).await;
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert_eq!(run.access.map(|a| a.as_str()), Some("removed"));
    assert!(gh(&stack.sim_state().await, "outside_collaborators").iter().all(|c| c["login"] != "linus-gh"));
}

/// GitHub's secondary limit: too many writes in a minute is a 403 with `retry-after`. The run
/// waits that long and carries on; it ends succeeded.
async fn a_secondary_rate_limit_403_is_waited_out(backend: Backend) {
    let retry_after_s = 2;
    let stack = Stack::start(StackOptions::new(backend, "gh-secondary")).await;
    stack
        .sim_config(json!({"github": {"secondary_writes_per_minute": 1, "secondary_retry_after_secs": retry_after_s}}))
        .await;
    // Four writes (the role, into sales-eng, out of platform and of security): with one a
    // minute allowed, at least one of them is refused whatever the clock says.
    let mover =
        event("mover", "E-6", "alan@example.com", json!({"login": "alan-gh", "role": "admin", "teams": ["sales-eng"]}));
    let accepted = stack.accept(&mover).await;
    // Once refused, GitHub's minute is let run out at once (rather than waiting for the clock's):
    // what is tested is that the run waits the time it was told and then succeeds.
    let refused = lifecycle_e2e::eventually(WAIT, "a secondary-limit 403", || async {
        let calls = stack.sim_calls("github").await;
        calls.iter().find(|c| c["status"] == 403).cloned()
    })
    .await;
    stack.sim_config(json!({"github": {"secondary_writes_per_minute": 80}})).await;
    let mut runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    let run = runs.remove(0);
    assert_eq!(run.state, RunState::Succeeded, "{}", explain(&run, &stack));
    assert!(run.attempts > 1, "the 403 was retried: {} attempts", run.attempts);
    let state = stack.sim_state().await;
    assert_eq!(role_of(&state, "alan-gh").as_deref(), Some("admin"));
    assert_eq!(teams_of(&state, "alan-gh"), ["sales-eng"]);

    // The simulator's record: the 403, and nothing sent before the retry-after had passed.
    let calls = stack.sim_calls("github").await;
    let refused_at = call_at_ms(&refused);
    let next = calls
        .iter()
        .filter(|c| {
            call_at_ms(c) > refused_at || (call_at_ms(c) == refused_at && c["n"].as_u64() > refused["n"].as_u64())
        })
        .map(call_at_ms)
        .min()
        .expect("a request after the 403");
    assert!(
        next - refused_at >= retry_after_s * 1000 - 50,
        "the next request came {} ms after the 403 (retry-after {retry_after_s} s)",
        next - refused_at
    );
    // (Its counters' `rate_limited` counts 429s only: the call log is where a 403 shows.)
    assert!(["PUT", "DELETE", "POST"].contains(&refused["method"].as_str().unwrap()), "a write was refused: {refused}");
}

/// The last owner is never removed: the run stops before writing and names why. (The owner
/// being the token's own user is refused first, so the stack reads with a member's token.)
async fn the_last_owner_and_the_tokens_own_user_are_left_to_a_person(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "gh-last-owner").env("LIFECYCLE_VENDORS__GITHUB__TOKEN", "github-member-token"),
    )
    .await;
    let leaver = event("leaver", "E-7", "admin@sim.example", json!({"login": "sim-admin"}));
    let run = run_event(&stack, &leaver).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", explain(&run, &stack));
    assert!(outcome(&run).contains("sim-admin is the last owner of sim-org"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    assert_eq!(role_of(&state, "sim-admin").as_deref(), Some("admin"));
    assert!(actions(&state).is_empty(), "nothing was written: {:?}", actions(&state));
    assert!(stack.sim_calls("github").await.iter().all(|c| c["method"] == "GET"), "reads only");

    // The token's own user (grace-gh here): removing them would lock lifecycle out.
    let leaver = event("leaver", "E-8", "grace@example.com", json!({"login": "grace-gh"}));
    let run = run_event(&stack, &leaver).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", explain(&run, &stack));
    assert!(outcome(&run).contains("token's own user"), "{}", outcome(&run));
    assert_eq!(role_of(&stack.sim_state().await, "grace-gh").as_deref(), Some("member"));
}

// Recovery (a 429 or 5xx, an answer lost after a write) on both databases; the rest of the
// vendor's behaviour once, shared between them (`on_database!`).
both_databases!(a_joiner_is_invited_once_with_role_and_teams, a_secondary_rate_limit_403_is_waited_out,);
on_database!(
    Sqlite:
    a_mover_converges_role_and_managed_teams,
    the_last_owner_and_the_tokens_own_user_are_left_to_a_person,
);
on_database!(
    Postgres:
    a_leaver_loses_membership_and_e_mail_invitations,
);
