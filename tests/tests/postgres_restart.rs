//! PostgreSQL restarted in the middle of a wave, and its sessions killed
//! (`pg_terminate_backend`): the intake answers 503 with `Retry-After` while the database is
//! gone (never 500, never a 202 for an event it did not keep, never a hang), the worker
//! hands runs back without spinning and resumes, and every run ends once with one account
//! per person at each vendor. On a PostgreSQL server of the test's own
//! (`lifecycle_e2e::pg::PrivatePg`): the shared one is never touched, so this runs with
//! the rest of the suite.

use lifecycle_domain::RunState;
use lifecycle_e2e::pg::PrivatePg;
use lifecycle_e2e::sim::{list, pd_users};
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const VENDORS: usize = 4;
/// People per wave: each a joiner at four vendors.
const PEOPLE: usize = 100;
/// Events posted while the server is down.
const DURING_OUTAGE: usize = 5;

fn joiner(tag: &str, i: usize) -> Value {
    json!({
        "type": "joiner",
        "employee": {"id": format!("{tag}-{i}"), "email": email(tag, i), "given_name": "Pg", "family_name": format!("{tag}{i}")},
        "apps": {
            "pipedrive": {"role": "Sales Rep"},
            "crowdstrike": {"roles": ["falcon_analyst"]},
            "jira": {"products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"]},
            "calendly": {}
        }
    })
}

fn email(tag: &str, i: usize) -> String {
    format!("{tag}{i}@example.com")
}

/// A wave: `PEOPLE` joiners, 20 posted at a time.
async fn wave(stack: &Stack, tag: &str) {
    let events: Vec<Value> = (0..PEOPLE).map(|i| joiner(tag, i)).collect();
    for chunk in events.chunks(20) {
        futures::future::join_all(chunk.iter().map(|e| stack.accept(e))).await;
    }
}

/// Waits until at least `ended` runs have ended; returns how many are still open then.
async fn until_ended(stack: &Stack, total: u64, ended: u64) -> u64 {
    lifecycle_e2e::eventually(Duration::from_secs(120), "runs to end before the fault", || async {
        let open = lifecycle_store::runs::count_unfinished(&stack.store).await.expect("counting runs");
        (total - open >= ended).then_some(open)
    })
    .await
}

/// One intake request: its status, `Retry-After`, body, and how long the answer took.
async fn post(stack: &Stack, body: &Value, key: &str) -> (u16, Option<String>, String, Duration) {
    let started = Instant::now();
    let r = stack.post_event(body, key).await;
    let took = started.elapsed();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, retry_after, r.text().await.unwrap_or_default(), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_and_killed_sessions_mid_wave_lose_nothing_and_do_nothing_twice() {
    let pg = PrivatePg::start();
    let mut opts = StackOptions::new(Backend::Postgres, "pg-restart")
        .postgres_server(&pg.admin_url())
        .sim_arg("--no-rate-limits")
        .env("LIFECYCLE_WORKER__CONCURRENCY", "32");
    for v in ["PIPEDRIVE", "CALENDLY"] {
        opts = opts
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__REQUESTS"), "100000")
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__PER"), "1s");
    }
    let mut stack = Stack::start(opts).await;
    // Slow every vendor call a little, so that the faults land in the middle of steps.
    for v in ["pipedrive", "crowdstrike", "jira", "calendly"] {
        stack.sim_fault(json!({"vendor": v, "kind": "latency", "latency_ms": 20, "count": 1_000_000})).await;
    }
    let database = stack.db.url.rsplit('/').next().expect("a database name").to_string();

    // ---- Wave A, and the server restarted in its middle ----
    wave(&stack, "a").await;
    let total = (PEOPLE * VENDORS) as u64;
    let open = until_ended(&stack, total, total / 5).await;
    assert!(open > 0, "the wave ended before the restart: nothing to test");
    let first_event = stack.runs().await[0].event_id.clone();
    let down_at = Instant::now();
    tokio::task::block_in_place(|| pg.stop_fast());
    eprintln!("PostgreSQL stopped with {open} of {total} runs open");

    // While it is down: events, a cancel and readiness, all at once.
    let outage: Vec<(String, Value)> =
        (0..DURING_OUTAGE).map(|i| (format!("outage-key-{i}"), joiner("outage", i))).collect();
    let posts = futures::future::join_all(outage.iter().map(|(key, body)| post(&stack, body, key)));
    let cancel = async {
        let started = Instant::now();
        let r = stack
            .http
            .post(format!("{}/v1/events/{first_event}/cancel", stack.producer_url))
            .bearer_auth(lifecycle_e2e::stack::INTAKE_TOKEN)
            .send()
            .await
            .expect("the producer answers");
        (r.status().as_u16(), r.headers().contains_key("retry-after"), started.elapsed())
    };
    let ready = async {
        let r = stack.http.get(format!("{}/readyz", stack.producer_url)).send().await.expect("the producer answers");
        (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (mut answers, cancelled, readiness) = tokio::join!(posts, cancel, ready);
    // Sent again while it is still down, as a client might: the first answers may have come
    // from the pool's dead sessions (failing at once); once those are gone, the posts meet
    // refused connections, retried by the pool until `database.acquire_timeout`.
    for _ in 0..4 {
        if answers.iter().any(|a| a.3 >= Duration::from_secs(1)) {
            break;
        }
        answers.extend(futures::future::join_all(outage.iter().map(|(key, body)| post(&stack, body, key))).await);
    }
    for (status, retry_after, body, took) in &answers {
        assert_eq!(*status, 503, "an event posted while the database is down: {body}");
        assert!(
            retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 0),
            "503 says when to retry: {retry_after:?}"
        );
        assert!(body.contains("same Idempotency-Key"), "{body}");
        // database.acquire_timeout (5 s on PostgreSQL), well before producer.request_timeout (10 s).
        assert!(*took < Duration::from_secs(8), "answered in {took:?}, not when the request timed out");
    }
    assert_eq!((cancelled.0, cancelled.1), (503, true), "a cancel while the database is down");
    assert!(cancelled.2 < Duration::from_secs(8), "the cancel answered in {:?}", cancelled.2);
    assert_eq!(readiness.0, 503, "/readyz while the database is down: {}", readiness.1);
    assert_ne!(readiness.1["database"], "ok", "{}", readiness.1);
    let slowest = answers.iter().map(|a| a.3).max().unwrap_or_default();
    assert!(slowest >= Duration::from_secs(1), "some answer waited for a connection first: {slowest:?}");
    tokio::task::block_in_place(|| pg.resume());
    let outage_took = down_at.elapsed();
    eprintln!("PostgreSQL down {outage_took:?}; the slowest 503 took {slowest:?}");
    // The test's own pool lost its connections too.
    stack.store = stack.db.connect().await;

    // Sent again with the same keys, as a client told `Retry-After` does: each is kept once.
    for (key, body) in &outage {
        let accepted =
            lifecycle_e2e::eventually(Duration::from_secs(30), "the re-sent event to be accepted", || async {
                let (status, _, text, _) = post(&stack, body, key).await;
                assert!(status == 202 || status == 503, "the re-sent event: {status} {text}");
                (status == 202).then_some(text)
            })
            .await;
        let accepted: Value = serde_json::from_str(&accepted).expect("a JSON body");
        assert_eq!(accepted["runs"].as_array().map(Vec::len), Some(VENDORS), "{accepted}");
    }

    // ---- Wave B, and every session of lifecycle's killed twice in its middle ----
    wave(&stack, "b").await;
    let total = ((2 * PEOPLE + DURING_OUTAGE) * VENDORS) as u64;
    let open = until_ended(&stack, total, total - (PEOPLE * VENDORS) as u64 * 4 / 5).await;
    let mut killed = 0;
    for _ in 0..2 {
        killed += pg.terminate_sessions(&database).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    eprintln!("terminated {killed} sessions with {open} of {total} runs open");
    assert!(killed > 0, "the producer's and the worker's sessions were there to kill");
    stack.store = stack.db.connect().await;

    // ---- Every run ended once; nothing lost, nothing done twice ----
    let runs = stack.wait_all(Duration::from_secs(240)).await;
    assert_eq!(runs.len() as u64, total, "one run per event and vendor, none lost");
    let not_ok: Vec<_> =
        runs.iter().filter(|r| r.state != RunState::Succeeded).map(|r| (&r.vendor, &r.state, &r.outcome)).collect();
    assert!(not_ok.is_empty(), "{not_ok:?}\n{}", stack.logs());
    assert_eq!(stack.count("events").await, (2 * PEOPLE + DURING_OUTAGE) as i64, "each key kept once");
    let retried = runs.iter().filter(|r| r.attempts > 1).count();
    eprintln!("{retried} of {} runs needed more than one attempt", runs.len());

    let state = stack.sim_state().await;
    let people =
        (0..PEOPLE).flat_map(|i| [email("a", i), email("b", i)]).chain((0..DURING_OUTAGE).map(|i| email("outage", i)));
    for email in people {
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

    // Nobody crashed; no run's end was recorded twice; the worker did not spin.
    assert!(stack.producer.as_mut().is_some_and(|p| p.is_running()), "the producer is still up");
    let worker = stack.workers[0].as_mut().expect("the worker");
    assert!(worker.is_running(), "the worker is still up");
    let log = worker.log_text();
    let mut ends = std::collections::HashMap::<&str, usize>::new();
    for line in log.lines().filter(|l| l.contains("run succeeded")) {
        if let Some(id) = line.split("run_id=").nth(1).and_then(|rest| rest.split([' ', '}']).next()) {
            *ends.entry(id).or_default() += 1;
        }
    }
    assert!(ends.values().all(|n| *n == 1), "a run's end logged twice: {:?}", ends.iter().find(|(_, n)| **n > 1));
    // A message the database could not take is handed back after a pause (1 s), so while
    // it is away a slot hands back at most one a second: 32 slots, not thousands a second.
    let handed_back = log.matches("could not handle the message; handing it back").count();
    let bound = 32 * (outage_took.as_secs() as usize + 15);
    eprintln!("the worker handed {handed_back} messages back (bound {bound})");
    assert!(handed_back <= bound, "the worker spun on the database: {handed_back} hand-backs");
}
