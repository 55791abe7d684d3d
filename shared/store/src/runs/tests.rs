use super::*;
use crate::events::{self, NewEvent, NewRun};

/// An in-memory database with one queued Pipedrive joiner per entry of
/// `people` (the person's address), `run-0`, `run-1`, ... in that order.
async fn db_with_runs(people: &[&str]) -> crate::Db {
    let db = crate::connect("sqlite::memory:", 1).await.unwrap();
    crate::migrate(&db).await.unwrap();
    crate::testing::queue_joiners(&db, people).await;
    db
}

/// Ending a run says, in the same statement, whether a later run for the
/// same person and vendor is unfinished (and so may be waiting for it).
#[tokio::test]
async fn ending_a_run_names_the_next_unfinished_run_of_the_person() {
    let db = db_with_runs(&["ada@example.com", "ada@example.com", "alan@example.com"]).await;
    let lease = Duration::from_secs(60);
    let end = |id: &'static str| {
        let db = db.clone();
        async move {
            let run = get(&db, id).await.unwrap().unwrap();
            assert!(claim(&db, &run, run.dispatch_seq, "w1", lease).await.unwrap(), "{id} is claimed");
            let done = Finish { state: RunState::Succeeded, outcome: "done", access: None, last_error: None };
            finish_then_next(&db, id, "w1", done).await.unwrap()
        }
    };
    assert_eq!(end("run-0").await, Some(Ended { next: Some("run-1".into()) }), "ada's second run waits");
    assert_eq!(end("run-1").await, Some(Ended { next: None }), "nothing after it");
    assert_eq!(end("run-2").await, Some(Ended { next: None }), "alan's runs are his own");
    let held_by_nobody = Finish { state: RunState::Dead, outcome: "x", access: None, last_error: None };
    assert_eq!(finish_then_next(&db, "run-2", "w1", held_by_nobody).await.unwrap(), None, "not held: no write");
}

/// The one-statement claim of SQLite: the run as it stood, whether it has
/// a journal, and a refusal for every message that is not ready as sent.
#[tokio::test]
async fn a_run_is_claimed_as_sent_in_one_statement_or_not_at_all() {
    let db = db_with_runs(&["ada@example.com", "ada@example.com"]).await;
    let (lease, early) = (Duration::from_secs(60), Duration::from_millis(250));
    assert!(claim_as_sent(&db, "run-0", 7, "w1", lease, early).await.unwrap().is_none(), "a stale sequence");
    assert!(
        claim_as_sent(&db, "run-1", 0, "w1", lease, early).await.unwrap().is_none(),
        "ada's earlier run is unfinished"
    );
    let c = claim_as_sent(&db, "run-0", 0, "w1", lease, early).await.unwrap().expect("claimed");
    assert_eq!((c.run.id.as_str(), c.run.attempts, c.has_journal), ("run-0", 0, false));
    let stored = get(&db, "run-0").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.attempts, stored.lease_owner.as_deref()), (RunState::Running, 1, Some("w1")));
    assert!(claim_as_sent(&db, "run-0", 0, "w2", lease, early).await.unwrap().is_none(), "held by w1");

    // A step recorded, the run handed back: the next claim knows it has a journal.
    crate::steps::begin(&db, "run-0", "w1", "create_user", 1, None, 1).await.unwrap();
    assert!(release(&db, "run-0", "w1").await.unwrap());
    let again = claim_as_sent(&db, "run-0", 0, "w2", lease, early).await.unwrap().expect("claimed again");
    assert_eq!((again.run.attempts, again.has_journal), (0, true));
}

/// Every transition of a held run is guarded by its lease: a worker that
/// lost the run (another claimed it) can neither extend, finish, retry nor
/// hand it back; and a message's dispatch sequence guards the claim, the
/// parking and a new dispatch.
#[tokio::test]
async fn transitions_of_a_held_run_belong_to_its_owner_and_its_dispatch() {
    let db = db_with_runs(&["ada@example.com", "ada@example.com"]).await;
    let lease = Duration::from_secs(60);
    let run = get(&db, "run-0").await.unwrap().unwrap();
    assert!(!claim(&db, &run, run.dispatch_seq + 1, "w1", lease).await.unwrap(), "a stale message claims nothing");
    assert!(claim(&db, &run, run.dispatch_seq, "w1", lease).await.unwrap());
    assert!(!claim(&db, &run, run.dispatch_seq, "w2", lease).await.unwrap(), "held: one worker wins");

    // Not the owner: no write of any kind.
    let done = || Finish { state: RunState::Succeeded, outcome: "done", access: None, last_error: None };
    assert!(!extend_lease(&db, "run-0", "w2", lease).await.unwrap());
    assert!(!finish(&db, "run-0", "w2", done()).await.unwrap());
    assert_eq!(schedule_retry(&db, "run-0", "w2", run.dispatch_seq, Utc::now(), "x").await.unwrap(), None);
    assert!(!release(&db, "run-0", "w2").await.unwrap());
    let held = get(&db, "run-0").await.unwrap().unwrap();
    assert_eq!((held.state, held.lease_owner.as_deref()), (RunState::Running, Some("w1")), "untouched by w2");

    // The owner: a retry with a new dispatch; the old message is now stale.
    assert!(extend_lease(&db, "run-0", "w1", lease).await.unwrap());
    let seq = schedule_retry(&db, "run-0", "w1", run.dispatch_seq, Utc::now(), "busy").await.unwrap();
    assert_eq!(seq, Some(run.dispatch_seq + 1));
    let waiting = get(&db, "run-0").await.unwrap().unwrap();
    assert_eq!(waiting.state, RunState::RetryScheduled);
    assert!(!claim(&db, &waiting, run.dispatch_seq, "w1", lease).await.unwrap(), "the old message is stale");
    assert!(!finish(&db, "run-0", "w1", done()).await.unwrap(), "a run waiting to retry is held by nobody");

    // Parking and a new dispatch are guarded by the sequence too.
    let later = get(&db, "run-1").await.unwrap().unwrap();
    let recheck = Utc::now() + chrono::Duration::seconds(60);
    assert!(!block(&db, "run-1", later.dispatch_seq + 1, "run-0", recheck).await.unwrap());
    assert!(block(&db, "run-1", later.dispatch_seq, "run-0", recheck).await.unwrap());
    assert_eq!(redispatch(&db, "run-1", later.dispatch_seq + 5, true).await.unwrap(), None, "lost the race");
    assert_eq!(redispatch(&db, "run-1", later.dispatch_seq, true).await.unwrap(), Some(later.dispatch_seq + 1));

    // Replay takes a dead run only, once.
    let dead = Finish { state: RunState::Dead, outcome: "gave up", access: None, last_error: None };
    let again = get(&db, "run-0").await.unwrap().unwrap();
    assert!(claim(&db, &again, again.dispatch_seq, "w1", lease).await.unwrap());
    assert!(finish(&db, "run-0", "w1", dead).await.unwrap());
    let ended = get(&db, "run-0").await.unwrap().unwrap();
    assert_eq!(reset_for_replay(&db, &ended, None).await.unwrap(), Some(ended.dispatch_seq + 1));
    assert_eq!(reset_for_replay(&db, &ended, None).await.unwrap(), None, "the same replay twice is one replay");
}

/// `%` and `_` in an employee id match themselves only; so does a backslash.
#[tokio::test]
async fn the_employee_filter_matches_an_id_literally() {
    let db = crate::connect("sqlite::memory:", 1).await.unwrap();
    crate::migrate(&db).await.unwrap();
    let ids = ["E_1", "EX1", "E%1", "E-100", "E\\1", "E!1"];
    for (i, id) in ids.iter().enumerate() {
        let ev = NewEvent {
            id: format!("ev-{i}"),
            source: "intake".into(),
            idempotency_key: format!("k-{i}"),
            payload_hash: format!("h-{i}"),
            event_type: "joiner".into(),
            employee_id: Some(id.to_string()),
            employee_email: Some(format!("p{i}@example.com")),
            payload: "{}".into(),
            response_status: 202,
            response_body: "{}".into(),
            traceparent: None,
        };
        let input = serde_json::json!({"employee": {"id": id, "email": format!("p{i}@example.com")}});
        let run = NewRun {
            id: format!("run-{i}"),
            vendor: VendorKind::Pipedrive,
            workflow: Workflow::Joiner,
            person_key: format!("p{i}@example.com"),
            input: input.to_string(),
            occurred_at: None,
            effective_at: None,
            start_at: None,
        };
        events::accept(&db, ev, vec![run], None, |_| String::new()).await.unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let f = RunFilter { employee: Some(id.to_string()), ..Default::default() };
        let found: Vec<String> = list(&db, &f).await.unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(found, [format!("run-{i}")], "filter {id:?}");
    }
    for wildcard in ["E%", "E_", "%", "_1"] {
        let f = RunFilter { employee: Some(wildcard.into()), ..Default::default() };
        assert!(list(&db, &f).await.unwrap().is_empty(), "{wildcard:?} matched as a wildcard");
    }
}
