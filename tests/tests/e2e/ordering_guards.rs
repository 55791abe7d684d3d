//! The per-person ordering guards inside the run transitions themselves, on
//! both databases. The worker checks for an earlier unfinished run before it
//! claims, and a replay checks for a later started run before it resets; each
//! check can be overtaken by the other writer before its update. The updates
//! refuse in that case, so a replayed run and a later run for the same person
//! never both go ahead.

use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_e2e::{both_databases, Backend, TestDb};
use lifecycle_store::events::{self, NewEvent, NewRun};
use lifecycle_store::runs::{self, Finish, Run};
use lifecycle_store::Db;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

/// Stores one event with one Pipedrive run for ada@example.com and returns the run.
async fn run_for_ada(db: &Db, key: &str, workflow: Workflow) -> Run {
    let (event_id, run_id) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let ev = NewEvent {
        id: event_id.clone(),
        source: "hr".into(),
        idempotency_key: key.into(),
        payload_hash: key.into(),
        event_type: workflow.as_str().into(),
        employee_id: Some("E-1".into()),
        employee_email: Some("ada@example.com".into()),
        payload: "{}".into(),
        response_status: 202,
        response_body: "{}".into(),
        traceparent: None,
    };
    let run = NewRun {
        id: run_id.clone(),
        vendor: VendorKind::Pipedrive,
        workflow,
        person_key: "ada@example.com".into(),
        input: "{}".into(),
        occurred_at: None,
        effective_at: None,
        start_at: None,
    };
    assert!(matches!(
        events::accept(db, ev, vec![run], None, |_| String::new()).await.unwrap(),
        events::Accepted::Created { .. }
    ));
    runs::get(db, &run_id).await.unwrap().unwrap()
}

/// A joiner that ended dead, and a leaver for the same person that arrived after it.
async fn dead_joiner_then_leaver(db: &Db) -> (Run, Run) {
    let joiner = run_for_ada(db, "k-joiner", Workflow::Joiner).await;
    let leaver = run_for_ada(db, "k-leaver", Workflow::Leaver).await;
    assert!(joiner.seq < leaver.seq);
    assert!(runs::claim(db, &joiner, joiner.dispatch_seq, "w1", LEASE).await.unwrap());
    let dead = Finish { state: RunState::Dead, outcome: "gave up", access: None, last_error: Some("HTTP 500") };
    assert!(runs::finish(db, &joiner.id, "w1", dead).await.unwrap());
    (runs::get(db, &joiner.id).await.unwrap().unwrap(), leaver)
}

/// The worker saw no earlier unfinished run, then the dead joiner was
/// replayed: the leaver's claim must now refuse.
async fn a_claim_refuses_when_an_earlier_run_was_replayed_since_the_check(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let (joiner, leaver) = dead_joiner_then_leaver(&db).await;

    assert!(runs::earlier_unfinished(&db, leaver.vendor, &leaver.person_key, leaver.seq).await.unwrap().is_none());
    assert!(runs::reset_for_replay(&db, &joiner, None).await.unwrap().is_some(), "the leaver has not started");

    assert!(!runs::claim(&db, &leaver, leaver.dispatch_seq, "w2", LEASE).await.unwrap(), "the claim must wait");
    let leaver = runs::get(&db, &leaver.id).await.unwrap().unwrap();
    assert_eq!((leaver.state, leaver.attempts), (RunState::Queued, 0));
    let earlier = runs::earlier_unfinished(&db, leaver.vendor, &leaver.person_key, leaver.seq).await.unwrap();
    assert_eq!(earlier.map(|r| r.id), Some(joiner.id));
}

/// The operator's check saw no later started run, then the leaver started:
/// the joiner's replay must now refuse.
async fn a_replay_refuses_when_a_later_run_started_since_the_check(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let (joiner, leaver) = dead_joiner_then_leaver(&db).await;

    assert!(runs::later_started(&db, joiner.vendor, &joiner.person_key, joiner.seq).await.unwrap().is_none());
    assert!(runs::claim(&db, &leaver, leaver.dispatch_seq, "w2", LEASE).await.unwrap(), "the joiner is dead");

    assert_eq!(runs::reset_for_replay(&db, &joiner, None).await.unwrap(), None, "the replay must refuse");
    let joiner = runs::get(&db, &joiner.id).await.unwrap().unwrap();
    assert_eq!((joiner.state, joiner.replays), (RunState::Dead, 0));
}

/// A replay and a claim at the same moment: the claim waits for the replay's
/// transaction (PostgreSQL: the person's advisory lock; SQLite: its single
/// writer) and then sees the replayed run, instead of both going ahead.
async fn a_claim_during_a_replay_waits_for_it_and_then_refuses(backend: Backend) {
    use sea_orm::TransactionTrait;
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let (joiner, leaver) = dead_joiner_then_leaver(&db).await;

    let txn = db.begin().await.unwrap();
    assert!(runs::reset_for_replay(&txn, &joiner, None).await.unwrap().is_some());
    let claim = tokio::spawn({
        let (db, leaver) = (db.clone(), leaver.clone());
        async move { runs::claim(&db, &leaver, leaver.dispatch_seq, "w2", LEASE).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!claim.is_finished(), "the claim must wait for the replay's transaction");
    txn.commit().await.unwrap();
    assert!(!claim.await.unwrap(), "after the replay commits, the leaver must wait for the joiner");
    let leaver = runs::get(&db, &leaver.id).await.unwrap().unwrap();
    assert_eq!((leaver.state, leaver.attempts), (RunState::Queued, 0));
}

both_databases!(
    a_claim_refuses_when_an_earlier_run_was_replayed_since_the_check,
    a_replay_refuses_when_a_later_run_started_since_the_check,
    a_claim_during_a_replay_waits_for_it_and_then_refuses,
);
