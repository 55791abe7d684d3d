//! Pipedrive deals, through API v2 (shared/vendor-specs/pipedrive/client-nodejs-32.2.1:
//! `src_versions_v2_api_deals-api.ts` getDeals, getDeal, updateDeal): filtering, cursor paging,
//! `owner_id`, reassignment; and the v1 deals endpoints gone (out of support since 2026-08-01).

use crate::common::{TestSim, ADMIN_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn seed_deals(sim: &TestSim, owner: &str, n: usize, status: &str) {
    let deals: Vec<Value> =
        (0..n).map(|i| json!({"title": format!("{owner} deal {i}"), "owner_email": owner, "status": status})).collect();
    sim.seed(json!({"pipedrive": {"deals": deals}})).await;
}

fn ids(page: &Value) -> Vec<i64> {
    page["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect()
}

/// getDeals as the SDK sends it: `owner_id`, `status`, `limit` (at most 500) and the `cursor`
/// from `additional_data.next_cursor`, null on the last page.
#[tokio::test]
async fn cursor_paging_walks_more_than_500_deals() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 1203, "open").await;
    seed_deals(&sim, "admin@sim.example", 7, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;

    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v2/deals?owner_id={grace}&status=open&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = sim.pd_get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        seen.extend(ids(&r.body));
        pages += 1;
        match &r.body["additional_data"]["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => break,
            other => panic!("next_cursor {other}"),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 1203);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ordered by id");

    // Descending by id, and the default page of 100.
    let r = sim.pd_get(&format!("/api/v2/deals?owner_id={grace}&sort_by=id&sort_direction=desc")).await;
    let page = ids(&r.body);
    assert_eq!(page.len(), 100);
    assert_eq!(page[0], *seen.last().unwrap());
}

/// Reassigning the deals of page one does not shift page two: the cursor names a deal, not an
/// offset.
#[tokio::test]
async fn a_cursor_survives_reassigning_the_page_before_it() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "admin@sim.example", 5, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let first = sim.pd_get("/api/v2/deals?owner_id=1&limit=2").await.body;
    for id in ids(&first) {
        let r = sim.pd_send(Method::PATCH, &format!("/api/v2/deals/{id}"), json!({"owner_id": grace})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let cursor = first["additional_data"]["next_cursor"].as_str().unwrap().to_string();
    let rest = sim.pd_get(&format!("/api/v2/deals?owner_id=1&limit=2&cursor={cursor}")).await.body;
    let all: Vec<i64> =
        sim.state().await["pipedrive"]["deals"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(ids(&rest), all[2..4]);
}

#[tokio::test]
async fn an_empty_page_is_an_empty_list_and_filters_combine() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 3, "open").await;
    seed_deals(&sim, "grace@example.com", 2, "won").await;
    seed_deals(&sim, "grace@example.com", 1, "deleted").await;
    seed_deals(&sim, "admin@sim.example", 4, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let count = |v: &Value| v["data"].as_array().unwrap().len();
    assert_eq!(count(&sim.pd_get(&format!("/api/v2/deals?owner_id={grace}&status=open")).await.body), 3);
    assert_eq!(count(&sim.pd_get(&format!("/api/v2/deals?owner_id={grace}")).await.body), 5, "deleted left out");
    assert_eq!(count(&sim.pd_get(&format!("/api/v2/deals?owner_id={grace}&status=deleted")).await.body), 1);
    assert_eq!(count(&sim.pd_get(&format!("/api/v2/deals?owner_id={grace}&status=won,lost")).await.body), 2);
    assert_eq!(count(&sim.pd_get("/api/v2/deals?status=open").await.body), 7);
    let none = sim.pd_get("/api/v2/deals?owner_id=424242").await.body;
    assert_eq!(none, json!({"success": true, "data": [], "additional_data": {"next_cursor": null}}));
    let some = ids(&sim.pd_get("/api/v2/deals?status=open").await.body);
    let picked = sim.pd_get(&format!("/api/v2/deals?ids={},{}", some[0], some[6])).await.body;
    assert_eq!(ids(&picked), [some[0], some[6]]);
}

/// What getDeals does not have, or does not allow, is a 400 in Pipedrive's shape.
#[tokio::test]
async fn get_deals_refuses_what_the_definition_does_not_have() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 2, "open").await;
    for query in [
        "user_id=1001",
        "start=0",
        "limit=501",
        "limit=0",
        "limit=ten",
        "owner_id=grace",
        "status=sideways",
        "status=all_not_deleted",
        "sort_by=title",
        "sort_direction=up",
        "cursor=not-a-cursor",
        "include_fields=everything",
        "updated_since=yesterday",
        "owner_id=1&owner_id=2",
    ] {
        let r = sim.pd_get(&format!("/api/v2/deals?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!((r.body["success"].clone(), r.body["errorCode"].clone()), (json!(false), json!(400)), "{query}");
    }
    let r = sim.pd_get("/api/v2/deals?limit=500&include_fields=products_count,notes_count").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"][0]["products_count"], 0);
}

/// A deal as API v2 shows it: `owner_id` an integer (v1's `user_id` object is gone).
#[tokio::test]
async fn a_deal_has_an_integer_owner_id_and_patch_takes_owner_id() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "admin@sim.example", 1, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let deal = sim.pd_get("/api/v2/deals").await.body["data"][0].clone();
    let id = deal["id"].as_i64().unwrap();
    assert_eq!(deal["owner_id"], 1);
    assert!(deal.get("user_id").is_none(), "{deal}");
    assert_eq!((deal["status"].clone(), deal["is_deleted"].clone()), (json!("open"), json!(false)));
    assert!(deal["add_time"].as_str().unwrap().ends_with('Z'));

    let r = sim.pd_send(Method::PATCH, &format!("/api/v2/deals/{id}"), json!({"owner_id": grace})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["owner_id"], grace);
    let r = sim.pd_get(&format!("/api/v2/deals/{id}")).await;
    assert_eq!(r.body["data"]["owner_id"], grace);
    let r = sim.pd_get(&format!("/api/v2/deals/{id}?include_fields=activities_count")).await;
    assert_eq!(r.body["data"]["activities_count"], 0);
    assert_eq!(sim.pd_get(&format!("/api/v2/deals/{id}?fields=id")).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patch_is_partial_and_owner_history_only_grows_on_real_changes() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "admin@sim.example", 1, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let id = ids(&sim.pd_get("/api/v2/deals").await.body)[0];
    for _ in 0..2 {
        let r = sim.pd_send(Method::PATCH, &format!("/api/v2/deals/{id}"), json!({"owner_id": grace})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r =
        sim.pd_send(Method::PATCH, &format!("/api/v2/deals/{id}"), json!({"title": "Renamed", "label_ids": [3]})).await;
    assert_eq!(r.body["data"]["title"], "Renamed");
    assert_eq!(r.body["data"]["label_ids"], json!([3]));
    assert_eq!(r.body["data"]["owner_id"], grace, "partial update");

    let state = sim.state().await;
    let deal = &state["pipedrive"]["deals"][0];
    assert_eq!(deal["owner_history"], json!([1, grace]));
    assert_eq!((deal["user_id"].clone(), deal["owner_id"].clone()), (json!(grace), json!(grace)));
    let log = state["pipedrive"]["log"].as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e["action"] == "deal.update" && e["deal_id"] == id));
    assert_eq!(log[0]["previous_user_id"], 1);
    assert_eq!(log[0]["path"], format!("/api/v2/deals/{id}"));
    assert_eq!(log[1]["changed"], json!([]));
}

/// updateDeal's body is `UpdateDealRequest`: v1's `user_id` and anything else it lacks are 400s,
/// and so is an owner who cannot own deals.
#[tokio::test]
async fn patch_refuses_v1_fields_wrong_types_and_inactive_owners() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 1, "open").await;
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Gone", "email": "gone@example.com", "active_flag": false}
    ]}}))
    .await;
    let gone = sim.pd_user_id("gone@example.com").await;
    let id = ids(&sim.pd_get("/api/v2/deals").await.body)[0];
    for body in [
        json!({"user_id": 1}),
        json!({"owner_id": "1"}),
        json!({"owner_id": gone}),
        json!({"owner_id": 999_999}),
        json!({"status": "deleted"}),
        json!({"title": ""}),
        json!({"label_ids": ["a"]}),
        json!({"stage": 2}),
    ] {
        let r = sim.pd_send(Method::PATCH, &format!("/api/v2/deals/{id}"), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["success"], false);
    }
    let r = sim.pd_send(Method::PATCH, "/api/v2/deals/1", json!({"owner_id": 1})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["deals"][0]["owner_history"].as_array().unwrap().len(), 1, "nothing changed");
}

/// The v1 deals endpoints left the API (deprecated 2025-04-14, out of support 2026-08-01): the
/// simulator answers them as any path Pipedrive does not have. PUT on a v2 deal is no update.
#[tokio::test]
async fn v1_deals_are_gone() {
    let sim = TestSim::start().await;
    seed_deals(&sim, "grace@example.com", 1, "open").await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let id = ids(&sim.pd_get("/api/v2/deals").await.body)[0];
    for (method, path, body) in [
        (Method::GET, format!("/deals?user_id={grace}&status=open"), None),
        (Method::GET, format!("/deals/{id}"), None),
        (Method::PUT, format!("/deals/{id}"), Some(json!({"user_id": 1}))),
        (Method::PATCH, format!("/deals/{id}"), Some(json!({"user_id": 1}))),
    ] {
        let r = sim.pd(method.clone(), &path, Some(ADMIN_TOKEN), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} /api/v1{path}");
        assert_eq!(r.body["success"], false);
    }
    let r = sim.pd_send(Method::PUT, &format!("/api/v2/deals/{id}"), json!({"owner_id": 1})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["deals"][0]["user_id"], grace, "nothing moved");
}
