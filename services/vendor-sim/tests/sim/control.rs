//! Control endpoints: state and log ordering, reset, seed, call log, stubs, shutdown.

use crate::common::{TestSim, ADMIN_TOKEN};
use lifecycle_vendor_sim::Vendor;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn log_proves_deals_were_reassigned_before_the_user_was_deactivated() {
    let sim = TestSim::start().await;
    let seeded = sim
        .seed(json!({"pipedrive": {
            "users": [{"name": "Leaving Larry", "email": "larry@example.com", "role": "Sales Rep"}],
            "deals": [
                {"title": "A", "owner_email": "larry@example.com"},
                {"title": "B", "owner_email": "larry@example.com"}
            ]
        }}))
        .await;
    let larry = seeded["pipedrive"]["users"][0]["id"].as_i64().unwrap();
    let deal_ids: Vec<i64> =
        seeded["pipedrive"]["deals"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    let grace = sim.pd_user_id("grace@example.com").await;

    for id in &deal_ids {
        let r = sim.pd_send(Method::PATCH, &format!("/api/v2/deals/{id}"), json!({"owner_id": grace})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = sim.pd_send(Method::PUT, &format!("/users/{larry}"), json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::OK);

    let state = sim.state().await;
    let log = state["pipedrive"]["log"].as_array().unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["deal.update", "deal.update", "user.deactivate"]);
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(log[2]["user_id"], larry);
    assert_eq!(log[2]["method"], "PUT");
    assert_eq!(log[2]["path"], format!("/api/v1/users/{larry}"));
    assert_eq!(log[2]["changed"], json!(["active_flag"]));
    assert!(log[2]["at"].as_str().unwrap().ends_with('Z'));
    let text = serde_json::to_string(&state).unwrap();
    assert!(!text.contains(ADMIN_TOKEN), "tokens never appear in state");

    let counters = &state["pipedrive"]["counters"];
    assert_eq!(counters["by_route"]["PATCH /api/v2/deals/{id}"], 2);
    assert_eq!(counters["by_route"]["PUT /api/v1/users/{id}"], 1);
    assert_eq!(counters["requests"], 3);
    for vendor in ["crowdstrike", "jira", "calendly", "circleci"] {
        assert!(state[vendor]["counters"].is_object(), "{vendor}");
        assert!(state[vendor]["log"].is_array(), "{vendor}");
    }
}

#[tokio::test]
async fn reset_empties_everything_but_the_admin_and_its_token() {
    let sim = TestSim::start().await;
    sim.seed(json!({"pipedrive": {"deals": [{"title": "A", "owner_email": "grace@example.com"}]}})).await;
    sim.pd_send(Method::PUT, "/users/1", json!({"active_flag": true})).await;
    sim.fault(json!({"vendor": "pipedrive", "kind": "drop", "path": "/never"})).await;

    let r = sim.control(Method::POST, "/_sim/reset", None).await;
    assert_eq!(r["fixture"], "empty");
    let state = sim.state().await;
    let pd = &state["pipedrive"];
    assert_eq!(pd["users"].as_array().unwrap().len(), 1);
    assert_eq!(pd["users"][0]["id"], 1);
    assert_eq!(pd["users"][0]["name"], "Sim Admin");
    assert_eq!(pd["roles"], json!([]));
    assert_eq!(pd["deals"], json!([]));
    assert_eq!(pd["log"], json!([]));
    assert_eq!(pd["counters"]["requests"], 0);
    let faults = sim.control(Method::GET, "/_sim/faults", None).await;
    assert_eq!(faults["faults"], json!([]));
    let calls = sim.control(Method::GET, "/_sim/calls", None).await;
    assert_eq!(calls["calls"], json!([]));
    assert_eq!(sim.pd_get("/users/me").await.status, StatusCode::OK, "admin token still works");

    sim.control(Method::POST, "/_sim/reset", Some(json!({"fixture": "default"}))).await;
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["users"].as_array().unwrap().len(), 2);
    assert_eq!(state["pipedrive"]["roles"].as_array().unwrap().len(), 3);
    assert_eq!(sim.pd_user_id("grace@example.com").await, 1001, "ids are deterministic");

    let bad = sim.control_raw(Method::POST, "/_sim/reset", Some(json!({"fixture": "lots"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn empty_fixture_has_only_the_credential_owner() {
    let sim = TestSim::start_empty().await;
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["users"].as_array().unwrap().len(), 1);
    assert_eq!(state["pipedrive"]["roles"], json!([]));
    let r = sim.pd_get("/roles").await;
    assert_eq!(r.body["data"], json!([]));
}

#[tokio::test]
async fn seed_is_additive_and_returns_what_it_created() {
    let sim = TestSim::start().await;
    let out = sim
        .seed(json!({"pipedrive": {
            "roles": [{"name": "Support"}],
            "users": [
                {"name": "Sam Support", "email": "sam@example.com", "role": "Support", "api_token": "sam"},
                {"name": "Una Boss", "email": "una@example.com", "is_admin": true, "role_id": 3}
            ],
            "deals": [{"title": "Big one", "user_id": 1, "status": "won", "value": 5000}]
        }}))
        .await;
    let pd = &out["pipedrive"];
    let support_id = pd["roles"][0]["id"].as_i64().unwrap();
    assert_eq!(pd["roles"][0]["name"], "Support");
    assert_eq!(pd["users"][0]["role_id"], support_id);
    assert_eq!(pd["users"][0]["has_api_token"], true);
    assert!(pd["users"][0].get("api_token").is_none());
    assert_eq!(pd["users"][1]["is_admin"], 1);
    assert_eq!(pd["deals"][0]["status"], "won");
    assert_eq!(pd["deals"][0]["value"], 5000);
    assert_eq!(pd["deals"][0]["user_id"]["id"], 1);

    let again = sim.seed(json!({"pipedrive": {"users": [{"name": "Third", "email": "third@example.com"}]}})).await;
    assert!(again["pipedrive"]["users"][0]["id"].as_i64().unwrap() > pd["users"][1]["id"].as_i64().unwrap());
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["users"].as_array().unwrap().len(), 5);
    assert_eq!(state["pipedrive"]["role_assignments"].as_array().unwrap().len(), 3);

    let r = sim.pd(Method::GET, "/users/me", Some("sam"), None).await;
    assert_eq!(r.body["data"]["email"], "sam@example.com");
}

#[tokio::test]
async fn bad_seeds_are_400_and_change_nothing() {
    let sim = TestSim::start().await;
    for body in [
        json!({"salesforce": {}}),
        json!({"pipedrive": {"groups": []}}),
        json!({"pipedrive": {"users": [{"name": "No Email"}]}}),
        json!({"pipedrive": {"users": [{"name": "G", "email": "grace@example.com"}]}}),
        json!({"pipedrive": {"users": [{"name": "R", "email": "r@example.com", "role": "Nope"}]}}),
        json!({"pipedrive": {"deals": [{"title": "Orphan", "owner_email": "nobody@example.com"}]}}),
        json!({"pipedrive": {"users": [{"name": "T", "email": "t@example.com", "api_token": ADMIN_TOKEN}]}}),
        json!({"jira": {"users": [{"accountId": "x"}]}}),
        json!([1, 2, 3]),
    ] {
        let r = sim.control_raw(Method::POST, "/_sim/seed", Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.body["error"].is_string());
    }
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn call_log_keeps_every_request_in_order_without_secrets() {
    let sim = TestSim::start().await;
    sim.pd_get("/users/find?term=grace&search_by_email=1").await;
    sim.pd(Method::GET, "/users", Some("wrong"), None).await;
    sim.http.get(format!("{}/user/search", sim.running.base_url(Vendor::Jira))).send().await.unwrap();
    let all = sim.control(Method::GET, "/_sim/calls", None).await;
    let calls = all["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["vendor"], "pipedrive");
    assert_eq!(calls[0]["method"], "GET");
    assert_eq!(calls[0]["path"], "/api/v1/users/find");
    assert_eq!(calls[0]["status"], 200);
    assert!(calls[0]["at"].is_string());
    assert_eq!(calls[1]["status"], 401);
    assert_eq!(calls[2]["vendor"], "jira");
    assert_eq!(calls[2]["status"], 401, "Jira wants credentials");
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(ADMIN_TOKEN));
    assert!(!text.contains("wrong"));

    let pd_only = sim.control(Method::GET, "/_sim/calls?vendor=pipedrive", None).await;
    assert_eq!(pd_only["calls"].as_array().unwrap().len(), 2);
    let bad = sim.control_raw(Method::GET, "/_sim/calls?vendor=nope", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let sim = TestSim::start().await;
    let r = sim.control_raw(Method::GET, "/salesforce/users", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = sim.pd_get("/persons").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["success"], false);
    let health = sim.control(Method::GET, "/_sim/health", None).await;
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = TestSim::start().await;
    let url = sim.running.url();
    sim.running.shutdown().await.expect("clean shutdown");
    let err = reqwest::Client::new().get(format!("{url}/_sim/health")).send().await;
    assert!(err.is_err());
}
