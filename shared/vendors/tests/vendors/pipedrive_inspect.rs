//! Pipedrive read-only: the directory reconcile reads, the access an event asks for, and plans,
//! against the simulator in process.
//!
//! Directory requests: `GET /api/v1/users` once (getUsers has no paging: N users of every state
//! in one answer), `GET /api/v1/users/me` once per connector, `GET /api/v1/roles` only when the
//! cached catalogue is cold or lacks a held role.

use crate::common::*;
use lifecycle_domain::Workflow;
use lifecycle_engine::inspect::{Account, AccountStatus};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const PD: VendorKind = VendorKind::Pipedrive;
/// The steps of a Pipedrive run that only read: not actions of a plan.
const READS: &[&str] = &["find_user", "check_not_last_admin", "resolve_successor"];

fn app(event: &Value) -> lifecycle_domain::apps::AppRequest {
    spec(event, PD).input.app
}

fn by_email<'a>(accounts: &'a [Account], email: &str) -> &'a Account {
    accounts.iter().find(|a| a.email.as_deref() == Some(email)).unwrap_or_else(|| panic!("{email} is listed"))
}

/// A role changed by hand, through Pipedrive's own API (as an admin in the UI would).
async fn assign_by_hand(w: &World, role_id: i64, user: i64) {
    let path = format!("/api/v1/roles/{role_id}/assignments");
    w.by_hand(reqwest::Method::POST, &path, Some(json!({ "user_id": user }))).await;
}

#[tokio::test]
async fn the_directory_lists_every_user_with_its_role_and_protects_the_tokens_own() {
    let w = World::new(PD).await;
    w.start(&contract_joiner()).await.outcome();
    w.seed(json!({"users": [
        {"name": "CI Bot", "email": "CI-Bot@Example.com", "role": "Admin"},
        {"name": "Gone Person", "email": "gone@example.com", "role": "Sales Rep", "active_flag": false},
    ]}));
    let before = w.requests();
    let read = w.read_directory().await;
    let accounts = read.accounts;
    // The joiner read the role catalogue already: the users' page and the token's own user.
    let expected = BTreeMap::from([("GET /api/v1/users".to_string(), 1), ("GET /api/v1/users/me".to_string(), 1)]);
    assert_eq!(w.requests_since(&before), expected);
    assert_eq!(read.progress, [5], "one page, reported once");

    let ada_id = pipedrive_id(&w, "ada@example.com");
    let got: BTreeMap<String, (AccountStatus, BTreeSet<String>, bool)> = accounts
        .iter()
        .map(|a| (a.email.clone().unwrap(), (a.status, a.access.clone(), a.protected.is_some())))
        .collect();
    let want = BTreeMap::from([
        ("admin@sim.example".to_string(), (AccountStatus::Active, names(&[]), true)),
        ("grace@example.com".to_string(), (AccountStatus::Active, names(&["Sales Manager"]), false)),
        ("ada@example.com".to_string(), (AccountStatus::Active, names(&["Sales Rep"]), false)),
        ("ci-bot@example.com".to_string(), (AccountStatus::Active, names(&["Admin"]), false)),
        ("gone@example.com".to_string(), (AccountStatus::Deactivated, names(&["Sales Rep"]), false)),
    ]);
    assert_eq!(got, want, "addresses lower-cased, deactivated users included");
    let ada = by_email(&accounts, "ada@example.com");
    // addUser takes no name (the person sets it when accepting): the simulator shows the address.
    assert_eq!((ada.vendor_id.clone(), ada.name.as_str()), (ada_id.to_string(), "ada@example.com"));
    let admin = by_email(&accounts, "admin@sim.example");
    assert!(admin.protected.as_deref().unwrap().contains("API token's own user"), "{admin:?}");

    // What a successful joiner made is what the event asks for, whatever the event's case.
    assert_eq!(w.connector.desired_access(&app(&contract_joiner())), Some(ada.access.clone()));
    let mut shouting = contract_joiner();
    shouting["apps"]["pipedrive"]["role"] = json!("SALES REP");
    assert_eq!(w.connector.desired_access(&app(&shouting)), Some(names(&["Sales Rep"])));
    let bare = event("leaver", "ada@example.com", PD, json!({}));
    assert_eq!(w.connector.desired_access(&app(&bare)), None, "an app without a role asks for nothing");

    // Moved to Sales Manager by hand: drift.
    assign_by_hand(&w, 2, ada_id).await;
    let before = w.requests();
    let accounts = w.connector.directory(&|_| {}).await.unwrap();
    assert_eq!(
        w.requests_since(&before),
        BTreeMap::from([("GET /api/v1/users".to_string(), 1)]),
        "warm: the list only"
    );
    let ada = by_email(&accounts, "ada@example.com");
    assert_eq!(ada.access, names(&["Sales Manager"]));
    assert_ne!(w.connector.desired_access(&app(&contract_joiner())), Some(ada.access.clone()));
}

/// 5,000 people with the simulator's limits on (80 requests per 2 s): one list, no 429.
#[tokio::test]
async fn a_directory_of_five_thousand_people_stays_within_the_budget() {
    let w = World::new(PD).await;
    let crowd: Vec<Value> = (0..5000)
        .map(|i| json!({"name": format!("Crowd {i}"), "email": format!("crowd{i}@example.com"), "role": "Sales Rep"}))
        .collect();
    w.seed(json!({ "users": crowd }));
    w.configure(json!({"rate_limit": {"enabled": true}}));
    let n: usize = 5000 + 2; // the built-in admin and the fixture's Grace
    let (before, limited) = (w.requests(), w.rate_limited());
    let Directory { accounts, progress, took } = w.read_directory().await;
    let expected = BTreeMap::from([
        ("GET /api/v1/roles".to_string(), 1),
        ("GET /api/v1/users".to_string(), 1),
        ("GET /api/v1/users/me".to_string(), 1),
    ]);
    assert_eq!(w.requests_since(&before), expected, "the users (one answer), the token's user, the roles (cold)");
    assert_eq!(w.rate_limited() - limited, 0, "no 429");
    assert_eq!(progress, [n], "one list, reported once");
    assert_eq!(accounts.len(), n);
    let crowd = accounts.iter().filter(|a| a.email.as_deref().is_some_and(|e| e.starts_with("crowd"))).count();
    assert_eq!(crowd, 5000);
    assert!(accounts.iter().filter(|a| a.name.starts_with("Crowd")).all(|a| a.access == names(&["Sales Rep"])));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// The contract's joiner, then its leaver with three open deals: each plan writes nothing and
/// lists exactly the write steps the run then journals.
#[tokio::test]
async fn plans_for_the_contracts_joiner_and_leaver_match_the_runs() {
    let w = World::new(PD).await;
    let joiner = contract_joiner();
    let before = w.writes();
    let plan = w.connector.plan(&spec(&joiner, PD)).await.expect("the plan reads");
    assert_eq!(w.writes(), before, "no write during the plan");
    assert_eq!(plan.stop, None);
    assert_eq!(plan.actions[0].text, "create Pipedrive user ada@example.com with role Sales Rep (id 1); Pipedrive emails them an invitation (they set their own name)");
    let run = w.start(&joiner).await;
    run.outcome();
    assert_eq!(steps(&plan), w.written(&run.run_id, READS).await);
    assert_eq!(steps(&plan), ["ensure_user", "assign_role:1"]);

    // Again: nothing to change, and the plan says what it found.
    let again = w.connector.plan(&spec(&joiner, PD)).await.unwrap();
    assert!(again.actions.is_empty(), "{again:?}");
    assert!(again.notes.iter().any(|n| n.contains("already has role Sales Rep (id 1)")), "{again:?}");

    w.seed(json!({"deals": [
        {"title": "Acme renewal", "owner_email": "ada@example.com"},
        {"title": "Globex", "owner_email": "ada@example.com"},
        {"title": "Initech", "owner_email": "ada@example.com"},
        {"title": "Won already", "owner_email": "ada@example.com", "status": "won"},
    ]}));
    let leaver = contract_leaver();
    let before = w.writes();
    let plan = w.connector.plan(&spec(&leaver, PD)).await.expect("the plan reads");
    assert_eq!(w.writes(), before, "no write during the plan");
    assert_eq!(plan.stop, None);
    assert!(
        plan.notes.iter().any(|n| n == "reassign 3 open deal(s) to successor grace@example.com (user 1001)"),
        "{plan:?}"
    );
    assert_eq!(
        plan.actions.last().unwrap().text,
        format!("then deactivate Pipedrive user {} (ada@example.com)", pipedrive_id(&w, "ada@example.com"))
    );
    let run = w.start(&leaver).await;
    assert!(run.outcome().summary.contains("reassigned 3 open deal(s)"), "{:?}", run.outcome());
    let done = w.written(&run.run_id, READS).await;
    assert_eq!(steps(&plan), done);
    assert_eq!(done.iter().filter(|k| k.starts_with("reassign_deal:")).count(), 3);
    assert_eq!(done.last().map(String::as_str), Some("deactivate"));
}

/// A mover of a drifted role: one assignment, named with the role the user has now.
#[tokio::test]
async fn a_movers_plan_names_the_role_it_replaces() {
    let w = World::new(PD).await;
    w.start(&contract_joiner()).await.outcome();
    assign_by_hand(&w, 2, pipedrive_id(&w, "ada@example.com")).await;
    let mut mover = contract_joiner();
    mover["type"] = json!("mover");
    let plan = w.connector.plan(&spec(&mover, PD)).await.unwrap();
    assert_eq!(steps(&plan), ["assign_role:1"]);
    assert!(plan.actions[0].text.contains("it has Sales Manager (id 2) now"), "{plan:?}");
    let run = w.start(&mover).await;
    assert!(run.outcome().summary.starts_with("moved Pipedrive user"), "{:?}", run.outcome());
    assert_eq!(steps(&plan), w.written(&run.run_id, READS).await);
}

/// Where the run stops, the plan stops, with the run's own message.
#[tokio::test]
async fn a_plan_stops_where_the_run_would_with_its_message() {
    let w = World::new(PD).await;

    // Unknown role: the run dies.
    let mut astronaut = contract_joiner();
    astronaut["apps"]["pipedrive"]["role"] = json!("Astronaut");
    let plan = w.connector.plan(&spec(&astronaut, PD)).await.unwrap();
    let run = w.start(&astronaut).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state.as_str(), stop.message), ("dead", run.error().to_string()));
    assert!(plan.actions.is_empty());

    // Open deals and nobody to take them: a person must decide.
    w.seed(json!({
        "users": [{"name": "Lee Leaving", "email": "lee@example.com", "role": "Sales Rep"}],
        "deals": [{"title": "Orphan", "owner_email": "lee@example.com"}],
    }));
    let mut leaver = event("leaver", "lee@example.com", PD, json!({}));
    leaver["successor_email"] = json!("nobody@example.com");
    let before = w.writes();
    let plan = w.connector.plan(&spec(&leaver, PD)).await.unwrap();
    assert_eq!(w.writes(), before);
    let run = w.start(&leaver).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state.as_str(), stop.message.clone()), ("needs_manual_action", run.error().to_string()));
    assert!(stop.message.contains("successor nobody@example.com has no Pipedrive user"), "{}", stop.message);

    // A mover of nobody: a person must send a joiner.
    let mover = event("mover", "nobody@example.com", PD, json!({"role": "Sales Rep"}));
    let plan = w.connector.plan(&spec(&mover, PD)).await.unwrap();
    let run = w.start(&mover).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state.as_str(), stop.message.as_str()), ("needs_manual_action", run.outcome().summary.as_str()));

    // The deals of a user deactivated in Pipedrive itself: reassigned, nothing deactivated.
    w.seed(json!({
        "users": [{"name": "Off", "email": "off@example.com", "active_flag": false}],
        "deals": [{"title": "Left behind", "owner_email": "off@example.com"}],
    }));
    let mut off = event("leaver", "off@example.com", PD, json!({}));
    off["successor_email"] = json!("grace@example.com");
    let plan = w.connector.plan(&spec_as(&off, PD, Workflow::ReassignDeals)).await.unwrap();
    let run = w.harness.start_workflow(&*w.connector, &off, PD, Workflow::ReassignDeals).await;
    run.outcome();
    let done = w.written(&run.run_id, READS).await;
    assert_eq!(steps(&plan), done);
    assert!(done.len() == 1 && done[0].starts_with("reassign_deal:"), "{done:?}");
}
