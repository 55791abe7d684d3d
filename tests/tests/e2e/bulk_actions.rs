//! Bulk actions by run id (`lifecycle_ops::bulk`, what the console's bulk
//! form confirms) on both databases, without processes: held runs released
//! and cancelled by id, each action refused for the runs it does not apply
//! to, the batch audited once besides each run's own entry, and the cap.
//! The console's preview and tampered forms are in the admin router's tests
//! and the browser test (`console_bulk.rs`).

use lifecycle_broker::{Publisher, Topology};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_e2e::{both_databases, Backend, TestDb};
use lifecycle_ops::bulk::{self, BulkAction, MAX_RUNS};
use lifecycle_ops::OpsError;
use lifecycle_store::events::{self, NewEvent, NewRun};
use lifecycle_store::safety::{Guard, Limit};
use lifecycle_store::{audit, runs, Db};
use std::time::Duration;

async fn leaver(db: &Db, guard: &Guard, person: &str) -> (String, RunState) {
    let (event_id, run_id) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let ev = NewEvent {
        id: event_id,
        source: "hr".into(),
        idempotency_key: run_id.clone(),
        payload_hash: run_id.clone(),
        event_type: "leaver".into(),
        employee_id: None,
        employee_email: Some(person.into()),
        payload: "{}".into(),
        response_status: 202,
        response_body: "{}".into(),
        traceparent: None,
    };
    let run = NewRun {
        id: run_id.clone(),
        vendor: VendorKind::Pipedrive,
        workflow: Workflow::Leaver,
        person_key: person.into(),
        input: "{}".into(),
        occurred_at: None,
        effective_at: None,
        start_at: None,
    };
    let events::Accepted::Created { intake, .. } =
        events::accept_guarded(db, ev, vec![run], None, guard, |_| String::new()).await.unwrap()
    else {
        panic!("a new key");
    };
    (run_id, intake.runs[0].state)
}

async fn entries(db: &Db, action: &str) -> Vec<audit::Entry> {
    audit::list(db, &Default::default()).await.unwrap().into_iter().filter(|e| e.action == action).collect()
}

async fn held_runs_are_released_and_cancelled_by_id_and_the_batch_is_audited(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    // Nothing is published here (a release writes the outbox); the port is closed on purpose.
    let publisher = Publisher::new("amqp://127.0.0.1:1/%2f", "test", Topology::new("t"), Duration::from_secs(1));
    let guard = Guard { leavers: Some(Limit { count: 1, window: Duration::from_secs(3600) }), ..Default::default() };
    let (first, state) = leaver(&db, &guard, "first@example.com").await;
    assert_eq!(state, RunState::Queued);
    let mut held = Vec::new();
    for i in 0..3 {
        let (id, state) = leaver(&db, &guard, &format!("h{i}@example.com")).await;
        assert_eq!(state, RunState::Held);
        held.push(id);
    }

    // The preview: release applies to held runs only, each other run says why.
    let (selected, missing) = bulk::load(&db, &[first.clone(), held[0].clone(), held[1].clone()]).await.unwrap();
    assert!(missing.is_empty());
    let p = bulk::preview(&db, BulkAction::Release, selected).await.unwrap();
    assert_eq!(p.applies.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), held[..2]);
    assert_eq!(p.refused.len(), 1);
    assert!(p.refused[0].reason.contains("only held runs are released"), "{:?}", p.refused);

    let out = bulk::apply(&db, &publisher, BulkAction::Release, &held[..1], "admin:ada", None).await.unwrap();
    assert_eq!(out.done, held[..1]);
    assert_eq!(runs::get(&db, &held[0]).await.unwrap().unwrap().state, RunState::Queued);
    let release = entries(&db, "safety.release").await;
    assert_eq!(release.len(), 1, "audited as the guard's release is");
    assert!(release[0].details.as_deref().unwrap().contains(&held[0]));

    // A cancel needs a reason, as one run's does; with one, held runs end cancelled.
    let no_reason = bulk::apply(&db, &publisher, BulkAction::Cancel, &held[1..2], "admin:ada", Some(" ")).await;
    assert!(matches!(no_reason, Err(OpsError::Invalid(_))), "{no_reason:?}");
    assert_eq!(runs::get(&db, &held[1]).await.unwrap().unwrap().state, RunState::Held);
    let out =
        bulk::apply(&db, &publisher, BulkAction::Cancel, &held[1..], "admin:ada", Some("bad export")).await.unwrap();
    assert_eq!(out.done.len(), 2);
    for id in &held[1..] {
        assert_eq!(runs::get(&db, id).await.unwrap().unwrap().state, RunState::Cancelled);
    }

    // Done twice: refused (no longer held), nothing changes; a run that is gone is named.
    let again = vec![held[1].clone(), "no-such-run".to_string()];
    let out = bulk::apply(&db, &publisher, BulkAction::Release, &again, "admin:ada", None).await.unwrap();
    assert!(out.done.is_empty());
    assert_eq!(out.refused.len(), 2, "{:?}", out.refused);
    assert_eq!(runs::get(&db, &held[1]).await.unwrap().unwrap().state, RunState::Cancelled);

    // Each batch is one entry: who, which action, how many.
    let batches = entries(&db, bulk::ACTION_BULK).await;
    assert_eq!(batches.len(), 3);
    assert!(batches.iter().all(|e| e.actor == "admin:ada"));
    let counts: Vec<bool> = batches.iter().map(|e| e.details.as_deref().unwrap().contains("\"count\":2")).collect();
    assert_eq!(counts.iter().filter(|c| **c).count(), 1, "the cancel of two");

    // The cap.
    let many: Vec<String> = (0..=MAX_RUNS).map(|i| format!("r{i}")).collect();
    let capped = bulk::apply(&db, &publisher, BulkAction::Replay, &many, "admin:ada", None).await;
    assert!(matches!(capped, Err(OpsError::Invalid(m)) if m.contains("at most 500")));
}

both_databases!(held_runs_are_released_and_cancelled_by_id_and_the_batch_is_audited);
