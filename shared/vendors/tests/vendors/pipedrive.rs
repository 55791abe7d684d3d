//! Pipedrive: the workflows against the simulator, in process. Users and roles through API v1,
//! deals through API v2 (docs/vendors/pipedrive.md).

use crate::common::*;
use lifecycle_engine::StepError;
use lifecycle_vendor_sim::registry::VendorSim;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn joiner(email: &str, role: &str) -> Value {
    event("joiner", email, VendorKind::Pipedrive, json!({ "role": role }))
}

fn leaver(email: &str, successor: Option<&str>) -> Value {
    let mut e = event("leaver", email, VendorKind::Pipedrive, json!({}));
    if let Some(s) = successor {
        e["successor_email"] = json!(s);
    }
    e
}

/// People to make the tenant large: the counts must not grow with it.
fn crowd(n: usize) -> Value {
    let users: Vec<_> =
        (0..n).map(|i| json!({"name": format!("Crowd {i}"), "email": format!("crowd{i}@example.com")})).collect();
    json!({ "users": users })
}

#[tokio::test]
async fn a_joiner_takes_three_requests_once_the_roles_are_known() {
    let w = World::new(VendorKind::Pipedrive).await;
    let before = w.requests();
    let first = w.start(&joiner("ada@example.com", "Sales Rep")).await;
    assert!(first.outcome().summary.starts_with("created Pipedrive user"), "{:?}", first.outcome());
    let cold = routes(&[
        ("GET /api/v1/roles", 1),
        ("GET /api/v1/users/find", 1),
        ("POST /api/v1/users", 1),
        ("POST /api/v1/roles/{id}/assignments", 1),
    ]);
    assert_eq!(w.requests_since(&before), cold, "cold: the role catalogue is read once");
    assert_eq!(w.harness.keys(&first.run_id).await, ["ensure_user", "assign_role:1"].map(String::from));

    w.seed(crowd(1000));
    let before = w.requests();
    let warm = w.start(&joiner("hedy@example.com", "Sales Rep")).await;
    warm.outcome();
    let three =
        routes(&[("GET /api/v1/users/find", 1), ("POST /api/v1/users", 1), ("POST /api/v1/roles/{id}/assignments", 1)]);
    assert_eq!(w.requests_since(&before), three, "warm, in a tenant of 1,000 people: find, create, assign");
}

/// Every request as the definitions have it: the token in `x-api-token` (never in the query),
/// addUser's body `{email, access, active_flag}` without `name`, updateUser's `{active_flag}`.
#[tokio::test]
async fn requests_carry_the_token_in_a_header_and_the_create_has_no_name() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.sim.sim.record_exchanges(true);
    w.start(&joiner("ada@example.com", "Sales Rep")).await.outcome();
    w.start(&leaver("ada@example.com", None)).await.outcome();
    let exchanges = w.sim.sim.take_exchanges();
    assert_eq!(exchanges.len(), 7, "{:?}", exchanges.iter().map(|x| (&x.method, &x.path)).collect::<Vec<_>>());
    for x in &exchanges {
        assert!(x.path.starts_with("/pipedrive/api/v1/") || x.path.starts_with("/pipedrive/api/v2/"), "{}", x.path);
        assert!(x.header("x-api-token").is_some(), "{} {}: no x-api-token", x.method, x.path);
        assert!(x.query.iter().all(|(k, _)| k != "api_token"), "{} {}: a token in the query", x.method, x.path);
        assert!((200..300).contains(&x.status), "{} {} answered {}", x.method, x.path, x.status);
    }
    let create = exchanges.iter().find(|x| x.method == "POST" && x.path == "/pipedrive/api/v1/users").unwrap();
    assert_eq!(
        create.body,
        Some(json!({"email": "ada@example.com", "access": [{"app": "sales"}], "active_flag": true}))
    );
    let deactivate = exchanges.iter().find(|x| x.method == "PUT").unwrap();
    assert_eq!(deactivate.body, Some(json!({"active_flag": false})));
    // The user exists; its name is the person's to set (the simulator shows the address).
    assert_eq!(w.user("email", "ada@example.com").unwrap()["name"], "ada@example.com");
}

#[tokio::test]
async fn a_mover_and_a_leaver_take_the_minimum() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.seed(crowd(1000));
    w.start(&joiner("ada@example.com", "Sales Rep")).await.outcome();

    let before = w.requests();
    let moved =
        w.start(&event("mover", "ada@example.com", VendorKind::Pipedrive, json!({"role": "Sales Manager"}))).await;
    assert!(moved.outcome().summary.starts_with("moved Pipedrive user"), "{:?}", moved.outcome());
    let mover = routes(&[
        ("GET /api/v1/users/find", 1),
        ("GET /api/v1/users/{id}/roleAssignments", 1),
        ("POST /api/v1/roles/{id}/assignments", 1),
    ]);
    assert_eq!(w.requests_since(&before), mover, "find, read the role, assign");

    let before = w.requests();
    let left = w.start(&leaver("ada@example.com", None)).await;
    assert!(left.outcome().summary.contains("then deactivated"), "{:?}", left.outcome());
    let leaver = routes(&[("GET /api/v1/users/find", 1), ("GET /api/v2/deals", 1), ("PUT /api/v1/users/{id}", 1)]);
    assert_eq!(w.requests_since(&before), leaver, "find, list open deals, deactivate (the answer is the proof)");
    assert_eq!(w.harness.keys(&left.run_id).await, ["find_user", "deactivate"].map(String::from));
}

/// The leaver's hand-over through API v2: 520 open deals are two pages of getDeals (500 and 20,
/// the second asked for with the first page's `next_cursor`), one `PATCH {owner_id}` each, and
/// one more listing to see none is left. Closed deals stay where they are.
#[tokio::test]
async fn a_leaver_with_520_open_deals_hands_them_over_through_v2_with_cursor_paging() {
    // The connector's own budget off: at 80 per 2 s the 526 requests took 14 s of the fast suite,
    // and pacing is not what this test is about (rate_limits and the bench hold that).
    let w = World::unthrottled(VendorKind::Pipedrive, json!({})).await;
    let mut deals: Vec<Value> =
        (0..520).map(|i| json!({"title": format!("Lee deal {i}"), "owner_email": "lee@example.com"})).collect();
    deals.push(json!({"title": "Won", "owner_email": "lee@example.com", "status": "won"}));
    deals.push(json!({"title": "Lost", "owner_email": "lee@example.com", "status": "lost"}));
    w.seed(
        json!({"users": [{"name": "Lee Leaving", "email": "lee@example.com", "role": "Sales Rep"}], "deals": deals}),
    );
    let lee = pipedrive_id(&w, "lee@example.com");
    let grace = pipedrive_id(&w, "grace@example.com");

    w.sim.sim.record_exchanges(true);
    let before = w.requests();
    let run = w.start(&leaver("lee@example.com", Some("grace@example.com"))).await;
    let summary = &run.outcome().summary;
    assert!(summary.contains("reassigned 520 open deal(s) to successor grace@example.com"), "{summary}");
    assert!(summary.contains("then deactivated"), "{summary}");

    let expected = routes(&[
        ("GET /api/v1/users/find", 2),
        ("GET /api/v2/deals", 3),
        ("PATCH /api/v2/deals/{id}", 520),
        ("PUT /api/v1/users/{id}", 1),
    ]);
    assert_eq!(w.requests_since(&before), expected, "find, 2 pages, successor, 520 moves, a last look, deactivate");

    let exchanges = w.sim.sim.take_exchanges();
    let lists: Vec<_> = exchanges.iter().filter(|x| x.path == "/pipedrive/api/v2/deals").collect();
    let query = |i: usize| -> Vec<(String, String)> { lists[i].query.clone() };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let first = query(0);
    assert_eq!(first, [pair("owner_id", &lee.to_string()), pair("status", "open"), pair("limit", "500")]);
    assert_eq!(lists[0].response.as_ref().unwrap()["data"].as_array().unwrap().len(), 500);
    let cursor = lists[0].response.as_ref().unwrap()["additional_data"]["next_cursor"].as_str().unwrap().to_string();
    assert!(query(1).contains(&pair("cursor", &cursor)), "the second page asks from the first's next_cursor");
    assert_eq!(lists[1].response.as_ref().unwrap()["data"].as_array().unwrap().len(), 20);
    assert!(lists[1].response.as_ref().unwrap()["additional_data"]["next_cursor"].is_null());
    assert!(!query(2).iter().any(|(k, _)| k == "cursor"), "the last look starts again from the top");
    for patch in exchanges.iter().filter(|x| x.method == "PATCH") {
        assert_eq!(patch.body, Some(json!({"owner_id": grace})), "{}", patch.path);
    }
    assert!(!exchanges.iter().any(|x| x.path.contains("/api/v1/deals")), "no v1 deals endpoint");

    let state = w.state();
    let deals = state["deals"].as_array().unwrap();
    assert_eq!(deals.iter().filter(|d| d["status"] == "open" && d["owner_id"] == grace).count(), 520);
    assert!(deals.iter().filter(|d| d["status"] != "open").all(|d| d["owner_id"] == lee), "closed deals stay");
    assert_eq!(w.user("email", "lee@example.com").unwrap()["active_flag"], false);
    let moved = w.harness.keys(&run.run_id).await.into_iter().filter(|k| k.starts_with("reassign_deal:")).count();
    assert_eq!(moved, 520, "one journaled step per deal");
}

/// The last-admin guard reads `access[].admin` (`global` or `sales`), not the `is_admin` that left
/// the API: the company's last active admin is not deactivated, and nothing is written. (The
/// token must be an admin's, so the last admin is always the token's own user.)
#[tokio::test]
async fn the_last_admin_guard_fires_from_access_admin() {
    let w = World::new(VendorKind::Pipedrive).await;
    // An admin of campaigns only is no company admin.
    w.seed(json!({"users": [
        {"name": "Cam Paigns", "email": "cam@example.com", "access": [{"app": "campaigns", "admin": true}]},
    ]}));
    let before = (w.requests(), w.writes());
    let stopped = w.start(&leaver("admin@sim.example", Some("grace@example.com"))).await;
    let StepError::NeedsPerson { message } = stopped.error() else { panic!("{:?}", stopped.result) };
    assert!(message.contains("last active admin"), "{message}");
    let read = routes(&[("GET /api/v1/users/find", 1), ("GET /api/v1/users", 1)]);
    assert_eq!(w.requests_since(&before.0), read, "found, counted, stopped");
    assert_eq!(w.writes(), before.1, "nothing written");

    // A leaver who is no admin is not counted.
    let before = w.requests();
    w.start(&leaver("cam@example.com", None)).await.outcome();
    assert!(!w.requests_since(&before).contains_key("GET /api/v1/users"), "not an admin: not counted");

    // With a second admin (of the global app), the first may go.
    w.seed(json!({"users": [
        {"name": "Lee Admin", "email": "lee@example.com", "access": [{"app": "sales"}, {"app": "global", "admin": true}]},
    ]}));
    let ok = w.start(&leaver("admin@sim.example", Some("grace@example.com"))).await;
    assert!(ok.outcome().summary.contains("then deactivated"), "{:?}", ok.outcome());
    let keys = w.harness.keys(&ok.run_id).await;
    assert_eq!(keys, ["find_user", "check_not_last_admin", "deactivate"].map(String::from));
    assert_eq!(w.user("email", "admin@sim.example").unwrap()["active_flag"], false);
}

/// A 429's `X-RateLimit-Reset` is the seconds left in the window (here 2, the 429 coming at the
/// start of a 2 s window): the run waits exactly that (no retry within ~50 ms, as when it was
/// read as a Unix time), and nothing is sent meanwhile.
#[tokio::test]
async fn a_429_waits_the_seconds_x_ratelimit_reset_says_and_sends_nothing_meanwhile() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.configure(json!({"rate_limit": {"enabled": true}}));
    w.fault(json!({"method": "GET", "path": "/api/v1/roles", "kind": "status", "status": 429}));
    // Just after a window starts (windows are 2 s, on even Unix seconds), so Reset reads 2.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(2000 - now % 2000 + 20)).await;

    let first = w.start(&joiner("ada@example.com", "Sales Rep")).await;
    let StepError::Transient { retry_after, .. } = first.error() else { panic!("{:?}", first.result) };
    assert_eq!(*retry_after, Some(Duration::from_secs(2)), "X-RateLimit-Reset: 2 means two seconds");
    assert_eq!((w.request_count(), w.rate_limited()), (1, 1));

    // The next attempt at once: the connector's gate holds it for the two seconds.
    let started = Instant::now();
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.starts_with("created Pipedrive user"), "{:?}", retry.outcome());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!((w.request_count(), w.rate_limited()), (5, 1), "the 429, then the joiner's four: no storm");
}

#[tokio::test]
async fn a_role_added_at_the_vendor_is_found_without_a_restart() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.start(&joiner("ada@example.com", "Sales Rep")).await.outcome();
    // Added after the catalogue was cached.
    w.seed(json!({"roles": [{"name": "Field Sales"}]}));
    let run = w.start(&joiner("grace@example.com", "Field Sales")).await;
    assert!(run.outcome().summary.ends_with("with role Field Sales"), "{:?}", run.outcome());

    let unknown = w.start(&joiner("alan@example.com", "Astronaut")).await;
    assert!(matches!(unknown.error(), StepError::Permanent { .. }), "{:?}", unknown.result);
    assert!(unknown.error().to_string().contains("no role named \"Astronaut\""), "{}", unknown.error());
}

#[tokio::test]
async fn a_joiner_twice_is_one_account_and_a_leaver_of_nobody_succeeds() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.start(&joiner("ada@example.com", "Sales Rep")).await.outcome();
    let again = w.start(&joiner("ada@example.com", "Sales Rep")).await;
    assert!(again.outcome().summary.starts_with("found existing"), "{:?}", again.outcome());
    let users = w.sim.sim.lock().tenants.pipedrive.snapshot()["users"].clone();
    let n = users.as_array().unwrap().iter().filter(|u| u["email"] == "ada@example.com").count();
    assert_eq!(n, 1);

    let nobody = w.start(&leaver("nobody@example.com", None)).await;
    assert!(nobody.outcome().summary.contains("nothing to remove"), "{:?}", nobody.outcome());
}

/// The create lands at Pipedrive but its answer is a 500: the retry finds
/// the user (look before create) instead of making a second one.
#[tokio::test]
async fn a_create_applied_then_failed_leaves_one_account() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.fault(json!({"method": "POST", "path": "/api/v1/users", "kind": "apply_then_fail", "status": 500}));
    let first = w.start(&joiner("ada@example.com", "Sales Rep")).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.starts_with("found existing"), "{:?}", retry.outcome());
    let users = w.sim.sim.lock().tenants.pipedrive.snapshot()["users"].clone();
    let n = users.as_array().unwrap().iter().filter(|u| u["email"] == "ada@example.com").count();
    assert_eq!(n, 1, "one account");
    let journal = w.harness.journal(&first.run_id).await;
    assert_eq!((journal[0].key.as_str(), journal[0].attempts), ("ensure_user", 2), "the create was in doubt");
}

/// A reassignment in doubt (the PATCH landed, its answer was lost) is looked at with getDeal
/// (`owner_id`) before it is sent again: adopted, not repeated.
#[tokio::test]
async fn a_reassignment_in_doubt_is_read_through_v2_before_it_is_sent_again() {
    let w = World::new(VendorKind::Pipedrive).await;
    w.seed(json!({"users": [{"name": "Lee", "email": "lee@example.com"}],
                  "deals": [{"title": "D1", "owner_email": "lee@example.com"}]}));
    w.fault(json!({"method": "PATCH", "path": "/api/v2/deals/*", "kind": "apply_then_fail", "status": 500}));
    let first = w.start(&leaver("lee@example.com", Some("grace@example.com"))).await;
    assert!(matches!(first.error(), StepError::Transient { .. }), "{:?}", first.result);
    let before = w.requests();
    let retry = w.retry(&first.run_id).await;
    assert!(retry.outcome().summary.contains("reassigned 1 open deal(s)"), "{:?}", retry.outcome());
    let since = w.requests_since(&before);
    assert_eq!(since.get("GET /api/v2/deals/{id}"), Some(&1), "{since:?}");
    assert_eq!(since.get("PATCH /api/v2/deals/{id}"), None, "adopted, not sent again: {since:?}");
    let deal = &w.state()["deals"][0];
    assert_eq!(deal["owner_history"].as_array().unwrap().len(), 2, "moved once: {deal}");
}

/// The configured base URL is the company root; the old form ending in `/v1` (and `/api/v1`)
/// still works, read as the root before it.
#[tokio::test]
async fn an_old_base_url_ending_in_v1_is_read_as_the_company_root() {
    for suffix in ["/v1", "/api/v1/"] {
        let w = World::new(VendorKind::Pipedrive).await;
        let base = format!("{}{suffix}", w.sim.base_url(w.sim_vendor()));
        let table = json!({"base_url": base, "api_token": "pd-admin-token"});
        let common =
            lifecycle_vendors::registry::Common { http_timeout: Duration::from_secs(5), allow_plain_http: true };
        let connector = lifecycle_vendors::registry::connector(VendorKind::Pipedrive, &table, &common).unwrap();
        let w = World { connector, ..w };
        let run = w.start(&joiner("ada@example.com", "Sales Rep")).await;
        assert!(run.outcome().summary.starts_with("created Pipedrive user"), "{suffix}: {:?}", run.outcome());
    }
}
