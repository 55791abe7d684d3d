//! Entra's API-driven inbound provisioning (docs/integrators/scim-entra.md) over
//! the real processes: a full upload of 50 people in Microsoft's documented
//! request shape is answered 202, each person becomes a joiner whose run
//! invites them at Calendly (`everyone`), the same upload sent again changes
//! nothing, and the next upload with one person inactive is their leaver.

use lifecycle_domain::RunState;
use lifecycle_e2e::sim::list;
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(180);
const TOKEN: &str = "e2e-scim-bulk-token-0123456789";
const PEOPLE: usize = 50;

struct Bulk {
    stack: Stack,
    _config: tempfile::TempDir,
}

async fn start(backend: Backend) -> Bulk {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scim.toml");
    // Everyone → Calendly (and groups no bulk user is in).
    let mapping = lifecycle_config::scim::example_mapping();
    std::fs::write(&file, format!("[scim]\ntokens = [\"{TOKEN}\"]\n{mapping}")).unwrap();
    // Calendly's budget (60 a minute) would pace 50 invitations over minutes; the pace is not
    // what this tests.
    let opts = StackOptions::new(backend, "scim-bulk")
        .env("LIFECYCLE_CONFIG", file.to_str().unwrap())
        .sim_arg("--no-rate-limits")
        .env("LIFECYCLE_VENDORS__CALENDLY__RATE_LIMIT__REQUESTS", "100000")
        .env("LIFECYCLE_VENDORS__CALENDLY__RATE_LIMIT__PER", "1s")
        .env("LIFECYCLE_WORKER__CONCURRENCY", "16");
    Bulk { stack: Stack::start(opts).await, _config: dir }
}

impl Bulk {
    /// Posts a bulk request: status, `Location`, whether replayed, and the body.
    async fn upload(&self, body: &Value) -> (u16, String, bool, Value) {
        let res = self
            .stack
            .http
            .post(format!("{}/scim/v2/bulkUpload", self.stack.producer_url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("the producer answers");
        let status = res.status().as_u16();
        let location = res.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_string();
        let replayed = res.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        (status, location, replayed, res.json().await.expect("SCIM answers JSON"))
    }

    /// The request's results once every operation has one.
    async fn results(&self, location: &str) -> Value {
        let url = format!("{}{location}", self.stack.producer_url);
        lifecycle_e2e::eventually(WAIT, "the bulk request's results", || async {
            let res = self.stack.http.get(&url).bearer_auth(TOKEN).send().await.ok()?;
            let body: Value = res.json().await.ok()?;
            (body["status"] == "done").then_some(body)
        })
        .await
    }

    async fn scim_events(&self, event_type: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let db = &self.stack.store;
        let sql = format!("SELECT COUNT(*) AS n FROM events WHERE source = 'scim' AND event_type = '{event_type}'");
        let row = db.query_one(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
}

/// A person as Microsoft's bulkUpload example sends them (core and enterprise schemas).
fn person(i: usize, active: bool) -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "externalId": format!("70{i:04}"),
        "userName": format!("bulk.person{i}@example.com"),
        "name": {"familyName": format!("Person{i}"), "givenName": "Bulk"},
        "displayName": format!("Bulk Person{i}"),
        "emails": [{"type": "work", "value": format!("bulk.person{i}@example.com"), "primary": true}],
        "active": active,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": format!("70{i:04}"),
            "department": "Finance"
        }
    })
}

fn bulk_request(people: Vec<Value>) -> Value {
    let ops: Vec<Value> = people
        .into_iter()
        .map(|data| {
            let bulk_id = data["externalId"].clone();
            json!({"method": "POST", "bulkId": bulk_id, "path": "/Users", "data": data})
        })
        .collect();
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
}

fn pending_invitations(state: &Value) -> usize {
    list(state, "calendly", "invitations")
        .into_iter()
        .filter(|i| i["email"].as_str().is_some_and(|e| e.starts_with("bulk.person")) && i["status"] == "pending")
        .count()
}

async fn an_entra_bulk_upload_provisions_each_person_once(backend: Backend) {
    let b = start(backend).await;
    let upload = bulk_request((0..PEOPLE).map(|i| person(i, true)).collect());
    let (status, location, replayed, body) = b.upload(&upload).await;
    assert_eq!(status, 202, "{body}");
    assert!(!replayed);
    assert_eq!(location, format!("/scim/v2/bulkUpload/{}", body["id"].as_str().unwrap()));

    let results = b.results(&location).await;
    assert_eq!(
        results["totals"],
        json!({"operations": PEOPLE, "succeeded": PEOPLE, "failed": 0, "pending": 0}),
        "{results}"
    );
    assert!(results["Operations"].as_array().unwrap().iter().all(|o| o["status"] == "201"));
    let runs = b.stack.wait_all(WAIT).await;
    assert_eq!(runs.len(), PEOPLE, "one Calendly joiner each");
    assert!(runs.iter().all(|r| r.state == RunState::Succeeded), "{}", b.stack.logs());
    assert_eq!(pending_invitations(&b.stack.sim_state().await), PEOPLE);

    // The client retries (a timeout on its side): the same id, nothing new.
    let (status, again, replayed, _) = b.upload(&upload).await;
    assert_eq!((status, again.as_str(), replayed), (202, location.as_str(), true));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(b.scim_events("joiner").await, PEOPLE as i64);
    assert_eq!(b.stack.runs().await.len(), PEOPLE);

    // The next full upload: person 3 has left, everyone else is as they were.
    let mut people: Vec<Value> = (0..PEOPLE).map(|i| person(i, true)).collect();
    people[3] = person(3, false);
    let (status, next, _, _) = b.upload(&bulk_request(people)).await;
    assert_eq!(status, 202);
    assert_ne!(next, location);
    let results = b.results(&next).await;
    let events: Vec<i64> =
        results["Operations"].as_array().unwrap().iter().map(|o| o["events"].as_i64().unwrap()).collect();
    assert_eq!((events.iter().sum::<i64>(), events[3]), (1, 1), "{results}");
    b.stack.wait_all(WAIT).await;
    assert_eq!(b.scim_events("leaver").await, 1);
    assert_eq!(pending_invitations(&b.stack.sim_state().await), PEOPLE - 1, "person 3's invitation is revoked");
}

both_databases!(an_entra_bulk_upload_provisions_each_person_once);
