//! Pipedrive users (API v1): auth, admin-only writes, find, create, update, the last admin, and
//! requests refused where they leave the definition (shared/vendor-specs/pipedrive:
//! v1-openapi-2024-02.yaml and the SDK's users-api).

use crate::common::{into_reply, TestSim, ADMIN_TOKEN};
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

/// The SDK's way (27.0.0 on): the token in `x-api-token`, nothing in the query string.
#[tokio::test]
async fn the_x_api_token_header_authenticates_and_users_show_access_not_is_admin() {
    let sim = TestSim::start().await;
    let r = sim.pd(Method::GET, "/users/me", Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["success"], true);
    let me = &r.body["data"];
    assert_eq!(
        (me["id"].clone(), me["email"].clone(), me["is_you"].clone()),
        (json!(1), json!("admin@sim.example"), json!(true))
    );
    assert!(me.get("is_admin").is_none(), "is_admin left the API");
    let global = me["access"].as_array().unwrap().iter().find(|a| a["app"] == "global").expect("a global entry");
    assert_eq!(global["admin"], true);
    assert!(global["permission_set_id"].is_string());
    assert!(me.get("api_token").is_none(), "tokens are never shown");
    assert_eq!(me["created"].as_str().unwrap().len(), "YYYY-MM-DD HH:MM:SS".len(), "{me}");
}

#[tokio::test]
async fn the_api_token_query_parameter_and_bearer_still_authenticate() {
    let sim = TestSim::start().await;
    let url = sim.pd_url("/users/me");
    let r = sim.http.get(&url).query(&[("api_token", ADMIN_TOKEN)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the v1 definition's own scheme");
    let resp = sim.http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
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
        (Method::POST, "/users".to_owned(), Some(json!({"email": "x@example.com"}))),
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
    assert_eq!(r.body["data"]["is_you"], false);
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

/// getUsers has no parameters and no paging: every user in one answer, and `start`/`limit`
/// (the guide's paging) refused.
#[tokio::test]
async fn list_users_is_every_user_at_once_and_takes_no_paging() {
    let sim = TestSim::start().await;
    let crowd: Vec<_> =
        (0..700).map(|i| json!({"name": format!("Crowd {i}"), "email": format!("crowd{i}@example.com")})).collect();
    sim.seed(json!({"pipedrive": {"users": crowd}})).await;
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Old Timer", "email": "old@example.com", "active_flag": false}
    ]}}))
    .await;
    let r = sim.pd_get("/users").await;
    let users = r.body["data"].as_array().unwrap();
    assert_eq!(users.len(), 703);
    assert!(users.iter().any(|u| u["email"] == "old@example.com" && u["active_flag"] == false));
    assert!(r.body.get("additional_data").is_none(), "{}", r.body["additional_data"]);
    for query in ["start=0&limit=500", "limit=100", "updated_since=2026-01-01"] {
        let r = sim.pd_get(&format!("/users?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!((r.body["success"].clone(), r.body["errorCode"].clone()), (json!(false), json!(400)));
        assert!(r.body["error"].as_str().unwrap().starts_with("Unknown parameter"), "{}", r.body);
    }
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
    // Without search_by_email (or with 0) the name is searched.
    let r = sim.pd_get("/users/find?term=lovelace").await;
    assert_eq!(r.body["data"][0]["email"], "ada@example.com");
    let r = sim.pd_get("/users/find?term=example.com&search_by_email=0").await;
    assert_eq!(r.body["data"], json!([]), "names do not contain the email");
}

#[tokio::test]
async fn find_without_match_answers_an_empty_list_and_refuses_what_the_definition_lacks() {
    let sim = TestSim::start().await;
    let r = sim.pd_get("/users/find?term=nobody@example.com&search_by_email=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"success": true, "data": []}), "the definition's data is an array");
    for path in [
        "/users/find",
        "/users/find?term=ada&search_by_email=true",
        "/users/find?term=ada&exact_match=1",
        "/users/find?term=ada&term=bob",
    ] {
        let r = sim.pd_get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
}

/// addUser as the SDK documents it: `email` (required), `access[]`, `active_flag`; `name` was
/// removed in 2023 and is refused, as is anything else the schema lacks.
#[tokio::test]
async fn create_user_takes_email_access_and_active_flag_and_refuses_name() {
    let sim = TestSim::start().await;
    let r = sim
        .pd_send(
            Method::POST,
            "/users",
            json!({"email": "ada@example.com", "access": [{"app": "sales"}, {"app": "global", "admin": true}], "active_flag": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let user = &r.body["data"];
    assert!(user["id"].as_i64().unwrap() > 1);
    assert_eq!(user["active_flag"], true);
    assert_eq!(user["name"], "ada@example.com", "no name in the request: the address stands in");
    assert_eq!(user["access"][0]["app"], "sales");
    assert_eq!(user["access"][0]["admin"], false);
    assert_eq!(user["access"][1]["admin"], true);
    assert!(user.get("is_admin").is_none());
    assert!(user.get("role_id").is_none(), "no role yet (role_id is an integer, never null)");

    // The definition's default access: Sales, not admin; inactive when asked.
    let r = sim.pd_send(Method::POST, "/users", json!({"email": "bob@example.com", "active_flag": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["data"]["access"],
        json!([{"app": "sales", "admin": false, "permission_set_id": "sim-sales-regular"}])
    );
    assert_eq!(r.body["data"]["active_flag"], false);

    for body in [
        json!({"name": "Cy", "email": "cy@example.com", "active_flag": true}),
        json!({"email": "cy@example.com", "role_id": 1}),
        json!({"email": "cy@example.com", "is_admin": 1}),
        json!({"access": [{"app": "sales"}]}),
        json!({"email": "cy@example.com", "active_flag": 1}),
        json!({"email": "cy@example.com", "access": [{"admin": true}]}),
        json!({"email": "cy@example.com", "access": [{"app": "crm"}]}),
        json!({"email": "cy@example.com", "access": [{"app": "sales", "level": 3}]}),
        json!({"email": "not-an-address"}),
    ] {
        let r = sim.pd_send(Method::POST, "/users", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["success"], false);
        assert!(r.body["error_info"].is_string());
    }
    let state = sim.state().await;
    assert!(!state["pipedrive"]["users"].as_array().unwrap().iter().any(|u| u["email"] == "cy@example.com"));
}

#[tokio::test]
async fn email_is_unique_case_insensitively() {
    let sim = TestSim::start().await;
    let r = sim.pd_send(Method::POST, "/users", json!({"email": "GRACE@Example.com"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "user with this email already exists");
}

/// updateUser takes `active_flag` (required) and nothing else.
#[tokio::test]
async fn put_takes_only_active_flag() {
    let sim = TestSim::start().await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let r = sim.pd_send(Method::PUT, &format!("/users/{grace}"), json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    let user = &r.body["data"];
    assert_eq!(user["active_flag"], false);
    assert_eq!(user["name"], "Grace Hopper");
    assert_eq!(user["role_id"], 2, "role untouched");

    for body in [
        json!({}),
        json!({"name": "Grace B. Hopper"}),
        json!({"active_flag": true, "email": "g@example.com"}),
        json!({"active_flag": "false"}),
        json!({"active_flag": 0}),
        json!({"role_id": 1}),
        json!([1, 2]),
    ] {
        let r = sim.pd_send(Method::PUT, &format!("/users/{grace}"), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["errorCode"], 400);
    }
    let r = sim.pd_send(Method::PUT, "/users/999999", json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The last active admin (by `access[].admin`) cannot be deactivated.
#[tokio::test]
async fn the_last_active_admin_cannot_be_deactivated() {
    let sim = TestSim::start().await;
    let r = sim.pd_send(Method::PUT, "/users/1", json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "Cannot deactivate the last admin of the company");
    assert_eq!(r.body["success"], false);

    // An admin of another app (campaigns) is no company admin.
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Campaigner", "email": "camp@example.com", "access": [{"app": "campaigns", "admin": true}]}
    ]}}))
    .await;
    let r = sim.pd_send(Method::PUT, "/users/1", json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // With a second active admin (global), the first can go.
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Second Admin", "email": "admin2@example.com", "api_token": "admin2",
         "access": [{"app": "sales"}, {"app": "global", "admin": true}]}
    ]}}))
    .await;
    let r = sim.pd_send(Method::PUT, "/users/1", json!({"active_flag": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    let second = sim.pd_user_id("admin2@example.com").await;
    let r = sim.pd(Method::PUT, &format!("/users/{second}"), Some("admin2"), Some(json!({"active_flag": false}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "now it is the last one");
}

#[tokio::test]
async fn malformed_json_ids_and_params_are_400_in_the_envelope() {
    let sim = TestSim::start().await;
    let resp = sim
        .http
        .post(sim.pd_url("/users"))
        .header("x-api-token", ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let r = crate::common::into_reply(resp).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["success"], false);
    assert_eq!(r.body["errorCode"], 400);
    for path in ["/users/abc", "/users/me?verbose=1", "/users/1?fields=id", "/users/1/permissions?x=1"] {
        let r = sim.pd_get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
}

/// Paths the definition does not have, the old `/v1` layout included, are Pipedrive's 404.
#[tokio::test]
async fn unknown_paths_are_404_in_the_envelope() {
    let sim = TestSim::start().await;
    let base = sim.running.base_url(lifecycle_vendor_sim::Vendor::Pipedrive);
    for path in ["/v1/persons", "/v1/deals", "/api/v1/persons", "/api/v2/users", "/api/v3/deals", "/users/me"] {
        let r = sim.http.get(format!("{base}{path}")).header("x-api-token", ADMIN_TOKEN).send().await.unwrap();
        let r = crate::common::into_reply(r).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body["success"], false, "{path}");
    }
}

/// `https://api.pipedrive.com/v1`, the server Pipedrive's v1 definition names, is API v1 too:
/// the same users and roles under `/pipedrive/v1`, with the same auth, counted as Pipedrive's;
/// its deals are out of support there as well.
#[tokio::test]
async fn the_v1_server_of_the_definition_serves_users_and_roles_too() {
    let sim = TestSim::start().await;
    let url = |path: &str| format!("{}/pipedrive/v1{path}", sim.running.url());
    let find = |token: Option<&'static str>| {
        let req = sim.http.get(url("/users/find")).query(&[("term", "grace@example.com"), ("search_by_email", "1")]);
        match token {
            Some(t) => req.header("x-api-token", t),
            None => req,
        }
    };
    let r = into_reply(find(Some(ADMIN_TOKEN)).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let company = sim.pd_get("/users/find?term=grace@example.com&search_by_email=1").await;
    assert_eq!(r.body["data"], company.body["data"], "one tenant behind both addresses");
    assert_eq!(into_reply(find(None).send().await.unwrap()).await.status, StatusCode::UNAUTHORIZED);
    let deals = sim.http.get(url("/deals")).header("x-api-token", ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(deals.status(), StatusCode::NOT_FOUND);
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["counters"]["requests"], 4, "every request counted as Pipedrive's");
}
