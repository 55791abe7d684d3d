//! circleci: the workflows against the simulator, in process.
//!
//! CircleCI has no search by login or e-mail: a member is found by listing the org's members,
//! 100 a page, up to the page that holds them. So, unlike the other vendors, a run's cost grows
//! with the org: ceil(position / 100) list requests for a member, ceil(members / 100) for someone
//! who is not in the org. Beyond the list, with the org's UUID cached:
//! - joiner and mover: nothing (the API cannot invite, and roles are not managed through it);
//! - leaver: `DELETE /org/{orgID}/members/{userID}`, whose 204 is the proof.
//!
//! Cold (once per `catalog_max_age`): `/me/collaborations` for the UUID, and `/me` for a
//! leaver (the token's owner is never removed).

use crate::common::*;
use lifecycle_engine::{Access, StepError};
use lifecycle_vendor_sim::faults::FaultSpec;
use lifecycle_vendor_sim::registry::VendorSim;
use serde_json::{json, Value};

const ALAN_ID: &str = "1a527c1d-5289-4d64-b976-03e5eb5370f8";
const GRACE_ID: &str = "dffac8e5-5c5f-4ee2-b2b7-4d82448d5afc";
/// The fixture's members of gh/sim-org (sim-admin, grace-gh, alan-gh, margaret-gh).
const FIXTURE_MEMBERS: usize = 4;

const LIST: &str = "GET /org/{org_id}/members";
const DELETE: &str = "DELETE /org/{org_id}/members/{user_id}";
const COLLABORATIONS: &str = "GET /me/collaborations";
const ME: &str = "GET /me";

fn ev(kind: &str, login: &str) -> Value {
    event(kind, &format!("{login}@example.com"), VendorKind::Circleci, json!({ "login": login }))
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

/// `n` more members of gh/sim-org, after the fixture's, then `last-gh` at the very end.
fn crowd(n: usize) -> Value {
    let mut users: Vec<Value> = (0..n).map(|i| json!({"login": format!("crowd-{i:04}")})).collect();
    users.push(json!({"login": "last-gh", "name": "Last Member"}));
    let memberships: Vec<Value> = users.iter().map(|u| json!({"org": "gh/sim-org", "login": u["login"]})).collect();
    json!({"users": users, "memberships": memberships})
}

fn pages(members: usize) -> u64 {
    members.div_ceil(100) as u64
}

fn fault(w: &World, spec: Value) {
    let mut spec = spec;
    spec["vendor"] = json!("circleci");
    let spec: FaultSpec = serde_json::from_value(spec).expect("a valid fault");
    w.sim.sim.lock().faults.add(spec).expect("the fault is accepted");
}

const ORG_ID: &str = "610fae58-cf36-4c1d-b310-cf1332493ef4";

/// Whether `login` is a member of gh/sim-org.
fn is_member(w: &World, login: &str) -> bool {
    let state = w.sim.sim.lock().tenants.circleci.snapshot();
    state["memberships"].as_array().unwrap().iter().any(|m| m["org_id"] == ORG_ID && m["login"] == login)
}

/// The changes CircleCI logged (removals: it has no other write).
fn removals(w: &World) -> usize {
    w.sim.sim.lock().journal.log(lifecycle_vendor_sim::Vendor::CircleCi).len()
}

#[tokio::test]
async fn each_workflow_takes_one_list_page_and_the_delete_in_a_small_org() {
    let w = World::new(VendorKind::Circleci).await;
    // Cold: the org's UUID first.
    let before = w.requests();
    let first = w.start(&ev("joiner", "ada-gh")).await;
    assert!(first.outcome().needs_person, "{:?}", first.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(COLLABORATIONS, 1), (LIST, 1)]));
    assert!(w.harness.keys(&first.run_id).await.is_empty(), "nothing found, nothing journaled: a replay looks again");

    // Warm.
    let before = w.requests();
    let joined = w.start(&ev("joiner", "GRACE-gh")).await;
    assert!(joined.outcome().summary.contains("grace-gh is already a member"), "{:?}", joined.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 1)]));
    assert_eq!(w.harness.keys(&joined.run_id).await, keys(&[&format!("member:{GRACE_ID}")]));
    let journal = w.harness.journal(&joined.run_id).await;
    assert!(journal[0].output.as_deref().unwrap().contains(ORG_ID), "the org's UUID");

    let before = w.requests();
    let moved = w.start(&ev("mover", "grace-gh")).await;
    assert_eq!(moved.outcome().access, Some(Access::Active));
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 1)]));

    // A first leaver reads the token's owner once.
    let before = w.requests();
    let left = w.start(&ev("leaver", "alan-gh")).await;
    assert!(left.outcome().summary.starts_with("removed alan-gh"), "{:?}", left.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 1), (ME, 1), (DELETE, 1)]));
    assert_eq!(w.harness.keys(&left.run_id).await, keys(&["find_member", &format!("remove_member:{ALAN_ID}")]));
    assert!(!is_member(&w, "alan-gh"));

    // Warm: the list, then the DELETE (its 204 is the proof: no GET confirms it).
    let before = w.requests();
    let left = w.start(&ev("leaver", "grace-gh")).await;
    assert!(left.outcome().summary.starts_with("removed grace-gh"), "{:?}", left.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 1), (DELETE, 1)]));
}

/// The cost at a fixed size: an org of 1,004 members (the fixture's 3 after a leaver, 1,000
/// more, and `last-gh` last). No search exists, so it is the pages of the list up to the person.
#[tokio::test]
async fn in_an_org_of_a_thousand_the_list_is_walked_up_to_the_person() {
    let w = World::new(VendorKind::Circleci).await;
    w.seed(crowd(1000));
    // Fills the caches (the org's UUID, the token's owner); margaret-gh leaves.
    w.start(&ev("leaver", "margaret-gh")).await.outcome();
    let members = FIXTURE_MEMBERS - 1 + 1000 + 1;
    assert_eq!(pages(members), 11);

    let before = w.requests();
    let run = w.start(&ev("joiner", "ada-gh")).await;
    assert!(run.outcome().needs_person);
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 11)]), "someone not in the org: every page");

    let before = w.requests();
    w.start(&ev("joiner", "grace-gh")).await.outcome();
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 1)]), "on the first page");

    let before = w.requests();
    w.start(&ev("mover", "last-gh")).await.outcome();
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 11)]), "the last member: every page");

    let before = w.requests();
    let left = w.start(&ev("leaver", "last-gh")).await;
    assert!(left.outcome().summary.starts_with("removed last-gh"), "{:?}", left.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 11), (DELETE, 1)]));

    let before = w.requests();
    w.start(&ev("leaver", "alan-gh")).await.outcome();
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 1), (DELETE, 1)]));
}

/// How the cost grows: one list request per 100 members up to the person.
#[tokio::test]
async fn the_cost_grows_by_one_request_a_hundred_members() {
    for extra in [0usize, 95, 96, 300, 1000] {
        let w = World::new(VendorKind::Circleci).await;
        w.seed(crowd(extra));
        let members = FIXTURE_MEMBERS + extra + 1;
        w.start(&ev("joiner", "grace-gh")).await.outcome();
        let before = w.requests();
        w.start(&ev("joiner", "nobody-gh")).await.outcome();
        assert_eq!(w.requests_since(&before), routes(&[(LIST, pages(members))]), "{members} members");
    }
}

#[tokio::test]
async fn an_org_the_token_joins_later_is_found_without_a_restart() {
    let w = World::new(VendorKind::Circleci).await;
    let w = World { connector: other_org_connector(&w), ..w };
    let run = w.start(&ev("joiner", "grace-gh")).await;
    assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.result);
    assert!(run.error().to_string().contains("not a member of the organization gh/new-org"), "{}", run.error());

    // The token's owner is added to the org at CircleCI: the next run finds it.
    w.seed(json!({
        "orgs": [{"slug": "gh/new-org", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}],
        "memberships": [{"org": "gh/new-org", "login": "sim-admin", "role": "admin"},
                        {"org": "gh/new-org", "login": "grace-gh"}]
    }));
    let before = w.requests();
    let run = w.start(&ev("joiner", "grace-gh")).await;
    assert!(run.outcome().summary.contains("gh/new-org"), "{:?}", run.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(COLLABORATIONS, 1), (LIST, 1)]));
}

fn other_org_connector(w: &World) -> std::sync::Arc<dyn lifecycle_engine::Connector> {
    let table = json!({
        "base_url": w.sim.base_url(sim_vendor(VendorKind::Circleci)),
        "token": "circleci-admin-token", "org_slug": "gh/new-org",
    });
    let common =
        lifecycle_vendors::registry::Common { http_timeout: std::time::Duration::from_secs(5), allow_plain_http: true };
    lifecycle_vendors::circleci::connector(&table, &common).expect("a valid table")
}

/// A 404 for the org (deleted, or the token's owner removed from it) forgets its UUID: the
/// next run asks `/me/collaborations` again.
#[tokio::test]
async fn a_404_for_the_org_makes_the_next_run_look_it_up_again() {
    let w = World::new(VendorKind::Circleci).await;
    w.start(&ev("joiner", "grace-gh")).await.outcome();
    fault(&w, json!({"method": "GET", "path": "/org/*/members", "kind": "status", "status": 404}));
    let run = w.start(&ev("joiner", "grace-gh")).await;
    assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.result);
    let before = w.requests();
    w.start(&ev("joiner", "grace-gh")).await.outcome();
    assert_eq!(w.requests_since(&before), routes(&[(COLLABORATIONS, 1), (LIST, 1)]));
}

#[tokio::test]
async fn a_joiner_twice_changes_nothing_and_a_leaver_of_nobody_succeeds() {
    let w = World::new(VendorKind::Circleci).await;
    for _ in 0..2 {
        let run = w.start(&ev("joiner", "ada-gh")).await;
        let outcome = run.outcome();
        assert!(outcome.needs_person && outcome.summary.contains("cannot invite"), "{outcome:?}");
        assert_eq!(outcome.access, Some(Access::Absent));
    }
    for _ in 0..2 {
        w.start(&ev("joiner", "grace-gh")).await.outcome();
    }
    assert_eq!(removals(&w), 0, "nothing changed at CircleCI");

    let before = w.requests();
    let nobody = w.start(&ev("leaver", "nobody-gh")).await;
    assert!(nobody.outcome().summary.contains("nothing to remove"), "{:?}", nobody.outcome());
    assert_eq!(nobody.outcome().access, Some(Access::Absent));
    assert_eq!(w.requests_since(&before), routes(&[(LIST, 1)]));
}

/// The removal lands but its answer is a 503: the retry looks before deleting again.
#[tokio::test]
async fn a_removal_applied_then_failed_is_not_repeated() {
    let w = World::new(VendorKind::Circleci).await;
    fault(&w, json!({"method": "DELETE", "path": "/org/*/members/*", "kind": "apply_then_fail", "status": 503}));
    let first = w.start(&ev("leaver", "alan-gh")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.starts_with("removed alan-gh"), "{:?}", retry.outcome());
    assert_eq!(
        w.requests_since(&before),
        routes(&[("GET /org/{org_id}/members/{user_id}", 1)]),
        "the member replayed from the journal; the removal in doubt is looked at, not repeated"
    );
    assert_eq!(removals(&w), 1);
    let journal = w.harness.journal(&first.run_id).await;
    let remove = journal.iter().find(|s| s.key == format!("remove_member:{ALAN_ID}")).unwrap();
    assert_eq!(remove.attempts, 2);
    assert!(remove.output.as_deref().unwrap().contains("\"adopted\":true"), "{:?}", remove.output);
}

#[tokio::test]
async fn the_tokens_owner_is_never_removed() {
    let w = World::new(VendorKind::Circleci).await;
    let run = w.start(&ev("leaver", "sim-admin")).await;
    assert!(matches!(run.error(), StepError::NeedsPerson { .. }), "{:?}", run.result);
    assert!(run.error().to_string().contains("owns the API token"), "{}", run.error());
    assert_eq!(removals(&w), 0);
}
