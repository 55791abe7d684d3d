//! The SCIM endpoint in process (the producer's own `build`, its HTTP
//! listener on a free port) against a real database: SQLite, and PostgreSQL
//! where it matters (concurrent writes). No broker: events wait in the outbox.
//!
//! docs/contract.md §6: a retried create makes one event, concurrent PATCHes
//! to a group lose no membership, a 10,000-member group is listed in pages
//! without its members, and a filter can never widen a query.

mod common;

use common::Fixture;
use lifecycle_store::testing::Backend;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "scim-test-token-0123456789";
const SCIM: &str = "application/scim+json";

/// Sales → Pipedrive "Sales Rep", SOC → CrowdStrike falcon_analyst, everyone → Calendly.
const MAPPING: &str = lifecycle_config::scim::example_mapping();

async fn start(backend: Backend, mapping: &str) -> Fixture {
    common::start(backend, TOKEN, mapping).await
}

impl Fixture {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(TOKEN)
    }
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.header("content-type", SCIM).body(b.to_string());
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    async fn patch(&self, path: &str, ops: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(json!({"schemas": [lifecycle_scim::PATCH_OP], "Operations": ops})))
            .await
    }
    async fn count(&self, sql: &str) -> i64 {
        let backend = self.db.get_database_backend();
        let row = self.db.query_one(Statement::from_string(backend, sql.to_string())).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
    /// (event type, vendors) of every SCIM event, in order.
    async fn events(&self) -> Vec<(String, Vec<String>)> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all(Statement::from_string(
                backend,
                "SELECT event_type, payload FROM events WHERE source = 'scim' ORDER BY id".to_string(),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let payload: Value = serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap();
                let vendors = payload["apps"].as_object().unwrap().keys().cloned().collect();
                (r.try_get::<String>("", "event_type").unwrap(), vendors)
            })
            .collect()
    }
    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

fn user(name: &str) -> Value {
    json!({
        "schemas": [lifecycle_scim::USER_SCHEMA],
        "userName": format!("{name}@example.com"),
        "externalId": format!("ext-{name}"),
        "name": {"givenName": name, "familyName": "Test"},
        "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
        "active": true
    })
}

fn group(name: &str) -> Value {
    json!({"schemas": [lifecycle_scim::GROUP_SCHEMA], "displayName": name, "members": []})
}

#[tokio::test]
async fn a_retried_create_is_one_event_and_then_409_uniqueness() {
    let f = start(Backend::Sqlite, MAPPING).await;
    let (status, created) = f.post("/Users", user("ada")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["meta"]["version"], "W/\"1\"");
    assert!(created["meta"]["location"].as_str().unwrap().ends_with(created["id"].as_str().unwrap()));
    // Okta retries after a timeout; the userName's case does not make another user.
    let mut again = user("ada");
    again["userName"] = json!("ADA@example.com");
    for body in [user("ada"), again] {
        let (status, e) = f.post("/Users", body).await;
        assert_eq!(status, 409);
        assert_eq!((e["status"].as_str(), e["scimType"].as_str()), (Some("409"), Some("uniqueness")));
        assert_eq!(e["schemas"][0], lifecycle_scim::ERROR_SCHEMA);
    }
    assert_eq!(f.events().await, [("joiner".to_string(), vec!["calendly".to_string()])]);
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM scim_users").await, 1);
    // Its run waits in the outbox like any intake event's.
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM outbox").await, 1);
    // A PUT of the same user changes nothing: no version, no event.
    let id = created["id"].as_str().unwrap();
    let (status, same) = f.send(reqwest::Method::PUT, &format!("/Users/{id}"), Some(user("ada"))).await;
    assert_eq!((status, same["meta"]["version"].as_str()), (200, Some("W/\"1\"")));
    assert_eq!(f.events().await.len(), 1);
    f.stop().await;
}

#[tokio::test]
async fn okta_and_entra_patches_make_the_right_events() {
    let f = start(Backend::Sqlite, MAPPING).await;
    let (_, u) = f.post("/Users", user("grace")).await;
    let id = u["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");
    // A phone number: the resource changes, nobody's access does.
    let (status, r) = f
        .patch(&path, json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}]))
        .await;
    assert_eq!((status, r["phoneNumbers"][0]["value"].as_str()), (200, Some("+1 555")));
    assert_eq!(r["meta"]["version"], "W/\"2\"");
    // Entra: capitalised op, a string boolean.
    let (status, r) = f.patch(&path, json!([{"op": "Replace", "path": "active", "value": "False"}])).await;
    assert_eq!((status, &r["active"]), (200, &json!(false)));
    // Okta: path-less replace with a value object.
    let (status, _) = f.patch(&path, json!([{"op": "replace", "value": {"active": true}}])).await;
    assert_eq!(status, 200);
    // The same again (an IdP retry) changes nothing.
    let (_, r) = f.patch(&path, json!([{"op": "replace", "value": {"active": true}}])).await;
    assert_eq!(r["meta"]["version"], "W/\"4\"");
    let kinds: Vec<String> = f.events().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["joiner", "leaver", "joiner"]);
    // A stale If-Match is refused.
    let res = f
        .req(reqwest::Method::PATCH, &path)
        .header("content-type", "application/json")
        .header("if-match", "W/\"1\"")
        .body(json!({"schemas": [lifecycle_scim::PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "x"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    // Groups: joining Sales gives Pipedrive, SOC CrowdStrike; leaving Sales takes Pipedrive away.
    let (_, sales) = f.post("/Groups", group("Sales")).await;
    let (_, soc) = f.post("/Groups", group("SOC")).await;
    let sales = format!("/Groups/{}", sales["id"].as_str().unwrap());
    let soc = format!("/Groups/{}", soc["id"].as_str().unwrap());
    assert_eq!(f.patch(&sales, json!([{"op": "add", "path": "members", "value": [{"value": id}]}])).await.0, 200);
    assert_eq!(f.patch(&soc, json!([{"op": "Add", "path": "members", "value": [{"value": id}]}])).await.0, 200);
    let (_, me) = f.get(&path).await;
    assert_eq!(me["groups"].as_array().unwrap().len(), 2);
    assert_eq!(f.patch(&sales, json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}])).await.0, 200);
    let events = f.events().await;
    assert_eq!(
        events[3..],
        [
            ("joiner".to_string(), vec!["pipedrive".to_string()]),
            ("joiner".to_string(), vec!["crowdstrike".to_string()]),
            ("leaver".to_string(), vec!["pipedrive".to_string()]),
        ]
    );
    // A member id that names no user is left out; the others are added.
    let (status, _) =
        f.patch(&soc, json!([{"op": "add", "path": "members", "value": [{"value": "nobody"}, {"value": id}]}])).await;
    assert_eq!(status, 200);
    let (_, g) = f.get(&soc).await;
    let members: Vec<&str> = g["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(members, [id.as_str()]);
    // Deleting the user: one leaver for what they had.
    assert_eq!(f.send(reqwest::Method::DELETE, &path, None).await.0, 204);
    assert_eq!(f.get(&path).await.0, 404);
    let last = f.events().await.pop().unwrap();
    assert_eq!(last, ("leaver".to_string(), vec!["calendly".to_string(), "crowdstrike".to_string()]));
    f.stop().await;
}

async fn concurrent_patches_lose_no_membership(backend: Backend) {
    let f = start(backend, MAPPING).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let (status, u) = f.post("/Users", user(&format!("p{i}"))).await;
        assert_eq!(status, 201);
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    let (_, g) = f.post("/Groups", group("Sales")).await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let patches =
        ids.iter().map(|id| f.patch(&path, json!([{"op": "add", "path": "members", "value": [{"value": id}]}])));
    for (status, body) in futures::future::join_all(patches).await {
        assert_eq!(status, 200, "{body}");
    }
    let (_, g) = f.get(&path).await;
    let members: std::collections::BTreeSet<&str> =
        g["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(members.len(), 50, "every concurrent add is kept");
    assert_eq!(g["meta"]["version"], "W/\"51\"");
    let pipedrive = f.events().await.into_iter().filter(|(_, v)| v == &["pipedrive"]).count();
    assert_eq!(pipedrive, 50, "one Pipedrive joiner per member");
    f.stop().await;
}

#[tokio::test]
async fn concurrent_patches_lose_no_membership_sqlite() {
    concurrent_patches_lose_no_membership(Backend::Sqlite).await;
}

#[tokio::test]
async fn concurrent_patches_lose_no_membership_postgres() {
    concurrent_patches_lose_no_membership(Backend::Postgres).await;
}

#[tokio::test]
async fn a_ten_thousand_member_group_is_listed_in_pages_without_its_members() {
    // No mapping: this is about storage and paging, not events.
    let f = start(Backend::Sqlite, "").await;
    let now = chrono::Utc::now();
    let ids: Vec<String> = (0..10_000).map(|i| format!("u{i:05}")).collect();
    let txn = sea_orm::TransactionTrait::begin(&f.db).await.unwrap();
    for id in &ids {
        let row = lifecycle_store::scim::UserRow {
            id: id.clone(),
            user_name: format!("{id}@example.com"),
            external_id: None,
            active: true,
            version: 1,
            resource: user(id).to_string(),
            applied: None,
        };
        lifecycle_store::scim::insert_user(&txn, row, now).await.unwrap();
    }
    txn.commit().await.unwrap();
    let (_, g) = f.post("/Groups", group("Everyone Big")).await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    for chunk in ids.chunks(2_000) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let (status, r) = f.patch(&path, json!([{"op": "add", "path": "members", "value": members}])).await;
        assert_eq!(status, 200, "{r}");
        assert!(r.get("members").is_none(), "a PATCH answer leaves the members out");
    }
    for i in 0..5 {
        assert_eq!(f.post("/Groups", group(&format!("small-{i}"))).await.0, 201);
    }
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM scim_members").await, 10_000);

    // Okta's and Entra's group listing: paged, without members.
    let started = Instant::now();
    let res =
        f.req(reqwest::Method::GET, "/Groups?excludedAttributes=members&startIndex=1&count=2").send().await.unwrap();
    let text = res.text().await.unwrap();
    let elapsed = started.elapsed();
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()), (Some(6), Some(2)));
    assert_eq!(page["Resources"][0]["displayName"], "Everyone Big");
    assert!(page["Resources"].as_array().unwrap().iter().all(|g| g.get("members").is_none()));
    assert!(text.len() < 2_000, "a page without members is small: {} bytes", text.len());
    assert!(elapsed < Duration::from_secs(2), "listing took {elapsed:?}");
    let (_, rest) = f.get("/Groups?excludedAttributes=members&startIndex=3&count=100").await;
    assert_eq!((rest["startIndex"].as_u64(), rest["itemsPerPage"].as_u64()), (Some(3), Some(4)));
    // Users in pages of the server's bound, the last page short.
    let (_, users) = f.get("/Users?startIndex=9951&count=1000").await;
    assert_eq!((users["totalResults"].as_u64(), users["itemsPerPage"].as_u64()), (Some(10_000), Some(50)));
    let (_, users) = f.get("/Users?count=1000").await;
    assert_eq!(users["itemsPerPage"].as_u64(), Some(200), "count is bounded by [scim] max_page_size");
    // The group itself, asked for, has every member.
    let (_, whole) = f.get(&path).await;
    assert_eq!(whole["members"].as_array().unwrap().len(), 10_000);
    // Entra's membership check.
    let gid = g["id"].as_str().unwrap();
    let (_, hit) = f
        .get(&format!("/Groups?excludedAttributes=members&filter=id eq \"{gid}\" and members[value eq \"u09999\"]"))
        .await;
    assert_eq!(hit["totalResults"], 1);
    let (_, miss) = f
        .get(&format!("/Groups?excludedAttributes=members&filter=id eq \"{gid}\" and members[value eq \"nobody\"]"))
        .await;
    assert_eq!(miss["totalResults"], 0);
    f.stop().await;
}

#[tokio::test]
async fn filters_cannot_be_injected() {
    let f = start(Backend::Sqlite, "").await;
    for n in ["alice", "bob"] {
        assert_eq!(f.post("/Users", user(n)).await.0, 201);
    }
    let q = |filter: &str| {
        let url = reqwest::Url::parse_with_params("http://x/Users", [("filter", filter)]).unwrap();
        format!("/Users?{}", url.query().unwrap())
    };
    for bad in [
        r#"userName eq "alice@example.com" or 1 eq 1"#,
        r#"userName eq "alice@example.com" or userName pr"#,
        r#"userName eq "x" ) or ( 1 eq 1"#,
        r#"userName co "a""#,
        "userName eq alice@example.com",
        r#"emails.value eq "alice@example.com""#,
    ] {
        let (status, e) = f.get(&q(bad)).await;
        assert_eq!((status, e["scimType"].as_str()), (400, Some("invalidFilter")), "{bad}");
    }
    for (literal, hits) in [
        (r#"userName eq "alice@example.com\" or \"1\"=\"1""#, 0),
        (r#"userName eq "' OR '1'='1""#, 0),
        (r#"userName eq "%""#, 0),
        (r#"userName eq "_lice@example.com""#, 0),
        (r#"userName eq "ALICE@example.com""#, 1),
        (r#"externalId eq "ext-bob""#, 1),
        (r#"externalId eq "EXT-BOB""#, 0),
    ] {
        let (status, r) = f.get(&q(literal)).await;
        assert_eq!((status, r["totalResults"].as_u64()), (200, Some(hits)), "{literal}");
    }
    f.stop().await;
}

#[tokio::test]
async fn auth_media_types_and_discovery() {
    let f = start(Backend::Sqlite, MAPPING).await;
    let res = f.http.get(format!("{}/Users", f.base)).bearer_auth("wrong-token-0123456789").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(res.headers()["content-type"], SCIM);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["status"], "401");
    // The intake's token is not SCIM's.
    let res = f.http.get(format!("{}/Users", f.base)).bearer_auth("intake-token-0123456789").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res =
        f.req(reqwest::Method::POST, "/Users").header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(res.status(), 415);
    let res = f
        .req(reqwest::Method::POST, "/Users")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (status, e) =
        f.post("/Users", json!({"schemas": [lifecycle_scim::USER_SCHEMA], "userName": "no-address"})).await;
    assert_eq!((status, e["scimType"].as_str()), (400, Some("invalidValue")));
    assert!(e["detail"].as_str().unwrap().contains("emails"), "{e}");
    let (status, spc) = f.get("/ServiceProviderConfig").await;
    assert_eq!((status, &spc["etag"]["supported"], &spc["bulk"]["supported"]), (200, &json!(true), &json!(false)));
    let (_, types) = f.get("/ResourceTypes").await;
    assert_eq!(types["totalResults"], 2);
    let (_, schemas) = f.get("/Schemas").await;
    assert_eq!(schemas["totalResults"], 3);
    assert_eq!(f.get(&format!("/Schemas/{}", lifecycle_scim::USER_SCHEMA)).await.0, 200);
    assert_eq!(f.get("/Nope").await.0, 404);
    f.stop().await;
}
