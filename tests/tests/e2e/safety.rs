//! The blast-radius guard (`[safety]`): thresholds on leavers over a sliding
//! window, decided in the database when a run becomes due.
//!
//! The middle tests (store and ops, both databases, no processes) cover the
//! counting, the window, concurrent admissions, release and cancel; the
//! end-to-end test runs a bad batch through real producers and workers.

use chrono::Utc;
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_e2e::sim::pd_users;
use lifecycle_e2e::stack::{ADMIN_PASSWORD, ADMIN_USER};
use lifecycle_e2e::{both_databases, eventually, Backend, Stack, StackOptions, TestDb};
use lifecycle_ops::safety::{self as ops, HeldFilter};
use lifecycle_store::entity::{outbox, run, safety_admission};
use lifecycle_store::events::{self, NewEvent, NewRun};
use lifecycle_store::safety::{Guard, Limit};
use lifecycle_store::{runs, time, Db};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn limit(count: u64) -> Limit {
    Limit { count, window: HOUR }
}

/// Stores one event with one run for `person` at `vendor`; returns the run's state.
async fn submit(db: &Db, guard: &Guard, vendor: VendorKind, workflow: Workflow, person: &str) -> (String, RunState) {
    submit_at(db, guard, vendor, workflow, person, None).await
}

async fn submit_at(
    db: &Db,
    guard: &Guard,
    vendor: VendorKind,
    workflow: Workflow,
    person: &str,
    start_at: Option<chrono::DateTime<Utc>>,
) -> (String, RunState) {
    let (event_id, run_id) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let ev = NewEvent {
        id: event_id,
        source: "hr".into(),
        idempotency_key: run_id.clone(),
        payload_hash: run_id.clone(),
        event_type: workflow.as_str().into(),
        employee_id: None,
        employee_email: Some(person.into()),
        payload: "{}".into(),
        response_status: 202,
        response_body: "{}".into(),
        traceparent: None,
    };
    let run = NewRun {
        id: run_id.clone(),
        vendor,
        workflow,
        person_key: person.into(),
        input: "{}".into(),
        occurred_at: None,
        effective_at: start_at,
        start_at,
    };
    let events::Accepted::Created { intake, .. } =
        events::accept_guarded(db, ev, vec![run], None, guard, |_| String::new()).await.unwrap()
    else {
        panic!("a new key");
    };
    (run_id, intake.runs[0].state)
}

async fn outbox_rows(db: &Db, run_id: &str) -> Vec<outbox::Model> {
    outbox::Entity::find().filter(outbox::Column::RunId.eq(run_id)).all(db).await.unwrap()
}

async fn count_in(db: &Db, state: RunState) -> u64 {
    run::Entity::find().filter(run::Column::State.eq(state)).count(db).await.unwrap()
}

/// Per vendor and overall, over the window; joiners never count nor wait;
/// admissions older than the window no longer count; a scheduled leaver is
/// judged when its time comes.
async fn thresholds_are_counted_over_the_window(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let guard = Guard {
        leavers: Some(limit(3)),
        vendor_leavers: [(VendorKind::Pipedrive, limit(2))].into(),
        ..Default::default()
    };
    let (pd, cs) = (VendorKind::Pipedrive, VendorKind::Crowdstrike);

    let mut states = Vec::new();
    for i in 0..3 {
        states.push(submit(&db, &guard, pd, Workflow::Leaver, &format!("p{i}@example.com")).await);
    }
    assert_eq!(states.iter().map(|s| s.1).collect::<Vec<_>>(), [RunState::Queued, RunState::Queued, RunState::Held]);
    let held = &states[2].0;
    assert!(outbox_rows(&db, held).await.is_empty(), "a held run has no outbox row: nothing is published");
    assert_eq!(outbox_rows(&db, &states[0].0).await.len(), 1);

    // Pipedrive is full; the overall threshold (3) has room for one more leaver elsewhere.
    assert_eq!(submit(&db, &guard, cs, Workflow::Leaver, "c0@example.com").await.1, RunState::Queued);
    assert_eq!(submit(&db, &guard, cs, Workflow::Leaver, "c1@example.com").await.1, RunState::Held);
    // Unrelated, non-destructive work neither counts nor waits.
    for i in 0..5 {
        assert_eq!(submit(&db, &guard, pd, Workflow::Joiner, &format!("j{i}@example.com")).await.1, RunState::Queued);
    }

    // An hour later the admissions leave the window: leavers run again.
    safety_admission::Entity::update_many()
        .col_expr(safety_admission::Column::AdmittedAt, Expr::value(Utc::now() - chrono::Duration::minutes(61)))
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(submit(&db, &guard, pd, Workflow::Leaver, "p3@example.com").await.1, RunState::Queued);
    assert_eq!(submit(&db, &guard, pd, Workflow::Leaver, "p4@example.com").await.1, RunState::Queued);

    // Pipedrive is full again: a scheduled leaver is stored `scheduled` (not
    // judged yet), then held when its time comes.
    let soon = Utc::now() + chrono::Duration::hours(1);
    let (sched, state) = submit_at(&db, &guard, pd, Workflow::Leaver, "p5@example.com", Some(soon)).await;
    assert_eq!(state, RunState::Scheduled);
    let r = runs::get(&db, &sched).await.unwrap().unwrap();
    let due = time::Due { id: sched.clone(), dispatch_seq: r.dispatch_seq, vendor: pd, workflow: Workflow::Leaver };
    let started = time::start_due_many(&db, &guard, &[due]).await.unwrap();
    assert_eq!(started, [time::Started::Held]);
    assert_eq!(runs::get(&db, &sched).await.unwrap().unwrap().state, RunState::Held);
    // A held run has not started: the one-run cancel (ctl, API, console, an HR cancel) withdraws it.
    assert_eq!(time::cancel_run(&db, &sched, "ctl:ops").await.unwrap().cancelled, vec![sched.clone()]);

    // No threshold (the default): nothing is ever held.
    let off = Guard::default();
    for i in 0..5 {
        assert_eq!(submit(&db, &off, pd, Workflow::Leaver, &format!("o{i}@example.com")).await.1, RunState::Queued);
    }
    assert_eq!(count_in(&db, RunState::Held).await, 2);
}

/// Twenty leavers stored at once by concurrent producers against 5/1h:
/// exactly 5 admitted, whatever the interleaving.
async fn concurrent_admissions_do_not_exceed_the_threshold(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let guard = Guard { vendor_leavers: [(VendorKind::Pipedrive, limit(5))].into(), ..Default::default() };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (db, guard) = (db.clone(), guard.clone());
            tokio::spawn(async move {
                submit(&db, &guard, VendorKind::Pipedrive, Workflow::Leaver, &format!("l{i}@example.com")).await.1
            })
        })
        .collect();
    let states: Vec<RunState> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(states.iter().filter(|s| **s == RunState::Queued).count(), 5, "{states:?}");
    assert_eq!(states.iter().filter(|s| **s == RunState::Held).count(), 15, "{states:?}");
    assert_eq!(safety_admission::Entity::find().count(&db).await.unwrap(), 5);
}

/// Release by filter makes held runs `queued` with their outbox rows and is
/// audited with the count; cancel ends the rest `cancelled` naming who.
async fn held_runs_are_released_or_cancelled_by_filter(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let guard = Guard { leavers: Some(limit(1)), ..Default::default() };
    submit(&db, &guard, VendorKind::Pipedrive, Workflow::Leaver, "first@example.com").await;
    let mut held = Vec::new();
    for (i, vendor) in [VendorKind::Pipedrive, VendorKind::Pipedrive, VendorKind::Crowdstrike].into_iter().enumerate() {
        let (id, state) = submit(&db, &guard, vendor, Workflow::Leaver, &format!("h{i}@example.com")).await;
        assert_eq!(state, RunState::Held);
        held.push(id);
    }

    let all = ops::held(&db, &HeldFilter::default(), 2).await.unwrap();
    assert_eq!((all.count, all.sample.len()), (3, 2));
    assert_eq!(all.by_vendor[&VendorKind::Pipedrive], 2);
    let pd = HeldFilter { vendor: Some(VendorKind::Pipedrive), ..Default::default() };

    let dry = ops::release(&db, &pd, "ctl:ops", None, true).await.unwrap();
    assert_eq!(dry.done.len(), 2);
    assert_eq!(count_in(&db, RunState::Held).await, 3, "a dry run changes nothing");

    let released = ops::release(&db, &pd, "ctl:ops", Some("HR confirmed the batch"), false).await.unwrap();
    assert_eq!(released.done, held[..2]);
    for id in &held[..2] {
        let r = runs::get(&db, id).await.unwrap().unwrap();
        assert_eq!(r.state, RunState::Queued);
        let rows = outbox_rows(&db, id).await;
        assert_eq!(rows.iter().map(|o| o.dispatch_seq).collect::<Vec<_>>(), [r.dispatch_seq], "one row, current");
    }
    // Released runs are the operator's admission: not counted, not held again.
    assert_eq!(safety_admission::Entity::find().count(&db).await.unwrap(), 1);

    let one = HeldFilter { employee: Some("h2@example.com".into()), ..Default::default() };
    let cancelled = ops::cancel(&db, &one, "admin:ada", None, false).await.unwrap();
    assert_eq!(cancelled.done, [held[2].clone()]);
    let r = runs::get(&db, &held[2]).await.unwrap().unwrap();
    assert_eq!(r.state, RunState::Cancelled);
    assert!(r.outcome.unwrap().contains("cancelled by admin:ada"), "says by whom");
    assert!(r.finished_at.is_some());
    assert_eq!(ops::held(&db, &HeldFilter::default(), 10).await.unwrap().count, 0);

    let audit = lifecycle_store::audit::list(&db, &Default::default()).await.unwrap();
    let entry = |action: &str| audit.iter().find(|e| e.action == action).cloned().unwrap();
    let rel = entry(ops::ACTION_RELEASE);
    assert_eq!((rel.actor.as_str(), rel.target_id.as_str()), ("ctl:ops", "vendor=pipedrive"));
    let details: serde_json::Value = serde_json::from_str(rel.details.as_deref().unwrap()).unwrap();
    assert_eq!(details["count"], 2);
    assert_eq!(entry(ops::ACTION_CANCEL).actor, "admin:ada");
    // Nothing left to release: an empty selection does nothing and records nothing.
    assert_eq!(ops::release(&db, &HeldFilter::default(), "ctl:ops", None, false).await.unwrap().selected, 0);
}

// ---- end to end: a bad batch through real producers and workers ----

const WAIT: Duration = Duration::from_secs(90);

fn leaver(i: usize, effective_at: Option<&str>) -> Value {
    let mut v = json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "employee": { "id": format!("L-{i}"), "email": email(i) },
        "apps": { "pipedrive": {} }
    });
    if let Some(at) = effective_at {
        v["effective_at"] = json!(at);
    }
    v
}

fn email(i: usize) -> String {
    format!("leaver{i}@example.com")
}

fn metrics_url(stack: &Stack, worker: usize) -> String {
    let log = stack.workers[worker].as_ref().expect("the worker runs").log_text();
    let addr = log.lines().find_map(|l| l.strip_prefix("worker metrics on ")).expect("a metrics address");
    addr.trim().to_string()
}

async fn post_all(stack: &Stack, events: &[Value]) {
    for chunk in events.chunks(20) {
        futures::future::join_all(chunk.iter().map(|e| stack.accept(e))).await;
    }
}

/// 120 leavers against `leavers = "50/1h"` at Pipedrive, some posted before
/// and some after a worker restart and a second worker, 20 of them scheduled
/// (judged by the workers' schedulers when due): exactly 50 run, 70 are held
/// with nothing at the vendor, the gauge the alert reads says 70; releasing
/// runs them, cancelling ends them `cancelled`.
async fn a_bad_batch_of_leavers_is_held_past_the_threshold(backend: Backend) {
    let opts = StackOptions::new(backend, "safety")
        .sim_arg("--no-rate-limits")
        .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__REQUESTS", "100000")
        .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__PER", "1s")
        .env("LIFECYCLE_WORKER__CONCURRENCY", "16")
        .env("LIFECYCLE_SAFETY__VENDORS__PIPEDRIVE__LEAVERS", "50/1h");
    let mut stack = Stack::start(opts).await;
    let users: Vec<Value> =
        (0..120).map(|i| json!({"name": format!("Leaver {i}"), "email": email(i), "role": "Sales Rep"})).collect();
    stack.sim_seed(json!({"pipedrive": {"users": users}})).await;

    // 20 leavers that take effect in 6 s (stored scheduled), then 40 now.
    let soon = (Utc::now() + chrono::Duration::seconds(6)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let scheduled: Vec<Value> = (0..20).map(|i| leaver(i, Some(&soon))).collect();
    post_all(&stack, &scheduled).await;
    post_all(&stack, &(20..60).map(|i| leaver(i, None)).collect::<Vec<_>>()).await;
    // A worker restart and a second worker: the count is in the database.
    stack.kill9_worker(0);
    stack.start_worker();
    stack.start_worker();
    let second_half = Utc::now();
    post_all(&stack, &(60..120).map(|i| leaver(i, None)).collect::<Vec<_>>()).await;

    // 50 run (40, then 10 more: of the second half, or scheduled ones that fell due first), 70 are held.
    let runs = eventually(WAIT, "50 leavers done and 70 held", || async {
        let runs = stack.runs().await;
        let done = runs.iter().filter(|r| r.state == RunState::Succeeded).count();
        let held = runs.iter().filter(|r| r.state == RunState::Held).count();
        (done + held == 120 && held == 70).then_some(runs)
    })
    .await;
    assert_eq!(runs.iter().filter(|r| r.state == RunState::Succeeded).count(), 50, "{}", stack.logs());
    let held: Vec<&run::Model> = runs.iter().filter(|r| r.state == RunState::Held).collect();
    assert!(held.iter().all(|r| r.started_at.is_none() && r.attempts == 0));
    assert_eq!(safety_admission::Entity::find().count(&stack.store).await.unwrap(), 50);

    // Nothing at the vendor for them: still active, never named in a call.
    let state = stack.sim_state().await;
    let calls = stack.sim_calls("pipedrive").await;
    let calls_about = |person: &str| {
        let user = pd_users(&state, person)[0];
        let id = format!("/users/{}", user["id"]);
        let encoded = person.replace('@', "%40");
        calls
            .iter()
            .filter(|c| {
                c["path"].as_str().is_some_and(|p| p.ends_with(&id) || p.contains(&format!("{id}/")))
                    || c["query"].as_str().is_some_and(|q| q.contains(&encoded) || q.contains(person))
            })
            .count()
    };
    let ran = runs.iter().find(|r| r.state == RunState::Succeeded).unwrap();
    assert!(calls_about(&ran.person_key) > 0, "the check sees a leaver that ran: {calls:?}");
    for r in &held {
        assert_eq!(pd_users(&state, &r.person_key)[0]["active_flag"], true, "{} untouched", r.person_key);
        assert_eq!(calls_about(&r.person_key), 0, "no call about {}", r.person_key);
    }

    // The gauge the LifecycleRunsHeld alert reads, from the restarted worker.
    let text = stack.http.get(metrics_url(&stack, 1)).send().await.unwrap().text().await.unwrap();
    assert!(text.lines().any(|l| l == r#"lifecycle_runs{state="held",vendor="pipedrive"} 70"#), "{text}");

    // Release the second half's held runs over the admin API: a preview, then yes. Which
    // leavers the 50 admissions went to depends on whether the scheduled ones fell due before
    // the second half arrived (6 s, longer on a loaded machine): count from what was stored.
    let second: usize = held.iter().filter(|r| r.created_at >= second_half).count();
    assert!(second >= 50, "at least the second half's last 50 are held: {second}");
    let api = format!("{}/api/v1/held/release", stack.admin_url);
    let since = second_half.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let post = |body: Value| stack.http.post(&api).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD)).json(&body).send();
    let preview: Value = post(json!({"vendor": "pipedrive", "since": since})).await.unwrap().json().await.unwrap();
    assert_eq!(
        (preview["preview"].as_bool(), preview["count"].as_u64()),
        (Some(true), Some(second as u64)),
        "{preview}"
    );
    assert_eq!(preview["sample"].as_array().unwrap().len(), 10);
    let done: Value = post(json!({"vendor": "pipedrive", "since": since, "reason": "HR confirmed", "yes": true}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["done"].as_array().unwrap().len(), second, "{done}");
    let released: Vec<String> =
        done["done"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();

    // The rest (the scheduled ones held when due) are cancelled by an operator.
    let cancelled =
        ops::cancel(&stack.store, &HeldFilter::default(), "ctl:ops", Some("a bad export"), false).await.unwrap();
    assert_eq!(cancelled.done.len(), 70 - second);

    let runs = stack.wait_all(WAIT).await;
    let state = stack.sim_state().await;
    for r in &runs {
        let active = pd_users(&state, &r.person_key)[0]["active_flag"].as_bool().unwrap();
        if released.contains(&r.id) || r.state == RunState::Succeeded {
            assert_eq!(r.state, RunState::Succeeded, "{r:?}\n{}", stack.logs());
            assert!(!active, "{} deactivated", r.person_key);
        } else {
            assert_eq!(r.state, RunState::Cancelled, "{r:?}");
            assert!(r.outcome.as_deref().unwrap().contains("cancelled by ctl:ops"));
            assert!(active, "{} untouched", r.person_key);
        }
    }
    assert_eq!(runs.iter().filter(|r| r.state == RunState::Succeeded).count(), 50 + second);
}

both_databases!(
    thresholds_are_counted_over_the_window,
    concurrent_admissions_do_not_exceed_the_threshold,
    held_runs_are_released_or_cancelled_by_filter,
    a_bad_batch_of_leavers_is_held_past_the_threshold,
);
