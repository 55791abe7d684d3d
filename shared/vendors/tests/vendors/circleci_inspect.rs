//! CircleCI: the directory, the access an event asks for, and plans, against the simulator in
//! process.
//!
//! A directory read is `max(1, ceil(N / 100))` member pages, plus `/me/collaborations` and `/me`
//! when the worker holds neither. CircleCI knows people by login (no address), has no
//! invitations, and its API manages membership only: `desired_access` is `None` and `access`
//! empty, so membership is all reconcile compares here.

use crate::common::*;
use lifecycle_engine::inspect::{Account, AccountStatus};
use lifecycle_engine::StepError;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const CI: VendorKind = VendorKind::Circleci;

const ADMIN_ID: &str = "cdc37617-df27-435a-97a7-ac4e10a9c986";
const GRACE_ID: &str = "dffac8e5-5c5f-4ee2-b2b7-4d82448d5afc";
const MARGARET_ID: &str = "bdaadf2d-9cfc-401d-9e65-5f8b674d6580";
const ADA_ID: &str = "0d4c3b2a-1f0e-4d9c-8b7a-695847362514";
const BOT_ID: &str = "7e6d5c4b-3a29-4180-9f8e-7d6c5b4a3928";

const LIST: &str = "GET /org/{org_id}/members";
const COLLABORATIONS: &str = "GET /me/collaborations";
const ME: &str = "GET /me";

/// The contract's example person (docs/contract.md §1) at CircleCI, `ada-gh`.
fn ada(kind: &str) -> Value {
    person(kind, "ada@example.com", "ada-gh")
}

fn person(kind: &str, email: &str, login: &str) -> Value {
    json!({
        "type": kind,
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": {"id": format!("E-{login}"), "email": email, "given_name": "Test", "family_name": login},
        "apps": { "circleci": {"login": login} }
    })
}

/// The steps of a CircleCI run that only read: not actions of a plan.
const READS: &[&str] = &["find_member", "member:*"];

fn member(id: &str, login: &str, name: &str, protected: Option<&str>) -> Account {
    Account {
        vendor_id: id.to_string(),
        email: None,
        login: Some(login.to_string()),
        name: name.to_string(),
        status: AccountStatus::Active,
        access: BTreeSet::new(),
        protected: protected.map(str::to_string),
    }
}

/// `login` made a member of gh/sim-org by a person (the API cannot), with a fixed id.
fn add_by_hand(w: &World, id: &str, login: &str, name: &str) {
    w.seed(json!({
        "users": [{"id": id, "login": login, "name": name}],
        "memberships": [{"org": "gh/sim-org", "login": login}]
    }));
}

#[tokio::test]
async fn the_directory_lists_the_orgs_members_by_login_and_protects_the_tokens_owner() {
    let w = World::new(CI).await;
    // The contract's joiner: the API cannot invite, so a person adds them, and the replay succeeds.
    let joiner = w.start(&ada("joiner")).await;
    assert!(joiner.outcome().needs_person);
    add_by_hand(&w, ADA_ID, "Ada-GH", "Ada Lovelace");
    assert!(!w.retry(&joiner.run_id).await.outcome().needs_person);
    add_by_hand(&w, BOT_ID, "deploy-bot", "");
    // A member of the other org with the same name is not this org's.
    w.seed(json!({"users": [{"login": "bb-only"}], "memberships": [{"org": "bb/sim-org", "login": "bb-only"}]}));
    // Removed by a leaver: gone from the list.
    w.start(&person("leaver", "alan@example.com", "alan-gh")).await.outcome();

    let before = w.requests();
    let Directory { mut accounts, progress, .. } = w.read_directory().await;
    assert_eq!(progress.last(), Some(&5));
    assert_eq!(
        w.requests_since(&before),
        routes(&[(LIST, 1)]),
        "one page; the org and the owner were cached by the runs"
    );

    accounts.sort_by(|a, b| a.login.cmp(&b.login));
    let expected = vec![
        member(ADA_ID, "ada-gh", "Ada Lovelace", None),
        member(BOT_ID, "deploy-bot", "deploy-bot", None),
        member(GRACE_ID, "grace-gh", "Grace Hopper", None),
        member(MARGARET_ID, "margaret-gh", "Margaret Hamilton", None),
        member(
            ADMIN_ID,
            "sim-admin",
            "Sim Admin",
            Some("owns the API token lifecycle uses (vendors.circleci.token): removing them would cut lifecycle off from the organization"),
        ),
    ];
    assert_eq!(accounts, expected);
    // Nothing to compare beyond membership.
    assert_eq!(w.connector.desired_access(&spec(&ada("joiner"), CI).input.app), None);
}

/// 5,000 members (and the fixture's four) with both budgets on: the client's 95 % of 1,000 a
/// minute and the simulator's 1,000 a minute. 53 requests from a cold worker, about 3 s.
#[tokio::test]
async fn the_directory_of_five_thousand_members_is_the_formula_and_no_429() {
    let w = World::new(CI).await;
    let users: Vec<Value> = (0..5000).map(|i| json!({"login": format!("crowd-{i:04}")})).collect();
    let memberships: Vec<Value> = users.iter().map(|u| json!({"org": "gh/sim-org", "login": u["login"]})).collect();
    w.seed(json!({"users": users, "memberships": memberships}));
    w.configure(json!({"rate_limit": {"enabled": true}}));

    let Directory { accounts, progress, took } = w.read_directory().await;
    let n = 5004u64;
    assert_eq!(accounts.len() as u64, n);
    assert_eq!(accounts.iter().filter(|a| a.protected.is_some()).count(), 1, "the token's owner only");
    assert_eq!(progress.len() as u64, n.div_ceil(100), "progress after every page");
    assert_eq!(w.rate_limited(), 0, "no 429");
    assert_eq!(w.requests(), routes(&[(COLLABORATIONS, 1), (ME, 1), (LIST, n.div_ceil(100))]), "2 + ceil(N/100)");
    eprintln!("CircleCI directory of {n} members: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn a_joiners_plan_says_a_person_must_invite_and_a_member_needs_nothing() {
    let w = World::new(CI).await;
    let joiner = ada("joiner");
    let before = w.writes();
    let plan = w.connector.plan(&spec(&joiner, CI)).await.unwrap();
    assert_eq!(w.writes(), before, "the plan wrote nothing");
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state, "needs_manual_action");
    assert!(plan.actions.is_empty());
    let run = w.start(&joiner).await;
    assert!(run.outcome().needs_person);
    assert_eq!(stop.message, run.outcome().summary);
    assert_eq!(w.written(&run.run_id, READS).await, steps(&plan));

    add_by_hand(&w, ADA_ID, "ada-gh", "Ada Lovelace");
    let plan = w.connector.plan(&spec(&joiner, CI)).await.unwrap();
    assert_eq!((plan.stop.clone(), plan.actions.len()), (None, 0), "{plan:?}");
    assert!(plan.notes[0].contains("already a member"), "{plan:?}");
}

#[tokio::test]
async fn a_leavers_plan_removes_the_member_as_the_run_does() {
    let w = World::new(CI).await;
    let leaver = person("leaver", "grace@example.com", "grace-gh");
    let before = w.writes();
    let plan = w.connector.plan(&spec(&leaver, CI)).await.unwrap();
    assert_eq!(w.writes(), before, "the plan wrote nothing");
    assert_eq!(plan.stop, None);
    assert_eq!(steps(&plan), [format!("remove_member:{GRACE_ID}")]);
    assert!(plan.actions[0].text.contains("personal API tokens are not revoked"), "{plan:?}");
    let run = w.start(&leaver).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&plan));

    let gone = w.connector.plan(&spec(&leaver, CI)).await.unwrap();
    assert!(gone.actions.is_empty() && gone.stop.is_none(), "{gone:?}");
}

#[tokio::test]
async fn a_plan_stops_where_the_run_would_with_the_runs_message() {
    // The token's owner: never removed; a person sets another token.
    let w = World::new(CI).await;
    let owner = person("leaver", "admin@example.com", "sim-admin");
    let plan = w.connector.plan(&spec(&owner, CI)).await.unwrap();
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state, "needs_manual_action");
    assert!(plan.actions.is_empty());
    let run = w.start(&owner).await;
    let StepError::NeedsPerson { message } = run.error() else { panic!("{:?}", run.error()) };
    assert_eq!(&stop.message, message);

    // An org the token's owner is not in: the run dies naming the slug to fix.
    let w = World::with(CI, json!({"org_slug": "gh/no-such-org"})).await;
    let plan = w.connector.plan(&spec(&ada("leaver"), CI)).await.unwrap();
    let stop = plan.stop.clone().expect("the plan stops");
    assert_eq!(stop.state, "dead");
    let run = w.start(&ada("leaver")).await;
    let StepError::Permanent { message } = run.error() else { panic!("{:?}", run.error()) };
    assert_eq!(&stop.message, message);
    assert!(stop.message.contains("gh/no-such-org"), "{}", stop.message);
}
