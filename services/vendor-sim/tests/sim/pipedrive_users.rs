//! Pipedrive users: auth, admin-only writes, find, create, partial update, last admin.

use crate::common::{TestSim, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::json;

const REP_TOKEN: &str = "rep-token";

async fn with_rep(sim: &TestSim) -> i64 {
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Rita Rep", "email": "rita@example.com", "api_token": REP_TOKEN, "role": "Sales Rep"}
    ]}}))
    .await;
    sim.pd_user_id("rita@example.com").await
}

#[tokio::test]
async fn api_token_in_query_authenticates() {
    let sim = TestSim::start().await;
    let r = sim.pd(Method::GET, "/users/me", Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["data"]["id"], 1);
    assert_eq!(r.body["data"]["email"], "admin@sim.example");
    assert_eq!(r.body["data"]["is_admin"], 1);
    assert!(r.body["data"].get("api_token").is_none(), "tokens are never shown");
}

#[tokio::test]
async fn bearer_token_authenticates() {
    let sim = TestSim::start().await;
    let resp = sim.http.get(sim.pd_url("/users/me")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["name"], "Sim Admin");
}

#[tokio::test]
async fn unknown_or_missing_token_is_401_in_pipedrive_shape() {
    let sim = TestSim::start().await;
    let expected = json!({"success": false, "error": "unauthorized access", "errorCode": 401});
    let r = sim.pd(Method::GET, "/users", Some("nope"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, expected);
    assert!(r.headers.get("x-ratelimit-limit").is_none(), "no headers before auth");
    let r = sim.pd(Method::GET, "/users", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, expected);
}

#[tokio::test]
async fn custom_admin_token_replaces_the_default() {
    let sim = TestSim::start_with(lifecycle_vendor_sim::Config {
        pipedrive: lifecycle_vendor_sim::pipedrive::Flags { admin_token: "other-secret".into() },
        ..lifecycle_vendor_sim::Config::ephemeral()
    })
    .await;
    let r = sim.pd(Method::GET, "/users/me", Some("other-secret"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = sim.pd(Method::GET, "/users/me", Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn non_admin_token_is_403_on_user_and_role_writes_and_on_listing() {
    let sim = TestSim::start().await;
    let rita = with_rep(&sim).await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let manager = 2;
    let cases = [
        (Method::GET, "/users".to_owned(), None),
        (Method::POST, "/users".to_owned(), Some(json!({"name": "X", "email": "x@example.com"}))),
        (Method::PUT, format!("/users/{grace}"), Some(json!({"active_flag": false}))),
        (Method::POST, format!("/roles/{manager}/assignments"), Some(json!({"user_id": rita}))),
        (Method::DELETE, format!("/roles/{manager}/assignments"), Some(json!({"user_id": grace}))),
    ];
    for (method, path, body) in cases {
        let r = sim.pd(method.clone(), &path, Some(REP_TOKEN), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(r.body["success"], false);
        assert_eq!(r.body["errorCode"], 403);
        assert!(r.body["error"].as_str().unwrap().starts_with("You do not have permissions to"));
        assert!(r.headers.get("x-ratelimit-remaining").is_some(), "after auth");
    }
    // Nothing changed.
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["users"].as_array().unwrap().len(), 3);
    assert!(state["pipedrive"]["log"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn non_admin_get_user_returns_own_data_whatever_the_id() {
    let sim = TestSim::start().await;
    let rita = with_rep(&sim).await;
    let r = sim.pd(Method::GET, "/users/1", Some(REP_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"]["id"], rita);
    // An admin gets what it asked for.
    let r = sim.pd_get(&format!("/users/{rita}")).await;
    assert_eq!(r.body["data"]["email"], "rita@example.com");
    let r = sim.pd_get("/users/424242").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["errorCode"], 404);
}

#[tokio::test]
async fn deactivated_users_token_stops_working() {
    let sim = TestSim::start().await;
    let rita = with_rep(&sim).await;
    let r = sim.pd_send(Method::PUT, &format!("/users/{rita}"), json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = sim.pd(Method::GET, "/users/me", Some(REP_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn list_users_includes_inactive_users() {
    let sim = TestSim::start().await;
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Old Timer", "email": "old@example.com", "active_flag": false}
    ]}}))
    .await;
    let r = sim.pd_get("/users").await;
    let users = r.body["data"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    assert!(users.iter().any(|u| u["email"] == "old@example.com" && u["active_flag"] == false));
    assert_eq!(r.body["additional_data"]["pagination"]["more_items_in_collection"], false);
}

#[tokio::test]
async fn find_returns_partial_case_insensitive_matches() {
    let sim = TestSim::start().await;
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Ada Lovelace", "email": "ada@example.com"},
        {"name": "Adam Smith", "email": "ada.smith@example.com"}
    ]}}))
    .await;
    let r = sim.pd_get("/users/find?term=ADA@EXAMPLE&search_by_email=1").await;
    let emails: Vec<&str> = r.body["data"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["ada@example.com"]);
    // A prefix matches both: clients must filter partial matches themselves.
    let r = sim.pd_get("/users/find?term=ada&search_by_email=1").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    // Without search_by_email the name is searched.
    let r = sim.pd_get("/users/find?term=lovelace").await;
    assert_eq!(r.body["data"][0]["email"], "ada@example.com");
    let r = sim.pd_get("/users/find?term=example.com").await;
    assert!(r.body["data"].is_null(), "names do not contain the email");
}

#[tokio::test]
async fn find_without_match_answers_data_null() {
    let sim = TestSim::start().await;
    let r = sim.pd_get("/users/find?term=nobody@example.com&search_by_email=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"success": true, "data": null}));
    let r = sim.pd_get("/users/find").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn create_user_requires_name_and_email_and_defaults_active() {
    let sim = TestSim::start().await;
    let r = sim.pd_send(Method::POST, "/users", json!({"email": "a@example.com"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"].as_str().unwrap().contains("name"));
    assert!(r.body["error_info"].is_string());
    let r = sim.pd_send(Method::POST, "/users", json!({"name": "A"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"].as_str().unwrap().contains("email"));

    let r = sim.pd_send(Method::POST, "/users", json!({"name": "Ada Lovelace", "email": "ada@example.com"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let user = &r.body["data"];
    assert!(user["id"].as_i64().unwrap() > 1);
    assert_eq!(user["active_flag"], true);
    assert_eq!(user["is_admin"], 0);
    assert_eq!(user["role_id"], serde_json::Value::Null);
    assert!(user["created"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn email_is_unique_case_insensitively() {
    let sim = TestSim::start().await;
    let r = sim.pd_send(Method::POST, "/users", json!({"name": "Grace Again", "email": "GRACE@Example.com"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "user with this email already exists");
    // Also on update.
    sim.seed(json!({"pipedrive": {"users": [{"name": "Ada", "email": "ada@example.com"}]}})).await;
    let ada = sim.pd_user_id("ada@example.com").await;
    let r = sim.pd_send(Method::PUT, &format!("/users/{ada}"), json!({"email": "grace@EXAMPLE.com"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "user with this email already exists");
}

#[tokio::test]
async fn put_is_a_partial_update() {
    let sim = TestSim::start().await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let r = sim.pd_send(Method::PUT, &format!("/users/{grace}"), json!({"name": "Grace B. Hopper"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let user = &r.body["data"];
    assert_eq!(user["name"], "Grace B. Hopper");
    assert_eq!(user["email"], "grace@example.com");
    assert_eq!(user["active_flag"], true);
    assert_eq!(user["role_id"], 2, "role untouched");

    let r = sim.pd_send(Method::PUT, &format!("/users/{grace}"), json!({"active_flag": false})).await;
    assert_eq!(r.body["data"]["active_flag"], false);
    assert_eq!(r.body["data"]["name"], "Grace B. Hopper");

    let r = sim.pd_send(Method::PUT, "/users/999999", json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_deactivated() {
    let sim = TestSim::start().await;
    let r = sim.pd_send(Method::PUT, "/users/1", json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "Cannot deactivate the last admin of the company");
    assert_eq!(r.body["success"], false);
    let r = sim.pd_send(Method::PUT, "/users/1", json!({"is_admin": 0})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // With a second active admin, the first can go.
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Second Admin", "email": "admin2@example.com", "is_admin": 1, "api_token": "admin2"}
    ]}}))
    .await;
    let r = sim.pd_send(Method::PUT, "/users/1", json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    let second = sim.pd_user_id("admin2@example.com").await;
    let r = sim.pd(Method::PUT, &format!("/users/{second}"), Some("admin2"), Some(json!({"active_flag": false}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "now it is the last one");
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_in_the_envelope() {
    let sim = TestSim::start().await;
    let resp = sim
        .http
        .post(sim.pd_url("/users"))
        .query(&[("api_token", ADMIN_TOKEN)])
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let r = crate::common::into_reply(resp).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["success"], false);
    assert_eq!(r.body["errorCode"], 400);

    let grace = sim.pd_user_id("grace@example.com").await;
    for body in [json!({"active_flag": "false"}), json!({"name": 12}), json!({"role_id": "2"}), json!([1, 2])] {
        let r = sim.pd_send(Method::PUT, &format!("/users/{grace}"), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["errorCode"], 400);
    }
    let r = sim.pd_get("/users/abc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = sim.pd_get("/users?limit=lots").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
