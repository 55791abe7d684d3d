//! The HR intake's group commit against a real database (SQLite and
//! PostgreSQL): concurrent events stored in shared commits, each answered
//! with its own rows, and a key used twice in one batch stored once.

use lifecycle_broker::{Publisher, Topology};
use lifecycle_domain::Event;
use lifecycle_ops::intake::{self, Submission, Submitted, Writer};
use lifecycle_store::testing::{Backend, TestDb};
use sea_orm::{ConnectionTrait, Statement};
use std::sync::Arc;
use std::time::Duration;

fn joiner(i: usize) -> (serde_json::Value, Event) {
    let body = serde_json::json!({
        "type": "joiner",
        "employee": {"id": format!("E-{i}"), "email": format!("p{i}@example.com"), "given_name": "P", "family_name": "Q"},
        "apps": {"pipedrive": {"role": "Sales Rep"}, "jira": {"products": ["jira-software"]}},
    });
    Event::parse_body(body.to_string().as_bytes()).unwrap()
}

async fn count(db: &lifecycle_store::Db, table: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), format!("SELECT COUNT(*) FROM {table}")))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn concurrent_events_share_commits(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = lifecycle_store::connect(&test_db.url, 4).await.unwrap();
    lifecycle_store::migrate(&db).await.unwrap();
    let writer = Writer::new(db.clone(), true);
    // Never connects: only a cancel's wake would publish.
    let publisher = Publisher::new("amqp://127.0.0.1:1", "test", Topology::new("t"), Duration::from_secs(1));
    let (schedule, guard) = (Default::default(), Arc::new(Default::default()));
    const EVENTS: usize = 30;
    let events: Vec<_> = (0..EVENTS).map(joiner).collect();
    let hashes: Vec<String> = events.iter().map(|(v, _)| lifecycle_domain::event::payload_hash(v)).collect();
    // Event i is sent under key k-i, and event 0 a second time under k-0 (the same body): stored once.
    let keys: Vec<String> = (0..EVENTS).map(|i| format!("k-{i}")).chain(["k-0".to_string()]).collect();
    let submit = |n: usize| {
        let i = n % EVENTS;
        let (value, event) = &events[i];
        let s = Submission {
            source: intake::INTAKE_SOURCE,
            idempotency_key: &keys[n],
            payload: value,
            payload_hash: &hashes[i],
            event,
            actor: "intake:test",
        };
        intake::accept(&writer, &publisher, &schedule, &guard, s)
    };
    let answers = futures::future::join_all((0..=EVENTS).map(submit)).await;
    let mut created = 0;
    for (n, answer) in answers.into_iter().enumerate() {
        match answer.unwrap() {
            Submitted::Created { event_id, body, .. } => {
                created += 1;
                assert_eq!(body.runs.len(), 2, "event {n}: one run per vendor");
                // Answered after its commit: its rows are there.
                let stored = lifecycle_store::events::get(&db, &event_id).await.unwrap().expect("committed");
                assert_eq!(stored.idempotency_key, keys[n]);
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(&stored.response_body).unwrap()["event_id"],
                    event_id
                );
            }
            Submitted::Existing(existing) => assert_eq!(existing.idempotency_key, "k-0", "only the repeated key"),
        }
    }
    assert_eq!(created, EVENTS, "every key stored once");
    assert_eq!(count(&db, "events").await, EVENTS as i64);
    assert_eq!(count(&db, "runs").await, 2 * EVENTS as i64);
    assert_eq!(count(&db, "outbox").await, 2 * EVENTS as i64);
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

on_both_databases!(concurrent_events_share_commits);
