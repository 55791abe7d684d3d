//! Notifications in the middle: the worker's notifier against a real database
//! (SQLite and PostgreSQL) and a real HTTP receiver (axum on a free port),
//! its passes driven by the test. No broker, no vendor: the runs are written
//! in the states they would end in, which is all the notifier reads.
//!
//! Not an end-to-end test: what the notifier sees of a run is its row, and the
//! worker starts it with the same constructor (`lifecycle_worker::build`); the
//! runs' getting to `needs_manual_action` is tested elsewhere.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use lifecycle_config::notifications::NotificationSettings;
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_store::entity::{event, run};
use lifecycle_store::testing::{Backend, TestDb};
use lifecycle_worker::notify::{Notifier, Pass};
use sea_orm::{ActiveModelTrait, Set, TransactionTrait};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SIGNING_SECRET: &str = "signing-secret-0123456789";
const BATCH_EVERY: Duration = Duration::from_millis(1000);

#[derive(Default)]
struct Received {
    /// (headers, body) of every request, in order.
    requests: Vec<(HeaderMap, Vec<u8>)>,
    /// Answer this many requests with 500 before accepting.
    fail_next: usize,
}

type Receiver = Arc<Mutex<Received>>;

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let mut r = r.lock().unwrap();
    r.requests.push((headers, body.to_vec()));
    if r.fail_next > 0 {
        r.fail_next -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::NO_CONTENT
}

async fn receiver() -> (String, Receiver) {
    let state = Receiver::default();
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook?token=url-token-never-logged"), state)
}

/// A fresh database, dropped (PostgreSQL) when the guard goes.
struct Fresh {
    db: lifecycle_store::Db,
    _test_db: TestDb,
}

async fn database(backend: Backend) -> Fresh {
    let test_db = TestDb::new(backend).await;
    Fresh { db: test_db.connect().await, _test_db: test_db }
}

fn settings(url: &str) -> NotificationSettings {
    serde_json::from_value(json!({
        "batch_every": "1s",
        "webhooks": [{
            "name": "ops",
            "url": url,
            "secret": SIGNING_SECRET,
            "console_url": "https://lifecycle.example.com/",
            "kinds": ["needs_manual_action", "dead"],
            "allow_plain_http": true,
        }],
    }))
    .unwrap()
}

/// `n` runs of one event, ended in `state` now, in one transaction (as a
/// worker's finishes would be seen together by one pass).
async fn runs_ending(db: &lifecycle_store::Db, n: usize, state: RunState, vendor: VendorKind) -> Vec<String> {
    let now = chrono::Utc::now();
    let txn = db.begin().await.unwrap();
    let event_id = uuid::Uuid::new_v4().to_string();
    event::ActiveModel {
        id: Set(event_id.clone()),
        source: Set("intake".into()),
        idempotency_key: Set(event_id.clone()),
        payload_hash: Set("h".into()),
        event_type: Set("employee.joined".into()),
        payload: Set("{}".into()),
        response_status: Set(202),
        response_body: Set("{}".into()),
        received_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        run::ActiveModel {
            id: Set(id.clone()),
            event_id: Set(event_id.clone()),
            vendor: Set(vendor),
            workflow: Set(Workflow::Joiner),
            person_key: Set(format!("person{i}@example.com")),
            state: Set(state),
            input: Set("{}".into()),
            attempts: Set(1),
            dispatch_seq: Set(1),
            next_attempt_at: Set(now),
            replays: Set(0),
            outcome: Set(Some(format!("Give person{i} the role \"Sales Rep\" by hand"))),
            created_at: Set(now),
            updated_at: Set(now),
            finished_at: Set(Some(now)),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        ids.push(id);
    }
    txn.commit().await.unwrap();
    ids
}

fn signed_right(headers: &HeaderMap, body: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    headers.get("x-lifecycle-signature-256").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn delivered(r: &Receiver) -> Vec<(HeaderMap, Value)> {
    r.lock().unwrap().requests.iter().map(|(h, b)| (h.clone(), serde_json::from_slice(b).unwrap())).collect()
}

async fn thirty_runs_one_message_retried_once_never_repeated(backend: Backend) {
    let t = database(backend).await;
    let db = &t.db;
    let (url, received) = receiver().await;
    received.lock().unwrap().fail_next = 1;

    // Two workers of a fleet; the first pass registers the webhook (runs
    // count from then on) and takes its lease.
    let a = Notifier::new(db.clone(), settings(&url), "worker-a").unwrap();
    let b = Notifier::new(db.clone(), settings(&url), "worker-b").unwrap();
    assert_eq!(a.pass().await.unwrap(), Pass::default());
    let started = std::time::Instant::now();
    let ids = runs_ending(db, 30, RunState::NeedsManualAction, VendorKind::Pipedrive).await;

    // Too soon: the oldest waits `batch_every` for others to join it (when
    // this machine is not so slow that it has waited already).
    let early = a.pass().await.unwrap();
    if started.elapsed() < BATCH_EVERY * 8 / 10 {
        assert_eq!(early, Pass::default());
    }
    tokio::time::sleep(BATCH_EVERY + Duration::from_millis(100)).await;
    assert_eq!(b.pass().await.unwrap(), Pass::default(), "a holds the lease: b sends nothing");
    let pass = a.pass().await.unwrap();
    assert_eq!(early.delivered + pass.delivered, 1, "the 500 retried within the delivery: {early:?} {pass:?}");

    let got = delivered(&received);
    assert_eq!(got.len(), 2, "the 500, then the same message again");
    let (headers, body) = &got[1];
    assert_eq!(got[0].1, *body, "the same body");
    assert_eq!(got[0].0["x-lifecycle-delivery"], headers["x-lifecycle-delivery"], "the same message id");
    assert_eq!(body["kind"], "needs_manual_action");
    assert_eq!(body["count"], 30, "ONE message for the 30 runs");
    assert_eq!((body["runs"].as_array().unwrap().len(), body["omitted"].as_u64()), (20, Some(10)));
    assert_eq!(body["title"], "30 runs need a person");
    let first = &body["runs"][0];
    assert!(ids.contains(&first["id"].as_str().unwrap().to_string()));
    assert_eq!((first["vendor"].as_str(), first["workflow"].as_str()), (Some("pipedrive"), Some("joiner")));
    assert!(first["message"].as_str().unwrap().contains("Sales Rep"));
    assert_eq!(first["url"], format!("https://lifecycle.example.com/runs/{}", first["id"].as_str().unwrap()));
    assert_eq!(body["links"]["runs"], "https://lifecycle.example.com/runs?state=needs_manual_action&vendor=pipedrive");
    let raw = received.lock().unwrap().requests[1].1.clone();
    assert!(signed_right(headers, &raw), "signed with HMAC-SHA256 over the body");

    // Delivered: never again, by this worker, the other, or one started after a restart.
    tokio::time::sleep(BATCH_EVERY + Duration::from_millis(100)).await;
    assert_eq!(a.pass().await.unwrap(), Pass::default());
    a.release().await;
    drop(a);
    let c = Notifier::new(db.clone(), settings(&url), "worker-c-after-restart").unwrap();
    assert_eq!(c.pass().await.unwrap(), Pass::default());
    assert_eq!(b.pass().await.unwrap(), Pass::default());
    assert_eq!(received.lock().unwrap().requests.len(), 2, "nothing sent again");

    // A worker that claimed runs into a message and died before recording
    // the answer (it may or may not have reached the receiver): the next
    // sender sends that message, at once and under the same id.
    let dead = runs_ending(db, 2, RunState::Dead, VendorKind::Jira).await;
    let listed = lifecycle_store::notifications::candidates(db, "ops", "dead", chrono::DateTime::UNIX_EPOCH, &[], 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    let claimed = lifecycle_store::notifications::claim(db, "ops", "dead", &listed).await.unwrap().unwrap();
    assert_eq!(c.pass().await.unwrap().delivered, 1);
    let got = delivered(&received);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].0["x-lifecycle-delivery"].to_str().unwrap(), claimed.id);
    assert_eq!((got[2].1["kind"].as_str(), got[2].1["count"].as_u64()), (Some("dead"), Some(2)));
    let mut sent: Vec<String> =
        got[2].1["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect();
    sent.sort();
    let mut dead = dead;
    dead.sort();
    assert_eq!(sent, dead);
    tokio::time::sleep(BATCH_EVERY + Duration::from_millis(100)).await;
    assert_eq!(c.pass().await.unwrap(), Pass::default());
    assert_eq!(received.lock().unwrap().requests.len(), 3);
}

#[tokio::test]
async fn thirty_runs_one_message_sqlite() {
    thirty_runs_one_message_retried_once_never_repeated(Backend::Sqlite).await;
}

#[tokio::test]
async fn thirty_runs_one_message_postgres() {
    thirty_runs_one_message_retried_once_never_repeated(Backend::Postgres).await;
}

/// A receiver that keeps refusing (404: a webhook deleted at Slack) has the
/// message dropped after a few passes, recorded as such, and not sent again;
/// a vendor filter leaves other vendors' runs out.
#[tokio::test]
async fn a_refused_message_is_dropped_after_a_few_passes() {
    let t = database(Backend::Sqlite).await;
    let db = &t.db;
    let state = Receiver::default();
    let refusing = axum::Router::new()
        .route(
            "/gone",
            axum::routing::post(|State(r): State<Receiver>, body: axum::body::Bytes| async move {
                r.lock().unwrap().requests.push((HeaderMap::new(), body.to_vec()));
                StatusCode::NOT_FOUND
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, refusing).await.unwrap() });
    let settings: NotificationSettings = serde_json::from_value(json!({
        "batch_every": "200ms",
        "webhooks": [{"name": "gone", "url": format!("http://{addr}/gone"), "format": "slack",
                      "vendors": ["jira"], "allow_plain_http": true}],
    }))
    .unwrap();
    let n = Notifier::new(db.clone(), settings, "worker-a").unwrap();
    n.pass().await.unwrap();
    runs_ending(db, 3, RunState::Dead, VendorKind::Pipedrive).await;
    runs_ending(db, 1, RunState::Dead, VendorKind::Jira).await;
    let mut total = Pass::default();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let p = n.pass().await.unwrap();
        (total.delivered, total.failed, total.dropped) =
            (total.delivered + p.delivered, total.failed + p.failed, total.dropped + p.dropped);
        if total.dropped > 0 {
            break;
        }
    }
    assert_eq!(total, Pass { delivered: 0, failed: 2, dropped: 1 }, "refused three times, then dropped");
    let requests = state.lock().unwrap().requests.clone();
    assert_eq!(requests.len(), 3, "4xx is not retried within a delivery");
    let body: Value = serde_json::from_slice(&requests[0].1).unwrap();
    assert_eq!(body["text"], "lifecycle: 1 run is dead (gave up)", "only the Jira run: {body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(n.pass().await.unwrap(), Pass::default(), "dropped: not sent again");
}
