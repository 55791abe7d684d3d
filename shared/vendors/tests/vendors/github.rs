//! GitHub: the workflows against the simulator, in process.
//!
//! Requests per run, by route, asserted exactly (teams catalogue and the token's own login in
//! the worker's cache unless said otherwise; cold, a run naming teams adds one teams/list, a
//! leaver by login one `GET /user`). The fixture: `sim-admin` (the token's user, the only
//! owner), members grace-gh, alan-gh, margaret-gh, the account ada-gh (no member), the outside
//! collaborator linus-gh, an e-mail invitation for hedy@example.com; managed teams platform and
//! security.
//!
//! | run                                        | requests                                                  | n |
//! |--------------------------------------------|-----------------------------------------------------------|---|
//! | joiner by login, someone new (cold)        | teams/list, get-membership, get-by-username, create-invitation | 4 |
//! | joiner by login, already invited           | get-membership                                            | 1 |
//! | joiner, active member (team kept, managed team left) | get-membership, team membership, team DELETE    | 3 |
//! | joiner by e-mail, someone new              | list-pending-invitations, create-invitation               | 2 |
//! | joiner by e-mail, already invited          | list-pending-invitations                                  | 1 |
//! | mover, role and teams                      | get-membership, PUT role, team membership, team DELETE    | 4 |
//! | mover, pending                             | get-membership                                            | 1 |
//! | leaver, member (cold)                      | `GET /user`, get-membership, DELETE membership, list-pending-invitations | 4 |
//! | leaver, invited by login                   | get-membership, DELETE membership, list-pending-invitations | 3 |
//! | leaver by e-mail, invited                  | list-pending-invitations, cancel-invitation               | 2 |
//! | leaver, absent                             | get-membership, list-pending-invitations, list-outside-collaborators | 3 |
//! | leaver, outside collaborator (reported)    | the same three                                            | 3 |
//! | leaver, outside collaborator (removed)     | the same three, remove-outside-collaborator               | 4 |
//! | leaver, the token's own user               | none (its login cached)                                   | 0 |
//! | leaver, the last owner                     | get-membership, list-members `role=admin`                 | 2 |

use crate::common::*;
use lifecycle_engine::{Outcome, StepError};
use lifecycle_vendor_sim::exchanges::Exchange as Recorded;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const GH: VendorKind = VendorKind::Github;

const ME: &str = "GET /user";
const USER: &str = "GET /users/{username}";
const MEMBERSHIP: &str = "GET /orgs/{org}/memberships/{username}";
const SET_ROLE: &str = "PUT /orgs/{org}/memberships/{username}";
const REMOVE: &str = "DELETE /orgs/{org}/memberships/{username}";
const MEMBERS: &str = "GET /orgs/{org}/members";
const INVITATIONS: &str = "GET /orgs/{org}/invitations";
const INVITE: &str = "POST /orgs/{org}/invitations";
const CANCEL: &str = "DELETE /orgs/{org}/invitations/{invitation_id}";
const OUTSIDE: &str = "GET /orgs/{org}/outside_collaborators";
const REMOVE_OUTSIDE: &str = "DELETE /orgs/{org}/outside_collaborators/{username}";
const TEAMS: &str = "GET /orgs/{org}/teams";
const TEAM_MEMBERSHIP: &str = "GET /orgs/{org}/teams/{team_slug}/memberships/{username}";
const TEAM_ADD: &str = "PUT /orgs/{org}/teams/{team_slug}/memberships/{username}";
const TEAM_REMOVE: &str = "DELETE /orgs/{org}/teams/{team_slug}/memberships/{username}";

/// The fixture's team ids.
const PLATFORM: i64 = 11;
const SECURITY: i64 = 12;

fn gh(kind: &str, email: &str, app: Value) -> Value {
    event(kind, email, GH, app)
}

/// The connector's own limiter off (80 a minute is a request every 0.8 s).
async fn world() -> World {
    World::unthrottled(GH, json!({})).await
}

/// The simulator's pending invitations.
fn pending(w: &World) -> Vec<Value> {
    let state = w.state();
    state["invitations"].as_array().unwrap().iter().filter(|i| i["state"] == "pending").cloned().collect()
}

fn invitation(w: &World, id: i64) -> Value {
    let state = w.state();
    state["invitations"].as_array().unwrap().iter().find(|i| i["id"] == id).cloned().expect("the invitation exists")
}

/// `login`'s organisation role, if a member.
fn role_of(w: &World, login: &str) -> Option<String> {
    let state = w.state();
    let member = state["members"].as_array().unwrap().iter().find(|m| m["login"] == login).cloned();
    member.map(|m| m["role"].as_str().unwrap().to_owned())
}

/// The team's members as (login, role).
fn team(w: &World, slug: &str) -> Vec<(String, String)> {
    let state = w.state();
    let t = state["teams"].as_array().unwrap().iter().find(|t| t["slug"] == slug).cloned().expect("the team exists");
    let members = t["members"].as_array().unwrap();
    members.iter().map(|m| (m["login"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned())).collect()
}

fn in_team(w: &World, slug: &str, login: &str) -> bool {
    team(w, slug).iter().any(|(l, _)| l == login)
}

fn outside(w: &World) -> Vec<String> {
    let state = w.state();
    let all = state["outside_collaborators"].as_array().unwrap();
    all.iter().map(|u| u["login"].as_str().unwrap().to_owned()).collect()
}

/// The mutations the simulator applied for GitHub.
fn mutations(w: &World) -> usize {
    w.sim.sim.lock().journal.log(w.sim_vendor()).len()
}

/// Runs `event` and returns its outcome (a step's `NeedsPerson` as a person's outcome, as the
/// run ends) and what it cost, by route.
async fn cost(w: &World, event: &Value) -> (Outcome, BTreeMap<String, u64>) {
    let before = w.requests();
    let run = w.start(event).await;
    let outcome = match &run.result {
        Ok(o) => o.clone(),
        Err(StepError::NeedsPerson { message }) => {
            Outcome { needs_person: true, summary: message.clone(), access: None }
        }
        Err(e) => panic!("{event}: {e:?}"),
    };
    (outcome, w.requests_since(&before))
}

fn access(o: &Outcome) -> Option<&'static str> {
    o.access.map(|a| a.as_str())
}

/// The requests `f` makes, as the simulator recorded them.
async fn recorded<F: std::future::Future<Output = ()>>(w: &World, f: F) -> Vec<Recorded> {
    w.sim.sim.record_exchanges(true);
    let _ = w.sim.sim.take_exchanges();
    f.await;
    w.sim.sim.record_exchanges(false);
    w.sim.sim.take_exchanges()
}

fn header<'a>(r: &'a Recorded, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn every_workflow_costs_the_apis_minimum() {
    let w = world().await;
    let (o, c) = cost(&w, &gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform"]}))).await;
    assert_eq!(access(&o), Some("invited"), "{o:?}");
    assert_eq!(c, routes(&[(TEAMS, 1), (MEMBERSHIP, 1), (USER, 1), (INVITE, 1)]), "joiner, someone new (cold)");

    let (o, c) = cost(&w, &gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform"]}))).await;
    assert_eq!(access(&o), Some("invited"), "{o:?}");
    assert_eq!(c, routes(&[(MEMBERSHIP, 1)]), "joiner, already invited: the teams cached");

    let (o, c) =
        cost(&w, &gh("joiner", "grace@example.com", json!({"login": "grace-gh", "teams": ["platform"]}))).await;
    assert_eq!(access(&o), Some("active"), "{o:?}");
    // In platform already (read, not written); security is managed and not asked for: a DELETE
    // (a 404: she was not in it).
    assert_eq!(c, routes(&[(MEMBERSHIP, 1), (TEAM_MEMBERSHIP, 1), (TEAM_REMOVE, 1)]), "joiner, active member");

    let (o, c) = cost(&w, &gh("joiner", "nora@example.com", json!({"teams": ["security"]}))).await;
    assert_eq!(access(&o), Some("invited"), "{o:?}");
    assert_eq!(c, routes(&[(INVITATIONS, 1), (INVITE, 1)]), "joiner by e-mail");

    let (o, c) = cost(&w, &gh("joiner", "hedy@example.com", json!({}))).await;
    assert_eq!(access(&o), Some("invited"), "{o:?}");
    assert_eq!(c, routes(&[(INVITATIONS, 1)]), "joiner by e-mail, already invited");

    let (o, c) =
        cost(&w, &gh("mover", "alan@example.com", json!({"login": "alan-gh", "role": "admin", "teams": ["platform"]})))
            .await;
    assert_eq!(access(&o), Some("active"), "{o:?}");
    assert_eq!(c, routes(&[(MEMBERSHIP, 1), (SET_ROLE, 1), (TEAM_MEMBERSHIP, 1), (TEAM_REMOVE, 1)]), "mover");

    let (o, c) = cost(&w, &gh("mover", "ada@example.com", json!({"login": "ada-gh", "role": "admin"}))).await;
    assert!(o.needs_person, "{o:?}");
    assert_eq!(c, routes(&[(MEMBERSHIP, 1)]), "mover, pending");

    let (o, c) = cost(&w, &gh("leaver", "margaret@example.com", json!({"login": "margaret-gh"}))).await;
    assert_eq!(access(&o), Some("removed"), "{o:?}");
    assert_eq!(c, routes(&[(ME, 1), (MEMBERSHIP, 1), (REMOVE, 1), (INVITATIONS, 1)]), "leaver, member (cold)");

    let (o, c) = cost(&w, &gh("leaver", "ada@example.com", json!({"login": "ada-gh"}))).await;
    assert_eq!(access(&o), Some("removed"), "{o:?}");
    assert_eq!(c, routes(&[(MEMBERSHIP, 1), (REMOVE, 1), (INVITATIONS, 1)]), "leaver, invited by login");

    let (o, c) = cost(&w, &gh("leaver", "hedy@example.com", json!({}))).await;
    assert_eq!(access(&o), Some("removed"), "{o:?}");
    assert_eq!(c, routes(&[(INVITATIONS, 1), (CANCEL, 1)]), "leaver by e-mail, invited");

    let (o, c) = cost(&w, &gh("leaver", "stranger@example.com", json!({"login": "stranger-gh"}))).await;
    assert_eq!(access(&o), Some("absent"), "{o:?}");
    assert_eq!(c, routes(&[(MEMBERSHIP, 1), (INVITATIONS, 1), (OUTSIDE, 1)]), "leaver, absent");

    let (o, c) = cost(&w, &gh("leaver", "linus@example.com", json!({"login": "linus-gh"}))).await;
    assert!(o.needs_person, "{o:?}");
    assert_eq!(c, routes(&[(MEMBERSHIP, 1), (INVITATIONS, 1), (OUTSIDE, 1)]), "leaver, outside collaborator");

    let removal = json!({"login": "linus-gh", "remove_outside_collaborator": true});
    let (o, c) = cost(&w, &gh("leaver", "linus@example.com", removal)).await;
    assert_eq!(access(&o), Some("removed"), "{o:?}");
    let expected = routes(&[(MEMBERSHIP, 1), (INVITATIONS, 1), (OUTSIDE, 1), (REMOVE_OUTSIDE, 1)]);
    assert_eq!(c, expected, "leaver, outside collaborator removed");

    let (o, c) = cost(&w, &gh("leaver", "admin@sim.example", json!({"login": "sim-admin"}))).await;
    assert!(o.needs_person, "{o:?}");
    assert_eq!(c, routes(&[]), "the token's own user: its login is cached");

    // Every list asks for GitHub's largest page.
    let calls = w.sim.sim.lock().journal.calls(Some(w.sim_vendor()));
    for c in calls.iter().filter(|c| c["method"] == "GET") {
        let path = c["path"].as_str().unwrap();
        let list = ["/members", "/invitations", "/outside_collaborators", "/teams"].iter().any(|s| path.ends_with(s));
        if list {
            assert!(c["query"].as_str().unwrap_or_default().contains("per_page=100"), "{c}");
        }
    }
}

#[tokio::test]
async fn a_joiner_by_login_is_invited_once_with_its_role_and_teams() {
    let w = world().await;
    let joiner = gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform", "sales-eng"]}));
    let sent = recorded(&w, async {
        let run = w.start(&joiner).await;
        let o = run.outcome();
        assert_eq!(access(o), Some("invited"), "{o:?}");
        for part in ["invited ada-gh to sim-org as member", "platform, sales-eng", "pending acceptance"] {
            assert!(o.summary.contains(part), "{part:?} missing from {}", o.summary);
        }
        assert_eq!(w.harness.keys(&run.run_id).await, ["invite:ada-gh"]);
    })
    .await;
    let post = sent.iter().find(|r| r.method == "POST").expect("an invitation sent");
    // `member` is `direct_member` on an invitation; the id from users/get-by-username; a team
    // lifecycle does not manage may be asked for too.
    assert_eq!(post.body, Some(json!({"invitee_id": 103, "role": "direct_member", "team_ids": [PLATFORM, 13]})));
    let invited = pending(&w).into_iter().find(|i| i["login"] == "ada-gh").expect("ada-gh is invited");
    assert_eq!((invited["role"].as_str(), invited["email"].is_null()), (Some("direct_member"), true));

    // Twice: one invitation, and the second run says so.
    let again = w.start(&joiner).await;
    assert!(again.outcome().summary.contains("already invited"), "{:?}", again.outcome());
    assert_eq!(pending(&w).iter().filter(|i| i["login"] == "ada-gh").count(), 1);
    assert_eq!(w.requests().get(INVITE), Some(&1));

    // An owner: `admin` on the invitation.
    let w = world().await;
    w.seed(json!({"users": [{"login": "kim-gh", "id": 3001}]}));
    let sent = recorded(&w, async {
        let o = w.start(&gh("joiner", "kim@example.com", json!({"login": "kim-gh", "role": "admin"}))).await;
        assert!(o.outcome().summary.contains("as admin with teams none"), "{:?}", o.outcome());
    })
    .await;
    let post = sent.iter().find(|r| r.method == "POST").expect("an invitation sent");
    assert_eq!(post.body, Some(json!({"invitee_id": 3001, "role": "admin"})));
}

#[tokio::test]
async fn a_joiner_without_a_login_is_invited_by_address_once() {
    let w = world().await;
    let joiner = gh("joiner", "nora@example.com", json!({"role": "billing_manager", "teams": ["security"]}));
    let sent = recorded(&w, async {
        let o = w.start(&joiner).await;
        assert_eq!(access(o.outcome()), Some("invited"), "{:?}", o.outcome());
    })
    .await;
    let post = sent.iter().find(|r| r.method == "POST").expect("an invitation sent");
    assert_eq!(
        post.body,
        Some(json!({"email": "nora@example.com", "role": "billing_manager", "team_ids": [SECURITY]}))
    );
    let nora: Vec<Value> = pending(&w).into_iter().filter(|i| i["email"] == "nora@example.com").collect();
    assert_eq!(nora.len(), 1);
    assert!(nora[0]["login"].is_null(), "no account has the address: {nora:?}");

    // Again, the address in another case: found among the pending invitations, not sent twice.
    let again = w.start(&gh("joiner", "Nora@Example.com", json!({"teams": ["security"]}))).await;
    assert_eq!(access(again.outcome()), Some("invited"));
    assert!(again.outcome().summary.contains("already invited"), "{:?}", again.outcome());
    assert_eq!(w.requests().get(INVITE), Some(&1));
}

#[tokio::test]
async fn a_joiner_of_an_active_member_converges_the_managed_teams_and_leaves_the_others() {
    let w = world().await;
    // grace-gh: in platform (managed) and in data (not managed).
    w.seed(json!({"teams": [{"name": "Data", "members": ["grace-gh"]}]}));
    let before = w.requests();
    let run = w.start(&gh("joiner", "grace@example.com", json!({"login": "grace-gh", "teams": ["security"]}))).await;
    let o = run.outcome();
    assert_eq!(access(o), Some("active"), "{o:?}");
    assert!(o.summary.contains("added to security") && o.summary.contains("out of managed teams platform"), "{o:?}");
    assert!(in_team(&w, "security", "grace-gh") && !in_team(&w, "platform", "grace-gh"));
    assert!(in_team(&w, "data", "grace-gh"), "a team lifecycle does not manage is left alone");
    assert_eq!(role_of(&w, "grace-gh").as_deref(), Some("member"));
    assert_eq!(
        w.requests_since(&before),
        routes(&[(TEAMS, 1), (MEMBERSHIP, 1), (TEAM_MEMBERSHIP, 1), (TEAM_ADD, 1), (TEAM_REMOVE, 1)])
    );
    // The look-up is the invitation step's (it found a member: nothing sent).
    assert_eq!(w.harness.keys(&run.run_id).await, ["invite:grace-gh", "add_team:security", "remove_team:platform"]);

    // A team maintainer is read, not PUT (the PUT would make them a plain member).
    let before = mutations(&w);
    let alan = gh("joiner", "alan@example.com", json!({"login": "alan-gh", "teams": ["security", "platform"]}));
    let o = w.start(&alan).await;
    assert_eq!(access(o.outcome()), Some("active"));
    assert!(team(&w, "security").contains(&("alan-gh".into(), "maintainer".into())), "{:?}", team(&w, "security"));
    assert_eq!(mutations(&w), before, "nothing to change");
}

#[tokio::test]
async fn a_mover_changes_the_role_and_the_managed_teams() {
    let w = world().await;
    let mover = gh("mover", "grace@example.com", json!({"login": "grace-gh", "role": "admin", "teams": ["security"]}));
    let sent = recorded(&w, async {
        let o = w.start(&mover).await;
        let o = o.outcome();
        assert_eq!(access(o), Some("active"), "{o:?}");
        assert!(o.summary.contains("role changed from member to admin"), "{o:?}");
    })
    .await;
    assert_eq!(role_of(&w, "grace-gh").as_deref(), Some("admin"));
    assert!(in_team(&w, "security", "grace-gh") && !in_team(&w, "platform", "grace-gh"));
    let put = sent.iter().find(|r| r.method == "PUT" && r.path.ends_with("/memberships/grace-gh")).unwrap();
    assert!(!put.path.contains("/teams/"), "{}", put.path);
    assert_eq!(put.body, Some(json!({"role": "admin"})));
    let team_put = sent.iter().find(|r| r.method == "PUT" && r.path.contains("/teams/security/")).unwrap();
    assert_eq!(team_put.body, Some(json!({"role": "member"})));

    // Teams only: the role stays; back to member when asked.
    let run = w.start(&gh("mover", "grace@example.com", json!({"login": "grace-gh", "teams": []}))).await;
    assert!(run.outcome().summary.contains("role admin kept"), "{:?}", run.outcome());
    assert!(!in_team(&w, "security", "grace-gh"));
    let run = w.start(&gh("mover", "grace@example.com", json!({"login": "grace-gh", "role": "member"}))).await;
    assert!(run.outcome().summary.contains("teams left as they are"), "{:?}", run.outcome());
    assert_eq!(role_of(&w, "grace-gh").as_deref(), Some("member"));

    // billing_manager for a member: only an invitation grants it.
    let before = mutations(&w);
    let run = w.start(&gh("mover", "grace@example.com", json!({"login": "grace-gh", "role": "billing_manager"}))).await;
    let o = run.outcome();
    assert!(o.needs_person && o.summary.contains("only through an invitation"), "{o:?}");
    assert_eq!(mutations(&w), before);

    // Not a member: a joiner's business.
    let run = w.start(&gh("mover", "ada@example.com", json!({"login": "ada-gh", "role": "admin"}))).await;
    match run.error() {
        StepError::Permanent { message } => assert!(message.contains("ada-gh is not a member of sim-org"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_mover_of_someone_who_has_not_accepted_waits_for_them() {
    let w = world().await;
    w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh"}))).await.outcome();
    let before = mutations(&w);
    let run = w.start(&gh("mover", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform"]}))).await;
    match run.error() {
        StepError::NeedsPerson { message } => assert!(message.contains("has not accepted"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(mutations(&w), before);
    // Accepted: the same mover goes through.
    w.seed(json!({"accept_invitations": ["ada-gh"]}));
    let run = w.start(&gh("mover", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform"]}))).await;
    assert_eq!(access(run.outcome()), Some("active"));
    assert!(in_team(&w, "platform", "ada-gh"));
}

#[tokio::test]
async fn a_leaver_removes_the_membership_and_cancels_invitations_by_login_and_by_address() {
    let w = world().await;
    w.seed(json!({"invitations": [{"email": "margaret.h@example.com"}]}));
    let run = w.start(&gh("leaver", "margaret.h@example.com", json!({"login": "margaret-gh"}))).await;
    let o = run.outcome();
    assert_eq!(access(o), Some("removed"), "{o:?}");
    for part in [
        "removed margaret-gh (was member) from sim-org",
        "forks of the org's private repositories are deleted",
        "no longer reach sim-org's resources",
        "cancelled the pending invitation",
    ] {
        assert!(o.summary.contains(part), "{part:?} missing from {}", o.summary);
    }
    assert_eq!(role_of(&w, "margaret-gh"), None);
    assert!(!pending(&w).iter().any(|i| i["email"] == "margaret.h@example.com"), "the e-mail invitation cancelled");

    // A pending invitation by login: DELETE membership cancels it.
    w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform"]}))).await.outcome();
    let id = pending(&w).into_iter().find(|i| i["login"] == "ada-gh").unwrap()["id"].as_i64().unwrap();
    let o = w.start(&gh("leaver", "ada@example.com", json!({"login": "ada-gh"}))).await;
    assert!(o.outcome().summary.contains("cancelled ada-gh's pending invitation"), "{:?}", o.outcome());
    assert_eq!(invitation(&w, id)["state"], "cancelled");

    // By address only (no login): hedy's invitation (5001) cancelled by id.
    let o = w.start(&gh("leaver", "HEDY@example.com", json!({}))).await;
    assert_eq!(access(o.outcome()), Some("removed"));
    assert!(o.outcome().summary.contains("cancelled the pending invitation 5001"), "{:?}", o.outcome());
    assert_eq!(invitation(&w, 5001)["state"], "cancelled");
    assert_eq!(w.requests().get(CANCEL), Some(&2));
}

#[tokio::test]
async fn the_last_owner_and_the_tokens_own_user_are_left_to_a_person() {
    // The token's own user (sim-admin, who is also the last owner): named first, nothing written.
    let w = world().await;
    for ev in [
        gh("leaver", "admin@sim.example", json!({"login": "sim-admin"})),
        gh("mover", "admin@sim.example", json!({"login": "sim-admin", "role": "member"})),
    ] {
        let run = w.start(&ev).await;
        let o = run.outcome();
        assert!(o.needs_person, "{o:?}");
        assert!(o.summary.contains("the token's own user") && o.summary.contains("lock itself out"), "{o:?}");
    }
    assert_eq!(w.writes(), 0, "{:?}", w.requests());
    assert_eq!(role_of(&w, "sim-admin").as_deref(), Some("admin"));

    // With the token of another user (grace-gh, a member: she may read), sim-admin is the last
    // owner: looked for before any write.
    let w = World::unthrottled(GH, json!({"token": "github-member-token"})).await;
    let (o, c) = cost(&w, &gh("leaver", "admin@sim.example", json!({"login": "sim-admin"}))).await;
    assert!(o.needs_person, "{o:?}");
    assert!(
        o.summary.contains("the last owner of sim-org") && o.summary.contains("make someone else an owner"),
        "{o:?}"
    );
    assert_eq!(c, routes(&[(ME, 1), (MEMBERSHIP, 1), (MEMBERS, 1)]));
    let run = w.start(&gh("mover", "admin@sim.example", json!({"login": "sim-admin", "role": "member"}))).await;
    assert!(run.outcome().needs_person && run.outcome().summary.contains("last owner"), "{:?}", run.outcome());
    assert_eq!(w.writes(), 0, "{:?}", w.requests());
    let calls = w.sim.sim.lock().journal.calls(Some(w.sim_vendor()));
    let admins = calls.iter().filter(|c| c["path"].as_str().unwrap().ends_with("/members")).count();
    assert!(calls
        .iter()
        .filter(|c| c["path"].as_str().unwrap().ends_with("/members"))
        .all(|c| c["query"].as_str().unwrap().contains("role=admin")));
    assert_eq!(admins, 2);

    // Another owner beside them: an owner who leaves is removed.
    let w = world().await;
    w.seed(json!({"users": [{"login": "root-gh"}], "members": [{"login": "root-gh", "role": "admin"}]}));
    let run = w.start(&gh("leaver", "root@example.com", json!({"login": "root-gh"}))).await;
    assert_eq!(access(run.outcome()), Some("removed"), "{:?}", run.outcome());
    assert_eq!(w.requests().get(MEMBERS), Some(&1), "the owners listed first");
}

#[tokio::test]
async fn an_outside_collaborator_is_reported_or_removed_when_asked() {
    let w = world().await;
    let run = w.start(&gh("leaver", "linus@example.com", json!({"login": "linus-gh"}))).await;
    let o = run.outcome();
    assert!(o.needs_person, "{o:?}");
    assert!(
        o.summary.contains("outside collaborator") && o.summary.contains("remove_outside_collaborator: true"),
        "{o:?}"
    );
    assert_eq!(outside(&w), ["linus-gh"]);
    assert_eq!(w.writes(), 0);

    let ev = gh("leaver", "linus@example.com", json!({"login": "linus-gh", "remove_outside_collaborator": true}));
    let run = w.start(&ev).await;
    let o = run.outcome();
    assert_eq!(access(o), Some("removed"), "{o:?}");
    assert!(o.summary.contains("removed linus-gh as an outside collaborator"), "{o:?}");
    assert!(outside(&w).is_empty());
    assert_eq!(w.requests().get(REMOVE_OUTSIDE), Some(&1));
}

#[tokio::test]
async fn an_unknown_login_or_team_is_permanent_and_writes_nothing() {
    let w = world().await;
    let run = w.start(&gh("joiner", "who@example.com", json!({"login": "no-such-gh"}))).await;
    match run.error() {
        StepError::Permanent { message } => assert!(message.contains("no GitHub user no-such-gh"), "{message}"),
        other => panic!("{other:?}"),
    }
    let run =
        w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform", "nope"]}))).await;
    match run.error() {
        StepError::Permanent { message } => assert!(message.contains("unknown team nope"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.writes(), 0);
    assert!(pending(&w).iter().all(|i| i["login"] != "ada-gh"));
}

/// A team created at GitHub a minute ago is found at once: the cached catalogue is read again
/// (with `If-None-Match`) before a run fails for a slug it lacks, once; unchanged, GitHub answers
/// 304 and the old copy is kept.
#[tokio::test]
async fn the_teams_are_read_again_once_on_a_miss_and_revalidated_with_if_none_match() {
    let w = world().await;
    let ada = |teams: Value| gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": teams}));
    let sent = recorded(&w, async {
        // Cold: read once.
        let grace = gh("joiner", "grace@example.com", json!({"login": "grace-gh", "teams": ["platform"]}));
        w.start(&grace).await.outcome();
        // A miss on a slug that is not there: read again once (fresh), answered 304.
        let run = w.start(&ada(json!(["nope"]))).await;
        assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.error());
    })
    .await;
    let reads: Vec<&Recorded> = sent.iter().filter(|r| r.path.ends_with("/teams")).collect();
    assert_eq!(reads.len(), 2, "read, then read again once on the miss");
    assert_eq!((reads[0].status, header(reads[0], "if-none-match")), (200, None));
    let etag = reads[0].response_headers.iter().find(|(k, _)| k == "etag").map(|(_, v)| v.as_str());
    assert!(etag.is_some(), "{:?}", reads[0].response_headers);
    assert_eq!((reads[1].status, header(reads[1], "if-none-match")), (304, etag));
    assert_eq!(w.writes(), 1, "the DELETE of grace's joiner (security), nothing for ada");
    assert!(pending(&w).iter().all(|i| i["login"] != "ada-gh"));

    // A team made since: one read (a 200: it changed), and the run goes on.
    w.seed(json!({"teams": [{"name": "Data Science", "slug": "data-science", "id": 77}]}));
    let before = w.requests();
    let run = w.start(&ada(json!(["data-science"]))).await;
    assert_eq!(access(run.outcome()), Some("invited"), "{:?}", run.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(TEAMS, 1), (MEMBERSHIP, 1), (USER, 1), (INVITE, 1)]));
    assert_eq!(pending(&w).into_iter().find(|i| i["login"] == "ada-gh").unwrap()["team_ids"], json!([77]));

    // Found in the cache: no read.
    let before = w.requests();
    w.start(&gh("joiner", "alan@example.com", json!({"login": "alan-gh", "teams": ["data-science", "platform"]})))
        .await
        .outcome();
    assert!(!w.requests_since(&before).contains_key(TEAMS));
}

#[tokio::test]
async fn the_teams_catalogue_is_revalidated_after_catalog_max_age() {
    let w = World::unthrottled(GH, json!({"catalog_max_age": "1s"})).await;
    let joiner = gh("joiner", "grace@example.com", json!({"login": "grace-gh", "teams": ["platform"]}));
    w.start(&joiner).await.outcome();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let sent = recorded(&w, async {
        w.start(&joiner).await.outcome();
    })
    .await;
    let reads: Vec<&Recorded> = sent.iter().filter(|r| r.path.ends_with("/teams")).collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].status, 304, "unchanged: 304, the copy kept");
    assert!(header(reads[0], "if-none-match").is_some());
    assert!(reads[0].response.is_none());
}

/// GitHub's secondary limit on writes answers 403 (not 429) with `retry-after`: a rate limit,
/// retried after those seconds, not a refusal.
#[tokio::test]
async fn a_secondary_limit_403_with_retry_after_is_a_rate_limit() {
    let w = world().await;
    w.configure(
        json!({"rate_limit": {"enabled": true}, "secondary_writes_per_minute": 1, "secondary_retry_after_secs": 7}),
    );
    w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh"}))).await.outcome();
    let sent = recorded(&w, async {
        let run = w.start(&gh("joiner", "nora@example.com", json!({}))).await;
        match run.error() {
            StepError::Transient { retry_after, .. } => assert_eq!(*retry_after, Some(Duration::from_secs(7))),
            other => panic!("{other:?}"),
        }
    })
    .await;
    let refused = sent.last().unwrap();
    assert_eq!((refused.method.as_str(), refused.status), ("POST", 403));
    assert!(refused.response_headers.iter().any(|(k, v)| k == "retry-after" && v == "7"));
    assert!(refused.response.as_ref().unwrap()["message"].as_str().unwrap().contains("secondary rate limit"));
    assert!(pending(&w).iter().all(|i| i["email"] != "nora@example.com"));
}

/// The primary limit spent: 403 with `x-ratelimit-remaining: 0` and no `retry-after`; the wait is
/// until `x-ratelimit-reset` (epoch seconds), not GitHub's default minute.
#[tokio::test]
async fn a_primary_limit_403_with_no_remaining_waits_until_the_reset() {
    let w = world().await;
    w.configure(json!({"rate_limit": {"enabled": true}, "primary_limit": 2, "primary_window_secs": 20}));
    let sent = recorded(&w, async {
        // teams/list, get-membership, then the third request is refused.
        let run = w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh", "teams": ["platform"]}))).await;
        match run.error() {
            StepError::Transient { retry_after: Some(wait), .. } => {
                assert!(*wait >= Duration::from_secs(1) && *wait <= Duration::from_secs(20), "{wait:?}")
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
    assert_eq!(sent.len(), 3, "{:?}", sent.iter().map(|r| (&r.method, &r.path, r.status)).collect::<Vec<_>>());
    let refused = &sent[2];
    assert_eq!(refused.status, 403);
    let h = |name: &str| refused.response_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(h("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(h("retry-after"), None);
    assert_eq!(w.writes(), 0);
}

/// A 403 that is not a rate limit (a token of a plain member) is permanent, naming the fix.
#[tokio::test]
async fn a_403_without_rate_limit_signs_is_a_permission_and_permanent() {
    let w = World::unthrottled(GH, json!({"token": "github-member-token"})).await;
    let run = w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh"}))).await;
    match run.error() {
        StepError::Permanent { message } => {
            assert!(message.contains("403") && message.contains("owner of sim-org"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

/// Each write of a mover applied and its answer lost (a 500): the retry ends as a clean run
/// does, nothing twice.
#[tokio::test]
async fn a_movers_writes_applied_then_failed_end_as_a_clean_run() {
    let mover = gh("mover", "grace@example.com", json!({"login": "grace-gh", "role": "admin", "teams": ["security"]}));
    for (method, path) in [
        ("PUT", "/orgs/sim-org/memberships/grace-gh"),
        ("PUT", "/orgs/sim-org/teams/security/memberships/grace-gh"),
        ("DELETE", "/orgs/sim-org/teams/platform/memberships/grace-gh"),
    ] {
        let w = world().await;
        w.fault(json!({"method": method, "path": path, "kind": "apply_then_fail", "status": 500, "count": 1}));
        let first = w.start(&mover).await;
        assert!(matches!(first.error(), StepError::Transient { .. }), "{method} {path}: {:?}", first.error());
        let retry = w.retry(&first.run_id).await;
        assert_eq!(access(retry.outcome()), Some("active"), "{method} {path}: {:?}", retry.outcome());
        assert_eq!(role_of(&w, "grace-gh").as_deref(), Some("admin"));
        assert!(in_team(&w, "security", "grace-gh") && !in_team(&w, "platform", "grace-gh"));
        assert_eq!(mutations(&w), 3, "{method} {path}: each change once");
    }
}

/// An invitation whose answer was lost: the retry looks (`pending`) and sends none.
#[tokio::test]
async fn an_invitation_in_doubt_is_looked_for_not_sent_again() {
    let w = world().await;
    w.fault(json!({"method": "POST", "path": "/orgs/sim-org/invitations", "kind": "apply_then_fail", "status": 502}));
    let first = w.start(&gh("joiner", "ada@example.com", json!({"login": "ada-gh"}))).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.error());
    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    let o = retry.outcome();
    assert_eq!(access(o), Some("invited"));
    assert!(o.summary.contains("sent by an earlier attempt whose answer was lost"), "{o:?}");
    assert_eq!(w.requests_since(&before), routes(&[(MEMBERSHIP, 1)]));
    assert_eq!(pending(&w).iter().filter(|i| i["login"] == "ada-gh").count(), 1);

    // By address: the pending invitations are listed again.
    let w = world().await;
    w.fault(json!({"method": "POST", "path": "/orgs/sim-org/invitations", "kind": "apply_then_fail", "status": 502}));
    let first = w.start(&gh("joiner", "nora@example.com", json!({}))).await;
    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    assert_eq!(access(retry.outcome()), Some("invited"));
    assert_eq!(w.requests_since(&before), routes(&[(INVITATIONS, 1)]));
    assert_eq!(pending(&w).iter().filter(|i| i["email"] == "nora@example.com").count(), 1);
}
