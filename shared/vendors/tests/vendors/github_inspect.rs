//! GitHub: the directory, the access an event asks for, and plans, against the simulator in
//! process.
//!
//! A directory read, for M members, A owners, I pending invitations (J of them with teams) and
//! the managed teams (m_t members each): `GET /user` when the token's login is not cached,
//! orgs/list-members `role=all` max(1, ceil(M/100)) and `role=admin` max(1, ceil(A/100)),
//! orgs/list-pending-invitations max(1, ceil(I/100)), and with managed teams
//! orgs/list-invitation-teams J times and teams/list-members-in-org max(1, ceil(m_t/100)) per
//! managed team. Members carry no address at GitHub: accounts are known by login (an e-mail
//! invitation by its address); access is `role:<role>` and `team:<slug>` of the managed teams.

use crate::common::*;
use lifecycle_engine::inspect::{Account, AccountStatus, Plan};
use lifecycle_engine::StepError;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const GH: VendorKind = VendorKind::Github;

const ME: &str = "GET /user";
const MEMBERS: &str = "GET /orgs/{org}/members";
const INVITATIONS: &str = "GET /orgs/{org}/invitations";
const INVITATION_TEAMS: &str = "GET /orgs/{org}/invitations/{invitation_id}/teams";
const TEAM_MEMBERS: &str = "GET /orgs/{org}/teams/{team_slug}/members";

/// The steps of a GitHub run that only read: not actions of a plan.
const READS: &[&str] = &["find_member:*", "find_email_invitations", "find_outside_collaborator:*"];

fn gh(kind: &str, email: &str, app: Value) -> Value {
    event(kind, email, GH, app)
}

async fn world() -> World {
    World::unthrottled(GH, json!({})).await
}

fn mutations(w: &World) -> usize {
    w.sim.sim.lock().journal.log(w.sim_vendor()).len()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    names(items)
}

fn member(id: u64, login: &str, access: &[&str], protected: Option<&str>) -> Account {
    Account {
        vendor_id: id.to_string(),
        email: None,
        login: Some(login.into()),
        // list-members answers `simple-user` items, which carry no name.
        name: login.into(),
        status: AccountStatus::Active,
        access: set(access),
        protected: protected.map(str::to_string),
    }
}

fn invited(id: i64, login: Option<&str>, email: Option<&str>, access: &[&str]) -> Account {
    Account {
        vendor_id: format!("invitation:{id}"),
        email: email.map(str::to_string),
        login: login.map(str::to_string),
        name: login.or(email).unwrap().to_string(),
        status: AccountStatus::Invited,
        access: set(access),
        protected: None,
    }
}

fn by_id(mut accounts: Vec<Account>) -> Vec<Account> {
    accounts.sort_by(|a, b| a.vendor_id.cmp(&b.vendor_id));
    accounts
}

fn invitation_id(w: &World, field: &str, value: &str) -> i64 {
    let state = w.state();
    let all = state["invitations"].as_array().unwrap();
    let is = |v: &Value| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(value));
    let found = all.iter().find(|i| is(&i[field]) && i["state"] == "pending");
    found.unwrap_or_else(|| panic!("a pending invitation with {field} {value}"))["id"].as_i64().unwrap()
}

const OWN_USER: &str = "the token's own user (vendors.github.token): removing them would lock lifecycle out of sim-org";

#[tokio::test]
async fn the_directory_lists_members_owners_invitations_and_managed_teams_and_protects_the_token_and_the_last_owner() {
    let w = world().await;
    w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform", "sales-eng"]})))
        .await
        .outcome();
    // An invitation by address with no team: its teams are not asked for.
    w.start(&gh("joiner", "Nora@Example.com", json!({}))).await.outcome();
    // Removed by a leaver: not an account any more.
    w.start(&gh("leaver", "margaret@example.com", json!({"login": "margaret-gh"}))).await.outcome();
    let ada = invitation_id(&w, "login", "ada-gh");
    let nora = invitation_id(&w, "email", "nora@example.com");

    let before = w.requests();
    let read = w.read_directory().await;
    let expected = routes(&[(MEMBERS, 2), (INVITATIONS, 1), (INVITATION_TEAMS, 2), (TEAM_MEMBERS, 2)]);
    assert_eq!(w.requests_since(&before), expected, "the token's login was cached by the leaver");
    assert_eq!(read.progress.last(), Some(&read.accounts.len()));
    let expected = by_id(vec![
        member(1, "sim-admin", &["role:admin"], Some(OWN_USER)),
        member(101, "grace-gh", &["role:member", "team:platform"], None),
        member(102, "alan-gh", &["role:member", "team:platform", "team:security"], None),
        // Managed teams only: sales-eng is not one.
        invited(ada, Some("ada-gh"), None, &["role:member", "team:platform"]),
        invited(5001, None, Some("hedy@example.com"), &["role:member", "team:security"]),
        invited(nora, None, Some("nora@example.com"), &["role:member"]),
    ]);
    assert_eq!(by_id(read.accounts), expected);

    // A second owner is not protected (the first still is: the token's); without managed
    // teams, access is the role only and no team is read.
    let w = World::unthrottled(GH, json!({"managed_teams": []})).await;
    w.seed(json!({"users": [{"login": "root-gh", "id": 4001}], "members": [{"login": "root-gh", "role": "admin"}]}));
    let accounts = by_id(w.read_directory().await.accounts);
    assert_eq!(accounts[0], member(1, "sim-admin", &["role:admin"], Some(OWN_USER)));
    let root = accounts.iter().find(|a| a.login.as_deref() == Some("root-gh")).unwrap();
    assert_eq!(root, &member(4001, "root-gh", &["role:admin"], None));
    let alan = accounts.iter().find(|a| a.login.as_deref() == Some("alan-gh")).unwrap();
    assert_eq!(alan.access, set(&["role:member"]));
    assert_eq!(w.requests(), routes(&[(ME, 1), (MEMBERS, 2), (INVITATIONS, 1)]));
}

#[tokio::test]
async fn the_directory_costs_its_formula() {
    let w = world().await;
    let users: Vec<Value> = (0..250).map(|i| json!({"login": format!("bulk{i}-gh")})).collect();
    let members: Vec<Value> = (0..250)
        .map(|i| json!({"login": format!("bulk{i}-gh"), "role": if i < 120 { "admin" } else { "member" }}))
        .collect();
    let invitations: Vec<Value> = (0..130).map(|i| json!({"email": format!("inv{i}@bulk.example.com")})).collect();
    w.seed(json!({"users": users, "members": members, "invitations": invitations,
                  "teams": [{"name": "Platform Bulk", "members": (0..5).map(|i| format!("bulk{i}-gh")).collect::<Vec<_>>()}]}));
    let read = w.read_directory().await;
    // M = 254 (with the fixture's 4), A = 121, I = 131 (hedy's with a team; the others none).
    assert_eq!(read.accounts.len(), 254 + 131);
    let expected = routes(&[(ME, 1), (MEMBERS, 3 + 2), (INVITATIONS, 2), (INVITATION_TEAMS, 1), (TEAM_MEMBERS, 2)]);
    assert_eq!(w.requests(), expected);
}

#[tokio::test]
async fn desired_access_is_the_role_and_the_managed_teams_asked_for() {
    let w = world().await;
    let app = |github: Value| spec(&gh("joiner", "ada@example.com", github), GH).input.app;
    let asked = app(json!({"login": "ada-gh", "role": "admin", "teams": ["platform", "sales-eng"]}));
    assert_eq!(w.connector.desired_access(&asked), Some(set(&["role:admin", "team:platform"])));
    assert_eq!(w.connector.desired_access(&app(json!({"login": "ada-gh"}))), Some(set(&["role:member"])));
    // What a joiner asks for is what the directory then shows of the invitation.
    let joiner = gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["security", "sales-eng"]}));
    w.start(&joiner).await.outcome();
    let accounts = w.read_directory().await.accounts;
    let ada = accounts.iter().find(|a| a.login.as_deref() == Some("ada-gh")).unwrap();
    assert_eq!(Some(ada.access.clone()), w.connector.desired_access(&spec(&joiner, GH).input.app));
}

async fn plan(w: &World, event: &Value) -> Plan {
    let before = w.writes();
    let plan = w.connector.plan(&spec(event, GH)).await.expect("the plan reads");
    assert_eq!(w.writes(), before, "a plan writes nothing");
    plan
}

#[tokio::test]
async fn a_joiners_plan_names_the_invitation_the_run_then_sends() {
    let w = world().await;
    let joiner = gh("joiner", "ada@example.com", json!({"login": "ada-gh", "role": "admin", "teams": ["platform"]}));
    let p = plan(&w, &joiner).await;
    assert_eq!(p.stop, None);
    assert_eq!(steps(&p), ["invite:ada-gh"]);
    assert!(p.actions[0].text.starts_with("invite ada-gh to sim-org as admin with teams platform"), "{p:?}");
    let run = w.start(&joiner).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&p));
    // Invited already: nothing would be sent again.
    let again = plan(&w, &joiner).await;
    assert!(again.actions.is_empty() && again.stop.is_none(), "{again:?}");
    assert!(again.notes[0].contains("already invited"), "{again:?}");

    // By address.
    let by_address = gh("joiner", "nora@example.com", json!({"teams": ["security"]}));
    let p = plan(&w, &by_address).await;
    assert_eq!(steps(&p), ["invite_email"]);
    let run = w.start(&by_address).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&p));
    assert!(plan(&w, &by_address).await.actions.is_empty());
}

#[tokio::test]
async fn a_joiners_and_a_movers_plan_of_a_member_are_the_changes_the_run_makes() {
    let w = world().await;
    // grace-gh: in platform; asked for security: one added, one left.
    let joiner = gh("joiner", "grace@example.com", json!({"login": "grace-gh", "teams": ["security"]}));
    let p = plan(&w, &joiner).await;
    assert_eq!(steps(&p), ["add_team:security", "remove_team:platform"]);
    let before = mutations(&w);
    w.start(&joiner).await.outcome();
    assert_eq!(mutations(&w) - before, p.actions.len(), "the run made the plan's changes, no more");

    // alan-gh: promoted, kept in platform (a note), out of security.
    let mover = gh("mover", "alan@example.com", json!({"login": "alan-gh", "role": "admin", "teams": ["platform"]}));
    let p = plan(&w, &mover).await;
    assert_eq!(steps(&p), ["set_role:alan-gh:admin", "remove_team:security"]);
    assert!(p.notes.iter().any(|n| n.contains("already in team platform")), "{p:?}");
    let before = mutations(&w);
    w.start(&mover).await.outcome();
    assert_eq!(mutations(&w) - before, p.actions.len());
    let again = plan(&w, &mover).await;
    assert!(again.actions.is_empty() && again.stop.is_none(), "{again:?}");
}

#[tokio::test]
async fn a_leavers_plan_removes_and_cancels_as_the_run_does() {
    let w = world().await;
    w.seed(json!({"invitations": [{"email": "m.hamilton@example.com"}]}));
    let id = invitation_id(&w, "email", "m.hamilton@example.com");
    let leaver = gh("leaver", "m.hamilton@example.com", json!({"login": "margaret-gh"}));
    let p = plan(&w, &leaver).await;
    assert_eq!(steps(&p), ["remove_member:margaret-gh".to_string(), format!("cancel_invitation:{id}")]);
    let run = w.start(&leaver).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&p));

    let hedy = gh("leaver", "hedy@example.com", json!({}));
    let p = plan(&w, &hedy).await;
    assert_eq!(steps(&p), ["cancel_invitation:5001"]);
    let run = w.start(&hedy).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&p));

    let linus = gh("leaver", "linus@example.com", json!({"login": "linus-gh", "remove_outside_collaborator": true}));
    let p = plan(&w, &linus).await;
    assert_eq!(steps(&p), ["remove_outside_collaborator:linus-gh"]);
    let run = w.start(&linus).await;
    run.outcome();
    assert_eq!(w.written(&run.run_id, READS).await, steps(&p));

    // Nothing left of them: nothing to do.
    let p = plan(&w, &gh("leaver", "stranger@example.com", json!({"login": "stranger-gh"}))).await;
    assert!(p.actions.is_empty() && p.stop.is_none(), "{p:?}");
}

/// Where a run would stop, the plan stops, with the run's own message.
#[tokio::test]
async fn a_plan_stops_where_the_run_would_with_the_runs_message() {
    let w = world().await;
    // The token's own user.
    let me = gh("leaver", "admin@sim.example", json!({"login": "sim-admin"}));
    let stop = plan(&w, &me).await.stop.expect("the plan stops");
    assert_eq!(stop.state.as_str(), "needs_manual_action");
    let run = w.start(&me).await;
    assert_eq!(stop.message, run.outcome().summary);

    // Pending: a mover waits for them.
    w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh"}))).await.outcome();
    let mover = gh("mover", "ada@example.com", json!({"login": "ada-gh", "role": "admin"}));
    let stop = plan(&w, &mover).await.stop.expect("the plan stops");
    assert_eq!(stop.state.as_str(), "needs_manual_action");
    let run = w.start(&mover).await;
    let StepError::NeedsPerson { message } = run.error() else { panic!("{:?}", run.error()) };
    assert_eq!(&stop.message, message);

    // An unknown team, and a mover of someone who is not a member: the run would die.
    for ev in [
        gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["nope"]})),
        gh("mover", "alan@example.com", json!({"login": "stranger-gh", "role": "admin"})),
    ] {
        let stop = plan(&w, &ev).await.stop.expect("the plan stops");
        assert_eq!(stop.state.as_str(), "dead");
        let run = w.start(&ev).await;
        let StepError::Permanent { message } = run.error() else { panic!("{:?}", run.error()) };
        assert_eq!(&stop.message, message);
    }

    // The last owner (the token another user's).
    let w = World::unthrottled(GH, json!({"token": "github-member-token"})).await;
    let owner = gh("leaver", "admin@sim.example", json!({"login": "sim-admin"}));
    let stop = plan(&w, &owner).await.stop.expect("the plan stops");
    assert_eq!(stop.state.as_str(), "needs_manual_action");
    assert_eq!(stop.message, w.start(&owner).await.outcome().summary);

    // An outside collaborator the event does not say to remove, and a role only an invitation
    // grants: the run's summary says what it found or did first, then the plan's message.
    let w = world().await;
    for ev in [
        gh("leaver", "linus@example.com", json!({"login": "linus-gh"})),
        gh("mover", "grace@example.com", json!({"login": "grace-gh", "role": "billing_manager"})),
    ] {
        let stop = plan(&w, &ev).await.stop.expect("the plan stops");
        assert_eq!(stop.state.as_str(), "needs_manual_action");
        let run = w.start(&ev).await;
        let summary = &run.outcome().summary;
        assert!(summary.ends_with(&stop.message) && summary.len() > stop.message.len(), "{summary:?} / {stop:?}");
    }
}
