//! Every intake route that reads or writes the database answers 503 with `Retry-After`
//! when the database does not answer, within `database.acquire_timeout` (not the request
//! timeout's 408, never 500), and keeps nothing; once it answers again, the same
//! Idempotency-Key is accepted once.
//!
//! The producer in process on its own database of the shared PostgreSQL, made unreachable
//! for the producer alone: the database refuses new sessions (`ALLOW_CONNECTIONS false`) and
//! the producer's are ended (`pg_terminate_backend`, on this test's database only). The
//! end-to-end test `tests/tests/postgres_restart.rs` stops a whole server of its own.

mod common;

use lifecycle_store::testing::{postgres_admin_url, Backend, TestDb};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const INTAKE: &str = "intake-token-0123456789";
const SCIM: &str = "scim-token-0123456789abcdef";
const HOOK_USER: &str = "hooks";
const HOOK_PASSWORD: &str = "webhook-password-0123456789";

/// Lets the test's database take sessions, or refuses them and ends the open ones.
async fn reachable(name: &str, yes: bool) {
    let admin = Database::connect(postgres_admin_url()).await.expect("the shared PostgreSQL");
    admin.execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {yes}")).await.unwrap();
    if !yes {
        admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .await
            .unwrap();
    }
    let _ = admin.close().await;
}

fn joiner(email: &str) -> Value {
    json!({"type": "joiner", "employee": {"id": email, "email": email, "given_name": "A", "family_name": "B"},
           "apps": {"calendly": {}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_database_route_answers_503_with_retry_after_while_the_database_is_gone() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let name = test_db.url.rsplit('/').next().unwrap().to_string();
    let settings = common::settings(
        &test_db.url,
        &format!(
            r#"
            [database]
            max_connections = 4
            [producer]
            intake_tokens = ["{INTAKE}"]
            [producer.pipedrive_webhook]
            username = "{HOOK_USER}"
            password = "{HOOK_PASSWORD}"
            [scim]
            tokens = ["{SCIM}"]
            "#
        ),
    );
    assert_eq!(settings.database.acquire_wait(), Duration::from_secs(5), "PostgreSQL's default");
    let running = lifecycle_producer::build(settings, lifecycle_telemetry::BuildInfo::unknown()).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let post_event = |key: &'static str, body: Value| {
        http.post(format!("{base}/v1/events")).bearer_auth(INTAKE).header("Idempotency-Key", key).json(&body).send()
    };
    let first = post_event("key-before", joiner("before@example.com")).await.unwrap();
    assert_eq!(first.status(), 202);
    let event_id = first.json::<Value>().await.unwrap()["event_id"].as_str().unwrap().to_string();

    reachable(&name, false).await;
    let webhook = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pipedrive-webhooks/v2-user-deactivated.json"),
    )
    .unwrap();
    // The fixture's ids are placeholders (tests/src/fixtures.rs fills them the same way).
    let mut webhook: Value = serde_json::from_str(&webhook).unwrap();
    webhook["meta"]["entity_id"] = json!("42");
    for side in ["data", "previous"] {
        if webhook[side].get("id").is_some() {
            webhook[side]["id"] = json!(42);
        }
        if webhook[side].get("email").is_some() {
            webhook[side]["email"] = json!("hooked@example.com");
        }
    }
    let webhook = webhook.to_string();
    let requests = [
        ("POST /v1/events", post_event("key-during", joiner("during@example.com")).await),
        ("GET /v1/events/{id}", http.get(format!("{base}/v1/events/{event_id}")).bearer_auth(INTAKE).send().await),
        (
            "POST /v1/events/{id}/cancel",
            http.post(format!("{base}/v1/events/{event_id}/cancel")).bearer_auth(INTAKE).send().await,
        ),
        (
            "POST /scim/v2/Users",
            http.post(format!("{base}/scim/v2/Users"))
                .bearer_auth(SCIM)
                .header("content-type", "application/scim+json")
                .body(
                    json!({"schemas": [lifecycle_scim::USER_SCHEMA], "userName": "scim@example.com", "active": true,
                           "name": {"givenName": "S", "familyName": "C"}, "emails": [{"value": "scim@example.com", "primary": true}]})
                        .to_string(),
                )
                .send()
                .await,
        ),
        (
            "GET /scim/v2/Users",
            http.get(format!("{base}/scim/v2/Users?filter=userName%20eq%20%22x%40example.com%22"))
                .bearer_auth(SCIM)
                .send()
                .await,
        ),
        (
            "POST /v1/webhooks/pipedrive",
            http.post(format!("{base}/v1/webhooks/pipedrive"))
                .basic_auth(HOOK_USER, Some(HOOK_PASSWORD))
                .header("content-type", "application/json")
                .body(webhook)
                .send()
                .await,
        ),
    ];
    for (route, answer) in requests {
        let answer = answer.unwrap();
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let body = answer.text().await.unwrap();
        assert_eq!(status, 503, "{route}: {body}");
        assert_eq!(retry_after.as_deref(), Some(lifecycle_producer::problem::STORE_RETRY_AFTER), "{route}");
        assert!(!body.contains(&name), "{route} keeps the database's words to the log: {body}");
    }
    let started = Instant::now();
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while the database refuses");
    assert!(started.elapsed() < Duration::from_secs(3), "readiness answers within its 2 s bound");

    reachable(&name, true).await;
    let again = post_event("key-during", joiner("during@example.com")).await.unwrap();
    assert_eq!(again.status(), 202, "accepted once the database answers");
    assert!(again.headers().get("idempotent-replayed").is_none(), "the 503 kept nothing to replay");
    let replay = post_event("key-during", joiner("during@example.com")).await.unwrap();
    assert_eq!(replay.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let db = test_db.connect().await;
    let n = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM events WHERE idempotency_key = 'key-during'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(n, 1, "the key kept once");
    running.shutdown().await;
    let _ = db.close().await;
}
