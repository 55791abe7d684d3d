//! The lease guards inside the step journal's writes, on both databases. A
//! worker paused past its lease (SIGSTOP) while another worker claimed the run
//! must not record its stale step over the new owner's, nor begin a new one;
//! and a journal write racing the claim itself must not slip past it.

use lifecycle_domain::{VendorKind, Workflow};
use lifecycle_e2e::{both_databases, Backend, TestDb};
use lifecycle_store::events::{self, NewEvent, NewRun};
use lifecycle_store::runs::{self, Run};
use lifecycle_store::steps;
use lifecycle_store::{Db, StoreError};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

/// One event with one Pipedrive run for ada@example.com, claimed by `w1` with
/// a lease that lapses at once (as if `w1` had been paused past it).
async fn run_claimed_by_w1_whose_lease_lapsed(db: &Db) -> Run {
    let (event_id, run_id) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let ev = NewEvent {
        id: event_id,
        source: "hr".into(),
        idempotency_key: "k-joiner".into(),
        payload_hash: "h".into(),
        event_type: "joiner".into(),
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
        workflow: Workflow::Joiner,
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
    let run = runs::get(db, &run_id).await.unwrap().unwrap();
    assert!(runs::claim(db, &run, run.dispatch_seq, "w1", Duration::from_millis(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    runs::get(db, &run_id).await.unwrap().unwrap()
}

/// w1 began a step, was paused, and w2 took the run over and began the same
/// step again. w1's late record of the step, and any new step of w1, are refused.
async fn a_worker_whose_run_was_taken_over_records_nothing(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let run = run_claimed_by_w1_whose_lease_lapsed(&db).await;
    let w1_step = steps::begin(&db, &run.id, "w1", "create_user", 1, None, 1).await.unwrap();

    assert!(runs::claim(&db, &run, run.dispatch_seq, "w2", LEASE).await.unwrap(), "the lease lapsed");
    let journal = steps::load(&db, &run.id).await.unwrap();
    let w2_step = steps::begin(&db, &run.id, "w2", "create_user", 1, journal.first(), 2).await.unwrap();

    let late = steps::finish(&db, &w1_step, "w1", Some("{\"id\":5}"), None, 60_000).await;
    assert!(matches!(late, Err(StoreError::LeaseLost)), "{late:?}");
    let new_step = steps::begin(&db, &run.id, "w1", "assign_role", 2, None, 1).await;
    assert!(matches!(new_step, Err(StoreError::LeaseLost)), "{new_step:?}");
    let retry = steps::begin(&db, &run.id, "w1", "create_user", 1, Some(&w2_step), 1).await;
    assert!(matches!(retry, Err(StoreError::LeaseLost)), "{retry:?}");

    let journal = steps::load(&db, &run.id).await.unwrap();
    assert_eq!(journal.len(), 1, "w1's new step was not inserted");
    assert_eq!((journal[0].status, journal[0].attempts), (steps::RUNNING, 2));
    assert_eq!(journal[0].history, w2_step.history, "w2's record stands as w2 wrote it");

    let done = steps::finish(&db, &w2_step, "w2", Some("{\"id\":5}"), None, 40).await.unwrap();
    assert_eq!(done.status, steps::SUCCEEDED, "the owner records normally");
}

/// w1's record of a step arrives while w2's claim is being committed. The
/// write waits for the claim (PostgreSQL: the guard share-locks the run's row;
/// SQLite: one writer at a time) and then sees it and refuses, instead of
/// passing a guard read before the claim committed.
async fn a_journal_write_racing_a_claim_waits_for_it_and_then_refuses(backend: Backend) {
    use sea_orm::TransactionTrait;
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let run = run_claimed_by_w1_whose_lease_lapsed(&db).await;
    let w1_step = steps::begin(&db, &run.id, "w1", "create_user", 1, None, 1).await.unwrap();

    let txn = db.begin().await.unwrap();
    assert!(runs::claim(&txn, &run, run.dispatch_seq, "w2", LEASE).await.unwrap());
    let late = tokio::spawn({
        let db = db.clone();
        async move { steps::finish(&db, &w1_step, "w1", Some("{\"id\":5}"), None, 60_000).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!late.is_finished(), "the journal write must wait for the claim's transaction");
    txn.commit().await.unwrap();
    let late = late.await.unwrap();
    assert!(matches!(late, Err(StoreError::LeaseLost)), "{late:?}");
    let journal = steps::load(&db, &run.id).await.unwrap();
    assert_eq!(journal[0].status, steps::RUNNING, "w1's success was not recorded over w2's claim");
}

both_databases!(
    a_worker_whose_run_was_taken_over_records_nothing,
    a_journal_write_racing_a_claim_waits_for_it_and_then_refuses,
);
