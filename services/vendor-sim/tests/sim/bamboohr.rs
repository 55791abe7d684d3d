//! BambooHR: Get Employee as lifecycle's receiver reads it (Basic auth with the API key, the
//! `fields` list, JSON or XML, BambooHR's error and rate-limit answers), seeding a change, and
//! the test sender's signed deliveries as a receiver sees them.

use std::sync::{Arc, Mutex};

use crate::common::{align_to_window_start, TestSim};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use hmac::{Hmac, Mac};
use lifecycle_vendor_sim::bamboohr::{
    api_url, ACTIVE_SALES_ID, COMPANY_ID, DEFAULT_API_KEY, NO_EMAIL_ID, TERMINATED_ID, WEBHOOK_SECRET,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

const FIELDS: &str =
    "firstName,lastName,workEmail,department,jobTitle,location,status,employmentHistoryStatus,hireDate,terminationDate";

async fn employee(sim: &TestSim, id: &str, key: Option<&str>, accept_json: bool) -> reqwest::Response {
    let url = format!("{}/v1/employees/{id}/?fields={FIELDS}", api_url(&sim.running.url()));
    let mut req = sim.http.get(url);
    if let Some(key) = key {
        req = req.basic_auth(key, Some("x"));
    }
    if accept_json {
        req = req.header("Accept", "application/json");
    }
    req.send().await.expect("request reaches the simulator")
}

fn error_message(resp: &reqwest::Response) -> String {
    resp.headers().get("x-bamboohr-error-message").expect("X-BambooHR-Error-Message").to_str().unwrap().to_owned()
}

#[tokio::test]
async fn get_employee_answers_the_requested_fields_as_strings() {
    let sim = TestSim::start().await;
    let resp = employee(&sim, &ACTIVE_SALES_ID.to_string(), Some(DEFAULT_API_KEY), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "id": "101", "firstName": "Ada", "lastName": "Lovelace", "workEmail": "ada.lovelace@example.com",
            "department": "Sales", "jobTitle": "Account Executive", "location": "London", "status": "Active",
            "employmentHistoryStatus": "Full-Time", "hireDate": "2024-03-01", "terminationDate": "0000-00-00"
        })
    );

    let no_email: Value =
        employee(&sim, &NO_EMAIL_ID.to_string(), Some(DEFAULT_API_KEY), true).await.json().await.unwrap();
    assert_eq!(no_email["workEmail"], Value::Null);
    let gone: Value =
        employee(&sim, &TERMINATED_ID.to_string(), Some(DEFAULT_API_KEY), true).await.json().await.unwrap();
    assert_eq!((gone["status"].as_str(), gone["terminationDate"].as_str()), (Some("Inactive"), Some("2026-11-30")));

    // Without the trailing slash too; only `id` without `fields`.
    let url = format!("{}/v1/employees/101", api_url(&sim.running.url()));
    let bare = sim.http.get(url).basic_auth(DEFAULT_API_KEY, Some("x")).header("Accept", "application/json");
    assert_eq!(bare.send().await.unwrap().json::<Value>().await.unwrap(), json!({"id": "101"}));
}

#[tokio::test]
async fn without_accept_json_the_answer_is_xml() {
    let sim = TestSim::start().await;
    let resp = employee(&sim, "101", Some(DEFAULT_API_KEY), false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().contains("xml"));
    let text = resp.text().await.unwrap();
    assert!(text.contains(r#"<employee id="101">"#) && text.contains(r#"<field id="firstName">Ada</field>"#), "{text}");
}

#[tokio::test]
async fn refusals_carry_the_reason_in_a_header() {
    let sim = TestSim::start().await;
    let none = employee(&sim, "101", None, true).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(!error_message(&none).is_empty());
    assert_eq!(employee(&sim, "101", Some("wrong-key"), true).await.status(), StatusCode::UNAUTHORIZED);
    let missing = employee(&sim, "999", Some(DEFAULT_API_KEY), true).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_message(&missing), "Employee not found");
    assert!(missing.bytes().await.unwrap().is_empty(), "errors have no body");
    let other_company = sim
        .http
        .get(format!("{}/bamboohr/api/gateway.php/other/v1/employees/101/", sim.running.url()))
        .basic_auth(DEFAULT_API_KEY, Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_company.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_seeded_change_replaces_the_employee() {
    let sim = TestSim::start().await;
    let seeded = sim
        .seed(json!({"bamboohr": {"employees": [
            {"id": 101, "firstName": "Ada", "lastName": "Lovelace", "workEmail": "ada.lovelace@example.com",
             "department": "Engineering", "status": "Active"},
            {"firstName": "Mary", "lastName": "Jackson", "workEmail": "mary@example.com", "hireDate": "2027-01-04"}
        ], "api_keys": ["second-key"]}}))
        .await;
    assert_eq!(seeded["bamboohr"]["employees"][0], json!({"id": "101", "replaced": true}));
    let new_id = seeded["bamboohr"]["employees"][1]["id"].as_str().unwrap().to_owned();
    let ada: Value = employee(&sim, "101", Some("second-key"), true).await.json().await.unwrap();
    assert_eq!(ada["department"], "Engineering");
    let mary: Value = employee(&sim, &new_id, Some(DEFAULT_API_KEY), true).await.json().await.unwrap();
    assert_eq!((mary["hireDate"].as_str(), mary["status"].as_str()), (Some("2027-01-04"), Some("Active")));

    let bad = sim
        .control_raw(
            Method::POST,
            "/_sim/seed",
            Some(json!({"bamboohr": {"employees": [
                {"firstName": "Ok", "lastName": "One"}, {"firstName": "Bad", "lastName": "Status", "status": "Paused"}
            ]}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let state = sim.state().await;
    assert_eq!(state["bamboohr"]["employees"].as_array().unwrap().len(), 5, "all or nothing");
    assert_eq!(state["bamboohr"]["company_id"], COMPANY_ID);
}

#[tokio::test]
async fn past_the_budget_a_read_is_429_with_retry_after() {
    let sim = TestSim::start().await;
    sim.control(Method::POST, "/_sim/config", Some(json!({"bamboohr": {"rate_limit": {"requests": 2}}}))).await;
    align_to_window_start(1000).await;
    for _ in 0..2 {
        assert_eq!(employee(&sim, "101", Some(DEFAULT_API_KEY), true).await.status(), StatusCode::OK);
    }
    let refused = employee(&sim, "101", Some(DEFAULT_API_KEY), true).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1).contains(&retry), "retry after {retry}");
}

#[tokio::test]
async fn injected_faults_look_like_bamboohr() {
    let sim = TestSim::start().await;
    sim.fault(
        json!({"vendor": "bamboohr", "path": "/api/gateway.php/*/v1/employees/**", "kind": "status", "status": 429}),
    )
    .await;
    sim.fault(
        json!({"vendor": "bamboohr", "path": "/api/gateway.php/*/v1/employees/**", "kind": "status", "status": 503}),
    )
    .await;
    let throttled = employee(&sim, "101", Some(DEFAULT_API_KEY), true).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    let down = employee(&sim, "101", Some(DEFAULT_API_KEY), true).await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!down.headers().contains_key("retry-after"), "unavailable is not a rate limit since 2026-09-16");
    assert_eq!(employee(&sim, "101", Some(DEFAULT_API_KEY), true).await.status(), StatusCode::OK);
}

/// A receiver that keeps what it got and answers 200 `{"ok": true}`.
async fn receiver() -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/v1/hr/bamboohr",
        post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push((headers, body));
                axum::Json(json!({"ok": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/hr/bamboohr"), got)
}

/// Recomputed here as BambooHR documents it, not with the simulator's own function.
fn expected_signature(body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(&[body, timestamp.as_bytes()].concat());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_sender_posts_a_signed_delivery_and_relays_the_answer() {
    let sim = TestSim::start().await;
    let (url, got) = receiver().await;
    let send = |extra: Value| {
        let mut body = json!({"url": url, "secret": WEBHOOK_SECRET, "type": "employee.updated",
                              "employee_id": "101", "company_id": COMPANY_ID});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let answer = sim.control(Method::POST, "/bamboohr/_sim/send", Some(send(json!({})))).await;
    assert_eq!(answer, json!({"status": 200, "body": {"ok": true}}));
    let (headers, body) = got.lock().unwrap().pop().unwrap();
    let ts = headers["x-bamboohr-timestamp"].to_str().unwrap().to_owned();
    let sent_at: i64 = ts.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    assert_eq!(headers["x-bamboohr-signature"].to_str().unwrap(), expected_signature(&body, &ts));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "employee.updated");
    assert_eq!(v["data"]["companyId"], COMPANY_ID);
    assert_eq!(v["data"]["employeeId"], "101");
    assert_eq!(headers["content-type"], "application/json");

    // A stale one: the override moves the header and the body's timestamp alike.
    sim.control(Method::POST, "/bamboohr/_sim/send", Some(send(json!({"timestamp": "2026-01-31T18:42:00Z"})))).await;
    let (headers, body) = got.lock().unwrap().pop().unwrap();
    assert_eq!(headers["x-bamboohr-timestamp"], "1769884920");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["timestamp"], "2026-01-31T18:42:00+0000");
    assert_eq!(headers["x-bamboohr-signature"].to_str().unwrap(), expected_signature(&body, "1769884920"));

    for tamper in ["body", "signature"] {
        sim.control(Method::POST, "/bamboohr/_sim/send", Some(send(json!({"tamper": tamper})))).await;
        let (headers, body) = got.lock().unwrap().pop().unwrap();
        let ts = headers["x-bamboohr-timestamp"].to_str().unwrap();
        assert_ne!(headers["x-bamboohr-signature"].to_str().unwrap(), expected_signature(&body, ts), "{tamper}");
    }

    let unreachable =
        sim.control_raw(Method::POST, "/bamboohr/_sim/send", Some(send(json!({"url": "http://127.0.0.1:9/x"})))).await;
    assert_eq!(unreachable.status, StatusCode::BAD_GATEWAY);
    let bad = sim.control_raw(Method::POST, "/bamboohr/_sim/send", Some(send(json!({"url": "ftp://x"})))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
