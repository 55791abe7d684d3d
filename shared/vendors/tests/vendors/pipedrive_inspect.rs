//! Pipedrive read-only: the directory reconcile reads, the access an event asks for, and plans,
//! against the simulator in process.
//!
//! Directory requests: `GET /users` ⌈N/500⌉ (N users of every state), `GET /users/me` once per
//! connector, `GET /roles` only when the cached catalogue is cold or lacks a held role.

use crate::common::*;
use lifecycle_domain::{Event, Workflow};
use lifecycle_engine::inspect::{Account, AccountStatus, Plan};
use lifecycle_engine::RunSpec;
use lifecycle_vendor_sim::registry::VendorSim;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PD: VendorKind = VendorKind::Pipedrive;
/// The steps of a Pipedrive run that only read: not actions of a plan.
const READS: &[&str] = &["find_user", "check_not_last_admin", "resolve_successor"];

/// The contract's example joiner (docs/contract.md §1), all five apps as the contract has them.
fn contract_joiner() -> Value {
    json!({
      "type": "joiner",
      "occurred_at": "2026-11-22T09:00:00Z",
      "employee": {"id": "E-1001", "email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace"},
      "successor_email": "grace@example.com",
      "apps": {
        "pipedrive":   { "role": "Sales Rep" },
        "crowdstrike": { "roles": ["falcon_analyst"] },
        "jira":        { "products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"] },
        "calendly":    {},
        "circleci":    { "login": "ada-gh" }
      }
    })
}

/// The same person leaving, successor Grace (a user of the simulator's fixture).
fn contract_leaver() -> Value {
    let mut e = contract_joiner();
    e["type"] = json!("leaver");
    e["occurred_at"] = json!("2026-11-22T18:00:00Z");
    e
}

/// The run the harness would make of `event` at Pipedrive, as the executor hands it over.
fn spec(event: &Value, workflow: Workflow) -> RunSpec {
    let parsed = Event::parse(event).expect("a valid event");
    let input = parsed.run_inputs().into_iter().find(|i| i.app.vendor() == PD).expect("it names pipedrive");
    RunSpec { run_id: "plan".into(), event_id: "plan".into(), vendor: PD, workflow, input, attempt: 1 }
}

fn app(event: &Value) -> lifecycle_domain::apps::AppRequest {
    spec(event, Workflow::Joiner).input.app
}

/// Requests served that were not reads (anything but GET).
fn writes(w: &World) -> u64 {
    w.requests().iter().filter(|(route, _)| !route.starts_with("GET ")).map(|(_, n)| n).sum()
}

fn rate_limited(w: &World) -> u64 {
    w.sim.sim.lock().journal.counters(w.sim_vendor()).rate_limited
}

/// The keys of the run's steps that wrote (its journal without the reads).
async fn written(w: &World, run_id: &str) -> Vec<String> {
    w.harness.keys(run_id).await.into_iter().filter(|k| !READS.contains(&k.as_str())).collect()
}

fn keys(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(|a| a.step.clone()).collect()
}

fn access(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn by_email<'a>(accounts: &'a [Account], email: &str) -> &'a Account {
    accounts.iter().find(|a| a.email.as_deref() == Some(email)).unwrap_or_else(|| panic!("{email} is listed"))
}

fn user_id(w: &World, email: &str) -> i64 {
    let users = w.sim.sim.lock().tenants.pipedrive.snapshot()["users"].clone();
    users.as_array().unwrap().iter().find(|u| u["email"] == email).expect("the user exists")["id"].as_i64().unwrap()
}

/// A role changed by hand, through Pipedrive's own API (as an admin in the UI would).
async fn assign_by_hand(w: &World, role_id: i64, user: i64) {
    let url = format!("{}/roles/{role_id}/assignments?api_token=pd-admin-token", w.sim.base_url(w.sim_vendor()));
    let r = reqwest::Client::new().post(url).json(&json!({ "user_id": user })).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn the_directory_lists_every_user_with_its_role_and_protects_the_tokens_own() {
    let w = World::new(PD).await;
    w.start(&contract_joiner()).await.outcome();
    w.seed(json!({"users": [
        {"name": "CI Bot", "email": "CI-Bot@Example.com", "role": "Admin"},
        {"name": "Gone Person", "email": "gone@example.com", "role": "Sales Rep", "active_flag": false},
    ]}));
    let pages = Mutex::new(Vec::new());
    let before = w.requests();
    let accounts = w.connector.directory(&|n| pages.lock().unwrap().push(n)).await.expect("the directory reads");
    // The joiner read the role catalogue already: the users' page and the token's own user.
    let expected = BTreeMap::from([("GET /users".to_string(), 1), ("GET /users/me".to_string(), 1)]);
    assert_eq!(w.requests_since(&before), expected);
    assert_eq!(*pages.lock().unwrap(), [5], "one page, reported once");

    let ada_id = user_id(&w, "ada@example.com");
    let got: BTreeMap<String, (AccountStatus, BTreeSet<String>, bool)> = accounts
        .iter()
        .map(|a| (a.email.clone().unwrap(), (a.status, a.access.clone(), a.protected.is_some())))
        .collect();
    let want = BTreeMap::from([
        ("admin@sim.example".to_string(), (AccountStatus::Active, access(&[]), true)),
        ("grace@example.com".to_string(), (AccountStatus::Active, access(&["Sales Manager"]), false)),
        ("ada@example.com".to_string(), (AccountStatus::Active, access(&["Sales Rep"]), false)),
        ("ci-bot@example.com".to_string(), (AccountStatus::Active, access(&["Admin"]), false)),
        ("gone@example.com".to_string(), (AccountStatus::Deactivated, access(&["Sales Rep"]), false)),
    ]);
    assert_eq!(got, want, "addresses lower-cased, deactivated users included");
    let ada = by_email(&accounts, "ada@example.com");
    assert_eq!((ada.vendor_id.clone(), ada.name.as_str()), (ada_id.to_string(), "Ada Lovelace"));
    let admin = by_email(&accounts, "admin@sim.example");
    assert!(admin.protected.as_deref().unwrap().contains("API token's own user"), "{admin:?}");

    // What a successful joiner made is what the event asks for, whatever the event's case.
    assert_eq!(w.connector.desired_access(&app(&contract_joiner())), Some(ada.access.clone()));
    let mut shouting = contract_joiner();
    shouting["apps"]["pipedrive"]["role"] = json!("SALES REP");
    assert_eq!(w.connector.desired_access(&app(&shouting)), Some(access(&["Sales Rep"])));
    let bare = event("leaver", "ada@example.com", PD, json!({}));
    assert_eq!(w.connector.desired_access(&app(&bare)), None, "an app without a role asks for nothing");

    // Moved to Sales Manager by hand: drift.
    assign_by_hand(&w, 2, ada_id).await;
    let before = w.requests();
    let accounts = w.connector.directory(&|_| {}).await.unwrap();
    assert_eq!(w.requests_since(&before), BTreeMap::from([("GET /users".to_string(), 1)]), "warm: the page only");
    let ada = by_email(&accounts, "ada@example.com");
    assert_eq!(ada.access, access(&["Sales Manager"]));
    assert_ne!(w.connector.desired_access(&app(&contract_joiner())), Some(ada.access.clone()));
}

/// 5,000 people with the simulator's limits on (80 requests per 2 s): 11 pages, no 429.
#[tokio::test]
async fn a_directory_of_five_thousand_people_stays_within_the_budget() {
    let w = World::new(PD).await;
    let crowd: Vec<Value> = (0..5000)
        .map(|i| json!({"name": format!("Crowd {i}"), "email": format!("crowd{i}@example.com"), "role": "Sales Rep"}))
        .collect();
    w.seed(json!({ "users": crowd }));
    w.sim.sim.lock().tenants.pipedrive.configure(json!({"rate_limit": {"enabled": true}})).unwrap();
    let n: usize = 5000 + 2; // the built-in admin and the fixture's Grace
    let (before, limited) = (w.requests(), rate_limited(&w));
    let pages = Mutex::new(0usize);
    let started = Instant::now();
    let accounts = w.connector.directory(&|_| *pages.lock().unwrap() += 1).await.expect("the directory reads");
    let took = started.elapsed();
    let expected = BTreeMap::from([
        ("GET /roles".to_string(), 1),
        ("GET /users".to_string(), n.div_ceil(500) as u64),
        ("GET /users/me".to_string(), 1),
    ]);
    assert_eq!(w.requests_since(&before), expected, "⌈N/500⌉ pages, the token's user, the roles (cold)");
    assert_eq!(rate_limited(&w) - limited, 0, "no 429");
    assert_eq!(*pages.lock().unwrap(), n.div_ceil(500));
    assert_eq!(accounts.len(), n);
    let crowd = accounts.iter().filter(|a| a.email.as_deref().is_some_and(|e| e.starts_with("crowd"))).count();
    assert_eq!(crowd, 5000);
    assert!(accounts.iter().filter(|a| a.name.starts_with("Crowd")).all(|a| a.access == access(&["Sales Rep"])));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// The contract's joiner, then its leaver with three open deals: each plan writes nothing and
/// lists exactly the write steps the run then journals.
#[tokio::test]
async fn plans_for_the_contracts_joiner_and_leaver_match_the_runs() {
    let w = World::new(PD).await;
    let joiner = contract_joiner();
    let before = writes(&w);
    let plan = w.connector.plan(&spec(&joiner, Workflow::Joiner)).await.expect("the plan reads");
    assert_eq!(writes(&w), before, "no write during the plan");
    assert_eq!(plan.stop, None);
    assert_eq!(plan.actions[0].text, "create Pipedrive user ada@example.com (Ada Lovelace) with role Sales Rep (id 1); Pipedrive emails them an invitation");
    let run = w.start(&joiner).await;
    run.outcome();
    assert_eq!(keys(&plan), written(&w, &run.run_id).await);
    assert_eq!(keys(&plan), ["ensure_user", "assign_role:1"]);

    // Again: nothing to change, and the plan says what it found.
    let again = w.connector.plan(&spec(&joiner, Workflow::Joiner)).await.unwrap();
    assert!(again.actions.is_empty(), "{again:?}");
    assert!(again.notes.iter().any(|n| n.contains("already has role Sales Rep (id 1)")), "{again:?}");

    w.seed(json!({"deals": [
        {"title": "Acme renewal", "owner_email": "ada@example.com"},
        {"title": "Globex", "owner_email": "ada@example.com"},
        {"title": "Initech", "owner_email": "ada@example.com"},
        {"title": "Won already", "owner_email": "ada@example.com", "status": "won"},
    ]}));
    let leaver = contract_leaver();
    let before = writes(&w);
    let plan = w.connector.plan(&spec(&leaver, Workflow::Leaver)).await.expect("the plan reads");
    assert_eq!(writes(&w), before, "no write during the plan");
    assert_eq!(plan.stop, None);
    assert!(
        plan.notes.iter().any(|n| n == "reassign 3 open deal(s) to successor grace@example.com (user 1001)"),
        "{plan:?}"
    );
    assert_eq!(
        plan.actions.last().unwrap().text,
        format!("then deactivate Pipedrive user {} (ada@example.com)", user_id(&w, "ada@example.com"))
    );
    let run = w.start(&leaver).await;
    assert!(run.outcome().summary.contains("reassigned 3 open deal(s)"), "{:?}", run.outcome());
    let steps = written(&w, &run.run_id).await;
    assert_eq!(keys(&plan), steps);
    assert_eq!(steps.iter().filter(|k| k.starts_with("reassign_deal:")).count(), 3);
    assert_eq!(steps.last().map(String::as_str), Some("deactivate"));
}

/// A mover of a drifted role: one assignment, named with the role the user has now.
#[tokio::test]
async fn a_movers_plan_names_the_role_it_replaces() {
    let w = World::new(PD).await;
    w.start(&contract_joiner()).await.outcome();
    assign_by_hand(&w, 2, user_id(&w, "ada@example.com")).await;
    let mut mover = contract_joiner();
    mover["type"] = json!("mover");
    let plan = w.connector.plan(&spec(&mover, Workflow::Mover)).await.unwrap();
    assert_eq!(keys(&plan), ["assign_role:1"]);
    assert!(plan.actions[0].text.contains("it has Sales Manager (id 2) now"), "{plan:?}");
    let run = w.start(&mover).await;
    assert!(run.outcome().summary.starts_with("moved Pipedrive user"), "{:?}", run.outcome());
    assert_eq!(keys(&plan), written(&w, &run.run_id).await);
}

/// Where the run stops, the plan stops, with the run's own message.
#[tokio::test]
async fn a_plan_stops_where_the_run_would_with_its_message() {
    let w = World::new(PD).await;

    // Unknown role: the run dies.
    let mut astronaut = contract_joiner();
    astronaut["apps"]["pipedrive"]["role"] = json!("Astronaut");
    let plan = w.connector.plan(&spec(&astronaut, Workflow::Joiner)).await.unwrap();
    let run = w.start(&astronaut).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state, stop.message), ("dead", run.error().to_string()));
    assert!(plan.actions.is_empty());

    // Open deals and nobody to take them: a person must decide.
    w.seed(json!({
        "users": [{"name": "Lee Leaving", "email": "lee@example.com", "role": "Sales Rep"}],
        "deals": [{"title": "Orphan", "owner_email": "lee@example.com"}],
    }));
    let mut leaver = event("leaver", "lee@example.com", PD, json!({}));
    leaver["successor_email"] = json!("nobody@example.com");
    let before = writes(&w);
    let plan = w.connector.plan(&spec(&leaver, Workflow::Leaver)).await.unwrap();
    assert_eq!(writes(&w), before);
    let run = w.start(&leaver).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state, stop.message.clone()), ("needs_manual_action", run.error().to_string()));
    assert!(stop.message.contains("successor nobody@example.com has no Pipedrive user"), "{}", stop.message);

    // A mover of nobody: a person must send a joiner.
    let mover = event("mover", "nobody@example.com", PD, json!({"role": "Sales Rep"}));
    let plan = w.connector.plan(&spec(&mover, Workflow::Mover)).await.unwrap();
    let run = w.start(&mover).await;
    let stop = plan.stop.expect("the plan stops");
    assert_eq!((stop.state, stop.message.as_str()), ("needs_manual_action", run.outcome().summary.as_str()));

    // The deals of a user deactivated in Pipedrive itself: reassigned, nothing deactivated.
    w.seed(json!({
        "users": [{"name": "Off", "email": "off@example.com", "active_flag": false}],
        "deals": [{"title": "Left behind", "owner_email": "off@example.com"}],
    }));
    let mut off = event("leaver", "off@example.com", PD, json!({}));
    off["successor_email"] = json!("grace@example.com");
    let plan = w.connector.plan(&spec(&off, Workflow::ReassignDeals)).await.unwrap();
    let run = w.harness.start_workflow(&*w.connector, &off, PD, Workflow::ReassignDeals).await;
    run.outcome();
    let steps = written(&w, &run.run_id).await;
    assert_eq!(keys(&plan), steps);
    assert!(steps.len() == 1 && steps[0].starts_with("reassign_deal:"), "{steps:?}");
}
