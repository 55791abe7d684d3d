//! Reconcile end to end in process, vendor by vendor: hand-made drift in the
//! simulator (a leaver's account back, a joiner's account gone, access changed
//! by hand, a service account), one pass that finds exactly that, a fix whose
//! runs repair it, and a second pass that finds nothing but the service account.
//! Access drift only where events name access (Pipedrive, CrowdStrike, Jira). CircleCI is not
//! reconcilable: its API publishes no member list, and the pass is refused saying so.
//! The journal and the findings share the harness's in-memory database.

use crate::common::*;
use lifecycle_config::ReconcileSettings;
use lifecycle_ops::reconcile::{self, FindingView, FixSummary, PassReport};
use lifecycle_store::harness::Attempted;
use lifecycle_store::reconcile::FindingFilter;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One pass over the world's vendor; `allow`: the accounts to leave alone.
pub async fn pass(w: &World, allow: &[&str]) -> PassReport {
    let settings = ReconcileSettings { allowlist: allow.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    reconcile::reconcile(w.harness.db(), &*w.connector, &settings, "test", None, &|_: usize| {})
        .await
        .expect("the pass reads the vendor")
        .expect("an operator's pass always runs")
}

/// (kind, account) of each open finding, sorted.
pub fn found(report: &PassReport) -> BTreeSet<(String, String)> {
    report.findings.iter().map(|f| (f.kind.to_string(), f.account.clone())).collect()
}

pub fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(k, a)| (k.to_string(), a.to_string())).collect()
}

/// `--fix` as a dry run, then for real, then each fix's run executed to its end: every finding
/// fixed but the unmanaged account, left for a person, by runs of `workflows`.
pub async fn fix_and_run(w: &World, workflows: &[&str]) -> (FixSummary, Vec<Attempted>) {
    let db = w.harness.db();
    let schedule = lifecycle_config::ScheduleSettings::default();
    let all = FindingFilter::default();
    let events_before = lifecycle_store::events::count(db).await.unwrap();
    let dry = reconcile::fix(db, &schedule, &Default::default(), &all, None, "test", true, |_| {}).await.unwrap();
    assert!(dry.fixed.iter().all(|f| f.event_id.is_none()), "a dry run makes no event");
    assert_eq!(lifecycle_store::events::count(db).await.unwrap(), events_before, "a dry run writes nothing");
    let done = reconcile::fix(db, &schedule, &Default::default(), &all, None, "test", false, |_| {}).await.unwrap();
    assert_eq!(
        done.fixed.iter().map(|f| &f.finding_id).collect::<Vec<_>>(),
        dry.fixed.iter().map(|f| &f.finding_id).collect::<Vec<_>>(),
        "the fix does what its dry run said"
    );
    let mut attempts = Vec::new();
    for f in &done.fixed {
        let run_id = f.run_id.as_deref().expect("each fix made a run");
        attempts.push(w.harness.retry(&*w.connector, run_id).await);
    }
    let again = reconcile::fix(db, &schedule, &Default::default(), &all, None, "test", false, |_| {}).await.unwrap();
    assert!(again.fixed.is_empty(), "a finding is fixed once: {:?}", again.fixed);
    assert_eq!(done.skipped.len(), 1, "the unmanaged account is left for a person: {:?}", done.skipped);
    let ran: BTreeSet<String> = done.fixed.iter().map(|f| f.workflow.to_string()).collect();
    assert_eq!(ran, names(workflows));
    (done, attempts)
}

/// [`fix_and_run`], each fix's run succeeding.
async fn fixed_by_runs(w: &World, workflows: &[&str]) {
    let (_, attempts) = fix_and_run(w, workflows).await;
    for a in &attempts {
        assert!(!a.outcome().needs_person, "{}", a.outcome().summary);
    }
}

/// What the scenarios with access drift do by hand: lin's access changed, kate's account gone,
/// `orphaned`'s back, `unmanaged` added.
fn drift_by_hand(orphaned: &str, unmanaged: &str) -> BTreeSet<(String, String)> {
    set(&[
        ("drifted", "lin@example.com"),
        ("missing", "kate@example.com"),
        ("orphaned", orphaned),
        ("unmanaged", unmanaged),
    ])
}

fn finding<'a>(report: &'a PassReport, kind: &str) -> &'a FindingView {
    report.findings.iter().find(|f| f.kind.as_str() == kind).unwrap_or_else(|| panic!("a {kind} finding in {report:?}"))
}

/// The users of the simulator's default Pipedrive fixture, and its admin.
const PD_FIXTURE: [&str; 2] = ["admin@sim.example", "grace@example.com"];

#[tokio::test]
async fn pipedrive_drift_is_found_fixed_and_gone() {
    let w = World::new(VendorKind::Pipedrive).await;
    let sales = json!({ "role": "Sales Rep" });
    for who in ["ada", "kate", "lin", "alan"] {
        w.start(&event("joiner", &format!("{who}@example.com"), VendorKind::Pipedrive, sales.clone())).await.outcome();
    }
    w.start(&event("leaver", "alan@example.com", VendorKind::Pipedrive, json!({}))).await.outcome();
    assert_eq!(found(&pass(&w, &PD_FIXTURE).await), set(&[]), "lifecycle's own work is no finding");

    // By hand: the leaver reactivated, a joiner deactivated (Pipedrive deletes no
    // user), a role changed, and a service account added.
    let alan = pipedrive_id(&w, "alan@example.com");
    w.by_hand(reqwest::Method::PUT, &format!("/api/v1/users/{alan}"), Some(json!({"active_flag": true}))).await;
    let kate = pipedrive_id(&w, "kate@example.com");
    w.by_hand(reqwest::Method::PUT, &format!("/api/v1/users/{kate}"), Some(json!({"active_flag": false}))).await;
    let lin = json!({"user_id": pipedrive_id(&w, "lin@example.com")});
    w.by_hand(reqwest::Method::POST, "/api/v1/roles/2/assignments", Some(lin)).await;
    w.seed(json!({"users": [{"name": "Backup Bot", "email": "backup-bot@example.com", "role": "Admin"}]}));

    let first = pass(&w, &PD_FIXTURE).await;
    assert_eq!(found(&first), drift_by_hand("alan@example.com", "backup-bot@example.com"));
    let drifted = finding(&first, "drifted");
    assert!(drifted.detail.contains("lacks: Sales Rep; extra: Sales Manager"), "{}", drifted.detail);

    fixed_by_runs(&w, &["joiner", "leaver", "mover"]).await;

    only_the_unmanaged_one_is_left(&w, &PD_FIXTURE, "backup-bot@example.com", "backup-bot@*", 3).await;
}

/// The end of every scenario: a second pass finds only `unmanaged`; with it allowlisted (as
/// `allowed_as`, the address itself or a pattern), nothing; every finding was seen gone, `fixed`
/// of them by their fix's event.
async fn only_the_unmanaged_one_is_left(w: &World, fixture: &[&str], unmanaged: &str, allowed_as: &str, fixed: usize) {
    let second = pass(w, fixture).await;
    assert_eq!(found(&second), set(&[("unmanaged", unmanaged)]));
    let allow: Vec<&str> = fixture.iter().copied().chain([allowed_as]).collect();
    assert_eq!(found(&pass(w, &allow).await), set(&[]));
    let all = lifecycle_store::reconcile::findings(
        w.harness.db(),
        &FindingFilter { include_resolved: true, ..Default::default() },
    )
    .await
    .unwrap();
    assert!(all.iter().all(|f| f.resolved_at.is_some()), "every finding was seen gone: {all:?}");
    assert_eq!(all.iter().filter(|f| f.fix_event_id.is_some()).count(), fixed, "fixed by their event");
}

/// The simulator's default Falcon users: no event names them.
const CS_FIXTURE: [&str; 2] = ["alan@example.com", "grace@example.com"];

fn cs_roles(w: &World, username: &str) -> Option<BTreeSet<String>> {
    let user = w.user("username", username)?;
    Some(user["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect())
}

/// Falcon has no disabled state: the leaver deleted the account, so "active again" is the
/// same username created again by hand; a joiner's account is deleted by hand.
#[tokio::test]
async fn crowdstrike_drift_is_found_fixed_and_gone() {
    let w = World::new(VendorKind::Crowdstrike).await;
    let analyst = json!({ "roles": ["falcon_analyst"] });
    for who in ["ada", "kate", "lin", "lee"] {
        w.start(&event("joiner", &format!("{who}@example.com"), VendorKind::Crowdstrike, analyst.clone()))
            .await
            .outcome();
    }
    w.start(&event("leaver", "lee@example.com", VendorKind::Crowdstrike, json!({}))).await.outcome();
    assert_eq!(cs_roles(&w, "lee@example.com"), None, "the leaver deleted lee");
    assert_eq!(found(&pass(&w, &CS_FIXTURE).await), set(&[]), "lifecycle's own work is no finding");

    // By hand, as an admin would at Falcon's current API (createUserV1, deleteUserV1,
    // userRolesActionV1).
    w.by_hand(
        reqwest::Method::POST,
        "/user-management/entities/users/v1",
        Some(json!({"uid": "lee@example.com", "first_name": "Lee", "last_name": "Again"})),
    )
    .await;
    let kate = crowdstrike_uid(&w, "kate@example.com");
    w.by_hand(reqwest::Method::DELETE, &format!("/user-management/entities/users/v1?user_uuid={kate}"), None).await;
    let lin = crowdstrike_uid(&w, "lin@example.com");
    w.by_hand(
        reqwest::Method::POST,
        "/user-management/entities/user-role-actions/v1",
        Some(json!({
            "action": "grant", "cid": "5f4e3d2c1b0a49588776655443322110", "role_ids": ["remote_responder"], "uuid": lin
        })),
    )
    .await;
    w.by_hand(
        reqwest::Method::POST,
        "/user-management/entities/users/v1",
        Some(json!({"uid": "svc-edr@example.com", "first_name": "EDR", "last_name": "Service"})),
    )
    .await;

    let first = pass(&w, &CS_FIXTURE).await;
    assert_eq!(found(&first), drift_by_hand("lee@example.com", "svc-edr@example.com"));
    let drifted = finding(&first, "drifted");
    assert!(drifted.detail.contains("lacks: nothing; extra: remote_responder"), "{}", drifted.detail);
    assert_eq!(finding(&first, "orphaned").vendor_account_id, Some(crowdstrike_uid(&w, "lee@example.com")));

    fixed_by_runs(&w, &["joiner", "leaver", "mover"]).await;
    assert_eq!(cs_roles(&w, "lee@example.com"), None, "the leaver deleted lee again");
    assert_eq!(cs_roles(&w, "kate@example.com"), Some(names(&["falcon_analyst"])), "kate made again");
    assert_eq!(cs_roles(&w, "lin@example.com"), Some(names(&["falcon_analyst"])), "the hand-granted role revoked");

    only_the_unmanaged_one_is_left(&w, &CS_FIXTURE, "svc-edr@example.com", "svc-edr@example.com", 3).await;
}

const JIRA_SOFTWARE: &str = "276f955c-63d7-42c8-9520-92d01dca0625";
const JIRA_ENGINEERING: &str = "e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24";

/// The simulator's default Jira people: the credential's own account, Grace, and an account
/// whose address Jira hides (known by its account id, lower-cased).
const JIRA_FIXTURE: [&str; 3] =
    ["admin@sim.example", "grace@example.com", "712020:6f1c0b7e-4c1d-4f0e-9a55-2f0d8c1b7a11"];

fn jira_user(w: &World, email: &str) -> Value {
    w.user("emailAddress", email).unwrap_or_else(|| panic!("{email} exists"))
}

/// The group ids of `email`'s account, when it has site access.
fn jira_groups(w: &World, email: &str) -> Option<BTreeSet<String>> {
    let user = jira_user(w, email);
    let groups = user["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string());
    (user["siteAccess"] == true).then(|| groups.collect())
}

/// Jira's leaver removes site access (no SCIM directory configured): "active again" is the
/// account given access to Jira again by an admin (admin.atlassian.com, which the simulator's
/// `grantAccess` plays: `POST /user` refuses an account without access); a joiner's site
/// access removed by hand, which the joiner's fix cannot give back through the REST API (Jira
/// refuses `POST /user` for it): it needs a person, who grants it, and its replay adds the
/// group; a group added by hand.
#[tokio::test]
async fn jira_drift_is_found_fixed_and_gone() {
    let w = World::new(VendorKind::Jira).await;
    let software = json!({ "products": ["jira-software"], "groups": [JIRA_SOFTWARE] });
    for who in ["ada", "kate", "lin", "lee"] {
        w.start(&event("joiner", &format!("{who}@example.com"), VendorKind::Jira, software.clone())).await.outcome();
    }
    w.start(&event("leaver", "lee@example.com", VendorKind::Jira, json!({}))).await.outcome();
    assert_eq!(jira_groups(&w, "lee@example.com"), None, "the leaver removed lee from the site");
    assert_eq!(found(&pass(&w, &JIRA_FIXTURE).await), set(&[]), "lifecycle's own work is no finding");

    let lee = jira_user(&w, "lee@example.com")["accountId"].clone();
    w.seed(json!({"grantAccess": [{"emailAddress": "lee@example.com", "products": ["jira-software"]}]}));
    assert_eq!(jira_user(&w, "lee@example.com")["accountId"], lee, "the same account is back");
    let kate = jira_user(&w, "kate@example.com")["accountId"].as_str().unwrap().to_string();
    w.by_hand(reqwest::Method::DELETE, &format!("/user?accountId={kate}"), None).await;
    let lin = jira_user(&w, "lin@example.com")["accountId"].clone();
    w.by_hand(
        reqwest::Method::POST,
        &format!("/group/user?groupId={JIRA_ENGINEERING}"),
        Some(json!({"accountId": lin})),
    )
    .await;
    w.by_hand(
        reqwest::Method::POST,
        "/user",
        Some(
            json!({"emailAddress": "build-bot@example.com", "displayName": "Build Bot", "products": ["jira-software"]}),
        ),
    )
    .await;

    let first = pass(&w, &JIRA_FIXTURE).await;
    assert_eq!(found(&first), drift_by_hand("lee@example.com", "build-bot@example.com"));
    let drifted = finding(&first, "drifted");
    let extra = format!("lacks: nothing; extra: group:{JIRA_ENGINEERING}");
    assert!(drifted.detail.contains(&extra), "{}", drifted.detail);

    let (_, attempts) = fix_and_run(&w, &["joiner", "leaver", "mover"]).await;
    let waiting: Vec<&Attempted> = attempts.iter().filter(|a| a.result.is_err()).collect();
    assert_eq!(waiting.len(), 1, "only kate's joiner waits for a person");
    let text = waiting[0].error().to_string();
    assert!(text.contains("no access to Jira") && text.contains("admin.atlassian.com"), "{text}");
    assert!(attempts.iter().filter(|a| a.result.is_ok()).all(|a| !a.outcome().needs_person));
    w.seed(json!({"grantAccess": [{"emailAddress": "kate@example.com", "products": ["jira-software"]}]}));
    let replayed = w.retry(&waiting[0].run_id).await;
    assert!(!replayed.outcome().needs_person, "{}", replayed.outcome().summary);
    assert_eq!(jira_groups(&w, "lee@example.com"), None, "lee removed from the site again");
    assert_eq!(jira_groups(&w, "kate@example.com"), Some(names(&[JIRA_SOFTWARE])), "kate back with her group");
    assert_eq!(jira_groups(&w, "lin@example.com"), Some(names(&[JIRA_SOFTWARE])), "the hand-added group removed");

    only_the_unmanaged_one_is_left(&w, &JIRA_FIXTURE, "build-bot@example.com", "build-bot@example.com", 3).await;
}

/// The simulator's default Calendly members: the owner, the token's admin, Grace.
const CAL_FIXTURE: [&str; 3] = ["owner@sim.example", "admin@sim.example", "grace@example.com"];

fn cal_membership(w: &World, email: &str) -> Option<String> {
    let s = w.state();
    let m = s["memberships"].as_array().unwrap().iter().find(|m| m["email"] == email).cloned()?;
    Some(m["uuid"].as_str().unwrap().to_string())
}

fn cal_pending(w: &World, email: &str) -> bool {
    w.state()["invitations"].as_array().unwrap().iter().any(|i| i["email"] == email && i["status"] == "pending")
}

/// `email` invited by hand through Calendly's API, and the invitation accepted (the invitee's
/// own act, which only the simulator can play).
async fn cal_invite_and_accept(w: &World, email: &str) {
    let org = w.state()["organization"]["uuid"].as_str().unwrap().to_string();
    w.by_hand(reqwest::Method::POST, &format!("/organizations/{org}/invitations"), Some(json!({ "email": email })))
        .await;
    w.seed(json!({ "accept_invitations": [email] }));
}

/// Calendly events name no role (`apps.calendly` is `{}`: the REST API cannot set one), so
/// `desired_access` is None and a role changed by hand is no drift lifecycle could see or
/// repair: that kind is left out. "Active again" is the leaver invited again by hand and
/// accepting; a joiner's membership removed by hand.
#[tokio::test]
async fn calendly_drift_is_found_fixed_and_gone() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let people = ["ada@example.com", "kate@example.com", "lee@example.com"];
    for who in people {
        w.start(&event("joiner", who, VendorKind::Calendly, json!({}))).await.outcome();
    }
    // The joiners accept their invitations: members, as the scenario needs them.
    w.seed(json!({ "accept_invitations": people }));
    w.start(&event("leaver", "lee@example.com", VendorKind::Calendly, json!({}))).await.outcome();
    assert_eq!(cal_membership(&w, "lee@example.com"), None, "the leaver removed lee");
    assert_eq!(found(&pass(&w, &CAL_FIXTURE).await), set(&[]), "lifecycle's own work is no finding");

    cal_invite_and_accept(&w, "lee@example.com").await;
    let kate = cal_membership(&w, "kate@example.com").expect("kate is a member");
    w.by_hand(reqwest::Method::DELETE, &format!("/organization_memberships/{kate}"), None).await;
    cal_invite_and_accept(&w, "booking-bot@example.com").await;

    let first = pass(&w, &CAL_FIXTURE).await;
    assert_eq!(
        found(&first),
        set(&[
            ("missing", "kate@example.com"),
            ("orphaned", "lee@example.com"),
            ("unmanaged", "booking-bot@example.com"),
        ])
    );

    fixed_by_runs(&w, &["joiner", "leaver"]).await;
    assert_eq!(cal_membership(&w, "lee@example.com"), None, "lee removed again");
    assert!(cal_pending(&w, "kate@example.com"), "kate invited again: {}", w.state()["invitations"]);

    // Kate's pending invitation is her account now (Calendly takes no one in without one).
    only_the_unmanaged_one_is_left(&w, &CAL_FIXTURE, "booking-bot@example.com", "booking-bot@example.com", 2).await;
}

/// CircleCI's API v2 publishes no operation that lists an organization's members: reconcile
/// refuses the pass, saying why, before any request and without recording a pass (a pass that
/// always failed would only raise the "reconcile not succeeding" alert). Its people's runs are
/// not judged, whatever they did.
#[tokio::test]
async fn circleci_is_not_reconcilable_and_nothing_is_read_or_recorded() {
    let w = World::new(VendorKind::Circleci).await;
    // A joiner and a leaver ran: both left a person's task.
    for kind in ["joiner", "leaver"] {
        let run = w.start(&event(kind, "lee@example.com", VendorKind::Circleci, json!({"login": "lee-gh"}))).await;
        assert!(run.outcome().needs_person, "{:?}", run.outcome());
    }
    let before = w.request_count();
    let settings = ReconcileSettings::default();
    let refused = reconcile::reconcile(w.harness.db(), &*w.connector, &settings, "test", None, &|_: usize| {}).await;
    let Err(lifecycle_ops::OpsError::Refused(message)) = refused else { panic!("{refused:?}") };
    for needed in ["circleci is not reconcilable", "publishes no operation that lists an organization's members"] {
        assert!(message.contains(needed), "{needed:?} missing from: {message}");
    }
    assert_eq!(w.request_count(), before, "nothing asked of CircleCI");
    // A scheduled pass (a slot) is refused the same way, and claims no slot.
    let slot = reconcile::reconcile(w.harness.db(), &*w.connector, &settings, "w", Some("circleci@t"), &|_: usize| {});
    assert!(matches!(slot.await, Err(lifecycle_ops::OpsError::Refused(_))));
    let db = w.harness.db();
    let passes = lifecycle_store::reconcile::passes(db, Some(VendorKind::Circleci), 10).await.unwrap();
    assert!(passes.is_empty(), "no pass recorded: {passes:?}");
    let findings = lifecycle_store::reconcile::findings(db, &FindingFilter::default()).await.unwrap();
    assert!(findings.is_empty(), "{findings:?}");
}

/// `email`'s pending invitation at Calendly, revoked by hand through its API.
async fn cal_revoke_by_hand(w: &World, email: &str) {
    let s = w.state();
    let org = s["organization"]["uuid"].as_str().unwrap().to_string();
    let invitation = s["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == email && i["status"] == "pending")
        .unwrap_or_else(|| panic!("{email} is invited: {}", s["invitations"]));
    let uuid = invitation["uuid"].as_str().unwrap().to_string();
    w.by_hand(reqwest::Method::DELETE, &format!("/organizations/{org}/invitations/{uuid}"), None).await;
}

/// The fix for real (`yes`), every finding of `kind`.
async fn fix_kind(w: &World, kind: &str) -> FixSummary {
    let filter = FindingFilter { kind: Some(kind.parse().unwrap()), ..Default::default() };
    let schedule = lifecycle_config::ScheduleSettings::default();
    reconcile::fix(w.harness.db(), &schedule, &Default::default(), &filter, None, "test", false, |_| {}).await.unwrap()
}

/// The review's reproduction: a joiner ran (a Calendly invitation), the invitation was revoked by
/// hand and a pass said "missing"; then HR's leaver succeeded. The fix, made after, must not
/// give the leaver access back: it is judged again, and skipped saying the person changed.
/// Kate, whose finding still holds, is fixed as before, her event dated the pass's time.
#[tokio::test]
async fn a_missing_fix_after_a_leaver_is_skipped_and_invites_no_one() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    for who in ["ada@example.com", "kate@example.com"] {
        w.start(&event("joiner", who, VendorKind::Calendly, json!({}))).await.outcome();
        assert!(cal_pending(&w, who), "{who} invited");
        cal_revoke_by_hand(&w, who).await;
        assert!(!cal_pending(&w, who), "{who}'s invitation revoked by hand");
    }
    let first = pass(&w, &CAL_FIXTURE).await;
    assert_eq!(found(&first), set(&[("missing", "ada@example.com"), ("missing", "kate@example.com")]));
    let kate_seen = first.findings.iter().find(|f| f.account == "kate@example.com").unwrap().last_seen_at;

    // HR: Ada leaves, after the pass.
    let leaver = w.start(&event("leaver", "ada@example.com", VendorKind::Calendly, json!({}))).await;
    assert!(!leaver.outcome().needs_person, "{}", leaver.outcome().summary);

    // A dry run (what the API, console and ctl preview) already says so, with Kate's latest event.
    let db = w.harness.db();
    let schedule = lifecycle_config::ScheduleSettings::default();
    let dry = reconcile::fix(db, &schedule, &Default::default(), &FindingFilter::default(), None, "test", true, |_| {})
        .await
        .unwrap();
    assert_eq!(dry.fixed.len(), 1, "{dry:?}");
    let preview = dry.fixed[0].latest_event.as_ref().expect("the preview shows the person's latest event");
    assert_eq!((preview.event_type.as_str(), dry.fixed[0].occurred_at), ("joiner", kate_seen));

    let done = fix_kind(&w, "missing").await;
    let fixed: Vec<(&str, String)> = done.fixed.iter().map(|f| (f.account.as_str(), f.workflow.to_string())).collect();
    assert_eq!(fixed, vec![("kate@example.com", "joiner".to_string())], "no joiner for Ada: {done:?}");
    assert_eq!(done.skipped.len(), 1, "{done:?}");
    let ada = &done.skipped[0];
    assert_eq!(ada.account, "ada@example.com");
    assert!(ada.person_changed, "{ada:?}");
    assert!(ada.reason.contains("changed since the pass") && ada.reason.contains("leaver event"), "{}", ada.reason);
    assert_eq!(ada.latest_event.as_ref().map(|e| e.event_type.as_str()), Some("leaver"));
    assert_eq!(done.changed(), 1);
    assert!(done.line().contains("1 because the person changed since the pass"), "{}", done.line());
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["skipped"][0]["person_changed"], json!(true), "{json}");

    // Kate's fix: dated the pass's time, not now, so a later HR event outranks it.
    let event_id = done.fixed[0].event_id.as_deref().expect("an event");
    let stored = lifecycle_store::events::get(db, event_id).await.unwrap().expect("stored");
    let payload: Value = serde_json::from_str(&stored.payload).unwrap();
    let dated: chrono::DateTime<chrono::Utc> = payload["occurred_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(dated, kate_seen, "{payload}");
    assert_eq!(done.fixed[0].occurred_at, kate_seen);
    let run = w.retry(done.fixed[0].run_id.as_deref().unwrap()).await;
    assert!(!run.outcome().needs_person, "{}", run.outcome().summary);

    assert!(!cal_pending(&w, "ada@example.com"), "the leaver has no invitation: {}", w.state()["invitations"]);
    assert_eq!(cal_membership(&w, "ada@example.com"), None);
    assert!(cal_pending(&w, "kate@example.com"), "Kate invited again");
}

/// The mirror: a leaver ran, the account was re-added by hand and a pass said "orphaned"; then
/// HR re-hired the person and the joiner succeeded. The fix must not remove the returning
/// person's access: skipped, saying the person changed.
#[tokio::test]
async fn an_orphaned_fix_after_a_rehire_is_skipped_and_removes_no_one() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let lee = "lee@example.com";
    w.start(&event("joiner", lee, VendorKind::Calendly, json!({}))).await.outcome();
    w.seed(json!({ "accept_invitations": [lee] }));
    w.start(&event("leaver", lee, VendorKind::Calendly, json!({}))).await.outcome();
    assert_eq!(cal_membership(&w, lee), None, "the leaver removed lee");
    cal_invite_and_accept(&w, lee).await;
    let first = pass(&w, &CAL_FIXTURE).await;
    assert_eq!(found(&first), set(&[("orphaned", lee)]));

    // HR: lee is hired again, after the pass; the joiner finds the membership and succeeds.
    let rehire = w.start(&event("joiner", lee, VendorKind::Calendly, json!({}))).await;
    assert!(!rehire.outcome().needs_person, "{}", rehire.outcome().summary);

    let done = fix_kind(&w, "orphaned").await;
    assert!(done.fixed.is_empty(), "no leaver for the returning person: {done:?}");
    assert_eq!(done.skipped.len(), 1, "{done:?}");
    let skipped = &done.skipped[0];
    assert!(skipped.person_changed && skipped.reason.contains("joiner event"), "{skipped:?}");
    let events = lifecycle_store::events::count(w.harness.db()).await.unwrap();
    assert_eq!(events, 3, "no event made by the fix");
    assert!(cal_membership(&w, lee).is_some(), "lee is still a member");
}
