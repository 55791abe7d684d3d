//! Injected faults: status, latency, drop, apply_then_fail; matching and counts.

use std::time::{Duration, Instant};

use crate::common::{TestSim, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn status_fault_answers_without_touching_state_for_count_requests() {
    let sim = TestSim::start().await;
    let id = sim
        .fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users",
                      "kind": "status", "status": 503, "count": 2}))
        .await["id"]
        .clone();
    assert!(id.is_u64());
    let listed = sim.control(Method::GET, "/_sim/faults", None).await;
    assert_eq!(listed["faults"][0]["remaining"], 2);
    assert_eq!(listed["faults"][0]["kind"], "status");

    let body = json!({"email": "ada@example.com"});
    for _ in 0..2 {
        let r = sim.pd_send(Method::POST, "/users", body.clone()).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.body["success"], false);
        assert_eq!(r.body["errorCode"], 503);
    }
    // GETs are not matched (method filter).
    assert_eq!(sim.pd_get("/users").await.status, StatusCode::OK);
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["users"].as_array().unwrap().len(), 2, "no user created");
    let r = sim.pd_send(Method::POST, "/users", body).await;
    assert_eq!(r.status, StatusCode::OK, "the fault is used up");
    let listed = sim.control(Method::GET, "/_sim/faults", None).await;
    assert_eq!(listed["faults"], json!([]));
}

#[tokio::test]
async fn status_429_fault_looks_like_pipedrive_rate_limiting_and_is_counted() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "pipedrive", "path": "/api/v1/users/**", "kind": "status", "status": 429})).await;
    let r = sim.pd_get("/users/find?term=grace").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body, json!({"success": false, "error": "Rate limit exceeded", "errorCode": 429}));
    assert!(r.headers.get("retry-after").is_none());
    assert_eq!(r.header_i64("x-ratelimit-limit"), 80);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    assert!(r.headers.contains_key("x-daily-requests-left"));
    // Seconds left in the 2 s window (Pipedrive: "the remaining window"), not a time.
    let reset = r.header_i64("x-ratelimit-reset");
    assert!((1..=2).contains(&reset), "{reset}");

    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["counters"]["rate_limited"], 1);
    let calls = sim.control(Method::GET, "/_sim/calls?vendor=pipedrive", None).await;
    assert_eq!(calls["calls"][0]["status"], 429);
    assert_eq!(calls["calls"][0]["fault"], "status");
}

#[tokio::test]
async fn faults_apply_before_auth() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "pipedrive", "kind": "status", "status": 502})).await;
    let r = sim.pd(Method::GET, "/users/me", Some("not-a-token"), None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn latency_fault_delays_then_proceeds_normally() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "pipedrive", "path": "/api/v1/users/me", "kind": "latency", "latency_ms": 300})).await;
    let started = Instant::now();
    let r = sim.pd_get("/users/me").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"]["id"], 1);
    let started = Instant::now();
    sim.pd_get("/users/me").await;
    assert!(started.elapsed() < Duration::from_millis(300), "count 1 by default");
}

#[tokio::test]
async fn drop_fault_gives_a_transport_error_not_a_status() {
    let sim = TestSim::start().await;
    // Warm a pooled keep-alive connection first: the drop must also work on a reused one.
    assert_eq!(sim.pd_get("/users/me").await.status, StatusCode::OK);
    sim.fault(json!({"vendor": "pipedrive", "method": "GET", "path": "/api/v1/users/*", "kind": "drop"})).await;
    let err = sim
        .http
        .get(sim.pd_url("/users/1"))
        .header("x-api-token", ADMIN_TOKEN)
        .send()
        .await
        .expect_err("the connection is dropped without a response");
    assert!(err.status().is_none());
    assert!(!err.is_timeout());

    // The client recovers on a new connection, and the call log shows the drop once.
    assert_eq!(sim.pd_get("/users/1").await.status, StatusCode::OK);
    let calls = sim.control(Method::GET, "/_sim/calls?vendor=pipedrive", None).await;
    let calls = calls["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1]["fault"], "drop");
    assert!(calls[1]["status"].is_null());
}

#[tokio::test]
async fn apply_then_fail_really_applies_and_logs_but_answers_the_error() {
    let sim = TestSim::start().await;
    let grace = sim.pd_user_id("grace@example.com").await;
    sim.fault(json!({"vendor": "pipedrive", "method": "PUT", "path": "/api/v1/users/*",
                     "kind": "apply_then_fail", "status": 500}))
        .await;
    let r = sim.pd_send(Method::PUT, &format!("/users/{grace}"), json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body["success"], false);

    let state = sim.state().await;
    let user = state["pipedrive"]["users"].as_array().unwrap().iter().find(|u| u["id"] == grace).unwrap().clone();
    assert_eq!(user["active_flag"], false, "the change happened");
    let log = state["pipedrive"]["log"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "user.deactivate");
    assert_eq!(log[0]["user_id"], grace);
}

#[tokio::test]
async fn apply_then_fail_can_drop_instead() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "pipedrive", "path": "/api/v1/users", "kind": "apply_then_fail", "then": "drop"})).await;
    let err = sim
        .http
        .post(sim.pd_url("/users"))
        .header("x-api-token", ADMIN_TOKEN)
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .expect_err("dropped");
    assert!(err.status().is_none());
    // Retrying the create now hits the duplicate check: the first attempt did happen.
    let r = sim.pd_send(Method::POST, "/users", json!({"email": "ada@example.com"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "user with this email already exists");
}

#[tokio::test]
async fn bad_fault_specs_are_400_and_faults_can_be_cleared() {
    let sim = TestSim::start().await;
    for spec in [
        json!({"vendor": "salesforce", "kind": "drop"}),
        json!({"vendor": "pipedrive", "kind": "explode"}),
        json!({"vendor": "pipedrive", "kind": "latency"}),
        json!({"vendor": "pipedrive", "kind": "drop", "then": "drop"}),
        json!({"vendor": "pipedrive", "kind": "status", "path": "/users/[", "status": 500}),
    ] {
        let r = sim.control_raw(Method::POST, "/_sim/faults", Some(spec.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{spec}");
    }
    sim.fault(json!({"vendor": "pipedrive", "kind": "drop", "count": 5})).await;
    sim.fault(json!({"vendor": "jira", "kind": "drop"})).await;
    sim.control(Method::DELETE, "/_sim/faults", None).await;
    assert_eq!(sim.pd_get("/users/me").await.status, StatusCode::OK);
    let listed = sim.control(Method::GET, "/_sim/faults", None).await;
    assert_eq!(listed["faults"], json!([]));
}
