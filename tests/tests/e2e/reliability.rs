//! Nothing lost, nothing done twice: crashes, lost messages, faults, 429s, ordering.

use lifecycle_domain::RunState;
use lifecycle_e2e::sim::{actions, list, log_for, pd_users};
use lifecycle_e2e::stack::{pipedrive_joiner, pipedrive_leaver};
use lifecycle_e2e::{both_databases, eventually, Backend, Stack, StackOptions};
use rand::Rng;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// Client and simulator without rate limits: these tests are about crashes, not budgets.
fn unlimited(opts: StackOptions) -> StackOptions {
    opts.sim_arg("--no-rate-limits")
        .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__REQUESTS", "100000")
        .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__PER", "1s")
}

fn mover(id: &str, email: &str, role: &str) -> Value {
    json!({"type": "mover", "employee": {"id": id, "email": email}, "apps": {"pipedrive": {"role": role}}})
}

async fn killing_the_worker_at_random_points_loses_nothing_and_duplicates_nothing(backend: Backend) {
    let mut stack =
        Stack::start(unlimited(StackOptions::new(backend, "kill9")).env("LIFECYCLE_WORKER__CONCURRENCY", "16")).await;
    // 60 leavers owning 2 or 3 open deals each, 60 people who will move.
    let mut users = Vec::new();
    let mut deals = Vec::new();
    for i in 0..60 {
        users.push(
            json!({"name": format!("Leaver {i}"), "email": format!("leaver{i}@example.com"), "role": "Sales Rep"}),
        );
        users
            .push(json!({"name": format!("Mover {i}"), "email": format!("mover{i}@example.com"), "role": "Sales Rep"}));
        for d in 0..(2 + i % 2) {
            deals.push(json!({"title": format!("Deal {i}.{d}"), "owner_email": format!("leaver{i}@example.com")}));
        }
    }
    stack.sim_seed(json!({"pipedrive": {"users": users, "deals": deals}})).await;
    // Slow every call a little so that kills land in the middle of steps.
    stack.sim_fault(json!({"vendor": "pipedrive", "kind": "latency", "latency_ms": 10, "count": 1_000_000})).await;

    let mut events = Vec::new();
    for i in 0..80 {
        events.push(pipedrive_joiner(&format!("J-{i}"), &format!("joiner{i}@example.com"), "Sales Rep"));
    }
    for i in 0..60 {
        events.push(pipedrive_leaver(&format!("L-{i}"), &format!("leaver{i}@example.com"), Some("grace@example.com")));
        events.push(mover(&format!("M-{i}"), &format!("mover{i}@example.com"), "Sales Manager"));
    }
    for chunk in events.chunks(20) {
        futures::future::join_all(chunk.iter().map(|e| stack.accept(e))).await;
    }

    // Kill -9 at random moments, restart, several times.
    let mut kills = 0;
    for _ in 0..6 {
        let wait = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        stack.kill9_all_workers();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..400))).await;
        stack.start_worker();
    }
    let runs = stack.wait_all(Duration::from_secs(240)).await;
    assert_eq!(runs.len(), 200);
    let not_ok: Vec<_> =
        runs.iter().filter(|r| r.state != RunState::Succeeded).map(|r| (&r.workflow, &r.state, &r.outcome)).collect();
    assert!(not_ok.is_empty(), "after {kills} kills: {not_ok:?}");
    let retried = runs.iter().filter(|r| r.attempts > 1).count();
    eprintln!("{kills} kills; {retried} runs needed more than one attempt");

    let state = stack.sim_state().await;
    for i in 0..80 {
        let found = pd_users(&state, &format!("joiner{i}@example.com"));
        assert_eq!(found.len(), 1, "joiner{i} exists exactly once");
        assert_eq!(log_for(&state, "pipedrive", "user.create", &found[0]["id"]).len(), 1, "created once");
        assert_eq!(found[0]["role_id"], 1);
    }
    let grace = pd_users(&state, "grace@example.com")[0]["id"].clone();
    for d in list(&state, "pipedrive", "deals") {
        assert_eq!(d["user_id"], grace, "deal {} reassigned", d["title"]);
        assert_eq!(d["owner_history"].as_array().unwrap().len(), 2, "deal {} reassigned exactly once: {d}", d["title"]);
    }
    for i in 0..60 {
        assert_eq!(pd_users(&state, &format!("leaver{i}@example.com"))[0]["active_flag"], false);
        assert_eq!(pd_users(&state, &format!("mover{i}@example.com"))[0]["role_id"], 2);
    }
}

async fn killing_workers_during_five_vendor_joiners_leaves_no_account_twice(backend: Backend) {
    let mut opts =
        StackOptions::new(backend, "kill9-five").sim_arg("--no-rate-limits").env("LIFECYCLE_WORKER__CONCURRENCY", "16");
    for v in ["PIPEDRIVE", "CALENDLY", "CIRCLECI"] {
        opts = opts
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__REQUESTS"), "100000")
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__PER"), "1s");
    }
    let mut stack = Stack::start(opts.workers(2)).await;
    for v in ["pipedrive", "crowdstrike", "jira", "calendly"] {
        stack.sim_fault(json!({"vendor": v, "kind": "latency", "latency_ms": 10, "count": 1_000_000})).await;
    }
    let n = 50;
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "type": "joiner",
                "employee": {"id": format!("K-{i}"), "email": format!("k{i}@example.com"), "given_name": "K", "family_name": format!("{i}")},
                "apps": {
                    "pipedrive": {"role": "Sales Rep"},
                    "crowdstrike": {"roles": ["falcon_analyst"]},
                    "jira": {"products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"]},
                    "calendly": {}
                }
            })
        })
        .collect();
    for chunk in events.chunks(10) {
        futures::future::join_all(chunk.iter().map(|e| stack.accept(e))).await;
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(300..1200))).await;
        let victim = rand::rng().random_range(0..stack.workers.len());
        stack.kill9_worker(victim);
        stack.start_worker();
    }
    let runs = stack.wait_all(Duration::from_secs(240)).await;
    assert_eq!(runs.len(), n * 4);
    let retried = runs.iter().filter(|r| r.attempts > 1).count();
    eprintln!("{retried} of {} runs needed more than one attempt", runs.len());
    let not_ok: Vec<_> =
        runs.iter().filter(|r| r.state != RunState::Succeeded).map(|r| (&r.vendor, &r.state, &r.outcome)).collect();
    assert!(not_ok.is_empty(), "{not_ok:?}");
    let state = stack.sim_state().await;
    for i in 0..n {
        let email = format!("k{i}@example.com");
        let count = |vendor: &str, key: &str, field: &str| {
            list(&state, vendor, key)
                .into_iter()
                .filter(|x| x[field].as_str().is_some_and(|v| v.eq_ignore_ascii_case(&email)))
                .count()
        };
        assert_eq!(pd_users(&state, &email).len(), 1, "{email} in Pipedrive");
        assert_eq!(count("crowdstrike", "users", "username"), 1, "{email} in CrowdStrike");
        assert_eq!(count("jira", "users", "emailAddress"), 1, "{email} in Jira");
        assert_eq!(count("calendly", "invitations", "email"), 1, "{email} invited once to Calendly");
    }
}

async fn apply_then_fail_on_every_write_endpoint_creates_no_duplicates(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "apply-fail")).await;
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Leaving", "email": "leaving@example.com"}],
            "deals": [{"title": "D1", "owner_email": "leaving@example.com"}, {"title": "D2", "owner_email": "leaving@example.com"}]
        }}))
        .await;
    for (method, path) in [
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/roles/*/assignments"),
        ("PATCH", "/api/v2/deals/*"),
        ("PUT", "/api/v1/users/*"),
    ] {
        stack.sim_fault(json!({"vendor": "pipedrive", "method": method, "path": path, "kind": "apply_then_fail", "status": 502, "count": 1})).await;
    }
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users", "kind": "apply_then_fail", "then": "drop", "count": 1})).await;
    let joiner = stack.accept(&pipedrive_joiner("E-1", "fresh@example.com", "Sales Rep")).await;
    let leaver = stack.accept(&pipedrive_leaver("E-2", "leaving@example.com", Some("grace@example.com"))).await;
    let j = stack.wait_event(joiner["event_id"].as_str().unwrap(), WAIT).await;
    let l = stack.wait_event(leaver["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(j[0].state, RunState::Succeeded, "{:?}", j[0].outcome);
    assert_eq!(l[0].state, RunState::Succeeded, "{:?}", l[0].outcome);
    assert!(j[0].attempts > 1 && l[0].attempts > 1, "the faults were met and retried");

    let state = stack.sim_state().await;
    let fresh = pd_users(&state, "fresh@example.com");
    assert_eq!(fresh.len(), 1, "no duplicate user");
    assert_eq!(log_for(&state, "pipedrive", "user.create", &fresh[0]["id"]).len(), 1);
    assert_eq!(log_for(&state, "pipedrive", "role.assign", &fresh[0]["id"]).len(), 1, "role assigned once");
    for d in list(&state, "pipedrive", "deals") {
        assert_eq!(d["owner_history"].as_array().unwrap().len(), 2, "reassigned exactly once: {d}");
    }
    let leaving = pd_users(&state, "leaving@example.com")[0];
    assert_eq!(leaving["active_flag"], false);
    // The in-doubt step adopted what the failed attempt had done.
    let steps = lifecycle_store::steps::load(&stack.store, &l[0].id).await.unwrap();
    let adopted = steps.iter().filter(|s| s.output.as_deref().is_some_and(|o| o.contains("\"adopted\":true"))).count();
    assert_eq!(adopted, 1, "the deal whose response was lost was adopted, not reassigned again");
}

async fn a_429_storm_makes_runs_wait_as_long_as_the_vendor_asked(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "storm")).await;
    stack.sim_fault(json!({"vendor": "pipedrive", "kind": "status", "status": 429, "count": 12})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            stack.accept(&pipedrive_joiner(&format!("E-{i}"), &format!("storm{i}@example.com"), "Sales Rep")).await,
        );
    }
    for a in &ids {
        let runs = stack.wait_event(a["event_id"].as_str().unwrap(), WAIT).await;
        assert_eq!(runs[0].state, RunState::Succeeded, "{:?}", runs[0].last_error);
    }
    let calls = stack.sim_calls("pipedrive").await;
    let limited: Vec<i64> = calls.iter().filter(|c| c["status"] == 429).map(lifecycle_e2e::call_at_ms).collect();
    assert_eq!(limited.len(), 12, "every injected 429 was met");
    // Pipedrive's X-RateLimit-Reset is the end of the 2-second window. After a
    // 429, nobody calls again before it (allowing 100 ms for requests already in flight).
    for t in &limited {
        let reset = (t / 2000 + 1) * 2000;
        let early: Vec<i64> =
            calls.iter().map(lifecycle_e2e::call_at_ms).filter(|c| *c > t + 100 && *c < reset - 20).collect();
        assert!(early.is_empty(), "calls at {early:?} came before the reset at {reset} announced by the 429 at {t}");
    }
}

async fn a_leaver_posted_right_after_the_joiner_takes_effect_after_it(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "order").workers(2)).await;
    // The joiner is slow to create the user; a second worker is free for the leaver.
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users", "kind": "latency", "latency_ms": 1500, "count": 1})).await;
    let j = stack.accept(&pipedrive_joiner("E-1", "brief@example.com", "Sales Rep")).await;
    let l = stack.accept(&pipedrive_leaver("E-1", "brief@example.com", Some("grace@example.com"))).await;
    let jr = stack.wait_event(j["event_id"].as_str().unwrap(), WAIT).await;
    let lr = stack.wait_event(l["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(
        (jr[0].state, lr[0].state),
        (RunState::Succeeded, RunState::Succeeded),
        "{:?} / {:?}",
        jr[0].outcome,
        lr[0].outcome
    );
    assert!(lr[0].started_at.unwrap() >= jr[0].finished_at.unwrap(), "the leaver started after the joiner ended");
    let state = stack.sim_state().await;
    let user = pd_users(&state, "brief@example.com");
    assert_eq!(user.len(), 1);
    assert_eq!(user[0]["active_flag"], false, "the leaver's effect is the last one");
    let acts = actions(&state, "pipedrive");
    let created = acts.iter().position(|a| a == "user.create").unwrap();
    let deactivated = acts.iter().position(|a| a == "user.deactivate").unwrap();
    assert!(created < deactivated, "{acts:?}");
}

async fn a_leaver_waits_while_the_joiner_is_retrying(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "order-retry").workers(2)).await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users", "kind": "status", "status": 503, "count": 3})).await;
    let j = stack.accept(&pipedrive_joiner("E-1", "waits@example.com", "Sales Rep")).await;
    let l = stack.accept(&pipedrive_leaver("E-1", "waits@example.com", None)).await;
    let joiner_id = j["runs"][0]["run_id"].as_str().unwrap().to_string();
    let leaver_id = l["runs"][0]["run_id"].as_str().unwrap().to_string();
    // While the joiner retries, the leaver is parked behind it.
    eventually(Duration::from_secs(30), "the leaver to wait for the retrying joiner", || async {
        let leaver = lifecycle_store::runs::get(&stack.store, &leaver_id).await.unwrap().unwrap();
        let joiner = lifecycle_store::runs::get(&stack.store, &joiner_id).await.unwrap().unwrap();
        (joiner.state == RunState::RetryScheduled && leaver.blocked_by.as_deref() == Some(joiner_id.as_str()))
            .then_some(())
    })
    .await;
    let lr = stack.wait_event(l["event_id"].as_str().unwrap(), WAIT).await;
    let jr = stack.wait_event(j["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(jr[0].state, RunState::Succeeded);
    assert!(jr[0].attempts >= 4, "the joiner met three 503s");
    assert_eq!(lr[0].state, RunState::Succeeded);
    assert_eq!(pd_users(&stack.sim_state().await, "waits@example.com")[0]["active_flag"], false);
}

async fn a_dead_earlier_run_does_not_block_a_later_one(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "order-dead")).await;
    let j = stack.accept(&pipedrive_joiner("E-1", "nobody@example.com", "No Such Role")).await;
    let l = stack.accept(&pipedrive_leaver("E-1", "nobody@example.com", None)).await;
    assert_eq!(stack.wait_event(j["event_id"].as_str().unwrap(), WAIT).await[0].state, RunState::Dead);
    let lr = stack.wait_event(l["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(lr[0].state, RunState::Succeeded);
    assert_eq!(lr[0].access.map(|a| a.as_str()), Some("absent"));
}

async fn a_poison_message_is_dead_lettered_on_its_first_delivery(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "poison")).await;
    stack.publish_raw(b"this is not a dispatch").await;
    stack
        .publish_raw(br#"{"run_id":"00000000-0000-0000-0000-000000000000","dispatch_seq":0,"vendor":"pipedrive"}"#)
        .await;
    let dead = eventually(Duration::from_secs(20), "both poison messages in the dead-letter queue", || async {
        // Read without losing: collect until both are there.
        let got = stack.take_dead_letters().await;
        (got.len() >= 2).then_some(got)
    })
    .await;
    let bodies: Vec<String> = dead.iter().map(|(b, _)| String::from_utf8_lossy(b).into_owned()).collect();
    assert!(bodies.iter().any(|b| b == "this is not a dispatch"), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("00000000-0000-0000-0000-000000000000")), "{bodies:?}");
    for (body, deaths) in &dead {
        assert_eq!(*deaths, Some(1), "dead-lettered on the first delivery: {}", String::from_utf8_lossy(body));
    }
    // The worker is still serving.
    let a = stack.accept(&pipedrive_joiner("E-1", "after-poison@example.com", "Sales Rep")).await;
    assert_eq!(stack.wait_event(a["event_id"].as_str().unwrap(), WAIT).await[0].state, RunState::Succeeded);
}

async fn after_max_attempts_the_run_is_dead_with_the_last_error(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "max-attempts").env("LIFECYCLE_RETRY__VENDORS__PIPEDRIVE__MAX_ATTEMPTS", "3"),
    )
    .await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users", "kind": "status", "status": 503, "count": 100})).await;
    let a = stack.accept(&pipedrive_joiner("E-1", "never@example.com", "Sales Rep")).await;
    let runs = stack.wait_event(a["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Dead);
    assert_eq!(runs[0].attempts, 3);
    let outcome = runs[0].outcome.as_deref().unwrap();
    assert!(outcome.contains("gave up after 3 attempts") && outcome.contains("503"), "{outcome}");
    let dead = stack.take_dead_letters().await;
    let letter: Value = serde_json::from_slice(&dead.first().expect("a dead letter was published").0).unwrap();
    assert_eq!(letter["run_id"], runs[0].id);
    assert!(letter["reason"].as_str().unwrap().contains("gave up"));
}

async fn the_sweeper_republishes_a_run_whose_message_was_lost(backend: Backend) {
    let mut stack = Stack::start(StackOptions::new(backend, "sweeper").workers(0)).await;
    let a = stack.accept(&pipedrive_joiner("E-1", "lost@example.com", "Sales Rep")).await;
    // Wait for the relay to publish, then lose the message.
    eventually(Duration::from_secs(10), "the relay to publish", || async {
        (lifecycle_store::outbox::lag(&stack.store).await.unwrap().0 == 0).then_some(())
    })
    .await;
    assert_eq!(stack.purge_lanes().await, 1, "the message was in the queue, and is now lost");
    stack.start_worker();
    let runs = stack.wait_event(a["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded);
    assert!(runs[0].dispatch_seq >= 1, "it was republished by the sweeper");
}

async fn sigterm_finishes_or_hands_back_in_flight_runs(backend: Backend) {
    let mut stack =
        Stack::start(unlimited(StackOptions::new(backend, "sigterm")).env("LIFECYCLE_WORKER__SHUTDOWN_GRACE", "1s"))
            .await;
    stack.sim_fault(json!({"vendor": "pipedrive", "kind": "latency", "latency_ms": 300, "count": 1_000_000})).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            stack.accept(&pipedrive_joiner(&format!("E-{i}"), &format!("term{i}@example.com"), "Sales Rep")).await,
        );
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        stack.terminate_worker(0, Duration::from_secs(15)),
        "the worker exits on SIGTERM within its grace and one step"
    );
    // Nothing is left claimed by the stopped worker.
    for r in stack.runs().await {
        assert_ne!(r.state, RunState::Running, "run {} was left running", r.id);
    }
    // A clean stop is not an error: an alert on ERROR must not fire on every deploy.
    let log = std::fs::read_to_string(stack.log_dir.join("worker-1.log")).expect("the worker's log");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ") || l.contains("ERROR\u{1b}")).collect();
    assert!(errors.is_empty(), "a clean stop logged errors:\n{}", errors.join("\n"));
    stack.start_worker();
    for a in &ids {
        assert_eq!(stack.wait_event(a["event_id"].as_str().unwrap(), WAIT).await[0].state, RunState::Succeeded);
    }
    let state = stack.sim_state().await;
    for i in 0..10 {
        assert_eq!(pd_users(&state, &format!("term{i}@example.com")).len(), 1);
    }
}

both_databases!(
    killing_the_worker_at_random_points_loses_nothing_and_duplicates_nothing,
    killing_workers_during_five_vendor_joiners_leaves_no_account_twice,
    apply_then_fail_on_every_write_endpoint_creates_no_duplicates,
    a_429_storm_makes_runs_wait_as_long_as_the_vendor_asked,
    a_leaver_posted_right_after_the_joiner_takes_effect_after_it,
    a_leaver_waits_while_the_joiner_is_retrying,
    a_dead_earlier_run_does_not_block_a_later_one,
    a_poison_message_is_dead_lettered_on_its_first_delivery,
    after_max_attempts_the_run_is_dead_with_the_last_error,
    the_sweeper_republishes_a_run_whose_message_was_lost,
    sigterm_finishes_or_hands_back_in_flight_runs,
);
