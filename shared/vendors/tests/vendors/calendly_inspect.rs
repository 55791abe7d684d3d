//! Calendly: the directory, the access an event asks for, and plans, against the simulator in
//! process.
//!
//! A directory read is `max(1, ceil(M / 100))` membership pages + `max(1, ceil(I / 100))` pages
//! of pending invitations, plus `GET /users/me` when the worker holds no organization. Calendly
//! events name no role (the REST API cannot set one), so `desired_access` is `None` and
//! `access` is empty: membership is all reconcile compares here.

use crate::common::*;
use lifecycle_engine::inspect::{Account, AccountStatus};
use lifecycle_engine::StepError;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const CAL: VendorKind = VendorKind::Calendly;

const ME: &str = "GET /users/me";
const MEMBERS: &str = "GET /organization_memberships";
const INVITATIONS: &str = "GET /organizations/{uuid}/invitations";

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

/// The step of a Calendly run that only reads: not an action of a plan.
const READS: &[&str] = &["find_person"];

/// The membership (`uri`, `uuid`) of `email` in the simulator.
fn membership(w: &World, email: &str) -> Value {
    let s = w.state();
    let m =
        s["memberships"].as_array().unwrap().iter().find(|m| m["email"].as_str().unwrap().eq_ignore_ascii_case(email));
    m.unwrap_or_else(|| panic!("{email} is a member")).clone()
}

fn pending_invitation(w: &World, email: &str) -> Value {
    let s = w.state();
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

#[tokio::test]
async fn the_directory_lists_members_and_pending_invitations_and_protects_the_owner_and_the_tokens_user() {
    let w = World::unthrottled(CAL, json!({})).await;
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
    let read = w.read_directory().await;
    assert_eq!(read.progress.last(), Some(&6), "progress after the last page");
    let expected = routes(&[(MEMBERS, 1), (INVITATIONS, 1)]);
    assert_eq!(w.requests_since(&before), expected, "one page each; the organization was cached by the run");
    let accounts = sorted(read.accounts);

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
    let app = spec(&ada("joiner"), CAL).input.app;
    assert_eq!(w.connector.desired_access(&app), None);
    assert!(accounts[0].access.is_empty());
    // Accepted, the invitation becomes a membership.
    w.seed(json!({"accept_invitations": [{"email": "ada@example.com", "name": "Ada Lovelace"}]}));
    let after = sorted(w.read_directory().await.accounts);
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
    w.configure(json!({"plan": "enterprise", "rate_limit": {"enabled": true}}));

    let Directory { accounts, took, .. } = w.read_directory().await;
    let (m, i) = (256u64, 30u64);
    assert_eq!(accounts.len() as u64, m + i);
    assert_eq!(accounts.iter().filter(|a| a.status == AccountStatus::Invited).count() as u64, i);
    assert_eq!(w.rate_limited(), 0, "no 429");
    let expected = routes(&[(ME, 1), (MEMBERS, m.div_ceil(100)), (INVITATIONS, i.div_ceil(100))]);
    assert_eq!(w.requests(), expected, "1 + ceil(M/100) + ceil(I/100)");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_joiners_plan_writes_nothing_and_names_the_invitation_the_run_then_sends() {
    let w = World::unthrottled(CAL, json!({})).await;
    let joiner = ada("joiner");
    let before = w.writes();
    let plan = w.connector.plan(&spec(&joiner, CAL)).await.unwrap();
    assert_eq!(w.writes(), before, "the plan wrote nothing");
    assert_eq!(plan.stop, None);
    assert_eq!(steps(&plan), ["invite"]);
    assert!(plan.actions[0].text.starts_with("invite ada@example.com to the Calendly organization"), "{plan:?}");

    let run = w.start(&joiner).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&plan));

    // Invited already: nothing would be sent again.
    let again = w.connector.plan(&spec(&joiner, CAL)).await.unwrap();
    assert!(again.actions.is_empty() && again.stop.is_none(), "{again:?}");
    assert!(again.notes[0].contains("already pending"), "{again:?}");
}

#[tokio::test]
async fn a_leavers_plan_removes_the_membership_or_revokes_the_invitation_as_the_run_does() {
    let w = World::unthrottled(CAL, json!({})).await;
    w.seed(json!({"members": [{"email": "ada@example.com", "name": "Ada Lovelace"}], "invitations": [{"email": "bob@example.com"}]}));
    let uuid = membership(&w, "ada@example.com")["uuid"].as_str().unwrap().to_string();
    let leaver = ada("leaver");
    let before = w.writes();
    let plan = w.connector.plan(&spec(&leaver, CAL)).await.unwrap();
    assert_eq!(w.writes(), before, "the plan wrote nothing");
    assert_eq!(steps(&plan), [format!("remove_membership:{uuid}")]);
    let run = w.start(&leaver).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&plan));

    let bob = person("leaver", "bob@example.com", "Bob", "Builder");
    let invitation = pending_invitation(&w, "bob@example.com")["uuid"].as_str().unwrap().to_string();
    let plan = w.connector.plan(&spec(&bob, CAL)).await.unwrap();
    assert_eq!(steps(&plan), [format!("revoke_invitation:{invitation}")]);
    let run = w.start(&bob).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&plan));
}

#[tokio::test]
async fn a_plan_stops_where_the_run_would_with_the_runs_message() {
    // The owner: a person must transfer ownership first.
    let w = World::unthrottled(CAL, json!({})).await;
    let owner = person("leaver", "owner@sim.example", "Sim", "Owner");
    let plan = w.connector.plan(&spec(&owner, CAL)).await.unwrap();
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state.as_str(), "needs_manual_action");
    assert!(plan.actions.is_empty());
    let run = w.start(&owner).await;
    assert!(run.outcome().needs_person);
    assert_eq!(stop.message, run.outcome().summary);
    assert!(stop.message.contains("transfer the organization's ownership"), "{}", stop.message);

    // A token of a plain member: Calendly refuses to list, and the run would die saying which
    // token to configure.
    let w = World::unthrottled(CAL, json!({"token": "plain-member-token"})).await;
    w.seed(json!({"members": [{"email": "plain@example.com", "token": "plain-member-token"}]}));
    let plan = w.connector.plan(&spec(&ada("joiner"), CAL)).await.unwrap();
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state.as_str(), "dead");
    let run = w.start(&ada("joiner")).await;
    let StepError::Permanent { message } = run.error() else { panic!("{:?}", run.error()) };
    assert_eq!(&stop.message, message);
    assert!(stop.message.contains("owner or admin"), "{}", stop.message);
}
