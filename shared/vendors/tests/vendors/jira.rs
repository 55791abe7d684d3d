//! jira: the workflows against the simulator, in process.
//!
//! Requests per run (no SCIM directory configured), and the least Jira's API allows:
//! - joiner of a new person with one group: the search, `POST /user`, `POST /group/user` (3);
//!   the group catalogue (`GET /group/bulk`) is read once per `catalog_max_age` on top; with a
//!   SCIM directory configured, the directory too (4: the search shows active users only, so
//!   a deactivated account is found there);
//! - mover adding one group and removing one: the search, `GET /user/groups`, the add, the
//!   removal (4);
//! - leaver in one group: the search, `GET /user/groups`, the removal, `DELETE /user` (4:
//!   3 + one a group, as groups are removed before the site access). A mover or leaver whose
//!   address the search does not show also walks `GET /users/search` (⌈U/1000⌉, to find a
//!   deactivated account), or asks the directory when one is configured.

use crate::common::*;
use lifecycle_engine::StepError;
use lifecycle_vendor_sim::faults::FaultSpec;
use lifecycle_vendor_sim::registry::VendorSim;
use serde_json::{json, Value};

/// Groups of the simulator's default fixture.
const SOFTWARE: &str = "276f955c-63d7-42c8-9520-92d01dca0625";
const ENGINEERING: &str = "e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24";
const PRODUCT: &str = "b8f0c2e4-6a1d-4b3f-9e5c-7a2d4f6b8c01";

fn joiner(email: &str, groups: &[&str]) -> Value {
    event("joiner", email, VendorKind::Jira, json!({"products": ["jira-software"], "groups": groups}))
}

fn mover(email: &str, groups: &[&str]) -> Value {
    event("mover", email, VendorKind::Jira, json!({"groups": groups}))
}

fn leaver(email: &str) -> Value {
    event("leaver", email, VendorKind::Jira, json!({}))
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

/// People to make the site large (each in a group, with look-alike addresses): the counts
/// must not grow with it.
fn crowd(n: usize) -> Value {
    let users: Vec<Value> = (0..n)
        .map(|i| {
            json!({"emailAddress": format!("crowd{i}@example.com"), "displayName": format!("Crowd {i}"),
                   "products": ["jira-software"], "groups": [SOFTWARE]})
        })
        .collect();
    json!({ "users": users })
}

fn fault(w: &World, spec: Value) {
    let mut spec = spec;
    spec["vendor"] = json!("jira");
    let spec: FaultSpec = serde_json::from_value(spec).expect("a valid fault");
    w.sim.sim.lock().faults.add(spec).expect("the fault is accepted");
}

/// The site's users with this address.
fn accounts(w: &World, email: &str) -> Vec<Value> {
    let users = w.sim.sim.lock().tenants.jira.snapshot()["users"].clone();
    users.as_array().unwrap().iter().filter(|u| u["emailAddress"] == email).cloned().collect()
}

fn groups_of(user: &Value) -> Vec<String> {
    let mut g: Vec<String> = user["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().into()).collect();
    g.sort();
    g
}

async fn joiner_counts(w: &World) {
    let before = w.requests();
    let first = w.start(&joiner("ada@example.com", &[SOFTWARE])).await;
    assert!(first.outcome().summary.starts_with("created Jira user"), "{:?}", first.outcome());
    let cold = routes(&[("GET /group/bulk", 1), ("GET /user/search", 1), ("POST /user", 1), ("POST /group/user", 1)]);
    assert_eq!(w.requests_since(&before), cold, "cold: the group catalogue is read once");
    assert_eq!(w.harness.keys(&first.run_id).await, keys(&["ensure_user", &format!("add_group:{SOFTWARE}")]));

    let before = w.requests();
    let warm = w.start(&joiner("hedy@example.com", &[SOFTWARE])).await;
    assert!(warm.outcome().summary.starts_with("created Jira user"), "{:?}", warm.outcome());
    let three = routes(&[("GET /user/search", 1), ("POST /user", 1), ("POST /group/user", 1)]);
    assert_eq!(w.requests_since(&before), three, "warm: search, create, add (the answers are the proof)");
    let hedy = &accounts(w, "hedy@example.com")[0];
    assert_eq!((hedy["active"].clone(), hedy["products"].clone()), (json!(true), json!(["jira-software"])));
    assert_eq!(groups_of(hedy), [SOFTWARE]);
}

#[tokio::test]
async fn a_joiner_takes_three_requests_once_the_groups_are_known() {
    joiner_counts(&World::new(VendorKind::Jira).await).await;
}

#[tokio::test]
async fn a_joiner_takes_three_requests_on_a_site_of_a_thousand_people() {
    let w = World::new(VendorKind::Jira).await;
    w.seed(crowd(1000));
    joiner_counts(&w).await;
}

async fn mover_and_leaver_counts(w: &World) {
    w.seed(json!({"users": [
        {"emailAddress": "mo@example.com", "products": ["jira-software"], "groups": [SOFTWARE, ENGINEERING]},
        {"emailAddress": "lee@example.com", "products": ["jira-software"], "groups": [SOFTWARE]},
    ]}));
    let before = w.requests();
    let moved = w.start(&mover("mo@example.com", &[SOFTWARE, PRODUCT])).await;
    let text = &moved.outcome().summary;
    assert!(text.contains("added to group(s) product") && text.contains("removed from group(s) engineering"), "{text}");
    // The catalogue was filled by an earlier run: the search, the user's groups, one add, one removal.
    let mover =
        routes(&[("GET /user/search", 1), ("GET /user/groups", 1), ("POST /group/user", 1), ("DELETE /group/user", 1)]);
    assert_eq!(w.requests_since(&before), mover);
    assert_eq!(
        w.harness.keys(&moved.run_id).await,
        keys(&["find_user", &format!("add_group:{PRODUCT}"), "list_groups", &format!("remove_group:{ENGINEERING}")])
    );
    assert_eq!(groups_of(&accounts(w, "mo@example.com")[0]), {
        let mut g = vec![SOFTWARE.to_string(), PRODUCT.to_string()];
        g.sort();
        g
    });

    let before = w.requests();
    let left = w.start(&leaver("lee@example.com")).await;
    let text = &left.outcome().summary;
    assert!(text.contains("from 1 group(s)") && text.contains("DELETE /user"), "{text}");
    let leaver =
        routes(&[("GET /user/search", 1), ("GET /user/groups", 1), ("DELETE /group/user", 1), ("DELETE /user", 1)]);
    assert_eq!(
        w.requests_since(&before),
        leaver,
        "search, groups, remove each, then DELETE /user (its 204 is the proof)"
    );
    assert_eq!(
        w.harness.keys(&left.run_id).await,
        keys(&["find_user", "list_groups", &format!("remove_group:{SOFTWARE}"), "remove_site_access"])
    );
    let lee = &accounts(w, "lee@example.com")[0];
    assert_eq!((lee["siteAccess"].clone(), lee["groups"].clone()), (json!(false), json!([])));
}

#[tokio::test]
async fn a_mover_and_a_leaver_take_the_minimum() {
    let w = World::new(VendorKind::Jira).await;
    // A first run fills the catalogue.
    w.start(&joiner("ada@example.com", &[SOFTWARE])).await.outcome();
    mover_and_leaver_counts(&w).await;
}

#[tokio::test]
async fn a_mover_and_a_leaver_take_the_minimum_on_a_site_of_a_thousand_people() {
    let w = World::new(VendorKind::Jira).await;
    w.seed(crowd(1000));
    w.start(&joiner("ada@example.com", &[SOFTWARE])).await.outcome();
    mover_and_leaver_counts(&w).await;
}

#[tokio::test]
async fn a_cold_mover_reads_the_catalogue_once_and_a_leaver_never() {
    let w = World::new(VendorKind::Jira).await;
    w.seed(json!({"users": [
        {"emailAddress": "mo@example.com", "groups": [SOFTWARE, ENGINEERING]},
        {"emailAddress": "lee@example.com", "groups": []},
    ]}));
    let before = w.requests();
    w.start(&mover("mo@example.com", &[SOFTWARE, PRODUCT])).await.outcome();
    let cold = routes(&[
        ("GET /group/bulk", 1),
        ("GET /user/search", 1),
        ("GET /user/groups", 1),
        ("POST /group/user", 1),
        ("DELETE /group/user", 1),
    ]);
    assert_eq!(w.requests_since(&before), cold);

    // In no group: the least a leaver can be.
    let before = w.requests();
    w.start(&leaver("lee@example.com")).await.outcome();
    let least = routes(&[("GET /user/search", 1), ("GET /user/groups", 1), ("DELETE /user", 1)]);
    assert_eq!(w.requests_since(&before), least);
}

/// An existing user: one read gives its groups and its products.
#[tokio::test]
async fn a_joiner_for_an_existing_user_reads_it_once() {
    let w = World::new(VendorKind::Jira).await;
    w.seed(
        json!({"users": [{"emailAddress": "there@example.com", "products": ["jira-software"], "groups": [SOFTWARE]}]}),
    );
    w.start(&joiner("ada@example.com", &[SOFTWARE])).await.outcome();
    let before = w.requests();
    let run = w.start(&joiner("there@example.com", &[SOFTWARE, ENGINEERING])).await;
    let text = &run.outcome().summary;
    assert!(
        text.starts_with("found existing Jira user")
            && text.contains("added to group(s) engineering")
            && text.contains("already in group(s) jira-software-users"),
        "{text}"
    );
    let counts = routes(&[("GET /user/search", 1), ("GET /user", 1), ("POST /group/user", 1)]);
    assert_eq!(w.requests_since(&before), counts);

    // Lacking the product: the groups all the same, and a person grants the product.
    w.seed(json!({"users": [{"emailAddress": "noproduct@example.com", "products": []}]}));
    let run = w.start(&joiner("noproduct@example.com", &[SOFTWARE])).await;
    assert!(run.outcome().needs_person, "{:?}", run.outcome());
    assert!(run.outcome().summary.contains("lacks access to jira-software"), "{:?}", run.outcome());
    assert_eq!(groups_of(&accounts(&w, "noproduct@example.com")[0]), [SOFTWARE]);
}

#[tokio::test]
async fn a_group_created_at_jira_after_the_catalogue_was_read_is_found_without_a_restart() {
    let w = World::new(VendorKind::Jira).await;
    w.start(&joiner("ada@example.com", &[SOFTWARE])).await.outcome();
    // Created at Jira after the catalogue was cached.
    let new_group = "0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b";
    w.seed(json!({"groups": [{"name": "data-science", "groupId": new_group}]}));
    let before = w.requests();
    let run = w.start(&joiner("marie@example.com", &[SOFTWARE, new_group])).await;
    assert!(run.outcome().summary.contains("data-science"), "{:?}", run.outcome());
    let counts = routes(&[("GET /group/bulk", 1), ("GET /user/search", 1), ("POST /user", 1), ("POST /group/user", 2)]);
    assert_eq!(w.requests_since(&before), counts, "one refresh of the catalogue, then on as usual");
    assert!(groups_of(&accounts(&w, "marie@example.com")[0]).contains(&new_group.to_string()));

    // Known now: no refresh.
    let before = w.requests();
    w.start(&joiner("alan@example.com", &[new_group])).await.outcome();
    assert_eq!(w.requests_since(&before).get("GET /group/bulk"), None);
}

#[tokio::test]
async fn an_unknown_group_is_permanent_after_one_refresh_and_creates_nobody() {
    let w = World::new(VendorKind::Jira).await;
    w.start(&joiner("ada@example.com", &[SOFTWARE])).await.outcome();
    let missing = "0b5e1d2c-9f8a-4c7b-8e6d-5a4b3c2d1e0f";
    let before = w.requests();
    let run = w.start(&joiner("bob@example.com", &[SOFTWARE, missing])).await;
    assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.result);
    let text = run.error().to_string();
    assert!(
        text.contains(&format!("no group with groupId {missing}")) && text.contains("Nothing was changed"),
        "{text}"
    );
    assert_eq!(w.requests_since(&before), routes(&[("GET /group/bulk", 1)]), "one refresh, nothing else");
    assert!(accounts(&w, "bob@example.com").is_empty());
    // A mover too.
    let run = w.start(&mover("ada@example.com", &[missing])).await;
    assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.result);
}

#[tokio::test]
async fn a_joiner_twice_is_one_account_and_a_leaver_of_nobody_succeeds() {
    let w = World::new(VendorKind::Jira).await;
    w.start(&joiner("ada@example.com", &[SOFTWARE])).await.outcome();
    let again = w.start(&joiner("ada@example.com", &[SOFTWARE])).await;
    let text = &again.outcome().summary;
    assert!(text.starts_with("found existing Jira user") && text.contains("already in group(s)"), "{text}");
    assert_eq!(accounts(&w, "ada@example.com").len(), 1);

    let before = w.requests();
    let nobody = w.start(&leaver("nobody@example.com")).await;
    assert!(nobody.outcome().summary.contains("nothing to remove"), "{:?}", nobody.outcome());
    assert_eq!(nobody.outcome().access, Some(lifecycle_engine::Access::Absent));
    // The search shows active users only: every user of the site (one page here) says that no
    // deactivated account has the address either.
    assert_eq!(w.requests_since(&before), routes(&[("GET /user/search", 1), ("GET /users/search", 1)]));
}

/// The create lands at Jira but its answer is a 500: the retry finds the user (look before
/// create) instead of making a second one, and goes on.
#[tokio::test]
async fn a_create_applied_then_failed_leaves_one_account() {
    let w = World::new(VendorKind::Jira).await;
    fault(&w, json!({"method": "POST", "path": "/user", "kind": "apply_then_fail", "status": 500}));
    let first = w.start(&joiner("ada@example.com", &[SOFTWARE])).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.starts_with("found existing Jira user"), "{:?}", retry.outcome());
    let ada = accounts(&w, "ada@example.com");
    assert_eq!(ada.len(), 1, "one account");
    assert_eq!(groups_of(&ada[0]), [SOFTWARE]);
    let journal = w.harness.journal(&first.run_id).await;
    assert_eq!((journal[0].key.as_str(), journal[0].attempts), ("ensure_user", 2), "the create was in doubt");
}

/// A group add that Jira applied but answered 500: the retry looks before adding again.
#[tokio::test]
async fn a_group_add_applied_then_failed_is_not_repeated() {
    let w = World::new(VendorKind::Jira).await;
    fault(&w, json!({"method": "POST", "path": "/group/user", "kind": "apply_then_fail", "status": 500}));
    let first = w.start(&joiner("ada@example.com", &[SOFTWARE])).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.starts_with("created Jira user"), "{:?}", retry.outcome());
    // The user is replayed from the journal; the add in doubt is looked at, not repeated.
    assert_eq!(w.requests_since(&before), routes(&[("GET /user/groups", 1)]));
    assert_eq!(groups_of(&accounts(&w, "ada@example.com")[0]), [SOFTWARE]);
}

#[tokio::test]
async fn a_leaver_whose_delete_was_applied_then_failed_ends_removed() {
    let w = World::new(VendorKind::Jira).await;
    w.seed(json!({"users": [{"emailAddress": "lee@example.com", "groups": [SOFTWARE]}]}));
    fault(&w, json!({"method": "DELETE", "path": "/user", "kind": "apply_then_fail", "status": 500}));
    let first = w.start(&leaver("lee@example.com")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let retry = w.retry(&first.run_id).await;
    let text = &retry.outcome().summary;
    assert!(text.contains("from 1 group(s)") && text.contains("already removed"), "{text}");
    assert_eq!(accounts(&w, "lee@example.com")[0]["siteAccess"], false);
}

/// With a directory: the leaver deactivates through SCIM, whose answer is the proof; a new
/// joiner asks the directory once (the search shows active users only: a deactivated account
/// would be found there) and nothing more.
#[tokio::test]
async fn with_a_directory_a_leaver_deactivates_through_it_and_a_joiner_asks_it_once() {
    let w = World::jira_with_directory().await;
    w.seed(json!({"users": [{"emailAddress": "managed@example.com", "scimManaged": true, "groups": [SOFTWARE]}]}));
    let before = w.requests();
    let left = w.start(&leaver("managed@example.com")).await;
    assert_eq!(left.outcome().access, Some(lifecycle_engine::Access::Deactivated), "{:?}", left.outcome());
    let counts = routes(&[
        ("GET /user/search", 1),
        ("GET /user/groups", 1),
        ("DELETE /group/user", 1),
        ("GET /jira/scim/directory/{directory_id}/Users", 1),
        ("PATCH /jira/scim/directory/{directory_id}/Users/{id}", 1),
    ]);
    assert_eq!(w.requests_since(&before), counts);
    assert_eq!(
        w.harness.keys(&left.run_id).await,
        keys(&["find_user", "list_groups", &format!("remove_group:{SOFTWARE}"), "deactivate_in_directory"])
    );
    assert_eq!(accounts(&w, "managed@example.com")[0]["active"], false);

    w.start(&joiner("ada@example.com", &[SOFTWARE])).await.outcome();
    let before = w.requests();
    let hedy = w.start(&joiner("hedy@example.com", &[SOFTWARE])).await;
    assert!(hedy.outcome().summary.starts_with("created Jira user"), "{:?}", hedy.outcome());
    let four = routes(&[
        ("GET /user/search", 1),
        ("GET /jira/scim/directory/{directory_id}/Users", 1),
        ("POST /user", 1),
        ("POST /group/user", 1),
    ]);
    assert_eq!(w.requests_since(&before), four);

    // A hidden address: found through the directory.
    w.seed(json!({"users": [{"emailAddress": "private@example.com", "emailVisible": false, "scimManaged": true}]}));
    let moved = w.start(&mover("private@example.com", &[SOFTWARE])).await;
    assert!(moved.outcome().summary.contains("through the SCIM directory"), "{:?}", moved.outcome());
    assert_eq!(groups_of(&accounts(&w, "private@example.com")[0]), [SOFTWARE]);
}

/// The directory names a person's Jira account through Atlassian's extension
/// `urn:scim:schemas:extension:atlassian-external:1.0` (`atlassianAccountId`). A deactivated
/// SCIM-managed account, which Jira's search never shows, is found there: a joiner reactivates
/// it (not a second account), a leaver finds it already inactive.
#[tokio::test]
async fn a_scim_managed_account_is_found_through_atlassians_extension() {
    let w = World::jira_with_directory().await;
    w.seed(json!({"users": [
        {"emailAddress": "back@example.com", "active": false, "scimManaged": true, "products": ["jira-software"]},
        {"emailAddress": "off@example.com", "active": false, "scimManaged": true, "groups": [SOFTWARE]},
    ]}));

    let before = w.requests();
    let back = w.start(&joiner("back@example.com", &[SOFTWARE])).await;
    let text = &back.outcome().summary;
    assert!(
        text.starts_with("reactivated Jira user") && text.contains("added to group(s) jira-software-users"),
        "{text}"
    );
    assert_eq!(back.outcome().access, Some(lifecycle_engine::Access::Active));
    let counts = routes(&[
        ("GET /group/bulk", 1),
        ("GET /user/search", 1),
        ("GET /jira/scim/directory/{directory_id}/Users", 1),
        ("GET /user", 2),
        ("PATCH /jira/scim/directory/{directory_id}/Users/{id}", 1),
        ("POST /group/user", 1),
    ]);
    assert_eq!(w.requests_since(&before), counts, "the directory's answer is used once, not asked again");
    assert_eq!(accounts(&w, "back@example.com").len(), 1, "reactivated, not created again");
    assert_eq!(accounts(&w, "back@example.com")[0]["active"], true);
    assert_eq!(w.harness.keys(&back.run_id).await, keys(&["ensure_user", &format!("add_group:{SOFTWARE}")]));

    let off = w.start(&leaver("off@example.com")).await;
    let text = &off.outcome().summary;
    assert!(text.contains("found through the SCIM directory") && text.contains("found already deactivated"), "{text}");
    assert_eq!(off.outcome().access, Some(lifecycle_engine::Access::Deactivated));
    assert_eq!(
        w.harness.keys(&off.run_id).await,
        keys(&["find_user", "list_groups", &format!("remove_group:{SOFTWARE}"), "deactivate_in_directory"])
    );
    assert_eq!(groups_of(&accounts(&w, "off@example.com")[0]), Vec::<String>::new());
}

/// Without a directory, a leaver still finds a deactivated account (the search never shows
/// it): every user of the site lists it, and `GET /user` confirms it is on the site.
#[tokio::test]
async fn without_a_directory_a_deactivated_account_is_found_among_all_users() {
    let w = World::new(VendorKind::Jira).await;
    w.seed(json!({"users": [{"emailAddress": "off@example.com", "active": false, "groups": [SOFTWARE]}]}));
    let before = w.requests();
    let left = w.start(&leaver("off@example.com")).await;
    let text = &left.outcome().summary;
    assert!(text.contains("found among all of the site's users") && text.contains("from 1 group(s)"), "{text}");
    assert_eq!(left.outcome().access, Some(lifecycle_engine::Access::Removed));
    let counts = routes(&[
        ("GET /user/search", 1),
        ("GET /users/search", 1),
        ("GET /user", 1),
        ("GET /user/groups", 1),
        ("DELETE /group/user", 1),
        ("DELETE /user", 1),
    ]);
    assert_eq!(w.requests_since(&before), counts);

    // Removed from the site, it is listed still (getAllUsers: "previously deleted users"), but
    // `GET /user` no longer shows it: nothing to remove.
    let again = w.start(&leaver("off@example.com")).await;
    assert!(again.outcome().summary.contains("nothing to remove"), "{:?}", again.outcome());
    assert_eq!(again.outcome().access, Some(lifecycle_engine::Access::Absent));
}

/// "If the user exists and has access to Jira, the operation returns a 201": for an account
/// the search could not show (its address hidden), the joiner says that Jira answered with an
/// existing account and nothing was created; for a deactivated one, that a person must
/// reactivate it; for an account without access (removed from the site), Jira's 400 and the
/// account by name.
#[tokio::test]
async fn an_existing_users_201_is_reported_as_existing_not_created() {
    let w = World::new(VendorKind::Jira).await;
    w.start(&joiner("ada@example.com", &[])).await.outcome();
    w.seed(json!({"users": [
        {"emailAddress": "shy@example.com", "emailVisible": false, "products": ["jira-software"]},
        {"emailAddress": "asleep@example.com", "active": false, "products": ["jira-software"]},
        {"emailAddress": "gone@example.com", "products": ["jira-software"], "groups": [ENGINEERING]},
    ]}));
    let shy_id = accounts(&w, "shy@example.com")[0]["accountId"].as_str().unwrap().to_string();

    let before = w.requests();
    let shy = w.start(&joiner("shy@example.com", &[SOFTWARE])).await;
    let text = &shy.outcome().summary;
    assert!(
        text.starts_with(&format!("found existing Jira user {shy_id}"))
            && text.contains("nothing was created")
            && !text.contains("created Jira user"),
        "{text}"
    );
    assert_eq!(shy.outcome().access, Some(lifecycle_engine::Access::Active));
    let counts = routes(&[
        ("GET /group/bulk", 1),
        ("GET /user/search", 1),
        ("POST /user", 1),
        ("GET /user", 1),
        ("POST /group/user", 1),
    ]);
    assert_eq!(w.requests_since(&before), counts, "the 201's account is read for its groups and products");
    assert_eq!(accounts(&w, "shy@example.com").len(), 1);
    assert_eq!(groups_of(&accounts(&w, "shy@example.com")[0]), [SOFTWARE]);
    let journal = w.harness.journal(&shy.run_id).await;
    assert!(journal[0].output.as_deref().unwrap().contains("existed_at_create"), "{:?}", journal[0].output);

    let asleep = w.start(&joiner("asleep@example.com", &[SOFTWARE])).await;
    let err = asleep.error().to_string();
    assert!(matches!(asleep.error(), StepError::NeedsPerson { .. }), "{err}");
    assert!(
        err.contains("existing account") && err.contains("nothing was created") && err.contains("deactivated"),
        "{err}"
    );
    assert_eq!(accounts(&w, "asleep@example.com")[0]["active"], false);

    let gone = accounts(&w, "gone@example.com")[0]["accountId"].as_str().unwrap().to_string();
    w.by_hand(reqwest::Method::DELETE, &format!("/user?accountId={gone}"), None).await;
    let back = w.start(&joiner("gone@example.com", &[SOFTWARE])).await;
    let err = back.error().to_string();
    assert!(matches!(back.error(), StepError::NeedsPerson { .. }), "{err}");
    assert!(err.contains(&gone) && err.contains("no access to Jira") && err.contains("admin.atlassian.com"), "{err}");
    // The person gives the account access again; the replay finds it and adds the group.
    w.seed(json!({"grantAccess": [{"emailAddress": "gone@example.com", "products": ["jira-software"]}]}));
    let replayed = w.retry(&back.run_id).await;
    assert!(replayed.outcome().summary.starts_with("found existing Jira user"), "{:?}", replayed.outcome());
    assert_eq!(groups_of(&accounts(&w, "gone@example.com")[0]), [SOFTWARE]);
    assert_eq!(w.state()["invitations"].as_array().unwrap().len(), 1, "only ada was invited");
}

/// `groupId` is nullable: a group Jira shows without one fails no page, is never matched to an
/// event's id, and a leaver says it could not change it.
#[tokio::test]
async fn a_group_with_a_null_group_id_fails_no_page() {
    let w = World::new(VendorKind::Jira).await;
    let legacy = "7a7a7a7a-0000-4000-8000-000000000001";
    w.seed(json!({
        "groups": [{"name": "legacy-group", "groupId": legacy, "nullGroupId": true}],
        "users": [{"emailAddress": "lee@example.com", "products": ["jira-software"], "groups": [SOFTWARE, legacy]}],
    }));
    // The catalogue (a page with a null groupId) reads; the legacy group's key is no groupId.
    let run = w.start(&joiner("ada@example.com", &[legacy])).await;
    assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.result);
    let run = w.start(&joiner("hedy@example.com", &[SOFTWARE])).await;
    assert!(run.outcome().summary.starts_with("created Jira user"), "{:?}", run.outcome());

    let left = w.start(&leaver("lee@example.com")).await;
    let text = &left.outcome().summary;
    assert!(
        text.contains("from 1 group(s)") && text.contains("legacy-group") && text.contains("without a groupId"),
        "{text}"
    );
    assert_eq!(
        w.harness.keys(&left.run_id).await,
        keys(&["find_user", "list_groups", &format!("remove_group:{SOFTWARE}"), "remove_site_access"])
    );

    // Reconcile reads the members of groups with an id only.
    let accounts = w.connector.directory(&|_| {}).await.expect("the directory reads");
    assert!(accounts.iter().all(|a| a.access.iter().all(|g| !g.contains(legacy))), "{accounts:?}");
}

/// A 429 names its wait in `Retry-After` seconds: a workflow's step hands it to the executor
/// (one 429, the run retried after it), and a directory read waits it out and goes on, with no
/// second request inside the wait.
#[tokio::test]
async fn a_429s_retry_after_is_waited_without_a_storm() {
    let w = World::new(VendorKind::Jira).await;
    w.configure(json!({"retry_after_secs": 2}));
    w.fault(json!({"method": "POST", "path": "/user", "kind": "status", "status": 429, "count": 1}));
    let first = w.start(&joiner("ada@example.com", &[])).await;
    match first.error() {
        StepError::Transient { retry_after, .. } => {
            assert_eq!(*retry_after, Some(std::time::Duration::from_secs(2)), "seconds, as Jira sends them")
        }
        other => panic!("a 429 is transient: {other:?}"),
    }
    assert_eq!(w.rate_limited(), 1);

    w.configure(json!({"retry_after_secs": 1}));
    w.fault(json!({"method": "GET", "path": "/group/member", "kind": "status", "status": 429, "count": 1}));
    let before = w.requests();
    let read = w.read_directory().await;
    assert!(read.took >= std::time::Duration::from_secs(1), "the wait was kept: {:?}", read.took);
    assert_eq!(w.rate_limited(), 2, "one 429 each, no storm");
    let members = w.requests_since(&before)["GET /group/member"];
    assert_eq!(members, 5 + 1, "five groups, one page each, and the page asked again after the wait");
}
