//! CrowdStrike Falcon: the workflows against the simulator, in process, through the current
//! user-management API (queryUserV1, retrieveUsersGETV1, createUserV1, updateUserV1,
//! deleteUserV1, queriesRolesV1, CombinedUserRolesV2, userRolesActionV1).
//!
//! Requests per run, exactly, route by route (see the module doc of
//! `lifecycle_vendors::crowdstrike` and its workflows): with the token held and the role
//! catalogue cached, a joiner of someone new is 3 (find, create, grant), a mover 4 (find, read
//! the roles, grant, revoke), a leaver 4 (find, read the roles, revoke them all, delete),
//! whatever the tenant's size. Grants and revokes are the same route (userRolesActionV1, one
//! action a request): the simulator's log tells them apart. A cold worker adds the token
//! request, and for a joiner or a mover the catalogue.

use crate::common::*;
use lifecycle_engine::StepError;
use lifecycle_store::harness::Harness;
use lifecycle_vendor_sim::registry::VendorSim;
use lifecycle_vendor_sim::Vendor;
use serde_json::{json, Value};
use std::time::Duration;

const CS: VendorKind = VendorKind::Crowdstrike;

const TOKEN: &str = "POST /oauth2/token";
/// queriesRolesV1.
const CATALOGUE: &str = "GET /user-management/queries/roles/v1";
/// queryUserV1 (`filter=uid:'<address>'`, or the listing).
const FIND: &str = "GET /user-management/queries/users/v1";
/// retrieveUsersGETV1.
const USER: &str = "POST /user-management/entities/users/GET/v1";
/// createUserV1, updateUserV1, deleteUserV1.
const CREATE: &str = "POST /user-management/entities/users/v1";
const RENAME: &str = "PATCH /user-management/entities/users/v1";
const DELETE: &str = "DELETE /user-management/entities/users/v1";
/// CombinedUserRolesV2.
const ROLES_OF: &str = "GET /user-management/combined/user-roles/v2";
/// userRolesActionV1: every grant and every revoke.
const ACTION: &str = "POST /user-management/entities/user-role-actions/v1";
const ACTION_PATH: &str = "/user-management/entities/user-role-actions/v1";
/// The simulator's tenant CID (what a role action names).
const CID: &str = "5f4e3d2c1b0a49588776655443322110";

fn joiner(email: &str, roles: &[&str]) -> Value {
    event("joiner", email, CS, json!({ "roles": roles }))
}

fn mover(email: &str, roles: &[&str]) -> Value {
    event("mover", email, CS, json!({ "roles": roles }))
}

fn leaver(email: &str) -> Value {
    event("leaver", email, CS, json!({}))
}

/// People to make the tenant large: the counts must not grow with it.
fn crowd(n: usize) -> Value {
    let users: Vec<Value> = (0..n)
        .map(|i| json!({"username": format!("crowd{i}@example.com"), "first_name": "Crowd", "last_name": format!("{i}")}))
        .collect();
    json!({ "users": users })
}

/// Seeds one user holding `roles`.
fn person(w: &World, username: &str, roles: &[&str]) {
    w.seed(json!({"users": [{"username": username, "first_name": "Test", "last_name": "Person", "roles": roles}]}));
}

fn users_named(w: &World, username: &str) -> Vec<Value> {
    let users = w.sim.sim.lock().tenants.crowdstrike.snapshot()["users"].clone();
    users.as_array().unwrap().iter().filter(|u| u["username"].as_str() == Some(username)).cloned().collect()
}

fn roles_of(w: &World, username: &str) -> Vec<String> {
    let users = users_named(w, username);
    assert_eq!(users.len(), 1, "one {username}: {users:?}");
    users[0]["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
}

fn actions(w: &World) -> Vec<String> {
    let log = w.sim.sim.lock().journal.log(Vendor::CrowdStrike);
    log.iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_joiner_is_find_create_grant_whatever_the_tenants_size() {
    for size in [0, 1000] {
        let w = World::new(CS).await;
        w.seed(crowd(size));
        let before = w.requests();
        let first = w.start(&joiner("ada@example.com", &["falcon_analyst", "detection_monitor"])).await;
        assert!(first.outcome().summary.starts_with("created CrowdStrike Falcon user"), "{:?}", first.outcome());
        let cold = routes(&[(TOKEN, 1), (CATALOGUE, 1), (FIND, 1), (CREATE, 1), (ACTION, 1)]);
        assert_eq!(w.requests_since(&before), cold, "{size} people, cold: the token and the catalogue once");
        assert_eq!(actions(&w), ["user.create", "role.grant"], "the CID came with the created user: no read");
        assert_eq!(w.harness.keys(&first.run_id).await, ["ensure_user", "grant_roles"]);
        assert_eq!(roles_of(&w, "ada@example.com"), ["detection_monitor", "falcon_analyst"]);

        let before = w.requests();
        let warm = w.start(&joiner("grace.h@example.com", &["falcon_analyst"])).await;
        warm.outcome();
        let three = routes(&[(FIND, 1), (CREATE, 1), (ACTION, 1)]);
        assert_eq!(w.requests_since(&before), three, "{size} people, warm: find, create, grant");
        assert_eq!(roles_of(&w, "grace.h@example.com"), ["falcon_analyst"]);
    }
}

#[tokio::test]
async fn a_mover_is_find_read_roles_grant_revoke_whatever_the_tenants_size() {
    for size in [0, 1000] {
        let w = World::new(CS).await;
        w.seed(crowd(size));
        person(&w, "mo@example.com", &["falcon_admin", "detection_monitor"]);
        person(&w, "vera@example.com", &["falcon_admin", "detection_monitor", "remote_responder"]);

        let before = w.requests();
        let moved = w.start(&mover("mo@example.com", &["falcon_analyst", "detection_monitor"])).await;
        assert!(
            moved.outcome().summary.contains("granted falcon_analyst, revoked falcon_admin"),
            "{:?}",
            moved.outcome()
        );
        let cold = routes(&[(TOKEN, 1), (CATALOGUE, 1), (FIND, 1), (ROLES_OF, 1), (ACTION, 2)]);
        assert_eq!(w.requests_since(&before), cold, "{size} people, cold: the CID came with the grants");
        assert_eq!(actions(&w), ["role.grant", "role.revoke"]);
        assert_eq!(w.harness.keys(&moved.run_id).await, ["find_user", "grant_roles", "revoke_roles"]);
        assert_eq!(roles_of(&w, "mo@example.com"), ["detection_monitor", "falcon_analyst"]);

        // Two roles to revoke: still one request.
        let before = w.requests();
        let moved = w.start(&mover("vera@example.com", &["falcon_analyst"])).await;
        moved.outcome();
        let four = routes(&[(FIND, 1), (ROLES_OF, 1), (ACTION, 2)]);
        assert_eq!(w.requests_since(&before), four, "{size} people, warm: find, read the roles, grant, revoke");
        assert_eq!(roles_of(&w, "vera@example.com"), ["falcon_analyst"]);

        // Nothing to change: the two reads only.
        let before = w.requests();
        let same = w.start(&mover("vera@example.com", &["falcon_analyst"])).await;
        assert!(same.outcome().summary.contains("already had roles falcon_analyst"), "{:?}", same.outcome());
        assert_eq!(w.requests_since(&before), routes(&[(FIND, 1), (ROLES_OF, 1)]));
    }
}

#[tokio::test]
async fn a_leaver_is_find_read_roles_revoke_delete_whatever_the_tenants_size() {
    for size in [0, 1000] {
        let w = World::new(CS).await;
        w.seed(crowd(size));
        person(&w, "lea@example.com", &["falcon_admin"]);
        person(&w, "leo@example.com", &["falcon_admin", "falcon_analyst", "remote_responder"]);

        let before = w.requests();
        let left = w.start(&leaver("lea@example.com")).await;
        assert!(left.outcome().summary.contains("revoked role(s) falcon_admin, then deleted"), "{:?}", left.outcome());
        let cold = routes(&[(TOKEN, 1), (FIND, 1), (ROLES_OF, 1), (ACTION, 1), (DELETE, 1)]);
        assert_eq!(w.requests_since(&before), cold, "{size} people, cold: the token, no catalogue");
        assert_eq!(w.harness.keys(&left.run_id).await, ["find_user", "revoke_roles", "delete_user"]);
        assert!(users_named(&w, "lea@example.com").is_empty());

        let log_before = actions(&w).len();
        let before = w.requests();
        let left = w.start(&leaver("leo@example.com")).await;
        left.outcome();
        let four = routes(&[(FIND, 1), (ROLES_OF, 1), (ACTION, 1), (DELETE, 1)]);
        assert_eq!(w.requests_since(&before), four, "{size} people, warm: three roles revoked in one request");
        assert!(users_named(&w, "leo@example.com").is_empty());
        let log = w.sim.sim.lock().journal.log(Vendor::CrowdStrike);
        let acts: Vec<&str> = log[log_before..].iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(acts, ["role.revoke", "role.revoke", "role.revoke", "user.delete"], "every role, then the user");
        assert_eq!(log.last().unwrap()["roles_at_delete"], json!([]));
    }
}

/// A joiner for someone who already has an account converges it: find, read the names and
/// correct them, read the roles, grant, revoke (the one path that reads the user entity).
#[tokio::test]
async fn a_joiner_for_an_existing_account_adopts_and_converges_it() {
    let w = World::new(CS).await;
    w.seed(crowd(1000));
    w.seed(json!({"users": [{"username": "Ada@Example.com", "first_name": "A.", "last_name": "King", "roles": ["falcon_console_guest"]}]}));
    w.start(&joiner("warm@example.com", &["falcon_analyst"])).await.outcome();
    let before = w.requests();
    let run = w.start(&joiner("ada@example.com", &["falcon_analyst"])).await;
    assert!(run.outcome().summary.starts_with("found existing"), "{:?}", run.outcome());
    let six = routes(&[(FIND, 1), (USER, 1), (RENAME, 1), (ROLES_OF, 1), (ACTION, 2)]);
    assert_eq!(w.requests_since(&before), six);
    let keys = ["ensure_user", "update_names", "plan_roles", "grant_roles", "revoke_roles"];
    assert_eq!(w.harness.keys(&run.run_id).await, keys);
    let ada = users_named(&w, "Ada@Example.com");
    assert_eq!((ada[0]["first_name"].as_str(), ada[0]["last_name"].as_str()), (Some("Test"), Some("ada")));
    assert_eq!(roles_of(&w, "Ada@Example.com"), ["falcon_analyst"]);
}

#[tokio::test]
async fn a_role_added_at_the_vendor_is_found_without_a_restart() {
    let w = World::new(CS).await;
    w.start(&joiner("ada@example.com", &["falcon_analyst"])).await.outcome();
    // Added after the catalogue was cached: the miss fetches it again, once.
    w.seed(json!({"roles": [{"id": "incident_responder", "display_name": "Incident Responder"}]}));
    let before = w.requests();
    let run = w.start(&joiner("grace.h@example.com", &["incident_responder"])).await;
    assert!(run.outcome().summary.contains("roles incident_responder"), "{:?}", run.outcome());
    let refreshed = routes(&[(CATALOGUE, 1), (FIND, 1), (CREATE, 1), (ACTION, 1)]);
    assert_eq!(w.requests_since(&before), refreshed);
    assert_eq!(roles_of(&w, "grace.h@example.com"), ["incident_responder"]);

    // The fresh copy is kept: the next run asks nothing.
    let before = w.requests();
    w.start(&mover("grace.h@example.com", &["incident_responder", "falcon_analyst"])).await.outcome();
    assert_eq!(w.requests_since(&before).get(CATALOGUE), None);
}

#[tokio::test]
async fn the_catalogue_is_read_again_once_it_is_older_than_catalog_max_age() {
    let w = World::with(CS, json!({"catalog_max_age": "200ms"})).await;
    w.start(&joiner("ada@example.com", &["falcon_analyst"])).await.outcome();
    let before = w.requests();
    w.start(&joiner("bea@example.com", &["falcon_analyst"])).await.outcome();
    assert_eq!(w.requests_since(&before).get(CATALOGUE), None, "young enough");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = w.requests();
    w.start(&joiner("cy@example.com", &["falcon_analyst"])).await.outcome();
    assert_eq!(w.requests_since(&before).get(CATALOGUE), Some(&1), "too old: read again");
}

#[tokio::test]
async fn an_unknown_role_is_permanent_and_creates_nobody() {
    let w = World::new(CS).await;
    w.start(&joiner("ada@example.com", &["falcon_analyst"])).await.outcome();
    let before = w.requests();
    let run = w.start(&joiner("bob@example.com", &["detection_monitor", "Falcon_Analyst"])).await;
    assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.result);
    let message = run.error().to_string();
    assert!(
        message.contains("no role with the id \"Falcon_Analyst\"")
            && message.contains("did you mean \"falcon_analyst\"")
            && message.contains("nothing was created"),
        "{message}"
    );
    // The cached copy missed: one fresh copy, then the verdict. Nothing else was asked.
    assert_eq!(w.requests_since(&before), routes(&[(CATALOGUE, 1)]));
    assert!(w.harness.keys(&run.run_id).await.is_empty());
    assert!(users_named(&w, "bob@example.com").is_empty());
    // A mover too.
    person(&w, "mo@example.com", &["falcon_admin"]);
    let run = w.start(&mover("mo@example.com", &["astronaut"])).await;
    assert!(matches!(run.error(), StepError::Permanent { .. }), "{:?}", run.result);
    assert_eq!(roles_of(&w, "mo@example.com"), ["falcon_admin"], "untouched");
}

#[tokio::test]
async fn a_joiner_twice_is_one_account() {
    let w = World::new(CS).await;
    w.start(&joiner("ada@example.com", &["falcon_analyst"])).await.outcome();
    let before = w.requests();
    let again = w.start(&joiner("ada@example.com", &["falcon_analyst"])).await;
    assert!(again.outcome().summary.starts_with("found existing"), "{:?}", again.outcome());
    assert!(again.outcome().summary.ends_with("already had roles falcon_analyst"), "{:?}", again.outcome());
    // Found, names and roles read and already right: nothing written.
    assert_eq!(w.requests_since(&before), routes(&[(FIND, 1), (USER, 1), (ROLES_OF, 1)]));
    assert_eq!(users_named(&w, "ada@example.com").len(), 1);

    // The same event again in a journal that never saw it (another deployment's worker).
    let elsewhere = Harness::new().await;
    let third = elsewhere.start(&*w.connector, &joiner("ada@example.com", &["falcon_analyst"]), CS).await;
    assert!(third.outcome().summary.starts_with("found existing"), "{:?}", third.outcome());
    assert_eq!(users_named(&w, "ada@example.com").len(), 1);
    assert_eq!(actions(&w), ["user.create", "role.grant"], "created and granted once");
}

#[tokio::test]
async fn a_leaver_of_someone_absent_succeeds_saying_so() {
    let w = World::new(CS).await;
    w.seed(crowd(1000));
    let before = w.requests();
    let run = w.start(&leaver("nobody@example.com")).await;
    let outcome = run.outcome();
    assert!(outcome.summary.contains("nothing to remove"), "{outcome:?}");
    assert_eq!(outcome.access, Some(lifecycle_engine::Access::Absent));
    assert_eq!(w.requests_since(&before), routes(&[(TOKEN, 1), (FIND, 1)]));
    assert!(actions(&w).is_empty());
}

/// The create lands in Falcon but its answer is a 500: the retry finds the user (look before
/// create) instead of making a second one, then grants its roles.
#[tokio::test]
async fn a_create_applied_then_failed_leaves_one_account() {
    let w = World::new(CS).await;
    w.fault(json!({"method": "POST", "path": "/user-management/entities/users/v1", "kind": "apply_then_fail", "status": 500}));
    let first = w.start(&joiner("ada@example.com", &["falcon_analyst"])).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.starts_with("found existing"), "{:?}", retry.outcome());
    assert_eq!(users_named(&w, "ada@example.com").len(), 1, "one account");
    assert_eq!(roles_of(&w, "ada@example.com"), ["falcon_analyst"]);
    let journal = w.harness.journal(&first.run_id).await;
    assert_eq!((journal[0].key.as_str(), journal[0].attempts), ("ensure_user", 2), "the create was in doubt");
    assert_eq!(actions(&w), ["user.create", "role.grant"]);
}

/// A grant and a revoke applied whose answers were lost: the retries look, and adopt.
#[tokio::test]
async fn writes_in_doubt_look_before_they_write_again() {
    let w = World::new(CS).await;
    w.fault(json!({"method": "POST", "path": ACTION_PATH, "kind": "apply_then_fail", "status": 502}));
    let run = w.start(&joiner("ada@example.com", &["falcon_analyst", "detection_monitor"])).await;
    assert!(matches!(run.error(), StepError::Transient { .. }), "{:?}", run.result);
    let before = w.requests();
    w.retry(&run.run_id).await.outcome();
    assert_eq!(w.requests_since(&before), routes(&[(ROLES_OF, 1)]), "looked, found both granted, granted nothing");
    let grant = w.harness.journal(&run.run_id).await.into_iter().find(|s| s.key == "grant_roles").unwrap();
    assert!(grant.output.unwrap().contains("\"adopted\":[\"detection_monitor\",\"falcon_analyst\"]"));

    person(&w, "lea@example.com", &["falcon_admin", "falcon_analyst"]);
    w.fault(json!({"method": "POST", "path": ACTION_PATH, "kind": "apply_then_fail", "status": 503}));
    w.fault(json!({"method": "DELETE", "path": "/user-management/entities/users/v1", "kind": "apply_then_fail", "then": "drop"}));
    let left = w.start(&leaver("lea@example.com")).await;
    assert!(left.result.is_err());
    let again = w.retry(&left.run_id).await;
    assert!(again.result.is_err(), "the deletion's answer is lost in turn");
    let last = w.retry(&left.run_id).await;
    assert!(last.outcome().summary.contains("the user is gone"), "{:?}", last.outcome());
    assert!(users_named(&w, "lea@example.com").is_empty());
    let journal = w.harness.journal(&left.run_id).await;
    let revoke = journal.iter().find(|s| s.key == "revoke_roles").unwrap();
    assert_eq!(revoke.attempts, 2);
    assert!(revoke.output.as_deref().unwrap().contains("\"adopted\":[\"falcon_admin\",\"falcon_analyst\"]"));
    let delete = journal.iter().find(|s| s.key == "delete_user").unwrap();
    assert_eq!((delete.attempts, delete.output.as_deref().unwrap().contains("\"adopted\":true")), (2, true));
    let log = w.sim.sim.lock().journal.log(Vendor::CrowdStrike);
    let acts: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(acts, ["user.create", "role.grant", "role.revoke", "role.revoke", "user.delete"], "each once");
}

/// One of the roles to revoke was revoked by someone else since the run looked: Falcon refuses
/// the whole request; the run looks again and revokes what is still held.
#[tokio::test]
async fn a_revoke_refused_for_a_role_already_gone_revokes_the_rest() {
    let w = World::new(CS).await;
    person(&w, "mo@example.com", &["falcon_admin", "falcon_analyst", "detection_monitor"]);
    let uid = users_named(&w, "mo@example.com")[0]["uid"].as_str().unwrap().to_string();
    // The grant fails (not applied): the run stops after reading the roles.
    w.fault(json!({"method": "POST", "path": ACTION_PATH, "kind": "status", "status": 503}));
    let run = w.start(&mover("mo@example.com", &["detection_monitor", "firewall_manager"])).await;
    assert!(matches!(run.error(), StepError::Transient { .. }), "{:?}", run.result);

    // Meanwhile someone revokes falcon_admin in the console.
    let revoke = json!({"action": "revoke", "cid": CID, "role_ids": ["falcon_admin"], "uuid": uid});
    w.by_hand(reqwest::Method::POST, ACTION_PATH, Some(revoke)).await;

    // The retry works on the roles the run saw (falcon_admin and falcon_analyst to revoke).
    let before = w.requests();
    let retry = w.retry(&run.run_id).await;
    let summary = &retry.outcome().summary;
    assert!(summary.contains("granted firewall_manager, revoked falcon_admin, falcon_analyst"), "{summary}");
    assert_eq!(roles_of(&w, "mo@example.com"), ["detection_monitor", "firewall_manager"]);
    let expected = routes(&[(ROLES_OF, 2), (ACTION, 3)]);
    assert_eq!(
        w.requests_since(&before),
        expected,
        "the grant in doubt looks; the refused revoke looks, then revokes the rest"
    );
    let revoke = w.harness.journal(&run.run_id).await.into_iter().find(|s| s.key == "revoke_roles").unwrap();
    let out = revoke.output.unwrap();
    assert!(
        out.contains("\"revoked\":[\"falcon_analyst\"]") && out.contains("\"adopted\":[\"falcon_admin\"]"),
        "{out}"
    );
}

/// A role action must name the tenant's CID. The client learns it from answers it gets anyway
/// (the created user, the user's grants); a mover of someone who holds no role, first thing
/// after a start, has seen none: it reads the user once, and never again.
#[tokio::test]
async fn the_cid_a_role_action_names_is_read_once_when_no_answer_has_shown_it() {
    let w = World::new(CS).await;
    person(&w, "nora@example.com", &[]);
    person(&w, "nils@example.com", &[]);
    let before = w.requests();
    let run = w.start(&mover("nora@example.com", &["falcon_analyst"])).await;
    assert!(run.outcome().summary.contains("granted falcon_analyst"), "{:?}", run.outcome());
    let cold = routes(&[(TOKEN, 1), (CATALOGUE, 1), (FIND, 1), (ROLES_OF, 1), (USER, 1), (ACTION, 1)]);
    assert_eq!(w.requests_since(&before), cold, "the user read once for its CID");
    assert_eq!(roles_of(&w, "nora@example.com"), ["falcon_analyst"]);

    let before = w.requests();
    w.start(&mover("nils@example.com", &["falcon_analyst"])).await.outcome();
    assert_eq!(w.requests_since(&before), routes(&[(FIND, 1), (ROLES_OF, 1), (ACTION, 1)]), "known since");
}

/// Falcon's 429 names the moment to come back in `X-RateLimit-RetryAfter`, "as milliseconds
/// since epoch": the client waits exactly until then (not an hour, as reading it as seconds
/// did, and not a storm of retries), and a run hands the engine that wait.
#[tokio::test]
async fn a_429_waits_until_the_moment_falcon_names_in_epoch_milliseconds() {
    const WINDOW_MS: i64 = 2_000;
    let w = World::new(CS).await;
    // Windows of two seconds: a 429 names the end of the current one.
    w.configure(json!({"rate_limit": {"enabled": true, "window_ms": WINDOW_MS, "requests": 6000}}));
    w.read_directory().await; // the token held
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // Start early in a window, so the 429 and the moment it names are in the same one.
    let into = now_ms().rem_euclid(WINDOW_MS);
    if into > 200 {
        tokio::time::sleep(Duration::from_millis((WINDOW_MS - into + 20) as u64)).await;
    }

    // The directory: the first page is refused once, and asked for again at that moment.
    w.fault(json!({"method": "GET", "path": "/user-management/queries/users/v1", "kind": "status", "status": 429, "count": 1}));
    let started = now_ms();
    let moment = started - started.rem_euclid(WINDOW_MS) + WINDOW_MS;
    let before = w.requests();
    let read = w.read_directory().await;
    let finished = now_ms();
    assert_eq!(read.accounts.len(), 2);
    assert_eq!(w.requests_since(&before)[FIND], 2, "one 429, one request again: no storm");
    assert_eq!(w.rate_limited(), 1);
    assert!(finished >= moment, "came back at {finished}, before the moment named, {moment}");
    assert!(finished < moment + 1_000, "waited until {finished}, long after {moment}");

    // A run meeting the same 429 fails transiently and asks to be retried at that moment.
    w.fault(json!({"method": "GET", "path": "/user-management/queries/users/v1", "kind": "status", "status": 429, "count": 1}));
    let run = w.start(&leaver("grace@example.com")).await;
    match run.error() {
        StepError::Transient { retry_after: Some(wait), .. } => {
            assert!(*wait <= Duration::from_millis(WINDOW_MS as u64), "{wait:?}: at most the window");
        }
        other => panic!("{other:?}"),
    }
    let retried = w.retry(&run.run_id).await;
    assert!(retried.outcome().summary.contains("then deleted the user"), "{:?}", retried.outcome());
}
