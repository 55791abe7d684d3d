//! Pipedrive roles (API v1): listing, assignment (one role per user), unassignment, permissions.

use crate::common::TestSim;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn default_fixture_roles_are_listed_with_assignment_counts() {
    let sim = TestSim::start().await;
    let r = sim.pd_get("/roles").await;
    assert_eq!(r.status, StatusCode::OK);
    let roles = r.body["data"].as_array().unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Sales Rep", "Sales Manager", "Admin"]);
    let manager = &roles[1];
    assert_eq!(manager["assignment_count"], "1", "a string, as getRoles has it");
    assert_eq!(manager["active_flag"], true);
    assert_eq!(manager["level"], 1);
    assert!(manager.get("parent_role_id").is_none());
    let pagination = &r.body["additional_data"]["pagination"];
    assert_eq!(pagination["start"], 0);
    assert_eq!(pagination["more_items_in_collection"], false);
    assert!(pagination.get("next_start").is_none(), "getRoles has no next_start");

    let r = sim.pd_get("/roles?start=1&limit=1").await;
    assert_eq!(r.body["data"][0]["name"], "Sales Manager");
    assert_eq!(r.body["additional_data"]["pagination"]["more_items_in_collection"], true);
    for query in ["sort=name", "limit=x", "start=-1"] {
        assert_eq!(sim.pd_get(&format!("/roles?{query}")).await.status, StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn assigning_a_role_moves_the_user_out_of_the_previous_one() {
    let sim = TestSim::start().await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let r = sim.pd_send(Method::POST, "/roles/1/assignments", json!({"user_id": grace})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"success": true, "data": {"user_id": grace, "role_id": 1}}));

    let r = sim.pd_get(&format!("/users/{grace}/roleAssignments")).await;
    let assignments = r.body["data"].as_array().unwrap();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0]["role_id"], 1);
    assert_eq!(assignments[0]["user_id"], grace);
    assert_eq!(assignments[0]["name"], "Sales Rep");
    assert_eq!(assignments[0]["active_flag"], true);

    let r = sim.pd_get(&format!("/users/{grace}")).await;
    assert_eq!(r.body["data"]["role_id"], 1);
    let r = sim.pd_get("/roles").await;
    assert_eq!(r.body["data"][0]["assignment_count"], "1");
    assert_eq!(r.body["data"][1]["assignment_count"], "0");

    let state = sim.state().await;
    let log = state["pipedrive"]["log"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "role.assign");
    assert_eq!(log[0]["role_id"], 1);
    assert_eq!(log[0]["user_id"], grace);
    assert_eq!(log[0]["previous_role_id"], 2);
    assert_eq!(log[0]["path"], "/api/v1/roles/1/assignments");
}

#[tokio::test]
async fn assignment_to_unknown_role_or_user_is_404() {
    let sim = TestSim::start().await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let r = sim.pd_send(Method::POST, "/roles/77/assignments", json!({"user_id": grace})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = sim.pd_send(Method::POST, "/roles/1/assignments", json!({"user_id": 999999})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // addRoleAssignment's body is `{user_id}` (required), nothing else, and never the query.
    for body in [json!({}), json!({"user_id": "1001"}), json!({"user_id": grace, "role_id": 1})] {
        let r = sim.pd_send(Method::POST, "/roles/1/assignments", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let r = sim.pd_send(Method::POST, &format!("/roles/1/assignments?user_id={grace}"), json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unassigning_requires_holding_the_role() {
    let sim = TestSim::start().await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let r = sim.pd_send(Method::DELETE, "/roles/1/assignments", json!({"user_id": grace})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = sim.pd_send(Method::DELETE, "/roles/2/assignments", json!({"user_id": grace})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["data"], json!({"id": 2}), "deleteRoleAssignment answers the role's id");
    let r = sim.pd_get(&format!("/users/{grace}/roleAssignments")).await;
    assert_eq!(r.body["data"], json!([]), "none is an empty list here");
    let r = sim.pd_get(&format!("/users/{grace}")).await;
    assert!(r.body["data"]["role_id"].is_null());
}

#[tokio::test]
async fn permissions_are_a_flat_read_only_map_derived_from_admin_and_role() {
    let sim = TestSim::start().await;
    let grace = sim.pd_user_id("grace@example.com").await;
    let admin = sim.pd_get("/users/1/permissions").await;
    assert_eq!(admin.body["data"]["can_modify_labels"], true);
    let grace_perms = sim.pd_get(&format!("/users/{grace}/permissions")).await;
    assert_eq!(grace_perms.body["data"]["can_modify_labels"], false);
    assert_eq!(grace_perms.body["data"]["can_see_other_users"], true);
    assert!(grace_perms.body["data"].as_object().unwrap().values().all(|v| v.is_boolean()));
    let r = sim.pd_send(Method::PUT, &format!("/users/{grace}/permissions"), json!({"can_modify_labels": true})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// addUser has no `role_id`: the role is a second call.
#[tokio::test]
async fn role_id_on_create_is_refused() {
    let sim = TestSim::start().await;
    let r = sim.pd_send(Method::POST, "/users", json!({"email": "ada@example.com", "role_id": 1})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = sim.pd_get("/roles/1/assignments").await;
    assert_eq!(r.body["data"], json!([]), "nobody holds Sales Rep");
}
