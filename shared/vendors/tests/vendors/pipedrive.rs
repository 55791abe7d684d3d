//! Pipedrive: the workflows against the simulator, in process.

use crate::common::*;
use lifecycle_vendor_sim::registry::VendorSim;
use serde_json::json;

fn joiner(email: &str, role: &str) -> serde_json::Value {
    event("joiner", email, VendorKind::Pipedrive, json!({ "role": role }))
}

/// People to make the tenant large: the counts must not grow with it.
fn crowd(n: usize) -> serde_json::Value {
    let users: Vec<_> =
        (0..n).map(|i| json!({"name": format!("Crowd {i}"), "email": format!("crowd{i}@example.com")})).collect();
    json!({ "users": users })
}

#[tokio::test]
async fn a_joiner_takes_three_requests_once_the_roles_are_known() {
    let w = World::new(VendorKind::Pipedrive).await;
    let before = w.requests();
    let first = w.start(&joiner("ada@example.com", "Sales Rep")).await;
    assert!(first.outcome().summary.starts_with("created Pipedrive user"), "{:?}", first.outcome());
    let cold =
        routes(&[("GET /roles", 1), ("GET /users/find", 1), ("POST /users", 1), ("POST /roles/{id}/assignments", 1)]);
    assert_eq!(w.requests_since(&before), cold, "cold: the role catalogue is read once");
    assert_eq!(w.harness.keys(&first.run_id).await, ["ensure_user", "assign_role:1"].map(String::from));

    w.seed(crowd(1000));
    let before = w.requests();
    let warm = w.start(&joiner("hedy@example.com", "Sales Rep")).await;
    warm.outcome();
    let three = routes(&[("GET /users/find", 1), ("POST /users", 1), ("POST /roles/{id}/assignments", 1)]);
    assert_eq!(w.requests_since(&before), three, "warm, in a tenant of 1,000 people: find, create, assign");
}

#[tokio::test]
async fn a_mover_and_a_leaver_take_the_minimum() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.seed(crowd(1000));
    w.start(&joiner("ada@example.com", "Sales Rep")).await.outcome();

    let before = w.requests();
    let moved =
        w.start(&event("mover", "ada@example.com", VendorKind::Pipedrive, json!({"role": "Sales Manager"}))).await;
    assert!(moved.outcome().summary.starts_with("moved Pipedrive user"), "{:?}", moved.outcome());
    let mover =
        routes(&[("GET /users/find", 1), ("GET /users/{id}/roleAssignments", 1), ("POST /roles/{id}/assignments", 1)]);
    assert_eq!(w.requests_since(&before), mover, "find, read the role, assign");

    let before = w.requests();
    let left = w.start(&event("leaver", "ada@example.com", VendorKind::Pipedrive, json!({}))).await;
    assert!(left.outcome().summary.contains("then deactivated"), "{:?}", left.outcome());
    let leaver = routes(&[("GET /users/find", 1), ("GET /deals", 1), ("PUT /users/{id}", 1)]);
    assert_eq!(w.requests_since(&before), leaver, "find, list open deals, deactivate (the answer is the proof)");
    assert_eq!(w.harness.keys(&left.run_id).await, ["find_user", "deactivate"].map(String::from));
}

#[tokio::test]
async fn a_role_added_at_the_vendor_is_found_without_a_restart() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.start(&joiner("ada@example.com", "Sales Rep")).await.outcome();
    // Added after the catalogue was cached.
    w.seed(json!({"roles": [{"name": "Field Sales"}]}));
    let run = w.start(&joiner("grace@example.com", "Field Sales")).await;
    assert!(run.outcome().summary.ends_with("with role Field Sales"), "{:?}", run.outcome());

    let unknown = w.start(&joiner("alan@example.com", "Astronaut")).await;
    assert!(matches!(unknown.error(), lifecycle_engine::StepError::Permanent { .. }), "{:?}", unknown.result);
    assert!(unknown.error().to_string().contains("no role named \"Astronaut\""), "{}", unknown.error());
}

#[tokio::test]
async fn a_joiner_twice_is_one_account_and_a_leaver_of_nobody_succeeds() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.start(&joiner("ada@example.com", "Sales Rep")).await.outcome();
    let again = w.start(&joiner("ada@example.com", "Sales Rep")).await;
    assert!(again.outcome().summary.starts_with("found existing"), "{:?}", again.outcome());
    let users = w.sim.sim.lock().tenants.pipedrive.snapshot()["users"].clone();
    let n = users.as_array().unwrap().iter().filter(|u| u["email"] == "ada@example.com").count();
    assert_eq!(n, 1);

    let nobody = w.start(&event("leaver", "nobody@example.com", VendorKind::Pipedrive, json!({}))).await;
    assert!(nobody.outcome().summary.contains("nothing to remove"), "{:?}", nobody.outcome());
}

/// The create lands at Pipedrive but its answer is a 500: the retry finds
/// the user (look before create) instead of making a second one.
#[tokio::test]
async fn a_create_applied_then_failed_leaves_one_account() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.fault(json!({"method": "POST", "path": "/users", "kind": "apply_then_fail", "status": 500}));
    let first = w.start(&joiner("ada@example.com", "Sales Rep")).await;
    assert!(matches!(first.error(), lifecycle_engine::StepError::Transient { .. }), "{:?}", first.result);
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.starts_with("found existing"), "{:?}", retry.outcome());
    let users = w.sim.sim.lock().tenants.pipedrive.snapshot()["users"].clone();
    let n = users.as_array().unwrap().iter().filter(|u| u["email"] == "ada@example.com").count();
    assert_eq!(n, 1, "one account");
    let journal = w.harness.journal(&first.run_id).await;
    assert_eq!((journal[0].key.as_str(), journal[0].attempts), ("ensure_user", 2), "the create was in doubt");
}
