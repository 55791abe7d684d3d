//! Calendly: the directory, the access an event asks for, and plans, against the simulator in
//! process.
//!
//! A directory read is `max(1, ceil(M / 100))` membership pages + `max(1, ceil(I / 100))` pages
//! of pending invitations, plus `GET /users/me` when the worker holds no organization. Calendly
//! events name no role (the REST API cannot set one), so `desired_access` is `None` and
//! `access` is empty: membership is all reconcile compares here.

use crate::common::*;
use lifecycle_domain::Event;
use lifecycle_engine::inspect::{Account, AccountStatus, Plan};
use lifecycle_engine::{RunSpec, StepError};
use lifecycle_vendor_sim::registry::VendorSim;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CAL: VendorKind = VendorKind::Calendly;

const ME: &str = "GET /users/me";
const MEMBERS: &str = "GET /organization_memberships";
const INVITATIONS: &str = "GET /organizations/{uuid}/invitations";

/// The simulator and the connector, the connector's own limiter off (60 a minute would make
/// each request take a second); `extra` goes in the connector's table.
async fn world(extra: Value) -> World {
    let mut table = json!({"rate_limit": {"enabled": false}});
    for (k, v) in extra.as_object().unwrap() {
        table[k] = v.clone();
    }
    World::with(CAL, table).await
}

/// The contract's example person (docs/contract.md §1) at Calendly.
fn ada(kind: &str) -> Value {
    person(kind, "ada@example.com", "Ada", "Lovelace")
}

fn person(kind: &str, email: &str, given: &str, family: &str) -> Value {
    json!({
        "type": kind,
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": {"id": format!("E-{email}"), "email": email, "given_name": given, "family_name": family},
        "apps": { "calendly": {} }
    })
}

/// The run a worker would execute for `event` at Calendly.
fn spec(event: &Value) -> RunSpec {
    let parsed = Event::parse(event).expect("the test's event is valid");
    let input = parsed.run_inputs().into_iter().find(|i| i.app.vendor() == CAL).expect("the event names Calendly");
    RunSpec {
        run_id: "plan".into(),
        event_id: "plan".into(),
        vendor: CAL,
        workflow: parsed.event_type.workflow().expect("a workflow"),
        input,
        attempt: 1,
    }
}

/// Requests that could change something: everything but GETs.
fn writes(w: &World) -> u64 {
    w.requests().iter().filter(|(route, _)| !route.starts_with("GET ")).map(|(_, n)| n).sum()
}

/// The run's write steps: its journal without the read (`find_person`).
async fn write_steps(w: &World, run_id: &str) -> Vec<String> {
    w.harness.keys(run_id).await.into_iter().filter(|k| k != "find_person").collect()
}

fn steps(plan: &Plan) -> Vec<&str> {
    plan.actions.iter().map(|a| a.step.as_str()).collect()
}

fn state(w: &World) -> Value {
    w.sim.sim.lock().tenants.calendly.snapshot()
}

/// The membership (`uri`, `uuid`) of `email` in the simulator.
fn membership(w: &World, email: &str) -> Value {
    let s = state(w);
    let m =
        s["memberships"].as_array().unwrap().iter().find(|m| m["email"].as_str().unwrap().eq_ignore_ascii_case(email));
    m.unwrap_or_else(|| panic!("{email} is a member")).clone()
}

fn pending_invitation(w: &World, email: &str) -> Value {
    let s = state(w);
    let i = s["invitations"].as_array().unwrap().iter().find(|i| i["email"] == email && i["status"] == "pending");
    i.unwrap_or_else(|| panic!("{email} is invited")).clone()
}

fn member(w: &World, email: &str, name: &str, protected: Option<&str>) -> Account {
    Account {
        vendor_id: membership(w, email)["uri"].as_str().unwrap().to_string(),
        email: Some(email.to_lowercase()),
        login: None,
        name: name.to_string(),
        status: AccountStatus::Active,
        access: BTreeSet::new(),
        protected: protected.map(str::to_string),
    }
}

fn sorted(mut accounts: Vec<Account>) -> Vec<Account> {
    accounts.sort_by(|a, b| a.email.cmp(&b.email));
    accounts
}

#[tokio::test]
async fn the_directory_lists_members_and_pending_invitations_and_protects_the_owner_and_the_tokens_user() {
    let w = world(json!({})).await;
    w.start(&ada("joiner")).await.outcome();
    w.seed(json!({
        "members": [
            {"email": "booking-bot@example.com", "name": "Booking Bot", "role": "admin"},
            {"email": "Mixed.Case@Example.com", "name": "Mixed Case"},
            {"email": "gone@example.com", "name": "Gone Person"}
        ],
        "invitations": [{"email": "declined@example.com", "status": "declined"}]
    }));
    // Removed by a leaver: no membership, so not an account.
    w.start(&person("leaver", "gone@example.com", "Gone", "Person")).await.outcome();

    let before = w.requests();
    let read = AtomicUsize::new(0);
    let accounts = sorted(w.connector.directory(&|n: usize| read.store(n, Ordering::Relaxed)).await.unwrap());
    assert_eq!(read.load(Ordering::Relaxed), 6, "progress after the last page");
    let routes: BTreeMap<String, u64> = [(MEMBERS, 1), (INVITATIONS, 1)].map(|(r, n)| (r.to_string(), n)).into();
    assert_eq!(w.requests_since(&before), routes, "one page each; the organization was cached by the run");

    let invitation = pending_invitation(&w, "ada@example.com");
    let expected = vec![
        Account {
            vendor_id: invitation["uri"].as_str().unwrap().to_string(),
            email: Some("ada@example.com".into()),
            login: None,
            name: "ada@example.com".into(),
            status: AccountStatus::Invited,
            access: BTreeSet::new(),
            protected: None,
        },
        member(
            &w,
            "admin@sim.example",
            "Sim Admin",
            Some("the user whose personal access token lifecycle uses (vendors.calendly.token): removing them would cut lifecycle off from the organization"),
        ),
        member(&w, "booking-bot@example.com", "Booking Bot", None),
        member(&w, "grace@example.com", "Grace Hopper", None),
        member(&w, "Mixed.Case@Example.com", "Mixed Case", None),
        member(
            &w,
            "owner@sim.example",
            "Sim Owner",
            Some("the owner of the Calendly organization: Calendly does not let the owner be removed through its API (transfer ownership first)"),
        ),
    ];
    assert_eq!(accounts, expected);

    // Nothing to compare beyond membership: the event names no role, and the joiner's
    // invitation has no access listed either.
    let app = spec(&ada("joiner")).input.app;
    assert_eq!(w.connector.desired_access(&app), None);
    assert!(accounts[0].access.is_empty());
    // Accepted, the invitation becomes a membership.
    w.seed(json!({"accept_invitations": [{"email": "ada@example.com", "name": "Ada Lovelace"}]}));
    let after = sorted(w.connector.directory(&|_: usize| {}).await.unwrap());
    assert_eq!(after[0], member(&w, "ada@example.com", "Ada Lovelace", None));
}

/// The Enterprise plan's 120 a minute, on both sides (the client's limiter spends one request
/// every half second): 256 members and 30 pending invitations from a cold worker are 5 requests,
/// about two seconds. At 60 a minute a 5,000-member organization takes about a minute (52
/// requests); the lead measures it in the benchmark.
#[tokio::test]
async fn the_directory_keeps_to_the_formula_and_the_budget() {
    let w = World::with(CAL, json!({"plan": "enterprise"})).await;
    let members: Vec<Value> = (0..253).map(|i| json!({"email": format!("m{i}@bulk.example.com")})).collect();
    let invitations: Vec<Value> = (0..30).map(|i| json!({"email": format!("i{i}@bulk.example.com")})).collect();
    w.seed(json!({"members": members, "invitations": invitations}));
    w.sim
        .sim
        .lock()
        .tenants
        .calendly
        .configure(json!({"plan": "enterprise", "rate_limit": {"enabled": true}}))
        .unwrap();

    let started = Instant::now();
    let accounts = w.connector.directory(&|_: usize| {}).await.unwrap();
    let took = started.elapsed();
    let (m, i) = (256u64, 30u64);
    assert_eq!(accounts.len() as u64, m + i);
    assert_eq!(accounts.iter().filter(|a| a.status == AccountStatus::Invited).count() as u64, i);
    let counters = w.sim.sim.lock().journal.counters(w.sim_vendor());
    assert_eq!(counters.rate_limited, 0, "no 429");
    let routes: BTreeMap<String, u64> =
        [(ME, 1), (MEMBERS, m.div_ceil(100)), (INVITATIONS, i.div_ceil(100))].map(|(r, n)| (r.to_string(), n)).into();
    assert_eq!(counters.by_route, routes, "1 + ceil(M/100) + ceil(I/100)");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_joiners_plan_writes_nothing_and_names_the_invitation_the_run_then_sends() {
    let w = world(json!({})).await;
    let joiner = ada("joiner");
    let before = writes(&w);
    let plan = w.connector.plan(&spec(&joiner)).await.unwrap();
    assert_eq!(writes(&w), before, "the plan wrote nothing");
    assert_eq!(plan.stop, None);
    assert_eq!(steps(&plan), ["invite"]);
    assert!(plan.actions[0].text.starts_with("invite ada@example.com to the Calendly organization"), "{plan:?}");

    let run = w.start(&joiner).await;
    run.outcome();
    assert_eq!(write_steps(&w, &run.run_id).await, steps(&plan));

    // Invited already: nothing would be sent again.
    let again = w.connector.plan(&spec(&joiner)).await.unwrap();
    assert!(again.actions.is_empty() && again.stop.is_none(), "{again:?}");
    assert!(again.notes[0].contains("already pending"), "{again:?}");
}

#[tokio::test]
async fn a_leavers_plan_removes_the_membership_or_revokes_the_invitation_as_the_run_does() {
    let w = world(json!({})).await;
    w.seed(json!({"members": [{"email": "ada@example.com", "name": "Ada Lovelace"}], "invitations": [{"email": "bob@example.com"}]}));
    let uuid = membership(&w, "ada@example.com")["uuid"].as_str().unwrap().to_string();
    let leaver = ada("leaver");
    let before = writes(&w);
    let plan = w.connector.plan(&spec(&leaver)).await.unwrap();
    assert_eq!(writes(&w), before, "the plan wrote nothing");
    assert_eq!(steps(&plan), [format!("remove_membership:{uuid}")]);
    let run = w.start(&leaver).await;
    run.outcome();
    assert_eq!(write_steps(&w, &run.run_id).await, steps(&plan));

    let bob = person("leaver", "bob@example.com", "Bob", "Builder");
    let invitation = pending_invitation(&w, "bob@example.com")["uuid"].as_str().unwrap().to_string();
    let plan = w.connector.plan(&spec(&bob)).await.unwrap();
    assert_eq!(steps(&plan), [format!("revoke_invitation:{invitation}")]);
    let run = w.start(&bob).await;
    run.outcome();
    assert_eq!(write_steps(&w, &run.run_id).await, steps(&plan));
}

#[tokio::test]
async fn a_plan_stops_where_the_run_would_with_the_runs_message() {
    // The owner: a person must transfer ownership first.
    let w = world(json!({})).await;
    let owner = person("leaver", "owner@sim.example", "Sim", "Owner");
    let plan = w.connector.plan(&spec(&owner)).await.unwrap();
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state, "needs_manual_action");
    assert!(plan.actions.is_empty());
    let run = w.start(&owner).await;
    assert!(run.outcome().needs_person);
    assert_eq!(stop.message, run.outcome().summary);
    assert!(stop.message.contains("transfer the organization's ownership"), "{}", stop.message);

    // A token of a plain member: Calendly refuses to list, and the run would die saying which
    // token to configure.
    let w = world(json!({"token": "plain-member-token"})).await;
    w.seed(json!({"members": [{"email": "plain@example.com", "token": "plain-member-token"}]}));
    let plan = w.connector.plan(&spec(&ada("joiner"))).await.unwrap();
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state, "dead");
    let run = w.start(&ada("joiner")).await;
    let StepError::Permanent { message } = run.error() else { panic!("{:?}", run.error()) };
    assert_eq!(&stop.message, message);
    assert!(stop.message.contains("owner or admin"), "{}", stop.message);
}
