//! The storage contract the engine relies on (`lifecycle_engine::storage`),
//! kept by the SQL implementation on SQLite and PostgreSQL, and, for the
//! journal, by the in-memory double the engine's unit tests use.

use futures::future::BoxFuture;
use lifecycle_domain::{Access, RunState, StepStatus};
use lifecycle_engine::memory::MemoryJournal;
use lifecycle_engine::{Finish, Journal, RunStore, StepWrite, StorageError};
use lifecycle_store::engine::Storage;
use lifecycle_store::testing::{Backend, TestDb};
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);
const EARLY: Duration = Duration::from_millis(250);

/// A database with one queued Pipedrive joiner per person in `people`: `run-0`, `run-1`, ...
/// `grouped`: the worker's storage, its run writes through a group commit.
async fn storage(backend: Backend, people: &[&str], grouped: bool) -> (TestDb, Storage) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    lifecycle_store::testing::queue_joiners(&db, people).await;
    let s = Storage::new(db);
    (test_db, if grouped { s.with_group_commit() } else { s })
}

/// Claims `id` for `owner` as the executor does: in one step where the
/// storage can, else read and claimed.
async fn claim(s: &Storage, id: &str, owner: &str, lease: Duration) -> bool {
    let run = s.get(id).await.unwrap().unwrap();
    if let Some(c) = s.claim_as_sent(id, run.dispatch_seq, owner, lease, EARLY).await.unwrap() {
        assert_eq!((c.run.id.as_str(), c.run.attempts), (id, run.attempts), "as it stood before the claim");
        return true;
    }
    s.claim(&run, run.dispatch_seq, owner, lease).await.unwrap()
}

fn write<'a>(owner: &'a str, key: &'a str, previous: Option<&'a lifecycle_engine::StepRecord>) -> StepWrite<'a> {
    StepWrite { run_id: "run-0", owner, key, position: 1, previous, run_attempt: 1 }
}

/// The journal's contract: begun, failed, begun again, succeeded, a read in
/// one write; every write refused, nothing written, once `w1` no longer holds
/// the run (`take_over` hands it to `w2`).
async fn journal_contract(j: &dyn Journal, take_over: BoxFuture<'_, ()>) {
    let begun = j.begin(write("w1", "create_user", None)).await.unwrap();
    assert_eq!((begun.status, begun.attempts), (StepStatus::Running, 1));
    let failed = j.finish(&begun, "w1", None, Some("HTTP 503"), 4).await.unwrap();
    assert_eq!((failed.status, failed.last_error.as_deref()), (StepStatus::Failed, Some("HTTP 503")));
    let again = j.begin(write("w1", "create_user", Some(&failed))).await.unwrap();
    assert_eq!((again.status, again.attempts), (StepStatus::Running, 2));
    let done = j.finish(&again, "w1", Some("55"), None, 4).await.unwrap();
    assert_eq!((done.status, done.output.as_deref()), (StepStatus::Succeeded, Some("55")));
    let read = j.record_read(write("w1", "find_user", None), "7", 3).await.unwrap();
    assert_eq!((read.status, read.attempts, read.output.as_deref()), (StepStatus::Succeeded, 1, Some("7")));
    let stored = j.load("run-0").await.unwrap();
    let keys: Vec<(&str, StepStatus, i32)> = stored.iter().map(|s| (s.key.as_str(), s.status, s.attempts)).collect();
    assert_eq!(keys, [("create_user", StepStatus::Succeeded, 2), ("find_user", StepStatus::Succeeded, 1)]);

    take_over.await;
    let refused = j.begin(write("w1", "assign_role", None)).await;
    assert!(matches!(refused, Err(StorageError::LeaseLost)), "{refused:?}");
    let refused = j.finish(&done, "w1", Some("56"), None, 4).await;
    assert!(matches!(refused, Err(StorageError::LeaseLost)), "{refused:?}");
    let refused = j.record_read(write("w1", "find_role", None), "1", 1).await;
    assert!(matches!(refused, Err(StorageError::LeaseLost)), "{refused:?}");
    assert_eq!(j.load("run-0").await.unwrap(), stored, "nothing written by w1 after the takeover");
}

async fn sql_journal(backend: Backend) {
    sql_journal_of(backend, false).await
}

async fn sql_journal_grouped(backend: Backend) {
    sql_journal_of(backend, true).await
}

async fn sql_journal_of(backend: Backend, grouped: bool) {
    let (_db, s) = storage(backend, &["ada@example.com"], grouped).await;
    // w1's lease is short in the database: w2 can take the run over once it runs out.
    assert!(claim(&s, "run-0", "w1", Duration::from_millis(300)).await);
    let take_over = Box::pin(async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(claim(&s, "run-0", "w2", LEASE).await, "w2 takes the run over");
    });
    journal_contract(&s, take_over).await;
}

/// Runs: one winner per claim, transitions guarded by the lease, the next run
/// of the person named as a run ends, and a later run parked and woken.
async fn sql_runs(backend: Backend) {
    sql_runs_of(backend, false).await
}

async fn sql_runs_grouped(backend: Backend) {
    sql_runs_of(backend, true).await
}

async fn sql_runs_of(backend: Backend, grouped: bool) {
    let (_db, s) = storage(backend, &["ada@example.com", "ada@example.com"], grouped).await;
    assert!(!claim(&s, "run-1", "w1", LEASE).await, "ada's earlier run is unfinished");
    assert!(claim(&s, "run-0", "w1", LEASE).await);
    assert!(!claim(&s, "run-0", "w2", LEASE).await, "one worker wins");
    assert!(s.extend_lease("run-0", "w1", LEASE).await.unwrap());
    assert!(!s.extend_lease("run-0", "w2", LEASE).await.unwrap());

    let later = s.get("run-1").await.unwrap().unwrap();
    let earlier = s.earlier_unfinished(later.vendor, &later.person_key, later.seq).await.unwrap().unwrap();
    assert_eq!(earlier.id, "run-0");
    let recheck = chrono::Utc::now() + chrono::Duration::seconds(60);
    assert!(s.block("run-1", later.dispatch_seq, "run-0", recheck).await.unwrap());
    assert_eq!(s.get("run-1").await.unwrap().unwrap().blocked_by.as_deref(), Some("run-0"));

    let done = Finish { state: RunState::Succeeded, outcome: "did it", access: Some(Access::Active), last_error: None };
    assert_eq!(s.finish_then_next("run-0", "w2", done).await.unwrap(), None, "not w2's to end");
    let ended = s.finish_then_next("run-0", "w1", done).await.unwrap().expect("w1 ends it");
    assert_eq!(ended.next.as_deref(), Some("run-1"), "ada's next run waits for it");
    let first = s.get("run-0").await.unwrap().unwrap();
    assert_eq!(first.state, RunState::Succeeded);

    let next = s.next_unfinished(first.vendor, &first.person_key, first.seq).await.unwrap().unwrap();
    assert_eq!(next.id, "run-1");
    let seq = s.redispatch("run-1", next.dispatch_seq, true).await.unwrap();
    assert_eq!(seq, Some(next.dispatch_seq + 1));
    assert_eq!(s.redispatch("run-1", next.dispatch_seq, true).await.unwrap(), None, "the old sequence lost");
    assert!(claim(&s, "run-1", "w1", LEASE).await, "woken: nothing earlier is unfinished");
    let retry = s.schedule_retry("run-1", "w1", seq.unwrap(), chrono::Utc::now(), "busy").await.unwrap();
    assert_eq!(retry, Some(seq.unwrap() + 1));
    assert!(!s.release("run-1", "w1").await.unwrap(), "waiting to retry: held by nobody");
    assert!(s.overdue(Duration::from_secs(3600), 10).await.unwrap().is_empty());
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() { super::$name(super::Backend::Sqlite).await }
            #[tokio::test]
            async fn postgres() { super::$name(super::Backend::Postgres).await }
        }
    )*};
}

/// Many runs executing at once through the group commit: their writes share
/// commits, a write refused (lease lost) in a batch refuses only itself, and
/// every write answered as done is in the database.
async fn grouped_runs_at_once(backend: Backend) {
    const RUNS: usize = 40;
    let people: Vec<String> = (0..RUNS).map(|i| format!("p{i}@example.com")).collect();
    let people: Vec<&str> = people.iter().map(String::as_str).collect();
    let (_db, s) = storage(backend, &people, true).await;
    let one = |i: usize| {
        let s = &s;
        async move {
            let id = format!("run-{i}");
            assert!(claim(s, &id, "w1", LEASE).await, "{id} claimed");
            // Every other run's writer is not the holder: refused, nothing written.
            let owner = if i % 2 == 0 { "w1" } else { "w2" };
            let w = StepWrite { run_id: &id, owner, key: "create_user", position: 1, previous: None, run_attempt: 1 };
            let begun = match s.begin(w).await {
                Ok(b) => b,
                Err(StorageError::LeaseLost) if owner == "w2" => return,
                Err(e) => panic!("{id}: {e}"),
            };
            assert_eq!(owner, "w1", "{id}: w2 does not hold the run");
            let done = s.finish(&begun, "w1", Some("5"), None, 1).await.unwrap();
            assert_eq!(done.status, StepStatus::Succeeded);
            let f = Finish { state: RunState::Succeeded, outcome: "done", access: None, last_error: None };
            assert!(s.finish_then_next(&id, "w1", f).await.unwrap().is_some(), "{id} ended");
        }
    };
    futures::future::join_all((0..RUNS).map(one)).await;
    for i in 0..RUNS {
        let id = format!("run-{i}");
        let run = s.get(&id).await.unwrap().unwrap();
        let journal = s.load(&id).await.unwrap();
        if i % 2 == 0 {
            assert_eq!(run.state, RunState::Succeeded, "{id}");
            assert_eq!(journal.len(), 1, "{id}");
            assert_eq!((journal[0].status, journal[0].output.as_deref()), (StepStatus::Succeeded, Some("5")));
        } else {
            assert_eq!(run.state, RunState::Running, "{id}: still w1's");
            assert!(journal.is_empty(), "{id}: the refused write wrote nothing");
        }
    }
}

on_both_databases!(sql_journal, sql_runs, sql_journal_grouped, sql_runs_grouped, grouped_runs_at_once);

/// The in-memory journal the engine's unit tests use keeps the same contract.
#[tokio::test]
async fn the_memory_journal_keeps_the_contract() {
    let j = Arc::new(MemoryJournal::new());
    j.hold("run-0", "w1");
    let holder = j.clone();
    journal_contract(&*j, Box::pin(async move { holder.hold("run-0", "w2") })).await;
}
