//! Entra's `bulkUpload` in process (the producer's own `build`, its HTTP
//! listener on a free port) against a real database, SQLite and PostgreSQL.
//! No broker: events wait in the outbox.
//!
//! docs/integrators/scim-entra.md: 50 operations in one request → 50 results and
//! 50 joiners; the same request again → the same id and nothing new; a
//! request that changes one person → one event; a bad person fails alone;
//! what Entra must not send is refused whole, with SCIM's error.

mod common;

use common::Fixture;
use lifecycle_store::testing::Backend;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "scim-bulk-test-token-0123456789";
const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

async fn start(backend: Backend) -> Fixture {
    let scim = format!(
        "public_url = \"https://lifecycle.example.com\"
{}",
        lifecycle_config::scim::example_mapping()
    );
    common::start(backend, TOKEN, &scim).await
}

/// One answer: status, headers, JSON body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Fixture {
    async fn upload_as(&self, content_type: &str, body: &Value) -> Answer {
        let res = self
            .http
            .post(format!("{}/bulkUpload", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        let text = res.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }
    async fn upload(&self, body: &Value) -> Answer {
        self.upload_as("application/scim+json", body).await
    }
    async fn status(&self, id: &str) -> Value {
        let res = self.http.get(format!("{}/bulkUpload/{id}", self.base)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        res.json().await.unwrap()
    }
    /// The request's results once every operation has one.
    async fn done(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status(id).await;
            if s["status"] == "done" {
                return s;
            }
            assert!(Instant::now() < deadline, "the bulk request is not done: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    async fn count(&self, sql: &str) -> i64 {
        let backend = self.db.get_database_backend();
        let row = self.db.query_one(Statement::from_string(backend, sql.to_string())).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
    async fn events(&self, event_type: &str) -> i64 {
        self.count(&format!("SELECT COUNT(*) AS n FROM events WHERE source = 'scim' AND event_type = '{event_type}'"))
            .await
    }
    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// A person as Entra's example sends them: core user and enterprise extension.
fn person(i: usize, active: bool) -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "externalId": format!("E{i:04}"),
        "userName": format!("person{i}@contoso.com"),
        "name": {"familyName": format!("Family{i}"), "givenName": format!("Given{i}")},
        "displayName": format!("Given{i} Family{i}"),
        "emails": [{"type": "work", "value": format!("person{i}@contoso.com"), "primary": true}],
        "active": active,
        "title": "Engineer",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": format!("E{i:04}"),
            "department": "Engineering"
        }
    })
}

fn bulk(people: Vec<Value>) -> Value {
    let ops: Vec<Value> = people
        .into_iter()
        .enumerate()
        .map(|(i, data)| json!({"method": "POST", "bulkId": format!("op-{i}"), "path": "/Users", "data": data}))
        .collect();
    json!({"schemas": [BULK_REQUEST], "Operations": ops})
}

async fn fifty_operations_fifty_results_and_nothing_twice(backend: Backend) {
    let f = start(backend).await;
    let request = bulk((0..50).map(|i| person(i, true)).collect());
    let first = f.upload(&request).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let id = first.body["id"].as_str().unwrap().to_string();
    let location = first.headers["location"].to_str().unwrap();
    assert_eq!(location, format!("https://lifecycle.example.com/scim/v2/bulkUpload/{id}"));
    assert_eq!(first.headers["content-type"], "application/scim+json");

    let done = f.done(&id).await;
    let ops = done["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 50, "{done}");
    assert_eq!(done["totals"], json!({"operations": 50, "succeeded": 50, "failed": 0, "pending": 0}));
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["bulkId"], format!("op-{i}"), "results keep the request's order");
        assert_eq!((op["status"].as_str(), op["events"].as_i64()), (Some("201"), Some(1)), "{op}");
        assert!(op["location"].as_str().unwrap().starts_with("https://lifecycle.example.com/scim/v2/Users/"));
    }
    assert_eq!(f.events("joiner").await, 50);
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM scim_users").await, 50);

    // Entra (or a script) sends the same request again: the same id, nothing new.
    let again = f.upload(&request).await;
    assert_eq!((again.status, again.body["id"].as_str()), (202, Some(id.as_str())));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["status"], "done", "the first request's results");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM scim_bulk_requests").await, 1);
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM events").await, 50, "no new event");

    // The next upload is the same people, one of them gone: a new request, whose
    // 49 unchanged people are written again and change nothing, and one leaver.
    let mut people: Vec<Value> = (0..50).map(|i| person(i, true)).collect();
    people[7] = person(7, false);
    let next = f.upload(&bulk(people)).await;
    assert_eq!(next.status, 202);
    assert_ne!(next.body["id"], json!(id));
    let done = f.done(next.body["id"].as_str().unwrap()).await;
    let ops = done["Operations"].as_array().unwrap();
    assert!(ops.iter().all(|o| o["status"] == "200"), "each an update of the user Entra matched: {done}");
    let events: Vec<i64> = ops.iter().map(|o| o["events"].as_i64().unwrap()).collect();
    assert_eq!(events.iter().sum::<i64>(), 1);
    assert_eq!(events[7], 1);
    assert_eq!(f.events("leaver").await, 1);
    assert_eq!(f.events("joiner").await, 50);
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM scim_users").await, 50, "matched by externalId, none created");
    f.stop().await;
}

#[tokio::test]
async fn fifty_operations_fifty_results_and_nothing_twice_sqlite() {
    fifty_operations_fifty_results_and_nothing_twice(Backend::Sqlite).await;
}

#[tokio::test]
async fn fifty_operations_fifty_results_and_nothing_twice_postgres() {
    fifty_operations_fifty_results_and_nothing_twice(Backend::Postgres).await;
}

#[tokio::test]
async fn a_person_lifecycle_cannot_provision_fails_alone_with_scim_error() {
    let f = start(Backend::Sqlite).await;
    let mut nameless = person(1, true);
    nameless["name"] = json!({"familyName": "Family1"});
    let mut taken = person(2, true);
    // Another externalId with person 0's userName: a create refused as SCIM's POST refuses it.
    taken["userName"] = json!("person0@contoso.com");
    let a = f.upload(&bulk(vec![person(0, true), nameless, taken])).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let done = f.done(a.body["id"].as_str().unwrap()).await;
    assert_eq!(done["totals"], json!({"operations": 3, "succeeded": 1, "failed": 2, "pending": 0}));
    let ops = &done["Operations"];
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["state"], "failed");
    assert_eq!(ops[1]["status"], "400");
    assert_eq!(ops[1]["response"]["scimType"], "invalidValue");
    assert!(ops[1]["response"]["detail"].as_str().unwrap().contains("name.givenName"), "{done}");
    assert_eq!((ops[2]["status"].as_str(), ops[2]["response"]["scimType"].as_str()), (Some("409"), Some("uniqueness")));
    assert_eq!(f.events("joiner").await, 1);
    f.stop().await;
}

#[tokio::test]
async fn what_entra_must_not_send_is_refused_whole_and_nothing_is_stored() {
    let f = start(Backend::Sqlite).await;
    let refused = |a: &Answer| (a.status, a.body["scimType"].as_str().map(str::to_string));
    let too_many = f.upload(&bulk((0..51).map(|i| person(i, true)).collect())).await;
    assert_eq!(refused(&too_many), (400, Some("tooMany".into())), "{}", too_many.body);
    assert_eq!(too_many.body["schemas"][0], lifecycle_scim::ERROR_SCHEMA);

    let mut patch = bulk(vec![person(0, true), person(1, true)]);
    patch["Operations"][1]["method"] = json!("PATCH");
    let a = f.upload(&patch).await;
    assert_eq!(refused(&a), (400, Some("invalidValue".into())));
    assert!(a.body["detail"].as_str().unwrap().contains("Operations[1].method"));

    let mut groups = bulk(vec![person(0, true)]);
    groups["Operations"][0]["path"] = json!("/Groups");
    assert_eq!(refused(&f.upload(&groups).await), (400, Some("invalidPath".into())));

    let plain = f.upload_as("application/json", &bulk(vec![person(0, true)])).await;
    assert_eq!(refused(&plain), (415, Some("invalidSyntax".into())));

    let unauthenticated = f
        .http
        .post(format!("{}/bulkUpload", f.base))
        .header("content-type", "application/scim+json")
        .body(bulk(vec![person(0, true)]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);

    let unknown = f.http.get(format!("{}/bulkUpload/nope", f.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM scim_bulk_requests").await, 0);
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM events").await, 0);
    f.stop().await;
}
