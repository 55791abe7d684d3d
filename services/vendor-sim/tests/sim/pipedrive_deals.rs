//! Pipedrive deals: filtering, offset pagination, the user_id object quirk, reassignment.

use crate::common::TestSim;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn seed_deals(sim: &TestSim, owner: &str, n: usize, status: &str) {
    let deals: Vec<Value> =
        (0..n).map(|i| json!({"title": format!("{owner} deal {i}"), "owner_email": owner, "status": status})).collect();
    sim.seed(json!({"pipedrive": {"deals": deals}})).await;
}

#[tokio::test]
async fn pagination_walks_more_than_500_deals_with_next_start() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 1203, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;

    let mut start = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = sim.pd_get(&format!("/deals?user_id={grace}&status=open&start={start}&limit=1000")).await;
        assert_eq!(r.status, StatusCode::OK);
        let p = &r.body["additional_data"]["pagination"];
        assert_eq!(p["limit"], 500, "limit is clamped to 500");
        assert_eq!(p["start"], start);
        let data = r.body["data"].as_array().unwrap();
        seen.extend(data.iter().map(|d| d["id"].as_i64().unwrap()));
        pages += 1;
        if p["more_items_in_collection"] == true {
            start = p["next_start"].as_i64().unwrap();
        } else {
            assert!(p.get("next_start").is_none(), "next_start only when more");
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 1203);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ordered by id");
}

#[tokio::test]
async fn default_page_is_100_and_an_empty_page_is_data_null() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 150, "open").await;
    let r = sim.pd_get("/deals").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 100);
    assert_eq!(r.body["additional_data"]["pagination"]["next_start"], 100);
    let r = sim.pd_get("/deals?user_id=1").await;
    assert!(r.body["data"].is_null());
    assert_eq!(r.body["additional_data"]["pagination"]["more_items_in_collection"], false);
}

#[tokio::test]
async fn status_filter_and_user_filter_combine() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 3, "open").await;
    seed_deals(&sim, "grace@example.com", 2, "won").await;
    seed_deals(&sim, "grace@example.com", 1, "deleted").await;
    seed_deals(&sim, "admin@sim.example", 4, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let count = |v: &Value| v["data"].as_array().map_or(0, Vec::len);
    assert_eq!(count(&sim.pd_get(&format!("/deals?user_id={grace}&status=open")).await.body), 3);
    assert_eq!(count(&sim.pd_get(&format!("/deals?user_id={grace}")).await.body), 5);
    assert_eq!(count(&sim.pd_get(&format!("/deals?user_id={grace}&status=deleted")).await.body), 1);
    assert_eq!(count(&sim.pd_get("/deals?status=open").await.body), 7);
    let r = sim.pd_get("/deals?status=sideways").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn user_id_is_an_integer_in_requests_and_an_object_in_responses() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "admin@sim.example", 1, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let deal = sim.pd_get("/deals").await.body["data"][0].clone();
    let id = deal["id"].as_i64().unwrap();
    assert_eq!(deal["user_id"]["id"], 1);
    assert_eq!(deal["user_id"]["value"], 1);
    assert_eq!(deal["user_id"]["email"], "admin@sim.example");

    let r = sim.pd_send(Method::PUT, &format!("/deals/{id}"), json!({"user_id": grace})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"]["user_id"]["id"], grace);
    assert_eq!(r.body["data"]["user_id"]["name"], "Grace Hopper");
    assert_eq!(r.body["data"]["user_id"]["active_flag"], true);
    let r = sim.pd_get(&format!("/deals/{id}")).await;
    assert_eq!(r.body["data"]["user_id"]["id"], grace);
}

#[tokio::test]
async fn patch_reassigns_and_owner_history_only_grows_on_real_changes() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "admin@sim.example", 1, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let id = sim.pd_get("/deals").await.body["data"][0]["id"].as_i64().unwrap();
    for _ in 0..2 {
        let r = sim.pd_send(Method::PATCH, &format!("/deals/{id}"), json!({"user_id": grace})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = sim.pd_send(Method::PATCH, &format!("/deals/{id}"), json!({"title": "Renamed"})).await;
    assert_eq!(r.body["data"]["title"], "Renamed");
    assert_eq!(r.body["data"]["user_id"]["id"], grace, "partial update");

    let state = sim.state().await;
    let deal = &state["pipedrive"]["deals"][0];
    assert_eq!(deal["owner_history"], json!([1, grace]));
    assert_eq!(deal["user_id"], grace);
    let log = state["pipedrive"]["log"].as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e["action"] == "deal.update" && e["deal_id"] == id));
    assert_eq!(log[0]["previous_user_id"], 1);
    assert_eq!(log[1]["changed"], json!([]));
}

#[tokio::test]
async fn reassigning_to_an_unknown_or_inactive_user_is_400() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 1, "open").await;
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Gone", "email": "gone@example.com", "active_flag": false}
    ]}}))
    .await;
    let gone = sim.pd_user_id("gone@example.com").await;
    let id = sim.pd_get("/deals").await.body["data"][0]["id"].as_i64().unwrap();
    for owner in [gone, 999_999] {
        let r = sim.pd_send(Method::PUT, &format!("/deals/{id}"), json!({"user_id": owner})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "owner {owner}");
        assert_eq!(r.body["success"], false);
    }
    let r = sim.pd_send(Method::PUT, "/deals/1", json!({"user_id": 1})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = sim.pd_send(Method::PUT, &format!("/deals/{id}"), json!({"user_id": "1"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
