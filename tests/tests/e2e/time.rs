//! Time (issue 13) end to end: runs scheduled for their `effective_at` and
//! started from the database when it comes (across a worker restart),
//! rescheduled and cancelled ones, and effects that follow `occurred_at`
//! rather than arrival. Pipedrive is the vendor throughout; the simulator's
//! call log says when each write reached it.

use chrono::SecondsFormat;
use lifecycle_domain::RunState;
use lifecycle_e2e::lanes::now_ms;
use lifecycle_e2e::sim::{actions, log_for, pd_users};
use lifecycle_e2e::{both_databases, call_at_ms, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// How soon after `effective_at` the account must be gone (the bound;
/// the scheduler looks every second).
const ON_TIME_MS: i64 = 2000;

/// A moment `secs` from now: as RFC 3339 (UTC, milliseconds) and in Unix ms.
fn in_secs(secs: i64) -> (String, i64) {
    let t = chrono::Utc::now() + chrono::Duration::seconds(secs);
    (t.to_rfc3339_opts(SecondsFormat::Millis, true), t.timestamp_millis())
}

/// `hours` before now, RFC 3339 with an offset other than UTC (the intake
/// reads any offset).
fn hours_ago(hours: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::hours(hours);
    t.with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).unwrap()).to_rfc3339_opts(SecondsFormat::Millis, false)
}

fn event(kind: &str, email: &str, occurred_at: &str, effective_at: Option<&str>, app: Value) -> Value {
    let mut v = json!({
        "type": kind,
        "occurred_at": occurred_at,
        "employee": {"id": format!("E-{email}"), "email": email, "given_name": "Ada", "family_name": "Lovelace"},
        "apps": {"pipedrive": app}
    });
    if let Some(at) = effective_at {
        v["effective_at"] = json!(at);
    }
    v
}

fn leaver(email: &str, occurred_at: &str, effective_at: Option<&str>) -> Value {
    event("leaver", email, occurred_at, effective_at, json!({}))
}

/// Active Pipedrive users with these addresses; returns their ids, in order.
async fn seed_users(stack: &Stack, emails: &[&str]) -> Vec<Value> {
    let users: Vec<Value> =
        emails.iter().map(|e| json!({"name": format!("User {e}"), "email": e, "role": "Sales Rep"})).collect();
    stack.sim_seed(json!({"pipedrive": {"users": users}})).await;
    let state = stack.sim_state().await;
    emails.iter().map(|e| pd_users(&state, e)[0]["id"].clone()).collect()
}

/// Every Pipedrive call that was not a read.
async fn writes(stack: &Stack) -> Vec<Value> {
    stack.sim_calls("pipedrive").await.into_iter().filter(|c| c["method"] != "GET").collect()
}

/// The successful deactivations of one user (`PUT /users/{id}`, the leaver's only write without deals).
async fn deactivations(stack: &Stack, user_id: &Value) -> Vec<Value> {
    let path = format!("/api/v1/users/{user_id}");
    stack
        .sim_calls("pipedrive")
        .await
        .into_iter()
        .filter(|c| c["method"] == "PUT" && c["path"] == path.as_str() && c["status"] == 200)
        .collect()
}

async fn run(stack: &Stack, run_id: &str) -> lifecycle_store::entity::run::Model {
    lifecycle_store::runs::get(&stack.store, run_id).await.unwrap().expect("the run exists")
}

fn run_id(accepted: &Value) -> String {
    accepted["runs"][0]["run_id"].as_str().expect("a run").to_string()
}

fn event_id(accepted: &Value) -> String {
    accepted["event_id"].as_str().expect("an event id").to_string()
}

/// Until `until_ms` (Unix ms): every half second, the run is still
/// `scheduled` and Pipedrive has seen no write at all.
async fn quiet_until(stack: &Stack, run_id: &str, until_ms: i64) {
    loop {
        let r = run(stack, run_id).await;
        assert_eq!(r.state, RunState::Scheduled, "{} ms before its time: {r:?}", until_ms - now_ms());
        let w = writes(stack).await;
        assert!(w.is_empty(), "Pipedrive was written to before the run's time: {w:?}");
        let left = until_ms - now_ms();
        if left <= 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(left.min(500) as u64)).await;
    }
}

/// The leaver's run ends `succeeded`, the account deactivated once, at or
/// after `effective_ms` and within [`ON_TIME_MS`] of it; no Pipedrive call
/// at all came before `effective_ms`.
async fn deactivated_on_time(stack: &Stack, event_id: &str, user_id: &Value, effective_ms: i64) {
    let runs = stack.wait_event(event_id, WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    assert_eq!(runs[0].access.map(|a| a.as_str()), Some("deactivated"));
    let done = deactivations(stack, user_id).await;
    assert_eq!(done.len(), 1, "deactivated exactly once: {done:?}");
    let late = call_at_ms(&done[0]) - effective_ms;
    assert!(late >= 0, "deactivated {} ms before effective_at", -late);
    assert!(late <= ON_TIME_MS, "deactivated {late} ms after effective_at (at most {ON_TIME_MS})\n{}", stack.logs());
    let early: Vec<Value> =
        stack.sim_calls("pipedrive").await.into_iter().filter(|c| call_at_ms(c) < effective_ms).collect();
    assert!(early.is_empty(), "Pipedrive was called before effective_at: {early:?}");
    let state = stack.sim_state().await;
    assert_eq!(log_for(&state, "pipedrive", "user.deactivate", user_id).len(), 1);
    eprintln!("deactivated {late} ms after effective_at");
}

async fn a_leaver_ten_seconds_ahead_is_scheduled_then_deactivated_on_time(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "time-leaver")).await;
    let ids = seed_users(&stack, &["ada@example.com"]).await;

    // A time without an offset is refused, naming the field.
    let mut local = leaver("ada@example.com", &hours_ago(1), Some("2026-12-31T17:00:00"));
    let r = stack.post_event(&local, "no-offset").await;
    assert_eq!(r.status().as_u16(), 400);
    let problem: Value = r.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, vec!["effective_at"], "{problem}");
    assert_eq!(stack.count("runs").await, 0);

    let (effective_at, effective_ms) = in_secs(10);
    local["effective_at"] = json!(effective_at);
    let accepted = stack.accept(&local).await;
    let run_ref = &accepted["runs"][0];
    assert_eq!(run_ref["state"], "scheduled", "{accepted}");
    let starts_at = chrono::DateTime::parse_from_rfc3339(run_ref["starts_at"].as_str().expect("starts_at")).unwrap();
    assert_eq!(starts_at.timestamp_millis(), effective_ms, "no lead for a Pipedrive leaver: {accepted}");
    let r = run(&stack, &run_id(&accepted)).await;
    assert_eq!(r.effective_at.map(|t| t.timestamp_millis()), Some(effective_ms));
    assert_eq!((r.attempts, r.started_at, r.dispatched_at), (0, None, None), "nothing was published");
    assert_eq!(stack.count("outbox").await, 0, "no message waits in the broker, or on the way to it");

    quiet_until(&stack, &run_id(&accepted), effective_ms - 300).await;
    deactivated_on_time(&stack, &event_id(&accepted), &ids[0], effective_ms).await;
}

async fn a_scheduled_leaver_survives_a_worker_restart_while_it_waits(backend: Backend) {
    let mut stack = Stack::start(StackOptions::new(backend, "time-restart")).await;
    let ids = seed_users(&stack, &["ada@example.com"]).await;
    let (effective_at, effective_ms) = in_secs(10);
    let accepted = stack.accept(&leaver("ada@example.com", &hours_ago(1), Some(&effective_at))).await;
    assert_eq!(accepted["runs"][0]["state"], "scheduled", "{accepted}");

    quiet_until(&stack, &run_id(&accepted), effective_ms - 8000).await;
    assert!(stack.terminate_worker(0, Duration::from_secs(10)), "the worker stops on SIGTERM");
    // No worker at all for a while: nothing may happen, and nothing is lost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(run(&stack, &run_id(&accepted)).await.state, RunState::Scheduled);
    stack.start_worker();
    quiet_until(&stack, &run_id(&accepted), effective_ms - 300).await;
    deactivated_on_time(&stack, &event_id(&accepted), &ids[0], effective_ms).await;
}

async fn a_rescheduled_leaver_runs_at_the_new_time_only(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "time-reschedule")).await;
    let ids = seed_users(&stack, &["ada@example.com"]).await;
    let (first_at, first_ms) = in_secs(12);
    let first = stack.accept(&leaver("ada@example.com", &hours_ago(3), Some(&first_at))).await;
    assert_eq!(first["runs"][0]["state"], "scheduled", "{first}");
    // HR moves the last day forward: a later change, a new effective_at.
    let (second_at, second_ms) = in_secs(4);
    let second = stack.accept(&leaver("ada@example.com", &hours_ago(2), Some(&second_at))).await;
    assert_eq!(second["runs"][0]["state"], "scheduled", "{second}");
    assert_eq!(second["replaced"], json!([run_id(&first)]), "{second}");

    let old = run(&stack, &run_id(&first)).await;
    assert_eq!(old.state, RunState::Superseded);
    assert_eq!(old.superseded_by.as_deref(), Some(event_id(&second).as_str()));
    assert!(old.outcome.as_deref().unwrap_or("").contains(&event_id(&second)), "{:?}", old.outcome);

    deactivated_on_time(&stack, &event_id(&second), &ids[0], second_ms).await;
    // Past the first time: the replaced run never ran.
    tokio::time::sleep(Duration::from_millis((first_ms + 2500 - now_ms()).max(0) as u64)).await;
    let old = run(&stack, &run_id(&first)).await;
    assert_eq!((old.state, old.attempts, old.started_at), (RunState::Superseded, 0, None));
    assert_eq!(deactivations(&stack, &ids[0]).await.len(), 1, "exactly one deactivation");
    assert_eq!(writes(&stack).await.len(), 1, "{:?}", writes(&stack).await);
}

async fn cancelled_leavers_never_run(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "time-cancel")).await;
    let ids = seed_users(&stack, &["ada@example.com", "bob@example.com"]).await;
    let (effective_at, effective_ms) = in_secs(5);
    let ada = stack.accept(&leaver("ada@example.com", &hours_ago(1), Some(&effective_at))).await;
    let bob = stack.accept(&leaver("bob@example.com", &hours_ago(1), Some(&effective_at))).await;

    // Ada's: HR withdraws everything scheduled for her (a cancel names no vendor: all of them).
    let cancel = stack
        .accept(&json!({"type": "cancel", "occurred_at": hours_ago(0), "employee": {"id": "E-ada", "email": "ADA@example.com"}}))
        .await;
    assert_eq!(cancel["cancelled"], json!([run_id(&ada)]), "{cancel}");
    assert_eq!(cancel["started"], json!([]), "{cancel}");
    assert_eq!(cancel["runs"], json!([]), "a cancel makes no runs: {cancel}");
    // Bob's: this one event, through the API.
    let (status, body) = stack.post_cancel(&event_id(&bob)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"cancelled": [run_id(&bob)], "started": []}));
    // Again: nothing left to cancel, nothing started.
    let (status, body) = stack.post_cancel(&event_id(&bob)).await;
    assert_eq!((status, body), (200, json!({"cancelled": [], "started": []})));
    let (status, _) = stack.post_cancel("no-such-event").await;
    assert_eq!(status, 404);

    for (accepted, by) in [(&ada, event_id(&cancel)), (&bob, "POST /v1/events/".to_string())] {
        let r = run(&stack, &run_id(accepted)).await;
        assert_eq!(r.state, RunState::Cancelled);
        assert!(r.outcome.as_deref().unwrap_or("").contains(&by), "says by whom: {:?}", r.outcome);
    }
    // Wait past their time: nothing ran, nothing was written.
    tokio::time::sleep(Duration::from_millis((effective_ms + 3000 - now_ms()).max(0) as u64)).await;
    for accepted in [&ada, &bob] {
        let r = run(&stack, &run_id(accepted)).await;
        assert_eq!((r.state, r.attempts, r.started_at), (RunState::Cancelled, 0, None));
    }
    assert!(writes(&stack).await.is_empty(), "{:?}", writes(&stack).await);
    let state = stack.sim_state().await;
    for (email, id) in [("ada@example.com", &ids[0]), ("bob@example.com", &ids[1])] {
        let user = pd_users(&state, email)[0];
        assert_eq!((&user["id"], &user["active_flag"]), (id, &json!(true)), "{email} is still active");
    }
}

async fn a_cancel_after_the_run_started_reports_it_started_and_changes_nothing(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "time-cancel-late")).await;
    let ids = seed_users(&stack, &["ada@example.com"]).await;
    // Slow Pipedrive (below the worker's 4 s HTTP timeout), so the run stays in flight.
    stack.sim_fault(json!({"vendor": "pipedrive", "kind": "latency", "latency_ms": 1500, "count": 3})).await;
    let (effective_at, _) = in_secs(2);
    let accepted = stack.accept(&leaver("ada@example.com", &hours_ago(1), Some(&effective_at))).await;
    let id = run_id(&accepted);
    lifecycle_e2e::eventually(Duration::from_secs(15), "the run to start", || async {
        let r = run(&stack, &id).await;
        (r.state == RunState::Running && r.started_at.is_some()).then_some(())
    })
    .await;

    let (status, body) = stack.post_cancel(&event_id(&accepted)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"cancelled": [], "started": [id]}));
    let cancel = stack
        .accept(&json!({"type": "cancel", "employee": {"id": "E-ada", "email": "ada@example.com"}, "apps": {"pipedrive": {}}}))
        .await;
    assert_eq!((&cancel["cancelled"], &cancel["started"]), (&json!([]), &json!([id])), "{cancel}");

    let runs = stack.wait_event(&event_id(&accepted), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    assert!(!runs[0].outcome.as_deref().unwrap_or("").contains("cancel"), "{:?}", runs[0].outcome);
    assert_eq!(deactivations(&stack, &ids[0]).await.len(), 1);
    assert_eq!(pd_users(&stack.sim_state().await, "ada@example.com")[0]["active_flag"], false);
}

async fn an_older_joiner_after_a_leaver_is_superseded_and_the_account_stays_removed(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "time-older-joiner")).await;
    let ids = seed_users(&stack, &["ada@example.com"]).await;
    // The case: the leaver (18:00) arrives before the same day's joiner (09:00).
    let leaver = stack.accept(&leaver("ada@example.com", &hours_ago(1), None)).await;
    assert_eq!(leaver["runs"][0]["state"], "queued", "{leaver}");
    let joiner =
        stack.accept(&event("joiner", "ada@example.com", &hours_ago(10), None, json!({"role": "Sales Rep"}))).await;
    assert_eq!(joiner["runs"][0]["state"], "superseded", "{joiner}");
    assert_eq!(joiner["runs"][0]["superseded_by"], json!(event_id(&leaver)), "{joiner}");

    stack.wait_event(&event_id(&leaver), WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let j = run(&stack, &run_id(&joiner)).await;
    assert_eq!((j.state, j.attempts, j.started_at), (RunState::Superseded, 0, None));
    assert_eq!(j.superseded_by.as_deref(), Some(event_id(&leaver).as_str()));
    let state = stack.sim_state().await;
    let users = pd_users(&state, "ada@example.com");
    assert_eq!(users.len(), 1, "no second account");
    assert_eq!(users[0]["active_flag"], false, "the account stays removed");
    assert_eq!(actions(&state, "pipedrive"), vec!["user.deactivate"], "one write: the leaver's");
    assert_eq!(deactivations(&stack, &ids[0]).await.len(), 1);

    // An event without occurred_at happened when it arrived: a rehire now is newer, and runs.
    let mut rehire = event("joiner", "ada@example.com", "", None, json!({"role": "Sales Rep"}));
    rehire.as_object_mut().unwrap().remove("occurred_at");
    let rehire = stack.accept(&rehire).await;
    assert_eq!(rehire["runs"][0]["state"], "queued", "{rehire}");
    let runs = stack.wait_event(&event_id(&rehire), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0].outcome);
    let state = stack.sim_state().await;
    assert_eq!(pd_users(&state, "ada@example.com")[0]["active_flag"], true, "rehired");
}

async fn joiner_mover_leaver_delivered_in_reverse_end_in_the_leavers_state(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "time-reverse")).await;
    let ids = seed_users(&stack, &["ada@example.com"]).await;
    let role_before = pd_users(&stack.sim_state().await, "ada@example.com")[0]["role_id"].clone();
    // Happened: joiner (9 h ago), mover (5 h ago), leaver (1 h ago); delivered newest first.
    let leaver = stack.accept(&leaver("ada@example.com", &hours_ago(1), None)).await;
    let mover =
        stack.accept(&event("mover", "ada@example.com", &hours_ago(5), None, json!({"role": "Sales Manager"}))).await;
    let joiner =
        stack.accept(&event("joiner", "ada@example.com", &hours_ago(9), None, json!({"role": "Sales Rep"}))).await;
    for older in [&mover, &joiner] {
        assert_eq!(older["runs"][0]["state"], "superseded", "{older}");
        assert_eq!(older["runs"][0]["superseded_by"], json!(event_id(&leaver)), "{older}");
    }

    let runs = stack.wait_event(&event_id(&leaver), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for older in [&mover, &joiner] {
        let r = run(&stack, &run_id(older)).await;
        assert_eq!((r.state, r.attempts, r.started_at), (RunState::Superseded, 0, None));
        assert_eq!(r.superseded_by.as_deref(), Some(event_id(&leaver).as_str()));
    }
    let state = stack.sim_state().await;
    let users = pd_users(&state, "ada@example.com");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["active_flag"], false, "the leaver's state");
    assert_eq!(users[0]["role_id"], role_before, "the mover never applied");
    assert_eq!(actions(&state, "pipedrive"), vec!["user.deactivate"]);
    assert_eq!(deactivations(&stack, &ids[0]).await.len(), 1);
}

/// A Pipedrive webhook's follow-up run reacts to what already happened at
/// Pipedrive: it does not wait for HR's leaver that is scheduled for later.
async fn a_deactivation_in_pipedrive_while_a_leaver_waits_moves_the_deals_now(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "time-webhook")).await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Linus Leaver", "email": "linus@example.com", "role": "Sales Rep"}],
            "deals": [{"title": "Acme", "owner_email": "linus@example.com"}, {"title": "Globex", "owner_email": "linus@example.com"}]
        }}))
        .await;
    let state = stack.sim_state().await;
    let (linus, grace) = (
        pd_users(&state, "linus@example.com")[0]["id"].clone(),
        pd_users(&state, "grace@example.com")[0]["id"].clone(),
    );
    let (effective_at, effective_ms) = in_secs(15);
    let mut hr = leaver("linus@example.com", &hours_ago(1), Some(&effective_at));
    hr["successor_email"] = json!("grace@example.com");
    let hr = stack.accept(&hr).await;
    assert_eq!(hr["runs"][0]["state"], "scheduled", "{hr}");

    // Someone deactivates Linus in Pipedrive today; Pipedrive tells us.
    let r = stack
        .http
        .put(format!("{}/pipedrive/api/v1/users/{linus}", stack.sim_url))
        .header("x-api-token", lifecycle_e2e::stack::PIPEDRIVE_TOKEN)
        .json(&json!({"active_flag": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let body = lifecycle_e2e::stack::pipedrive_webhook_fixture(
        "v1-user-deactivated.json",
        linus.as_i64().unwrap(),
        "linus@example.com",
    );
    let r = stack.post_webhook(&body).await;
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["runs"][0]["workflow"], "reassign_deals", "{answer}");

    let runs = stack.wait_event(answer["event_id"].as_str().unwrap(), Duration::from_secs(10)).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    assert!(now_ms() < effective_ms, "the deals moved before HR's leaver was due");
    let state = stack.sim_state().await;
    let deals = lifecycle_e2e::sim::list(&state, "pipedrive", "deals");
    assert!(deals.iter().all(|d| d["user_id"] == grace), "{deals:?}");
    assert_eq!(run(&stack, &run_id(&hr)).await.state, RunState::Scheduled, "HR's leaver still waits for its day");

    // On its day HR's leaver finds nothing left to do, and moves nothing twice.
    let runs = stack.wait_event(&event_id(&hr), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0].outcome);
    let state = stack.sim_state().await;
    for d in lifecycle_e2e::sim::list(&state, "pipedrive", "deals") {
        assert_eq!(d["owner_history"].as_array().unwrap().len(), 2, "reassigned exactly once: {d}");
    }
}

/// A log line without its terminal colours (ESC [ ... letter).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every worker's scheduler looks for due runs; each run starts once.
async fn two_workers_start_each_scheduled_run_once_and_on_time(backend: Backend) {
    // Pipedrive's budget off: this is about the schedulers, not 80 requests per 2 s.
    let stack = Stack::start(
        StackOptions::new(backend, "time-two-workers")
            .workers(2)
            .sim_arg("--no-rate-limits")
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__REQUESTS", "100000")
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__PER", "1s"),
    )
    .await;
    let emails: Vec<String> = (0..12).map(|i| format!("p{i}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let ids = seed_users(&stack, &refs).await;
    let (effective_at, effective_ms) = in_secs(5);
    let events: Vec<Value> = emails.iter().map(|e| leaver(e, &hours_ago(1), Some(&effective_at))).collect();
    let accepted = futures::future::join_all(events.iter().map(|e| stack.accept(e))).await;
    assert!(accepted.iter().all(|a| a["runs"][0]["state"] == "scheduled"));
    for a in &accepted {
        let runs = stack.wait_event(&event_id(a), WAIT).await;
        assert_eq!((runs[0].state, runs[0].attempts), (RunState::Succeeded, 1), "{:?}", runs[0].outcome);
    }
    // Released once each, by one scheduler or the other, within the scheduler's second (and a little).
    let released: Vec<u64> = stack
        .workers
        .iter()
        .flat_map(|w| {
            let log = w.as_ref().unwrap().log_text();
            log.lines()
                .filter(|l| l.contains("scheduled run is due: started"))
                .map(|l| {
                    let plain = strip_ansi(l);
                    let ms = plain.split("late_ms=").nth(1).and_then(|v| v.split_whitespace().next()?.parse().ok());
                    ms.unwrap_or_else(|| panic!("no late_ms in {plain}"))
                })
                .collect::<Vec<u64>>()
        })
        .collect();
    assert_eq!(released.len(), emails.len(), "{released:?}");
    assert!(released.iter().all(|ms| *ms <= 1500), "released late: {released:?}");
    // The 12 leavers then share the Pipedrive lane: a little more than one leaver's 2 s.
    for id in &ids {
        let done = deactivations(&stack, id).await;
        assert_eq!(done.len(), 1, "user {id} deactivated once: {done:?}");
        let late = call_at_ms(&done[0]) - effective_ms;
        assert!((0..=ON_TIME_MS + 1000).contains(&late), "user {id} deactivated {late} ms after effective_at");
    }
}

both_databases!(
    a_leaver_ten_seconds_ahead_is_scheduled_then_deactivated_on_time,
    a_scheduled_leaver_survives_a_worker_restart_while_it_waits,
    a_rescheduled_leaver_runs_at_the_new_time_only,
    cancelled_leavers_never_run,
    a_cancel_after_the_run_started_reports_it_started_and_changes_nothing,
    an_older_joiner_after_a_leaver_is_superseded_and_the_account_stays_removed,
    joiner_mover_leaver_delivered_in_reverse_end_in_the_leavers_state,
    a_deactivation_in_pipedrive_while_a_leaver_waits_moves_the_deals_now,
    two_workers_start_each_scheduled_run_once_and_on_time,
);
