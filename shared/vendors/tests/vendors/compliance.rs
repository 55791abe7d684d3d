//! The compliance suite: what every vendor's workflows must do, run against
//! each vendor in turn. A new vendor gets these tests by adding its
//! [`Profile`] to [`profiles`]; its own file then holds only what is
//! particular to it (request counts, its quirks).
//!
//! - a joiner twice is one account, and the second changes nothing;
//! - a leaver of someone absent succeeds, saying so, and changes nothing;
//! - a write that the vendor applied but answered with a 500 (apply-then-fail),
//!   for every write of the joiner and of the leaver in turn, leaves the same
//!   effects as a run without the fault: nothing twice;
//! - a step in doubt looks before it writes: a create is never sent again;
//! - an unknown role (or group) is permanent and creates nobody;
//! - a workflow the vendor does not have is refused before any request.

use crate::common::*;
use lifecycle_domain::Workflow;
use lifecycle_engine::{Access, StepError};
use lifecycle_store::harness::Attempted;
use serde_json::{json, Value};

/// What the suite needs to know of a vendor: the events of a person, and how
/// to count their accounts in the simulator's state.
struct Profile {
    vendor: VendorKind,
    /// A joiner whose request is valid against the default fixture.
    joiner: fn(&str) -> Value,
    /// A leaver, and what to seed so that `lee@example.com` has something to remove.
    leaver: fn(&str) -> Value,
    leaver_seed: fn() -> Value,
    /// A joiner naming a role (or group) the vendor does not have; `None` (with
    /// the reason in `no_roles`) for a vendor whose requests name none.
    unknown_role: Option<fn(&str) -> Value>,
    no_roles: &'static str,
    /// The person's accounts (or memberships, or invitations) in the vendor's state.
    accounts: fn(&Value, &str) -> usize,
    /// Whether a joiner creates the account (CircleCI's API cannot: a person must invite).
    joiner_creates: bool,
    /// Whether a leaver removes the account through the API, and so can tell someone who has
    /// none (CircleCI's cannot: its API publishes no member operation; a person removes).
    leaver_removes: bool,
}

fn count(state: &Value, list: &str, field: &str, value: &str) -> usize {
    state[list].as_array().map_or(0, |items| {
        items.iter().filter(|i| i[field].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value))).count()
    })
}

fn login(email: &str) -> String {
    format!("{}-gh", email.split('@').next().unwrap_or(email))
}

fn profiles() -> Vec<Profile> {
    vec![
        Profile {
            vendor: VendorKind::Pipedrive,
            joiner: |e| event("joiner", e, VendorKind::Pipedrive, json!({"role": "Sales Rep"})),
            leaver: |e| {
                let mut ev = event("leaver", e, VendorKind::Pipedrive, json!({}));
                ev["successor_email"] = json!("sam@example.com");
                ev
            },
            leaver_seed: || {
                json!({"users": [{"name": "Lee", "email": "lee@example.com"}, {"name": "Sam", "email": "sam@example.com"}],
                       "deals": [{"title": "D1", "owner_email": "lee@example.com"}]})
            },
            unknown_role: Some(|e| event("joiner", e, VendorKind::Pipedrive, json!({"role": "Astronaut"}))),
            no_roles: "",
            accounts: |s, e| count(s, "users", "email", e),
            joiner_creates: true,
            leaver_removes: true,
        },
        Profile {
            vendor: VendorKind::Crowdstrike,
            joiner: |e| event("joiner", e, VendorKind::Crowdstrike, json!({"roles": ["falcon_analyst"]})),
            leaver: |e| event("leaver", e, VendorKind::Crowdstrike, json!({})),
            leaver_seed: || json!({"users": [{"username": "lee@example.com", "first_name": "Lee", "last_name": "Leaving", "roles": ["falcon_analyst"]}]}),
            unknown_role: Some(|e| event("joiner", e, VendorKind::Crowdstrike, json!({"roles": ["astronaut"]}))),
            no_roles: "",
            accounts: |s, e| count(s, "users", "username", e),
            joiner_creates: true,
            leaver_removes: true,
        },
        Profile {
            vendor: VendorKind::Jira,
            joiner: |e| {
                event(
                    "joiner",
                    e,
                    VendorKind::Jira,
                    json!({"products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"]}),
                )
            },
            leaver: |e| event("leaver", e, VendorKind::Jira, json!({})),
            leaver_seed: || json!({"users": [{"emailAddress": "lee@example.com", "products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"]}]}),
            unknown_role: Some(|e| {
                event(
                    "joiner",
                    e,
                    VendorKind::Jira,
                    json!({"products": ["jira-software"], "groups": ["0b5e1d2c-9f8a-4c7b-8e6d-5a4b3c2d1e0f"]}),
                )
            }),
            no_roles: "",
            accounts: |s, e| count(s, "users", "emailAddress", e),
            joiner_creates: true,
            leaver_removes: true,
        },
        Profile {
            vendor: VendorKind::Calendly,
            joiner: |e| event("joiner", e, VendorKind::Calendly, json!({})),
            leaver: |e| event("leaver", e, VendorKind::Calendly, json!({})),
            leaver_seed: || json!({"members": [{"email": "lee@example.com", "role": "user"}]}),
            unknown_role: None,
            no_roles: "Calendly requests name no role: the REST API cannot set one",
            accounts: |s, e| {
                let pending = s["invitations"].as_array().map_or(0, |items| {
                    items
                        .iter()
                        .filter(|i| {
                            i["email"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(e)) && i["status"] == "pending"
                        })
                        .count()
                });
                count(s, "memberships", "email", e) + pending
            },
            joiner_creates: true,
            leaver_removes: true,
        },
        Profile {
            vendor: VendorKind::Circleci,
            joiner: |e| event("joiner", e, VendorKind::Circleci, json!({"login": login(e)})),
            leaver: |e| event("leaver", e, VendorKind::Circleci, json!({"login": login(e)})),
            leaver_seed: || json!({"users": [{"login": "lee-gh"}], "memberships": [{"org": "gh/sim-org", "login": "lee-gh"}]}),
            unknown_role: None,
            no_roles: "CircleCI requests name no role: membership follows the VCS organization",
            // Memberships people made in the web app (seeded): no workflow can change them.
            accounts: |s, e| count(s, "memberships", "login", &login(e)),
            joiner_creates: false,
            leaver_removes: false,
        },
        Profile {
            vendor: VendorKind::Github,
            // ada-gh is a GitHub account of the default fixture, not a member of sim-org.
            joiner: |e| event("joiner", e, VendorKind::Github, json!({"login": login(e), "teams": ["platform"]})),
            leaver: |e| event("leaver", e, VendorKind::Github, json!({"login": login(e)})),
            // A member, and an invitation to their address beside (two writes for the leaver).
            leaver_seed: || {
                json!({"users": [{"login": "lee-gh"}], "members": [{"login": "lee-gh"}],
                       "invitations": [{"email": "lee@example.com"}]})
            },
            // Teams are what a GitHub request names (its roles are GitHub's own three).
            unknown_role: Some(|e| {
                event("joiner", e, VendorKind::Github, json!({"login": login(e), "teams": ["astronauts"]}))
            }),
            no_roles: "",
            // A membership, or a pending invitation by login (the person's until they accept).
            accounts: |s, e| {
                let pending = s["invitations"].as_array().map_or(0, |items| {
                    items
                        .iter()
                        .filter(|i| i["login"].as_str() == Some(login(e).as_str()) && i["state"] == "pending")
                        .count()
                });
                count(s, "members", "login", &login(e)) + pending
            },
            joiner_creates: true,
            leaver_removes: true,
        },
    ]
}

/// The effects the simulator recorded at this vendor, as (method, path, action),
/// ids in the path as `*` (ids differ between two tenants, and a fault's path
/// takes `*` for a segment).
fn effects(w: &World) -> Vec<(String, String, String)> {
    let log = w.sim.sim.lock().journal.log(w.sim_vendor());
    log.iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("method"), route(&s("path")), s("action"))
        })
        .collect()
}

/// `path` with its id segments (numbers, UUIDs) as `*`.
fn route(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let id = !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) || uuid::Uuid::parse_str(seg).is_ok();
            if id {
                "*"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The calls served at this vendor since call number `after`: (method, path).
fn calls_after(w: &World, after: u64) -> Vec<(String, String)> {
    let calls = w.sim.sim.lock().journal.calls(Some(w.sim_vendor()));
    calls
        .iter()
        .filter(|c| c["n"].as_u64().unwrap_or(0) > after)
        .map(|c| (c["method"].as_str().unwrap_or_default().to_string(), route(c["path"].as_str().unwrap_or_default())))
        .collect()
}

fn last_call(w: &World) -> u64 {
    let calls = w.sim.sim.lock().journal.calls(Some(w.sim_vendor()));
    calls.iter().filter_map(|c| c["n"].as_u64()).max().unwrap_or(0)
}

async fn world(p: &Profile) -> World {
    match p.vendor {
        // 80 requests a minute is one every 0.8 s: the suite's many short worlds would crawl.
        VendorKind::Github => World::unthrottled(p.vendor, json!({})).await,
        v => World::new(v).await,
    }
}

/// Attempts the run until it ends (an outcome or a permanent error), as the
/// executor would through its delay queues; panics after five attempts.
async fn until_done(w: &World, first: Attempted) -> Attempted {
    let mut attempt = first;
    for _ in 0..5 {
        match &attempt.result {
            Err(StepError::Transient { .. }) => attempt = w.retry(&attempt.run_id).await,
            _ => return attempt,
        }
    }
    panic!("{}: still failing after five attempts: {:?}", w.vendor, attempt.result);
}

#[tokio::test]
async fn a_joiner_twice_is_one_account_and_the_second_changes_nothing() {
    for p in profiles() {
        let w = world(&p).await;
        let first = w.start(&(p.joiner)("ada@example.com")).await;
        first.outcome();
        let after_first = effects(&w);
        let second = w.start(&(p.joiner)("ada@example.com")).await;
        let outcome = second.outcome();
        assert_eq!(effects(&w), after_first, "{}: the second joiner changed something: {outcome:?}", p.vendor);
        let n = (p.accounts)(&w.state(), "ada@example.com");
        let want = usize::from(p.joiner_creates);
        assert_eq!(n, want, "{}: accounts of ada after two joiners", p.vendor);
        assert_eq!(outcome.access, first.outcome().access, "{}: the same access both times", p.vendor);
    }
}

#[tokio::test]
async fn a_leaver_of_someone_absent_succeeds_saying_so_and_changes_nothing() {
    for p in profiles() {
        let w = world(&p).await;
        let run = w.start(&(p.leaver)("stranger@example.com")).await;
        let outcome = run.outcome();
        if !p.leaver_removes {
            // It cannot tell someone absent: a person's task, saying what to check, and no write.
            assert!(outcome.needs_person && outcome.access.is_none(), "{}: {outcome:?}", p.vendor);
            assert!(!outcome.summary.is_empty() && effects(&w).is_empty(), "{}: {outcome:?}", p.vendor);
            continue;
        }
        assert!(!outcome.needs_person, "{}: {outcome:?}", p.vendor);
        assert_eq!(outcome.access, Some(Access::Absent), "{}: {outcome:?}", p.vendor);
        assert!(!outcome.summary.is_empty(), "{}: the outcome says what it found", p.vendor);
        assert!(effects(&w).is_empty(), "{}: nothing changed: {:?}", p.vendor, effects(&w));
    }
}

/// For each write the workflow makes (learnt from a run without faults), a
/// fresh tenant where that write is applied and answered 500: the run ends as
/// the clean one did, with the same effects, none twice; the step in doubt
/// was attempted again; a create in doubt is looked for, not sent again.
async fn every_write_applied_then_failed_leaves_the_same_effects(p: &Profile, workflow: Workflow) {
    let (event, seed) = match workflow {
        Workflow::Joiner => ((p.joiner)("ada@example.com"), None),
        _ => ((p.leaver)("lee@example.com"), Some((p.leaver_seed)())),
    };
    let prepared = || async {
        let w = world(p).await;
        if let Some(seed) = &seed {
            w.seed(seed.clone());
        }
        w
    };
    let clean = prepared().await;
    let baseline = clean.start(&event).await;
    let want_access = baseline.outcome().access;
    let want = effects(&clean);
    if !p.joiner_creates && workflow == Workflow::Joiner {
        assert!(want.is_empty(), "{}: a joiner that cannot create writes nothing", p.vendor);
        return;
    }
    if !p.leaver_removes && workflow == Workflow::Leaver {
        assert!(want.is_empty(), "{}: a leaver that cannot remove writes nothing", p.vendor);
        return;
    }
    assert!(!want.is_empty(), "{} {workflow}: the clean run wrote nothing to test", p.vendor);

    let mut writes = want.clone();
    writes.dedup();
    for (method, path, action) in &writes {
        let w = prepared().await;
        w.fault(json!({"method": method, "path": path, "kind": "apply_then_fail", "status": 500, "count": 1}));
        let first = w.start(&event).await;
        // The answer was a 500: the run retries, or settles the doubt at once
        // by looking (CircleCI's removal).
        let retried = matches!(first.result, Err(StepError::Transient { .. }));
        assert!(
            retried || first.result.is_ok(),
            "{} {workflow}, {method} {path} in doubt: {:?}",
            p.vendor,
            first.result
        );
        let mark = last_call(&w);
        let run_id = first.run_id.clone();
        let done = until_done(&w, first).await;
        assert_eq!(done.outcome().access, want_access, "{} {workflow}, {action} in doubt", p.vendor);
        let mut got = effects(&w);
        let mut expected = want.clone();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{} {workflow}, {action} in doubt: the effects of a clean run, none twice", p.vendor);
        let journal = w.harness.journal(&run_id).await;
        assert!(
            !retried || journal.iter().any(|s| s.attempts >= 2),
            "{} {workflow}, {action}: the step in doubt was attempted again: {journal:?}",
            p.vendor
        );
        if method == "POST" {
            let again = calls_after(&w, mark).into_iter().filter(|(m, p)| m == method && p == path).count();
            assert_eq!(
                again, 0,
                "{} {workflow}: the create in doubt ({path}) was looked for, not sent again",
                p.vendor
            );
        }
    }
}

#[tokio::test]
async fn a_joiners_writes_applied_then_failed_leave_no_duplicate() {
    for p in profiles() {
        every_write_applied_then_failed_leaves_the_same_effects(&p, Workflow::Joiner).await;
    }
}

#[tokio::test]
async fn a_leavers_writes_applied_then_failed_are_not_repeated() {
    for p in profiles() {
        every_write_applied_then_failed_leaves_the_same_effects(&p, Workflow::Leaver).await;
    }
}

#[tokio::test]
async fn an_unknown_role_is_permanent_and_creates_nobody() {
    for p in profiles() {
        let Some(unknown) = p.unknown_role else {
            assert!(!p.no_roles.is_empty(), "{}: says why it has no unknown role to test", p.vendor);
            continue;
        };
        let w = world(&p).await;
        let run = w.start(&unknown("bob@example.com")).await;
        assert!(matches!(run.result, Err(StepError::Permanent { .. })), "{}: {:?}", p.vendor, run.result);
        assert_eq!((p.accounts)(&w.state(), "bob@example.com"), 0, "{}: nobody created", p.vendor);
        assert!(effects(&w).is_empty(), "{}: nothing changed: {:?}", p.vendor, effects(&w));
    }
}

#[tokio::test]
async fn a_workflow_the_vendor_does_not_have_is_refused_before_any_request() {
    for p in profiles() {
        let w = world(&p).await;
        let has = w.connector.workflows();
        assert!(has.contains(&Workflow::Joiner) && has.contains(&Workflow::Leaver), "{}: {has:?}", p.vendor);
        for workflow in Workflow::ALL.into_iter().filter(|wf| !has.contains(wf)) {
            let before = w.request_count();
            let run = w.harness.start_workflow(&*w.connector, &(p.leaver)("lee@example.com"), p.vendor, workflow).await;
            match &run.result {
                Err(StepError::Permanent { message }) => {
                    assert!(message.contains(&format!("has no {workflow} workflow")), "{}: {message}", p.vendor)
                }
                other => panic!("{}: {workflow} should be refused: {other:?}", p.vendor),
            }
            assert_eq!(w.request_count(), before, "{}: no request for a workflow it does not have", p.vendor);
        }
    }
}
