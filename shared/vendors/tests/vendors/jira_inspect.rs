//! Jira read-only: the directory reconcile reads, the access an event asks for, and plans,
//! against the simulator in process.
//!
//! Directory requests, for U accounts `GET /users/search` lists (all types; active, inactive
//! and previously deleted), G groups, m_g members of group g: `GET /users/search` ⌊U/1000⌋+1,
//! `GET /group/bulk` ⌈G/1000⌉, `GET /group/member` max(1, ⌈m_g/50⌉) per group (50: the
//! definition's maximum), `GET /myself` once per connector.

use crate::common::*;
use lifecycle_engine::inspect::{Account, AccountStatus};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const JIRA: VendorKind = VendorKind::Jira;
/// The steps of a Jira run that only read: not actions of a plan.
const READS: &[&str] = &["find_user", "list_groups"];
/// Groups of the simulator's default fixture.
const SOFTWARE: &str = "276f955c-63d7-42c8-9520-92d01dca0625";
const ADMINS: &str = "9a7e2c41-3b5d-4e8f-a1c6-7d0b2e9f4a38";
const ENGINEERING: &str = "e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24";
const PRODUCT: &str = "b8f0c2e4-6a1d-4b3f-9e5c-7a2d4f6b8c01";

fn groups(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|g| format!("group:{g}")).collect()
}

fn by_name<'a>(accounts: &'a [Account], name: &str) -> &'a Account {
    accounts.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("{name} is listed"))
}

/// An account as the test compares it: address, status, access, protected or not.
type Seen<'a> = (Option<&'a str>, AccountStatus, BTreeSet<String>, bool);

#[tokio::test]
async fn the_directory_lists_every_person_with_their_groups_and_protects_the_credentials_own() {
    let w = World::new(JIRA).await;
    let run = w.start(&contract_joiner()).await;
    run.outcome();
    w.seed(json!({"users": [
        {"emailAddress": "Svc-Build@Example.com", "displayName": "Build Bot", "products": ["jira-software"], "groups": [ENGINEERING]},
        {"emailAddress": "gone@example.com", "displayName": "Gone Person", "active": false, "groups": [PRODUCT]},
        {"emailAddress": "lee@example.com", "displayName": "Lee Leaving", "groups": [SOFTWARE]},
    ]}));
    // Removed from the site by a leaver: getAllUsers lists "previously deleted users" too,
    // inactive and in no group.
    w.start(&event("leaver", "lee@example.com", JIRA, json!({}))).await.outcome();

    let before = w.requests();
    let read = w.read_directory().await;
    let accounts = read.accounts;
    let expected =
        routes(&[("GET /myself", 1), ("GET /users/search", 1), ("GET /group/bulk", 1), ("GET /group/member", 5)]);
    assert_eq!(w.requests_since(&before), expected, "one page of users, the groups, each group's members");
    assert_eq!(read.progress, [7], "seven people, the app and customer accounts left out");

    let got: BTreeMap<&str, Seen> = accounts
        .iter()
        .map(|a| (a.name.as_str(), (a.email.as_deref(), a.status, a.access.clone(), a.protected.is_some())))
        .collect();
    let want = BTreeMap::from([
        ("Sim Admin", (Some("admin@sim.example"), AccountStatus::Active, groups(&[SOFTWARE, ADMINS]), true)),
        ("Grace Hopper", (Some("grace@example.com"), AccountStatus::Active, groups(&[SOFTWARE, ENGINEERING]), false)),
        // Jira hides this address: the account cannot be matched by address.
        ("Alex Private", (None, AccountStatus::Active, groups(&[SOFTWARE]), false)),
        // Created by the joiner: Jira names a new user after their address until they accept
        // the invitation (`displayName` is no longer taken at creation).
        ("ada", (Some("ada@example.com"), AccountStatus::Active, groups(&[SOFTWARE]), false)),
        ("Build Bot", (Some("svc-build@example.com"), AccountStatus::Active, groups(&[ENGINEERING]), false)),
        ("Gone Person", (Some("gone@example.com"), AccountStatus::Deactivated, groups(&[PRODUCT]), false)),
        ("Lee Leaving", (Some("lee@example.com"), AccountStatus::Deactivated, groups(&[]), false)),
    ]);
    assert_eq!(got, want);
    assert!(by_name(&accounts, "Sim Admin").protected.as_deref().unwrap().contains("credential's own account"));

    // What the joiner made is what the event asks for; a group added by hand is drift.
    let app = spec(&contract_joiner(), JIRA).input.app;
    let ada = by_name(&accounts, "ada").clone();
    assert_eq!(w.connector.desired_access(&app), Some(ada.access.clone()));
    let added = json!({ "accountId": ada.vendor_id });
    w.by_hand(reqwest::Method::POST, &format!("/group/user?groupId={ENGINEERING}"), Some(added)).await;
    let before = w.requests();
    let accounts = w.connector.directory(&|_| {}).await.unwrap();
    assert_eq!(w.requests_since(&before).get("GET /myself"), None, "the credential's account is known now");
    let ada = by_name(&accounts, "ada");
    assert_eq!(ada.access, groups(&[SOFTWARE, ENGINEERING]));
    assert_ne!(w.connector.desired_access(&app), Some(ada.access.clone()));
}

/// 5,000 people in one group with the simulator's limits on (100 requests a second per
/// credential): 113 requests, as group members come 50 a page (the definition's maximum); the
/// simulator's budget is crossed once at most, its 429 waited out (no storm), and the read
/// goes on.
#[tokio::test]
async fn a_directory_of_five_thousand_people_stays_within_the_budget() {
    let w = World::new(JIRA).await;
    let crowd: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"emailAddress": format!("crowd{i}@example.com"), "displayName": format!("Crowd {i}"),
                   "products": ["jira-software"], "groups": [SOFTWARE]})
        })
        .collect();
    w.seed(json!({ "users": crowd }));
    w.configure(json!({"rate_limit": {"enabled": true}}));
    // U: the crowd, the fixture's admin, Grace, Alex, an app and a customer account.
    let u: u64 = 5000 + 5;
    // The crowd's group also holds the admin, Grace and Alex; the fixture's 4 other groups fit a page each.
    let software_members: u64 = 5000 + 3;
    let (before, limited) = (w.requests(), w.rate_limited());
    let Directory { accounts, took, .. } = w.read_directory().await;
    let limited = w.rate_limited() - limited;
    assert!(limited <= 2, "at most one 429 a window crossed, each waited out: {limited}");
    let mut got = w.requests_since(&before);
    // A page answered 429 was asked again after the wait: count it once.
    *got.get_mut("GET /group/member").unwrap() -= limited;
    let expected = routes(&[
        ("GET /myself", 1),
        ("GET /users/search", u / 1000 + 1),
        ("GET /group/bulk", 1),
        ("GET /group/member", software_members.div_ceil(50) + 4),
    ]);
    assert_eq!(got, expected);
    assert_eq!(expected.values().sum::<u64>(), 113);
    assert_eq!(accounts.len(), 5000 + 3, "every person, no app or customer account");
    let crowd: Vec<&Account> = accounts.iter().filter(|a| a.name.starts_with("Crowd ")).collect();
    assert_eq!(crowd.len(), 5000);
    assert!(crowd.iter().all(|a| a.access == groups(&[SOFTWARE])));
    // A guard against a stall (an hour-long wait, a storm), not a speed test: 113 requests at the
    // simulator's 100 a second and one 429 waited out take about 2 s alone, 6 on a loaded CI.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// A group of 120 members is read in pages of 50 (getUsersFromGroup's maximum), following
/// `isLast`: three requests.
#[tokio::test]
async fn group_members_are_read_fifty_a_page() {
    let w = World::new(JIRA).await;
    let big = "5d6e7f80-1111-4222-8333-944455556666";
    let users: Vec<Value> =
        (0..120).map(|i| json!({"emailAddress": format!("m{i:03}@example.com"), "groups": [big]})).collect();
    w.seed(json!({"groups": [{"name": "big", "groupId": big}], "users": users}));
    let before = w.requests();
    let accounts = w.read_directory().await.accounts;
    // The fixture's five groups fit a page each; the big one takes three.
    assert_eq!(w.requests_since(&before)["GET /group/member"], 5 + 3);
    let members = accounts.iter().filter(|a| a.access.contains(&format!("group:{big}"))).count();
    assert_eq!(members, 120);
    let pages: Vec<String> = w
        .sim
        .sim
        .lock()
        .journal
        .calls(Some(w.sim_vendor()))
        .iter()
        .filter(|c| c["path"] == "/group/member" && c["query"].as_str().is_some_and(|q| q.contains(big)))
        .map(|c| c["query"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    for (page, start) in pages.iter().zip([0, 50, 100]) {
        assert!(page.contains(&format!("startAt={start}&maxResults=50")), "{page}");
        assert!(page.contains("includeInactiveUsers=true"), "{page}");
    }
}

/// The contract's joiner, then its leaver: each plan writes nothing and lists exactly the write
/// steps the run then journals.
#[tokio::test]
async fn plans_for_the_contracts_joiner_and_leaver_match_the_runs() {
    let w = World::new(JIRA).await;
    let before = w.writes();
    let plan = w.connector.plan(&spec(&contract_joiner(), JIRA)).await.expect("the plan reads");
    assert_eq!(w.writes(), before, "no write during the plan");
    assert_eq!(plan.stop, None);
    assert_eq!(
        plan.actions[0].text,
        "create Jira user ada@example.com (Ada Lovelace) with products jira-software; Jira sends the invitation"
    );
    let run = w.start(&contract_joiner()).await;
    run.outcome();
    assert_eq!(steps(&plan), w.written(&run.run_id, READS).await);
    assert_eq!(steps(&plan), ["ensure_user".to_string(), format!("add_group:{SOFTWARE}")]);

    let again = w.connector.plan(&spec(&contract_joiner(), JIRA)).await.unwrap();
    assert!(again.actions.is_empty() && again.stop.is_none(), "{again:?}");

    let before = w.writes();
    let plan = w.connector.plan(&spec(&contract_leaver(), JIRA)).await.expect("the plan reads");
    assert_eq!(w.writes(), before, "no write during the plan");
    assert_eq!(plan.stop, None);
    let run = w.start(&contract_leaver()).await;
    run.outcome();
    assert_eq!(steps(&plan), w.written(&run.run_id, READS).await);
    assert_eq!(steps(&plan), [format!("remove_group:{SOFTWARE}"), "remove_site_access".to_string()]);
}

/// A mover of a drifted account, and a leaver through the SCIM directory.
#[tokio::test]
async fn a_mover_and_a_directory_leaver_plan_what_the_runs_do() {
    let w = World::jira_with_directory().await;
    w.seed(json!({"users": [
        {"emailAddress": "mo@example.com", "products": ["jira-software"], "groups": [SOFTWARE, ENGINEERING]},
        {"emailAddress": "managed@example.com", "scimManaged": true, "groups": [SOFTWARE]},
    ]}));
    let mover = event("mover", "mo@example.com", JIRA, json!({"groups": [SOFTWARE, PRODUCT]}));
    let plan = w.connector.plan(&spec(&mover, JIRA)).await.unwrap();
    assert_eq!(steps(&plan), [format!("add_group:{PRODUCT}"), format!("remove_group:{ENGINEERING}")]);
    let run = w.start(&mover).await;
    run.outcome();
    assert_eq!(steps(&plan), w.written(&run.run_id, READS).await);

    let leaver = event("leaver", "managed@example.com", JIRA, json!({}));
    let before = w.writes();
    let plan = w.connector.plan(&spec(&leaver, JIRA)).await.unwrap();
    assert_eq!(w.writes(), before, "no write during the plan, the directory's included");
    assert_eq!(steps(&plan), [format!("remove_group:{SOFTWARE}"), "deactivate_in_directory".to_string()]);
    let run = w.start(&leaver).await;
    run.outcome();
    assert_eq!(steps(&plan), w.written(&run.run_id, READS).await);
}

/// Where the run stops, the plan stops, with the run's own message.
#[tokio::test]
async fn a_plan_stops_where_the_run_would_with_its_message() {
    let w = World::new(JIRA).await;

    // An unknown group: the run dies before anything changes.
    let missing = "0b5e1d2c-9f8a-4c7b-8e6d-5a4b3c2d1e0f";
    let unknown = event("joiner", "bob@example.com", JIRA, json!({"products": ["jira-software"], "groups": [missing]}));
    let plan = w.connector.plan(&spec(&unknown, JIRA)).await.unwrap();
    let run = w.start(&unknown).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state.as_str(), stop.message), ("dead", run.error().to_string()));
    assert!(plan.actions.is_empty());

    // An existing user without the product: the groups, then a person grants the product.
    w.seed(json!({"users": [{"emailAddress": "noproduct@example.com", "displayName": "No Product", "products": []}]}));
    let joiner =
        event("joiner", "noproduct@example.com", JIRA, json!({"products": ["jira-software"], "groups": [SOFTWARE]}));
    let before = w.writes();
    let plan = w.connector.plan(&spec(&joiner, JIRA)).await.unwrap();
    assert_eq!(w.writes(), before);
    let run = w.start(&joiner).await;
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!((stop.state.as_str(), stop.message.as_str()), ("needs_manual_action", run.outcome().summary.as_str()));
    // The group is added before the run stops; its `ensure_user` step found the user and changed
    // nothing, so the plan notes it rather than listing it as an action.
    assert_eq!(steps(&plan), [format!("add_group:{SOFTWARE}")]);
    assert_eq!(w.written(&run.run_id, READS).await, ["ensure_user".to_string(), format!("add_group:{SOFTWARE}")]);
    assert!(plan.notes.iter().any(|n| n.starts_with("found Jira user No Product")), "{plan:?}");

    // Only a hidden address matches: a person must tell which account it is.
    let hidden = event("mover", "alex.private@example.com", JIRA, json!({"groups": [SOFTWARE]}));
    let plan = w.connector.plan(&spec(&hidden, JIRA)).await.unwrap();
    let run = w.start(&hidden).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state.as_str(), stop.message), ("needs_manual_action", run.error().to_string()));

    // A mover of nobody.
    let nobody = event("mover", "nobody@example.com", JIRA, json!({"groups": [SOFTWARE]}));
    let plan = w.connector.plan(&spec(&nobody, JIRA)).await.unwrap();
    let run = w.start(&nobody).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state.as_str(), stop.message.as_str()), ("needs_manual_action", run.outcome().summary.as_str()));
}
