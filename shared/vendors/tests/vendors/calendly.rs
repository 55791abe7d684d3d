//! Calendly: the workflows against the simulator, in process.
//!
//! Requests per run, by route, asserted exactly (the organization's URI in the worker's cache
//! unless said otherwise; cold adds one `GET /users/me`):
//!
//! | run                         | requests                                                 | n |
//! |-----------------------------|----------------------------------------------------------|---|
//! | joiner, someone new         | memberships?email=, invitations?email=&status=, POST     | 3 |
//! | joiner/mover, invited       | memberships?email=, invitations?email=&status=           | 2 |
//! | joiner/mover, member        | memberships?email=                                       | 1 |
//! | leaver, member              | memberships?email=, DELETE membership                    | 2 |
//! | leaver, pending invitation  | memberships?email=, invitations?email=, DELETE invitation| 3 |
//! | leaver, absent              | memberships?email=, invitations?email=                   | 2 |
//! | leaver, the owner           | memberships?email=                                       | 1 |
//!
//! The same in an organization of 1,000 members and 100 invitations.

use crate::common::*;
use lifecycle_engine::StepError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const ME: &str = "GET /users/me";
const MEMBERS: &str = "GET /organization_memberships";
const INVITATIONS: &str = "GET /organizations/{uuid}/invitations";
const INVITE: &str = "POST /organizations/{uuid}/invitations";
const REMOVE: &str = "DELETE /organization_memberships/{uuid}";
const REVOKE: &str = "DELETE /organizations/{org_uuid}/invitations/{uuid}";

fn ev(kind: &str, email: &str) -> Value {
    event(kind, email, VendorKind::Calendly, json!({}))
}

fn invitations_of(w: &World, email: &str) -> Vec<Value> {
    w.state()["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["email"].as_str().unwrap().eq_ignore_ascii_case(email))
        .cloned()
        .collect()
}

fn is_member(w: &World, email: &str) -> bool {
    w.state()["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["email"].as_str().unwrap().eq_ignore_ascii_case(email))
}

/// The simulator's call log for Calendly: (method, path, query).
fn calls(w: &World) -> Vec<(String, String, String)> {
    w.sim
        .sim
        .lock()
        .journal
        .calls(Some(w.sim_vendor()))
        .into_iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                c["query"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn add_fault(w: &World, spec: Value) {
    let spec = serde_json::from_value(spec).expect("a valid fault");
    w.sim.sim.lock().faults.add(spec).expect("the fault is accepted");
}

/// Runs `kind` for `email` and returns what it cost, by route, checking it ended with `access`.
async fn cost(w: &World, kind: &str, email: &str, access: &str) -> BTreeMap<String, u64> {
    let before = w.requests();
    let run = w.start(&ev(kind, email)).await;
    let outcome = run.outcome();
    assert_eq!(outcome.access.map(|a| a.as_str()), Some(access), "{kind} {email}: {outcome:?}");
    w.requests_since(&before)
}

/// Every run of the table above, in `w` (whose cache is cold): `member`, `member2` and
/// `invitee` must be seeded (members, and a pending invitation).
async fn every_run_costs_the_minimum(w: &World, member: &str, member2: &str, invitee: &str, invitee2: &str) {
    // Cold: the organization's URI first.
    assert_eq!(
        cost(w, "joiner", "new1@example.com", "invited").await,
        routes(&[(ME, 1), (MEMBERS, 1), (INVITATIONS, 1), (INVITE, 1)]),
        "cold joiner"
    );
    // Warm.
    assert_eq!(
        cost(w, "joiner", "new2@example.com", "invited").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1), (INVITE, 1)]),
        "warm joiner"
    );
    assert_eq!(cost(w, "joiner", member, "active").await, routes(&[(MEMBERS, 1)]), "joiner of a member");
    assert_eq!(
        cost(w, "joiner", invitee, "invited").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1)]),
        "joiner of an invitee"
    );
    assert_eq!(cost(w, "mover", member, "active").await, routes(&[(MEMBERS, 1)]), "mover of a member");
    assert_eq!(
        cost(w, "mover", invitee, "invited").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1)]),
        "mover of an invitee"
    );
    assert_eq!(cost(w, "leaver", member2, "removed").await, routes(&[(MEMBERS, 1), (REMOVE, 1)]), "leaver");
    assert_eq!(
        cost(w, "leaver", invitee2, "absent").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1), (REVOKE, 1)]),
        "leaver with a pending invitation"
    );
    assert_eq!(
        cost(w, "leaver", "stranger@example.com", "absent").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1)]),
        "leaver of someone absent"
    );
    assert_eq!(cost(w, "leaver", "owner@sim.example", "active").await, routes(&[(MEMBERS, 1)]), "the owner");
    // Every look-up was by e-mail, never a walk through the organization.
    for (method, path, query) in calls(w) {
        if method == "GET" && path != "/users/me" {
            assert!(query.contains("email="), "{method} {path}?{query}");
            assert!(!query.contains("page_token"), "{method} {path}?{query}");
        }
        if path == "/organization_memberships" {
            assert!(query.contains("organization=http%3A%2F%2F"), "a full URI: {query}");
        }
    }
    assert!(!is_member(w, member2) && is_member(w, member));
    assert_eq!(invitations_of(w, invitee2)[0]["status"], "revoked");
}

#[tokio::test]
async fn every_workflow_costs_the_apis_minimum_cold_and_warm() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    w.seed(json!({
        "members": [{"email": "bob@example.com"}],
        "invitations": [{"email": "ivy@example.com"}, {"email": "ian@example.com"}]
    }));
    every_run_costs_the_minimum(&w, "grace@example.com", "bob@example.com", "ivy@example.com", "ian@example.com").await;
}

#[tokio::test]
async fn the_cost_does_not_grow_with_the_organization() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let members: Vec<Value> = (0..1000).map(|i| json!({"email": format!("m{i:04}@example.com")})).collect();
    let invitations: Vec<Value> = (0..100).map(|i| json!({"email": format!("i{i:03}@example.com")})).collect();
    w.seed(json!({"members": members, "invitations": invitations}));
    assert!(w.state()["memberships"].as_array().unwrap().len() > 1000);
    // The last ones: a walk through the lists would need every page to reach them.
    every_run_costs_the_minimum(&w, "m0999@example.com", "m0998@example.com", "i099@example.com", "i098@example.com")
        .await;
}

#[tokio::test]
async fn one_step_for_a_joiner_a_read_and_a_step_for_a_leaver() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let run = w.start(&ev("joiner", "ada@example.com")).await;
    assert!(run.outcome().summary.contains("invited, pending acceptance"), "{:?}", run.outcome());
    assert_eq!(w.harness.keys(&run.run_id).await, ["invite"]);
    let journal = w.harness.journal(&run.run_id).await;
    let uuid = invitations_of(&w, "ada@example.com")[0]["uuid"].as_str().unwrap().to_owned();
    assert!(journal[0].output.as_deref().unwrap().contains(&uuid), "{:?}", journal[0].output);

    let run = w.start(&ev("leaver", "grace@example.com")).await;
    assert!(run.outcome().summary.contains("removed grace@example.com"), "{:?}", run.outcome());
    let keys = w.harness.keys(&run.run_id).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], "find_person");
    assert!(keys[1].starts_with("remove_membership:"), "no read-back after the removal: {keys:?}");
}

#[tokio::test]
async fn the_organization_is_asked_for_again_after_catalog_max_age() {
    const AGE: Duration = Duration::from_secs(4);
    let w = World::unthrottled(VendorKind::Calendly, json!({"catalog_max_age": "4s"})).await;
    let fetched = std::time::Instant::now();
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(ME, 1), (MEMBERS, 1)]));
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(MEMBERS, 1)]));
    assert!(fetched.elapsed() < AGE, "the second run came within the age bound");
    tokio::time::sleep(AGE.saturating_sub(fetched.elapsed()) + Duration::from_millis(100)).await;
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(ME, 1), (MEMBERS, 1)]));
}

#[tokio::test]
async fn a_changed_organization_is_picked_up_by_the_same_connector() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(ME, 1), (MEMBERS, 1)]));
    let old = w.state()["organization"]["uri"].as_str().unwrap().to_owned();
    // The token's user now belongs to another organization: the cached URI is a 404.
    w.sim.sim.lock().tenants.calendly.change_organization();
    let new = w.state()["organization"]["uri"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    // Asked for again once, the look-up repeated with the new one: no run fails for it.
    assert_eq!(
        cost(&w, "joiner", "ada@example.com", "invited").await,
        routes(&[(MEMBERS, 2), (ME, 1), (INVITATIONS, 1), (INVITE, 1)])
    );
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1);
    // And kept: the next run is warm again.
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(MEMBERS, 1)]));
    let (_, _, query) = calls(&w).pop().unwrap();
    assert!(query.contains(&new.replace(':', "%3A").replace('/', "%2F")), "{query}");
}

#[tokio::test]
async fn a_joiner_twice_is_one_invitation_and_a_member_is_left_alone() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let first = w.start(&ev("joiner", "ada@example.com")).await;
    assert!(first.outcome().summary.contains("invited ada@example.com"), "{:?}", first.outcome());
    let second = w.start(&ev("joiner", "Ada@Example.com")).await;
    assert!(second.outcome().summary.contains("already pending"), "{:?}", second.outcome());
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1);
    assert_eq!(w.requests().get(INVITE), Some(&1), "invited once");
    // Ada accepts; a joiner again is a member's: nothing sent.
    w.seed(json!({"accept_invitations": ["ada@example.com"]}));
    let third = w.start(&ev("joiner", "ada@example.com")).await;
    assert_eq!(third.outcome().access.map(|a| a.as_str()), Some("active"));
    assert!(third.outcome().summary.contains("already a member"), "{:?}", third.outcome());
    assert_eq!(w.requests().get(INVITE), Some(&1));
}

#[tokio::test]
async fn an_invitation_applied_then_failed_is_adopted_on_retry_not_sent_twice() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    add_fault(
        &w,
        json!({"vendor": "calendly", "method": "POST", "path": "/organizations/*/invitations", "kind": "apply_then_fail", "status": 502}),
    );
    let first = w.start(&ev("joiner", "ada@example.com")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.error());
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1, "Calendly did send it");

    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    let outcome = retry.outcome();
    assert!(outcome.summary.contains("invited, pending acceptance"), "{outcome:?}");
    assert_eq!(outcome.access.map(|a| a.as_str()), Some("invited"));
    // In doubt, it looked before inviting, found its own invitation, and sent none.
    assert_eq!(w.requests_since(&before), routes(&[(MEMBERS, 1), (INVITATIONS, 1)]));
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1, "no duplicate invitation");
    let journal = w.harness.journal(&first.run_id).await;
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].attempts, 2);
    assert!(journal[0].output.as_deref().unwrap().contains("\"adopted\":true"), "{:?}", journal[0].output);
}

#[tokio::test]
async fn a_removal_applied_then_failed_ends_removed_on_retry() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    add_fault(
        &w,
        json!({"vendor": "calendly", "method": "DELETE", "path": "/organization_memberships/*", "kind": "apply_then_fail", "status": 500}),
    );
    let first = w.start(&ev("leaver", "grace@example.com")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.error());
    assert!(!is_member(&w, "grace@example.com"));
    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    assert_eq!(retry.outcome().access.map(|a| a.as_str()), Some("removed"));
    assert!(retry.outcome().summary.starts_with("removed grace@example.com"), "{:?}", retry.outcome());
    // The look-up is replayed from the journal: only the DELETE again (a 404: gone).
    assert_eq!(w.requests_since(&before), routes(&[(REMOVE, 1)]));
}

#[tokio::test]
async fn a_leaver_of_someone_absent_succeeds_saying_so() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let run = w.start(&ev("leaver", "stranger@example.com")).await;
    let outcome = run.outcome();
    assert_eq!(outcome.access.map(|a| a.as_str()), Some("absent"));
    assert!(outcome.summary.contains("no Calendly membership and no pending invitation"), "{outcome:?}");
    assert!(w.sim.sim.lock().journal.log(w.sim_vendor()).is_empty(), "nothing changed");
}

#[tokio::test]
async fn the_owner_is_left_to_a_person() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let run = w.start(&ev("leaver", "owner@sim.example")).await;
    let outcome = run.outcome();
    assert!(outcome.needs_person, "{outcome:?}");
    assert!(outcome.summary.contains("transfer the organization's ownership"), "{outcome:?}");
    assert!(is_member(&w, "owner@sim.example"));
    assert!(!w.requests().contains_key(REMOVE), "no removal tried");
}

/// Calendly takes no role (an `apps.calendly` with one is refused at the intake), so there is
/// no unknown role to meet; what cannot succeed by retrying is a token that may not manage
/// the organization, or one whose user is in none: both are permanent, saying what to fix.
#[tokio::test]
async fn a_token_that_cannot_manage_the_organization_is_permanent() {
    let w = World::unthrottled(VendorKind::Calendly, json!({"token": "plain-token"})).await;
    w.seed(json!({"members": [{"email": "plain@example.com", "role": "user", "token": "plain-token"}]}));
    let run = w.start(&ev("joiner", "ada@example.com")).await;
    match run.error() {
        StepError::Permanent { message } => {
            assert!(message.contains("403") && message.contains("owner or admin"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(invitations_of(&w, "ada@example.com").is_empty());

    // Removed from the organization: their token's user is in none.
    let w = World::unthrottled(VendorKind::Calendly, json!({"token": "gone-token"})).await;
    w.seed(json!({"members": [{"email": "gone@example.com", "role": "admin", "token": "gone-token"}]}));
    let membership =
        w.state()["memberships"].as_array().unwrap().iter().find(|m| m["email"] == "gone@example.com").unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
    let removed = reqwest::Client::new()
        .delete(format!("{}/organization_memberships/{membership}", w.sim.base_url(w.sim_vendor())))
        .bearer_auth("calendly-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let run = w.start(&ev("leaver", "ada@example.com")).await;
    match run.error() {
        StepError::Permanent { message } => assert!(message.contains("in no Calendly organization"), "{message}"),
        other => panic!("{other:?}"),
    }
}
