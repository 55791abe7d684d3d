//! circleci: the workflows against the simulator, in process.
//!
//! CircleCI's API v2 definition publishes no organization-member operation, so no workflow
//! adds, reads or removes a member. Each one reads the token's own user (`getCurrentUser`,
//! `GET /me`) and the org among its collaborations (`getCollaborations`,
//! `GET /me/collaborations`), both kept by the worker for `catalog_max_age`: two requests from a
//! cold worker, none from a warm one. Then a person's task with the exact steps, ending
//! `needs_manual_action`, except for the token's own user, whom the collaborations show in the
//! org. Every test also holds that no request left the definition.

use crate::common::*;
use lifecycle_engine::StepError;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const ME: &str = "GET /me";
const COLLABORATIONS: &str = "GET /me/collaborations";
/// The routes of the simulator that are operations of CircleCI's published definition
/// (operationId: getCurrentUser, getCollaborations, getUser, getOrganizationGroups, getGroup).
const DEFINITION: [&str; 5] = [
    ME,
    COLLABORATIONS,
    "GET /user/{id}",
    "GET /organizations/{org_id}/groups",
    "GET /organizations/{org_id}/groups/{group_id}",
];
const ORG_ID: &str = "610fae58-cf36-4c1d-b310-cf1332493ef4";
const ADMIN_ID: &str = "cdc37617-df27-435a-97a7-ac4e10a9c986";

fn ev(kind: &str, login: &str) -> Value {
    event(kind, &format!("{login}@example.com"), VendorKind::Circleci, json!({ "login": login }))
}

/// Every request this world's CircleCI served was one of the definition's operations, and only
/// the two the client uses; nothing else, nothing unmatched, nothing but GETs.
fn only_definition_requests(w: &World) {
    let routes: BTreeSet<String> = w.requests().into_keys().collect();
    for route in &routes {
        assert!(DEFINITION.contains(&route.as_str()), "{route} is not an operation of CircleCI's definition");
        assert!([ME, COLLABORATIONS].contains(&route.as_str()), "the client uses only /me and its collaborations");
    }
    assert_eq!(w.writes(), 0, "nothing but reads");
}

/// Whether `login` is a member of gh/sim-org in the simulator (what people did in the web app).
fn is_member(w: &World, login: &str) -> bool {
    let state = w.state();
    state["memberships"].as_array().unwrap().iter().any(|m| m["org_id"] == ORG_ID && m["login"] == login)
}

fn memberships(w: &World) -> Value {
    w.state()["memberships"].clone()
}

/// The changes CircleCI logged: none can happen through its API.
fn changes(w: &World) -> usize {
    w.sim.sim.lock().journal.log(lifecycle_vendor_sim::Vendor::CircleCi).len()
}

/// A connector of the same simulator for another org slug.
fn connector_for(w: &World, slug: &str) -> std::sync::Arc<dyn lifecycle_engine::Connector> {
    let table = json!({
        "base_url": w.sim.base_url(sim_vendor(VendorKind::Circleci)),
        "token": "circleci-admin-token", "org_slug": slug,
    });
    let common =
        lifecycle_vendors::registry::Common { http_timeout: std::time::Duration::from_secs(5), allow_plain_http: true };
    lifecycle_vendors::circleci::connector(&table, &common).expect("a valid table")
}

#[tokio::test]
async fn every_workflow_reads_me_and_the_collaborations_once_then_nothing() {
    let w = World::new(VendorKind::Circleci).await;
    let before = w.requests();
    let first = w.start(&ev("joiner", "ada-gh")).await;
    assert!(first.outcome().needs_person, "{:?}", first.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(ME, 1), (COLLABORATIONS, 1)]), "cold: the token, then the org");
    assert!(w.harness.keys(&first.run_id).await.is_empty(), "nothing journaled: nothing is written anywhere");

    // Warm: every workflow answers from what the worker holds.
    for (kind, login) in [("joiner", "grace-gh"), ("mover", "grace-gh"), ("leaver", "alan-gh"), ("leaver", "nobody-gh")]
    {
        let before = w.requests();
        let run = w.start(&ev(kind, login)).await;
        let outcome = run.outcome();
        assert!(outcome.needs_person, "{kind} {login}: {outcome:?}");
        assert_eq!(outcome.access, None, "{kind} {login}: no read tells their access");
        assert_eq!(w.requests_since(&before), routes(&[]), "{kind} {login}: no request");
        assert!(w.harness.keys(&run.run_id).await.is_empty());
    }
    only_definition_requests(&w);
    assert_eq!(changes(&w), 0);
}

#[tokio::test]
async fn a_joiner_in_a_github_oauth_org_is_told_to_invite_them_to_the_github_org() {
    let w = World::new(VendorKind::Circleci).await;
    let outcome = w.start(&ev("joiner", "ada-gh")).await.outcome().clone();
    assert!(outcome.needs_person);
    for needed in [
        "lifecycle cannot add ada-gh to the CircleCI organization gh/sim-org",
        "publishes no endpoint that invites or adds a member",
        &format!("sees gh/sim-org, organization {ORG_ID}"),
        "signs in through GitHub (OAuth)",
        "Invite ada-gh to the GitHub organization sim-org (https://github.com/orgs/sim-org/people > Invite member)",
        "signed in to CircleCI with GitHub",
        "a re-check of this run cannot see the change",
        "the run stays needs_manual_action as the record of the task",
    ] {
        assert!(outcome.summary.contains(needed), "{needed:?} missing from: {}", outcome.summary);
    }
    assert!(!is_member(&w, "ada-gh"), "nobody was added");

    let mover = w.start(&ev("mover", "grace-gh")).await.outcome().clone();
    for needed in [
        "cannot check or change grace-gh's access to the CircleCI organization gh/sim-org",
        "If grace-gh is not a member yet: gh/sim-org signs in through GitHub",
        "change grace-gh's role or repository access in the GitHub organization sim-org",
    ] {
        assert!(mover.summary.contains(needed), "{needed:?} missing from: {}", mover.summary);
    }
    only_definition_requests(&w);
}

#[tokio::test]
async fn a_leaver_is_told_where_to_remove_them_and_that_their_tokens_live_on() {
    let w = World::new(VendorKind::Circleci).await;
    let before = memberships(&w);
    let outcome = w.start(&ev("leaver", "alan-gh")).await.outcome().clone();
    assert!(outcome.needs_person, "{outcome:?}");
    assert_eq!(outcome.access, None);
    for needed in [
        "lifecycle cannot remove alan-gh from the CircleCI organization gh/sim-org",
        "publishes no endpoint that removes a member",
        "CircleCI takes its members from the GitHub organization sim-org, so remove alan-gh from it",
        "Remove from organization",
        "does not revoke their personal API tokens",
        "User Settings > Personal API Tokens",
        "project environment variables, contexts",
        "SSO",
        "a re-check of this run cannot see the change",
    ] {
        assert!(outcome.summary.contains(needed), "{needed:?} missing from: {}", outcome.summary);
    }
    assert_eq!(memberships(&w), before, "lifecycle changed nothing at CircleCI");
    assert!(is_member(&w, "alan-gh"));
    assert_eq!(changes(&w), 0);
    only_definition_requests(&w);
}

/// An org whose members CircleCI itself manages (a `circleci/` slug: GitHub App, GitLab,
/// standalone): the People page invites and removes.
#[tokio::test]
async fn a_circleci_managed_orgs_steps_are_its_people_page() {
    let w = World::new(VendorKind::Circleci).await;
    w.seed(json!({
        "orgs": [{"slug": "circleci/AbC123", "name": "Acme", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}],
        "memberships": [{"org": "circleci/AbC123", "login": "sim-admin", "role": "admin"}]
    }));
    let w = World { connector: connector_for(&w, "circleci/AbC123"), ..w };
    let joiner = w.start(&ev("joiner", "ada-gh")).await.outcome().clone();
    for needed in [
        "circleci/AbC123 (Acme) manages its members in CircleCI",
        "Organization Settings > People > Invite, with their e-mail address (ada-gh@example.com)",
    ] {
        assert!(joiner.summary.contains(needed), "{needed:?} missing from: {}", joiner.summary);
    }
    assert!(!joiner.summary.contains("GitHub"), "{}", joiner.summary);
    let leaver = w.start(&ev("leaver", "grace-gh")).await.outcome().clone();
    for needed in [
        "Organization Settings > People, the three-dot menu at the end of grace-gh's row > Remove From Organization",
        "Pending list",
        "at least one admin",
        "Personal API Tokens",
    ] {
        assert!(leaver.summary.contains(needed), "{needed:?} missing from: {}", leaver.summary);
    }
    let mover = w.start(&ev("mover", "grace-gh")).await.outcome().clone();
    assert!(mover.summary.contains("changes grace-gh's role in the CircleCI web app"), "{}", mover.summary);
    only_definition_requests(&w);
}

/// A re-check runs the workflow again: no published read can see what the person did, so it
/// ends as the run did, and says so. The simulator has the member by then; it changes nothing.
#[tokio::test]
async fn a_recheck_cannot_confirm_what_the_person_did_and_says_so() {
    let w = World::new(VendorKind::Circleci).await;
    let first = w.start(&ev("joiner", "ada-gh")).await;
    let said = first.outcome().summary.clone();
    // A person invites ada-gh and she accepts (the simulator plays the web app).
    w.seed(json!({"users": [{"login": "ada-gh"}], "memberships": [{"org": "gh/sim-org", "login": "ada-gh"}]}));
    let before = w.requests();
    let again = w.retry(&first.run_id).await;
    assert!(again.outcome().needs_person, "{:?}", again.outcome());
    assert_eq!(again.outcome().summary, said, "the same task, the same words");
    assert!(said.contains("cannot confirm this"), "{said}");
    assert_eq!(w.requests_since(&before), routes(&[]), "and nothing to ask CircleCI");
    only_definition_requests(&w);
}

/// The one person a published read does place in the org: the token's own user (its
/// collaborations list the org). A joiner of them succeeds; a leaver gives no removal steps.
#[tokio::test]
async fn the_tokens_own_user_is_in_the_org_and_never_handed_over_for_removal() {
    let w = World::new(VendorKind::Circleci).await;
    let joined = w.start(&ev("joiner", "Sim-Admin")).await;
    let outcome = joined.outcome();
    assert!(!outcome.needs_person, "{outcome:?}");
    assert_eq!(outcome.access, Some(lifecycle_engine::Access::Active));
    assert!(outcome.summary.contains("owns the API token") && outcome.summary.contains("nothing to do"));

    let left = w.start(&ev("leaver", "sim-admin")).await.outcome().clone();
    assert!(left.needs_person, "{left:?}");
    assert_eq!(left.access, Some(lifecycle_engine::Access::Active));
    for needed in [
        &format!("sim-admin (CircleCI user {ADMIN_ID}) owns the API token lifecycle uses for gh/sim-org"),
        "gives no steps to remove them",
        "set vendors.circleci.token to a personal API token of another member",
        "then re-check this run",
    ] {
        assert!(left.summary.contains(needed), "{needed:?} missing from: {}", left.summary);
    }
    for never in ["Remove from organization", "Remove From Organization", "remove sim-admin from it"] {
        assert!(!left.summary.contains(never), "{never:?} in: {}", left.summary);
    }
    assert!(is_member(&w, "sim-admin"));
    only_definition_requests(&w);
}

#[tokio::test]
async fn an_org_the_token_does_not_see_dies_naming_it_and_is_found_once_it_does() {
    let w = World::new(VendorKind::Circleci).await;
    let w = World { connector: connector_for(&w, "gh/new-org"), ..w };
    let run = w.start(&ev("joiner", "grace-gh")).await;
    let StepError::Permanent { message } = run.error() else { panic!("{:?}", run.result) };
    for needed in ["(sim-admin) does not see the organization gh/new-org", "bb/sim-org, gh/sim-org", "org_slug"] {
        assert!(message.contains(needed), "{needed:?} missing from: {message}");
    }

    // The token's owner is added to the org at CircleCI: the next run finds it (its /me kept).
    w.seed(json!({
        "orgs": [{"slug": "gh/new-org", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}],
        "memberships": [{"org": "gh/new-org", "login": "sim-admin", "role": "admin"}]
    }));
    let before = w.requests();
    let run = w.start(&ev("joiner", "grace-gh")).await;
    assert!(run.outcome().summary.contains("gh/new-org"), "{:?}", run.outcome());
    assert_eq!(w.requests_since(&before), routes(&[(COLLABORATIONS, 1)]));
    only_definition_requests(&w);
}

/// Same-named orgs: `bb/sim-org` sorts first in the collaborations; the slug, not the name,
/// picks the org, and the Bitbucket one gets Bitbucket's steps.
#[tokio::test]
async fn the_org_is_picked_by_slug_and_a_bitbucket_org_gets_bitbuckets_steps() {
    let w = World::new(VendorKind::Circleci).await;
    let gh = w.start(&ev("joiner", "ada-gh")).await.outcome().clone();
    assert!(gh.summary.contains(ORG_ID) && gh.summary.contains("GitHub"), "{}", gh.summary);
    let w = World { connector: connector_for(&w, "bitbucket/Sim-Org"), ..w };
    let bb = w.start(&ev("leaver", "alan-gh")).await.outcome().clone();
    for needed in ["bb/sim-org signs in through Bitbucket (OAuth)", "remove alan-gh from that workspace on Bitbucket"] {
        assert!(bb.summary.contains(needed), "{needed:?} missing from: {}", bb.summary);
    }
    assert!(bb.summary.contains("e9ebb5a5-5ae3-4607-9071-e5c9df787bdf"), "the Bitbucket org's UUID: {}", bb.summary);
}

#[tokio::test]
async fn a_rejected_token_ends_dead_saying_what_to_fix_and_never_the_token() {
    let w = World::with(VendorKind::Circleci, json!({"token": "not-a-token"})).await;
    let run = w.start(&ev("leaver", "alan-gh")).await;
    let StepError::Permanent { message } = run.error() else { panic!("{:?}", run.result) };
    for needed in ["401", "GET /me", "vendors.circleci.token", "replay this run"] {
        assert!(message.contains(needed), "{needed:?} missing from: {message}");
    }
    assert!(!message.contains("not-a-token"));
    only_definition_requests(&w);
}

/// A 429 (CircleCI names no wait): the run is retried, and the retry reads on.
#[tokio::test]
async fn a_429_is_retried() {
    let w = World::new(VendorKind::Circleci).await;
    w.fault(json!({"method": "GET", "path": "/me/collaborations", "kind": "status", "status": 429, "count": 1}));
    let first = w.start(&ev("joiner", "ada-gh")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().needs_person, "{:?}", retry.outcome());
    assert_eq!(w.rate_limited(), 1);
    only_definition_requests(&w);
}
