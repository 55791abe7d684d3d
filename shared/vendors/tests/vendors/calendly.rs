//! Calendly: the workflows against the simulator, in process.
//!
//! Requests per run, by route, asserted exactly (the organization's URI in the worker's cache
//! unless said otherwise; cold adds one `GET /users/me`):
//!
//! | run                         | requests                                                 | n |
//! |-----------------------------|----------------------------------------------------------|---|
//! | joiner, someone new         | memberships?email=, invitations?email=&status=, POST     | 3 |
//! | joiner/mover, invited       | memberships?email=, invitations?email=&status=           | 2 |
//! | joiner/mover, member        | memberships?email=                                       | 1 |
//! | leaver, member              | memberships?email=, DELETE membership                    | 2 |
//! | leaver, pending invitation  | memberships?email=, invitations?email=, DELETE invitation| 3 |
//! | leaver, absent              | memberships?email=, invitations?email=                   | 2 |
//! | leaver, the owner           | memberships?email=                                       | 1 |
//!
//! The same in an organization of 1,000 members and 100 invitations.

use crate::common::*;
use lifecycle_engine::StepError;
use lifecycle_store::harness::Harness;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const ME: &str = "GET /users/me";
const MEMBERS: &str = "GET /organization_memberships";
const INVITATIONS: &str = "GET /organizations/{uuid}/invitations";
const INVITE: &str = "POST /organizations/{uuid}/invitations";
const REMOVE: &str = "DELETE /organization_memberships/{uuid}";
const REVOKE: &str = "DELETE /organizations/{org_uuid}/invitations/{uuid}";

fn ev(kind: &str, email: &str) -> Value {
    event(kind, email, VendorKind::Calendly, json!({}))
}

fn invitations_of(w: &World, email: &str) -> Vec<Value> {
    w.state()["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["email"].as_str().unwrap().eq_ignore_ascii_case(email))
        .cloned()
        .collect()
}

fn is_member(w: &World, email: &str) -> bool {
    w.state()["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["email"].as_str().unwrap().eq_ignore_ascii_case(email))
}

/// The simulator's call log for Calendly: (method, path, query).
fn calls(w: &World) -> Vec<(String, String, String)> {
    w.sim
        .sim
        .lock()
        .journal
        .calls(Some(w.sim_vendor()))
        .into_iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                c["query"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn add_fault(w: &World, spec: Value) {
    let spec = serde_json::from_value(spec).expect("a valid fault");
    w.sim.sim.lock().faults.add(spec).expect("the fault is accepted");
}

/// Runs `kind` for `email` and returns what it cost, by route, checking it ended with `access`.
async fn cost(w: &World, kind: &str, email: &str, access: &str) -> BTreeMap<String, u64> {
    let before = w.requests();
    let run = w.start(&ev(kind, email)).await;
    let outcome = run.outcome();
    assert_eq!(outcome.access.map(|a| a.as_str()), Some(access), "{kind} {email}: {outcome:?}");
    w.requests_since(&before)
}

/// Every run of the table above, in `w` (whose cache is cold): `member`, `member2` and
/// `invitee` must be seeded (members, and a pending invitation).
async fn every_run_costs_the_minimum(w: &World, member: &str, member2: &str, invitee: &str, invitee2: &str) {
    // Cold: the organization's URI first.
    assert_eq!(
        cost(w, "joiner", "new1@example.com", "invited").await,
        routes(&[(ME, 1), (MEMBERS, 1), (INVITATIONS, 1), (INVITE, 1)]),
        "cold joiner"
    );
    // Warm.
    assert_eq!(
        cost(w, "joiner", "new2@example.com", "invited").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1), (INVITE, 1)]),
        "warm joiner"
    );
    assert_eq!(cost(w, "joiner", member, "active").await, routes(&[(MEMBERS, 1)]), "joiner of a member");
    assert_eq!(
        cost(w, "joiner", invitee, "invited").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1)]),
        "joiner of an invitee"
    );
    assert_eq!(cost(w, "mover", member, "active").await, routes(&[(MEMBERS, 1)]), "mover of a member");
    assert_eq!(
        cost(w, "mover", invitee, "invited").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1)]),
        "mover of an invitee"
    );
    assert_eq!(cost(w, "leaver", member2, "removed").await, routes(&[(MEMBERS, 1), (REMOVE, 1)]), "leaver");
    assert_eq!(
        cost(w, "leaver", invitee2, "absent").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1), (REVOKE, 1)]),
        "leaver with a pending invitation"
    );
    assert_eq!(
        cost(w, "leaver", "stranger@example.com", "absent").await,
        routes(&[(MEMBERS, 1), (INVITATIONS, 1)]),
        "leaver of someone absent"
    );
    assert_eq!(cost(w, "leaver", "owner@sim.example", "active").await, routes(&[(MEMBERS, 1)]), "the owner");
    // Every look-up was by e-mail, never a walk through the organization.
    for (method, path, query) in calls(w) {
        if method == "GET" && path != "/users/me" {
            assert!(query.contains("email="), "{method} {path}?{query}");
            assert!(!query.contains("page_token"), "{method} {path}?{query}");
        }
        if path == "/organization_memberships" {
            assert!(query.contains("organization=http%3A%2F%2F"), "a full URI: {query}");
        }
    }
    assert!(!is_member(w, member2) && is_member(w, member));
    assert_eq!(invitations_of(w, invitee2)[0]["status"], "revoked");
}

#[tokio::test]
async fn every_workflow_costs_the_apis_minimum_cold_and_warm() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    w.seed(json!({
        "members": [{"email": "bob@example.com"}],
        "invitations": [{"email": "ivy@example.com"}, {"email": "ian@example.com"}]
    }));
    every_run_costs_the_minimum(&w, "grace@example.com", "bob@example.com", "ivy@example.com", "ian@example.com").await;
}

#[tokio::test]
async fn the_cost_does_not_grow_with_the_organization() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let members: Vec<Value> = (0..1000).map(|i| json!({"email": format!("m{i:04}@example.com")})).collect();
    let invitations: Vec<Value> = (0..100).map(|i| json!({"email": format!("i{i:03}@example.com")})).collect();
    w.seed(json!({"members": members, "invitations": invitations}));
    assert!(w.state()["memberships"].as_array().unwrap().len() > 1000);
    // The last ones: a walk through the lists would need every page to reach them.
    every_run_costs_the_minimum(&w, "m0999@example.com", "m0998@example.com", "i099@example.com", "i098@example.com")
        .await;
}

#[tokio::test]
async fn one_step_for_a_joiner_a_read_and_a_step_for_a_leaver() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let run = w.start(&ev("joiner", "ada@example.com")).await;
    assert!(run.outcome().summary.contains("invited, pending acceptance"), "{:?}", run.outcome());
    assert_eq!(w.harness.keys(&run.run_id).await, ["invite"]);
    let journal = w.harness.journal(&run.run_id).await;
    let uuid = invitations_of(&w, "ada@example.com")[0]["uuid"].as_str().unwrap().to_owned();
    assert!(journal[0].output.as_deref().unwrap().contains(&uuid), "{:?}", journal[0].output);

    let run = w.start(&ev("leaver", "grace@example.com")).await;
    assert!(run.outcome().summary.contains("removed grace@example.com"), "{:?}", run.outcome());
    let keys = w.harness.keys(&run.run_id).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], "find_person");
    assert!(keys[1].starts_with("remove_membership:"), "no read-back after the removal: {keys:?}");
}

#[tokio::test]
async fn the_organization_is_asked_for_again_after_catalog_max_age() {
    const AGE: Duration = Duration::from_secs(4);
    let w = World::unthrottled(VendorKind::Calendly, json!({"catalog_max_age": "4s"})).await;
    let fetched = std::time::Instant::now();
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(ME, 1), (MEMBERS, 1)]));
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(MEMBERS, 1)]));
    assert!(fetched.elapsed() < AGE, "the second run came within the age bound");
    tokio::time::sleep(AGE.saturating_sub(fetched.elapsed()) + Duration::from_millis(100)).await;
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(ME, 1), (MEMBERS, 1)]));
}

#[tokio::test]
async fn a_changed_organization_is_picked_up_by_the_same_connector() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(ME, 1), (MEMBERS, 1)]));
    let old = w.state()["organization"]["uri"].as_str().unwrap().to_owned();
    // The token's user now belongs to another organization: the cached URI is a 404.
    w.sim.sim.lock().tenants.calendly.change_organization();
    let new = w.state()["organization"]["uri"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    // Asked for again once, the look-up repeated with the new one: no run fails for it.
    assert_eq!(
        cost(&w, "joiner", "ada@example.com", "invited").await,
        routes(&[(MEMBERS, 2), (ME, 1), (INVITATIONS, 1), (INVITE, 1)])
    );
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1);
    // And kept: the next run is warm again.
    assert_eq!(cost(&w, "mover", "grace@example.com", "active").await, routes(&[(MEMBERS, 1)]));
    let (_, _, query) = calls(&w).pop().unwrap();
    assert!(query.contains(&new.replace(':', "%3A").replace('/', "%2F")), "{query}");
}

#[tokio::test]
async fn a_joiner_twice_is_one_invitation_and_a_member_is_left_alone() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let first = w.start(&ev("joiner", "ada@example.com")).await;
    assert!(first.outcome().summary.contains("invited ada@example.com"), "{:?}", first.outcome());
    let second = w.start(&ev("joiner", "Ada@Example.com")).await;
    assert!(second.outcome().summary.contains("already pending"), "{:?}", second.outcome());
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1);
    assert_eq!(w.requests().get(INVITE), Some(&1), "invited once");
    // Ada accepts; a joiner again is a member's: nothing sent.
    w.seed(json!({"accept_invitations": ["ada@example.com"]}));
    let third = w.start(&ev("joiner", "ada@example.com")).await;
    assert_eq!(third.outcome().access.map(|a| a.as_str()), Some("active"));
    assert!(third.outcome().summary.contains("already a member"), "{:?}", third.outcome());
    assert_eq!(w.requests().get(INVITE), Some(&1));
}

#[tokio::test]
async fn an_invitation_applied_then_failed_is_adopted_on_retry_not_sent_twice() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    add_fault(
        &w,
        json!({"vendor": "calendly", "method": "POST", "path": "/organizations/*/invitations", "kind": "apply_then_fail", "status": 502}),
    );
    let first = w.start(&ev("joiner", "ada@example.com")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.error());
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1, "Calendly did send it");

    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    let outcome = retry.outcome();
    assert!(outcome.summary.contains("invited, pending acceptance"), "{outcome:?}");
    assert_eq!(outcome.access.map(|a| a.as_str()), Some("invited"));
    // In doubt, it looked before inviting, found its own invitation, and sent none.
    assert_eq!(w.requests_since(&before), routes(&[(MEMBERS, 1), (INVITATIONS, 1)]));
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1, "no duplicate invitation");
    let journal = w.harness.journal(&first.run_id).await;
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].attempts, 2);
    assert!(journal[0].output.as_deref().unwrap().contains("\"adopted\":true"), "{:?}", journal[0].output);
}

#[tokio::test]
async fn a_removal_applied_then_failed_ends_removed_on_retry() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    add_fault(
        &w,
        json!({"vendor": "calendly", "method": "DELETE", "path": "/organization_memberships/*", "kind": "apply_then_fail", "status": 500}),
    );
    let first = w.start(&ev("leaver", "grace@example.com")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.error());
    assert!(!is_member(&w, "grace@example.com"));
    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    assert_eq!(retry.outcome().access.map(|a| a.as_str()), Some("removed"));
    assert!(retry.outcome().summary.starts_with("removed grace@example.com"), "{:?}", retry.outcome());
    // The look-up is replayed from the journal: only the DELETE again (a 404: gone).
    assert_eq!(w.requests_since(&before), routes(&[(REMOVE, 1)]));
}

#[tokio::test]
async fn a_leaver_of_someone_absent_succeeds_saying_so() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let run = w.start(&ev("leaver", "stranger@example.com")).await;
    let outcome = run.outcome();
    assert_eq!(outcome.access.map(|a| a.as_str()), Some("absent"));
    assert!(outcome.summary.contains("no Calendly membership and no pending invitation"), "{outcome:?}");
    assert!(w.sim.sim.lock().journal.log(w.sim_vendor()).is_empty(), "nothing changed");
}

#[tokio::test]
async fn the_owner_is_left_to_a_person() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    let run = w.start(&ev("leaver", "owner@sim.example")).await;
    let outcome = run.outcome();
    assert!(outcome.needs_person, "{outcome:?}");
    assert!(outcome.summary.contains("transfer the organization's ownership"), "{outcome:?}");
    assert!(is_member(&w, "owner@sim.example"));
    assert!(!w.requests().contains_key(REMOVE), "no removal tried");
}

/// Calendly takes no role (an `apps.calendly` with one is refused at the intake), so there is
/// no unknown role to meet; what cannot succeed by retrying is a token that may not manage
/// the organization, or one whose user is in none: both are permanent, saying what to fix.
#[tokio::test]
async fn a_token_that_cannot_manage_the_organization_is_permanent() {
    let w = World::unthrottled(VendorKind::Calendly, json!({"token": "plain-token"})).await;
    w.seed(json!({"members": [{"email": "plain@example.com", "role": "user", "token": "plain-token"}]}));
    let run = w.start(&ev("joiner", "ada@example.com")).await;
    match run.error() {
        StepError::Permanent { message } => {
            assert!(message.contains("403") && message.contains("owner or admin"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(invitations_of(&w, "ada@example.com").is_empty());

    // Removed from the organization: their token's user is in none.
    let w = World::unthrottled(VendorKind::Calendly, json!({"token": "gone-token"})).await;
    w.seed(json!({"members": [{"email": "gone@example.com", "role": "admin", "token": "gone-token"}]}));
    let membership =
        w.state()["memberships"].as_array().unwrap().iter().find(|m| m["email"] == "gone@example.com").unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
    let removed = reqwest::Client::new()
        .delete(format!("{}/organization_memberships/{membership}", w.sim.base_url(w.sim_vendor())))
        .bearer_auth("calendly-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let run = w.start(&ev("leaver", "ada@example.com")).await;
    match run.error() {
        StepError::Permanent { message } => assert!(message.contains("in no Calendly organization"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// A refused invitation (Calendly's 400 naming `email`) is looked at again: the address was
/// invited meanwhile, so that invitation is adopted and none is sent twice.
#[tokio::test]
async fn a_refused_invitation_is_looked_at_again_and_what_is_there_adopted() {
    let w = World::unthrottled(VendorKind::Calendly, json!({})).await;
    // The invitation is made, but the answer is a 400: as if someone invited them first.
    add_fault(
        &w,
        json!({"vendor": "calendly", "method": "POST", "path": "/organizations/*/invitations", "kind": "apply_then_fail", "status": 400}),
    );
    let run = w.start(&ev("joiner", "ada@example.com")).await;
    let outcome = run.outcome();
    assert_eq!(outcome.access.map(|a| a.as_str()), Some("invited"), "{outcome:?}");
    assert!(outcome.summary.contains("already pending"), "{outcome:?}");
    assert_eq!(invitations_of(&w, "ada@example.com").len(), 1);
    assert_eq!(w.requests().get(INVITE), Some(&1), "not sent again");
    assert_eq!(w.requests().get(MEMBERS), Some(&2), "looked again after the 400");

    // Refused, and nothing there: the run stops saying so.
    add_fault(
        &w,
        json!({"vendor": "calendly", "method": "POST", "path": "/organizations/*/invitations", "kind": "status", "status": 400}),
    );
    let run = w.start(&ev("joiner", "bob@example.com")).await;
    match run.error() {
        StepError::Permanent { message } => {
            assert!(message.contains("refused to invite bob@example.com"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

/// What a stand-in for api.calendly.com answers: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Value);

/// A stand-in for api.calendly.com on a local port: each request (`"GET /path"`, without the
/// query) gets `answer(request, how many came before it)`, and is noted with when it came.
async fn stand_in(
    answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<(String, Instant)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let (log, answer) = (seen.clone(), Arc::new(answer));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        read.read_line(&mut header).await.unwrap();
                        let header = header.trim_end().to_ascii_lowercase();
                        if header.is_empty() {
                            break;
                        }
                        if let Some(v) = header.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    read.read_exact(&mut body).await.unwrap();
                    let mut parts = line.split_whitespace();
                    let request =
                        format!("{} {}", parts.next().unwrap(), parts.next().unwrap().split('?').next().unwrap());
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push((request.clone(), Instant::now()));
                        log.len() - 1
                    };
                    let (status, headers, body) = answer(&request, n);
                    let body = body.to_string();
                    let mut reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                        body.len()
                    );
                    for (name, value) in headers {
                        reply.push_str(&format!("{name}: {value}\r\n"));
                    }
                    reply.push_str("\r\n");
                    reply.push_str(&body);
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, seen)
}

/// Calendly's documented 429 ("Rate Limits" on developer.calendly.com): `X-RateLimit-Limit`,
/// `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset`, the seconds until the limit resets;
/// no `Retry-After`.
fn documented_429(reset: u64) -> Answer {
    (
        429,
        vec![
            ("x-ratelimit-limit", "60".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", reset.to_string()),
        ],
        json!({"title": "Too Many Requests", "message": "Rate limit exceeded"}),
    )
}

/// A 429 with only `X-RateLimit-Reset: 2`: the client waits those two seconds, then asks once
/// more (no storm of retries, no hour-long stall); a run hands the engine the same two seconds.
#[tokio::test]
async fn a_429_with_only_x_ratelimit_reset_waits_that_many_seconds() {
    const RESET: u64 = 2;
    let (base, seen) = stand_in(|request, n| {
        let base_uri = "https://api.calendly.com";
        match request {
            "GET /users/me" => (
                200,
                vec![],
                json!({"resource": {"uri": format!("{base_uri}/users/AAAA"), "email": "admin@example.com",
                                    "current_organization": format!("{base_uri}/organizations/BBBB")}}),
            ),
            // The first page is refused once.
            "GET /organization_memberships" if n == 1 => documented_429(RESET),
            "GET /organization_memberships" => (
                200,
                vec![],
                json!({"collection": [{"uri": format!("{base_uri}/organization_memberships/CCCC"), "role": "owner",
                                       "user": {"uri": format!("{base_uri}/users/AAAA"), "email": "admin@example.com", "name": "Admin"},
                                       "organization": format!("{base_uri}/organizations/BBBB")}],
                       "pagination": {"count": 1, "next_page": null, "next_page_token": null,
                                      "previous_page": null, "previous_page_token": null}}),
            ),
            "GET /organizations/BBBB/invitations" => (
                200,
                vec![],
                json!({"collection": [], "pagination": {"count": 0, "next_page": null, "next_page_token": null,
                                                        "previous_page": null, "previous_page_token": null}}),
            ),
            _ => documented_429(RESET),
        }
    })
    .await;
    let common = lifecycle_vendors::registry::Common { http_timeout: Duration::from_secs(5), allow_plain_http: true };
    // The client's own budget off: the only wait is the one the 429 asked for.
    let table = json!({"base_url": base, "token": "t", "rate_limit": {"enabled": false}});
    let connector = lifecycle_vendors::registry::connector(VendorKind::Calendly, &table, &common).unwrap();

    let accounts = connector.directory(&|_: usize| {}).await.expect("the directory is read after the wait");
    assert_eq!(accounts.len(), 1);
    let seen = seen.lock().unwrap().clone();
    let requests: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        requests,
        [
            "GET /users/me",
            "GET /organization_memberships",
            "GET /organization_memberships",
            "GET /organizations/BBBB/invitations"
        ],
        "one 429, one request again: no storm"
    );
    let waited = seen[2].1 - seen[1].1;
    assert!(waited >= Duration::from_secs(RESET), "asked again {waited:?} after the 429, before its reset");
    assert!(waited < Duration::from_secs(RESET) + Duration::from_millis(900), "waited {waited:?}, not {RESET} s");

    // A run that meets the same 429 fails transiently, asking to be retried in those seconds.
    let harness = Harness::new().await;
    let (base, _) = stand_in(|_, _| documented_429(RESET)).await;
    let table = json!({"base_url": base, "token": "t", "rate_limit": {"enabled": false}});
    let connector = lifecycle_vendors::registry::connector(VendorKind::Calendly, &table, &common).unwrap();
    let run = harness.start(&*connector, &ev("joiner", "ada@example.com"), VendorKind::Calendly).await;
    match run.error() {
        StepError::Transient { retry_after, .. } => assert_eq!(*retry_after, Some(Duration::from_secs(RESET))),
        other => panic!("{other:?}"),
    }
}
