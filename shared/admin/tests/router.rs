//! The admin router's guards, without a broker: credentials, CSRF tokens,
//! JSON-only changes, body limits, and the headers every page carries; and
//! reconcile, fixes, re-checks and plans against the simulator in process.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use lifecycle_admin::{router, AdminState, FormAction, Limits};
use lifecycle_broker::{Publisher, Topology};
use lifecycle_config::Secret;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Fixture {
    app: axum::Router,
    state: AdminState,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("admin.db").display());
    let db = lifecycle_store::connect(&url, 2).await.unwrap();
    lifecycle_store::migrate(&db).await.unwrap();
    // Nothing here publishes; the port is closed on purpose.
    let publisher =
        Arc::new(Publisher::new("amqp://127.0.0.1:1/%2f", "test", Topology::new("t"), Duration::from_secs(1)));
    let mut state = AdminState::new(db, publisher, "admin", Secret::new("s3cret"));
    // The default policy, ten times faster, so the throttle's test takes a second.
    let policy = lifecycle_listener::ThrottlePolicy {
        base_delay: Duration::from_millis(25),
        max_wait: Duration::from_millis(200),
        ..Default::default()
    };
    state.throttle = lifecycle_listener::AuthThrottle::new("admin", policy);
    let limits = Limits::new(Duration::from_secs(5), 4, 4096);
    Fixture { app: router(state.clone(), limits), state, _dir: dir }
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

fn authed(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, basic("admin", "s3cret"))
}

async fn body_text(res: axum::response::Response) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn every_page_and_endpoint_needs_the_admin_credentials() {
    let f = fixture().await;
    for (uri, auth) in [
        ("/", None),
        ("/api/v1/runs", None),
        ("/dead", Some(basic("admin", "wrong"))),
        ("/", Some(basic("root", "s3cret"))),
    ] {
        let mut req = Request::builder().uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let res = f.app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{uri}");
        assert!(res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
    let res = f.app.clone().oneshot(authed("GET", "/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert!(body_text(res).await.contains("Runs by state and vendor"));
}

#[tokio::test]
async fn the_version_endpoint_and_every_pages_footer_name_the_build() {
    let f = fixture().await;
    let build = lifecycle_telemetry::BuildInfo { version: "1.2.3", commit: "0123456789ab", built: Some("2026-12-08") };
    let app = router(f.state.clone().with_build(build), Limits::new(Duration::from_secs(5), 4, 4096));
    let get = |uri: &str| authed("GET", uri).body(Body::empty()).unwrap();

    let res = app.clone().oneshot(get("/api/v1/version")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body_text(res).await).unwrap();
    assert_eq!(v, serde_json::json!({"version": "1.2.3", "commit": "0123456789ab", "built": "2026-12-08"}));
    for uri in ["/", "/runs", "/dead", "/audit", "/upcoming"] {
        let res = app.clone().oneshot(get(uri)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        let html = body_text(res).await;
        assert!(html.contains("<footer>lifecycle 1.2.3 · commit 0123456789ab · 2026-12-08</footer>"), "{uri}: {html}");
    }
    // Like every endpoint, it needs the credentials.
    let res = app.oneshot(Request::builder().uri("/api/v1/version").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A state nobody told the build: this workspace's version, an unknown commit, no date.
    let res = f.app.clone().oneshot(get("/api/v1/version")).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body_text(res).await).unwrap();
    assert_eq!(v, serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "commit": "unknown", "built": null}));
    let html = body_text(f.app.clone().oneshot(get("/")).await.unwrap()).await;
    assert!(html.contains(&format!("<footer>lifecycle {} · commit unknown</footer>", env!("CARGO_PKG_VERSION"))));
}

#[tokio::test]
async fn console_forms_are_refused_without_a_valid_csrf_token() {
    let f = fixture().await;
    let post = |body: String| {
        authed("POST", "/runs/some-run/replay")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    for body in ["reason=x".to_string(), "csrf=1700000000.abcdef&reason=x".to_string()] {
        let res = f.app.clone().oneshot(post(body)).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(body_text(res).await.contains("reload the page"));
    }
    // A token the console issued for this action on this run passes the guard (the run then does not exist).
    let token = f.state.csrf.issue("admin", FormAction::Replay, "some-run");
    let res = f.app.clone().oneshot(post(format!("csrf={token}&reason=x"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // A token for another run, or for another action on this one, does not.
    for token in [
        f.state.csrf.issue("admin", FormAction::Replay, "other-run"),
        f.state.csrf.issue("admin", FormAction::Discard, "some-run"),
    ] {
        let res = f.app.clone().oneshot(post(format!("csrf={token}&reason=x"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    // ... nor a good one when the browser says the form came from another site, or from an opaque origin.
    for origin in ["http://evil.example", "null", "http://127.0.0.1:8081.evil.example"] {
        let res = f
            .app
            .clone()
            .oneshot(
                authed("POST", "/runs/some-run/replay")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::HOST, "127.0.0.1:8081")
                    .header(header::ORIGIN, origin)
                    .body(Body::from(format!("csrf={token}")))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "Origin: {origin}");
    }
    // Our own origin is fine.
    let res = f
        .app
        .clone()
        .oneshot(
            authed("POST", "/runs/some-run/replay")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "127.0.0.1:8081")
                .header(header::ORIGIN, "http://127.0.0.1:8081")
                .body(Body::from(format!("csrf={token}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// A request as `serve` hands it on: with the client's address.
fn from(addr: &str, pass: &str) -> Request<Body> {
    let mut req = Request::builder()
        .uri("/api/v1/runs")
        .header(header::AUTHORIZATION, basic("admin", pass))
        .body(Body::empty())
        .unwrap();
    let peer: std::net::SocketAddr = format!("{addr}:40000").parse().unwrap();
    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    req
}

#[tokio::test]
async fn wrong_passwords_from_one_address_are_refused_and_a_right_one_is_never_held_back() {
    let f = fixture().await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(f.app.clone().oneshot(from("203.0.113.7", "guess")).await.unwrap().status().as_u16());
    }
    // Three free failures, the third closing the address's gate (25 ms, doubling): the guesses that
    // come while it is closed are refused, and counted.
    assert_eq!(statuses[..3], [401; 3], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let res = f.app.clone().oneshot(from("203.0.113.7", "guess")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    assert!(body_text(res).await.contains("too-many-failed-authentications"));
    // The right password is served at once, from that address as from another: it is checked
    // before the gate, and a right credential is never held back.
    for addr in ["203.0.113.7", "198.51.100.1"] {
        let started = std::time::Instant::now();
        let res = f.app.clone().oneshot(from(addr, "s3cret")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{addr}");
        assert!(started.elapsed() < Duration::from_millis(200), "{addr}: {:?}", started.elapsed());
    }
    // Only time clears a record: a right password from the same address does not, so the next guess
    // is still refused.
    let res = f.app.clone().oneshot(from("203.0.113.7", "guess")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn api_changes_take_json_only_and_bodies_are_limited() {
    let f = fixture().await;
    let res = f
        .app
        .clone()
        .oneshot(
            authed("POST", "/api/v1/dead/x/replay")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("reason=x"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = f
        .app
        .clone()
        .oneshot(
            authed("POST", "/api/v1/dead/x/discard")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!("{{\"reason\": \"{}\"}}", "x".repeat(10_000))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let res = f
        .app
        .clone()
        .oneshot(
            authed("POST", "/api/v1/dead/x/discard")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"reason\": \"gone\"}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn a_bad_filter_is_named_in_the_page_and_in_the_problem() {
    let f = fixture().await;
    let res = f.app.clone().oneshot(authed("GET", "/runs?vendor=myspace").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body_text(res).await.contains("vendor:"));
    let res =
        f.app.clone().oneshot(authed("GET", "/api/v1/dead?since=soonish").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(res).await.contains("since"));
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let f = fixture().await;
    for (method, uri, allow) in [("DELETE", "/api/v1/runs", "GET,HEAD"), ("GET", "/api/v1/dead/replay", "POST")] {
        let res = f.app.clone().oneshot(authed(method, uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(res.headers()[header::ALLOW], allow, "{method} {uri}");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json", "{method} {uri}");
        assert!(body_text(res).await.contains("/problems/method-not-allowed"), "{method} {uri}");
    }
    // Without credentials the answer is still 401: the method says nothing to strangers.
    let req = Request::builder().method("DELETE").uri("/api/v1/runs").body(Body::empty()).unwrap();
    assert_eq!(f.app.clone().oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

// ---- reconcile, fixes, re-checks and plans ----

use lifecycle_domain::{Event, RunState, VendorKind};
use lifecycle_store::runs::{self, Finish, RunFilter};
use serde_json::{json, Value};

/// The fixture with Pipedrive configured, pointed at the simulator in process.
struct WithSim {
    f: Fixture,
    sim: lifecycle_vendor_sim::Running,
}

async fn with_pipedrive() -> WithSim {
    let mut config = lifecycle_vendor_sim::Config::ephemeral();
    config.no_rate_limits = true;
    let sim = lifecycle_vendor_sim::build(config).await.expect("the simulator starts");
    let table = json!({
        "base_url": sim.base_url(lifecycle_vendor_sim::Vendor::from_name("pipedrive").unwrap()),
        "api_token": "pd-admin-token",
    });
    let common = lifecycle_vendors::registry::Common { http_timeout: Duration::from_secs(5), allow_plain_http: true };
    let connector = lifecycle_vendors::registry::connector(VendorKind::Pipedrive, &table, &common).unwrap();
    let mut registry = lifecycle_engine::Registry::new();
    registry.insert(connector);
    let mut f = fixture().await;
    f.state.vendors = lifecycle_ops::Vendors { registry, ..Default::default() };
    f.app = router(f.state.clone(), Limits::new(Duration::from_secs(5), 4, 4096));
    WithSim { f, sim }
}

fn pd_event(kind: &str, email: &str, role: &str, at: &str) -> Value {
    let local = email.split('@').next().unwrap();
    json!({
        "type": kind,
        "occurred_at": at,
        "employee": {"id": format!("E-{local}"), "email": email, "given_name": "Test", "family_name": local},
        "apps": {"pipedrive": {"role": role}},
    })
}

/// Stores `event` as the intake does and ends its run in `state`, as a worker would.
async fn ended(f: &Fixture, event: Value, state: RunState) -> String {
    let parsed = Event::parse(&event).unwrap();
    let hash = lifecycle_domain::event::payload_hash(&event);
    let key = uuid_like(&event);
    let submission = lifecycle_ops::intake::Submission {
        source: "test",
        idempotency_key: &key,
        payload: &event,
        payload_hash: &hash,
        event: &parsed,
        actor: "test",
    };
    let run_id = match lifecycle_ops::intake::submit(&f.state.db, &Default::default(), &Default::default(), submission)
        .await
        .unwrap()
    {
        lifecycle_ops::intake::Submitted::Created { body, .. } => body.runs[0].run_id.clone(),
        lifecycle_ops::intake::Submitted::Existing(_) => panic!("a fresh key"),
    };
    let run = runs::get(&f.state.db, &run_id).await.unwrap().unwrap();
    assert!(runs::claim(&f.state.db, &run, run.dispatch_seq, "test", Duration::from_secs(60)).await.unwrap());
    let outcome = if state == RunState::NeedsManualAction { "a person must add them by hand" } else { "done" };
    let finish = Finish { state, outcome, access: None, last_error: None };
    assert!(runs::finish(&f.state.db, &run_id, "test", finish).await.unwrap());
    run_id
}

fn uuid_like(event: &Value) -> String {
    format!("{}-{}", event["type"].as_str().unwrap(), event["employee"]["email"].as_str().unwrap())
}

async fn send(f: &Fixture, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = match body {
        Some(b) => authed(method, uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => authed(method, uri).body(Body::empty()),
    };
    let res = f.app.clone().oneshot(req.unwrap()).await.unwrap();
    let status = res.status();
    let text = body_text(res).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|_| json!(text)))
}

async fn page(f: &Fixture, uri: &str) -> (StatusCode, String) {
    let res = f.app.clone().oneshot(authed("GET", uri).body(Body::empty()).unwrap()).await.unwrap();
    (res.status(), body_text(res).await)
}

/// A console form's POST, as a browser sends it.
async fn form(f: &Fixture, uri: &str, body: &str) -> (StatusCode, String) {
    let req = authed("POST", uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = f.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let location = res.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_string());
    (status, location.unwrap_or(body_text(res).await))
}

/// The value of the page's hidden input `name`.
fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn run_count(f: &Fixture) -> usize {
    runs::list(&f.state.db, &RunFilter { limit: Some(10_000), ..Default::default() }).await.unwrap().len()
}

async fn audit_actions(f: &Fixture, action: &str) -> Vec<lifecycle_store::audit::Entry> {
    let all = lifecycle_store::audit::list(&f.state.db, &Default::default()).await.unwrap();
    all.into_iter().filter(|e| e.action == action).collect()
}

#[tokio::test]
async fn reconcile_finds_each_kind_a_fix_previews_then_makes_runs_and_audits_them() {
    let w = with_pipedrive().await;
    let f = &w.f;
    // At Pipedrive: a joiner as HR asked, a leaver re-created by hand, a role changed by hand, a service
    // account. In the database: the joiners and the leaver, ended; one joiner whose account was deleted.
    {
        let mut sim = w.sim.sim.lock();
        let pd = lifecycle_vendor_sim::Vendor::from_name("pipedrive").unwrap();
        sim.tenants
            .get_mut(pd)
            .seed(json!({"users": [
                {"name": "Kept", "email": "kept@example.com", "role": "Sales Rep"},
                {"name": "Left", "email": "left@example.com", "role": "Sales Rep"},
                {"name": "Drift", "email": "drift@example.com", "role": "Admin"},
                {"name": "Bot", "email": "svc-bot@example.com"},
            ]}))
            .unwrap();
    }
    for who in ["kept", "drift", "gone"] {
        let e = pd_event("joiner", &format!("{who}@example.com"), "Sales Rep", "2026-01-05T09:00:00Z");
        ended(f, e, RunState::Succeeded).await;
    }
    ended(f, pd_event("leaver", "left@example.com", "Sales Rep", "2026-02-01T18:00:00Z"), RunState::Succeeded).await;

    // Vendors that do not exist, or are not configured here, are refused.
    let (status, p) = send(f, "POST", "/api/v1/reconcile", Some(json!({"vendor": "myspace"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("vendor"), "{p}");
    let (status, p) = send(f, "POST", "/api/v1/reconcile", Some(json!({"vendor": "jira"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");

    let (status, started) = send(f, "POST", "/api/v1/reconcile", Some(json!({}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["started"], json!(["pipedrive"]));
    // Asked once: a second click while it waits adds nothing.
    let (_, again) = send(f, "POST", "/api/v1/reconcile", Some(json!({}))).await;
    assert_eq!((again["started"].clone(), again["already_running"].clone()), (json!([]), json!(["pipedrive"])));
    // A worker carries it out: here, as a worker's reconcile loop does.
    let v = &f.state.vendors;
    let (request, report) = lifecycle_ops::reconcile::serve_request(&f.state.db, &v.registry, &v.reconcile, "worker-1")
        .await
        .unwrap()
        .expect("the request is there to take");
    assert_eq!(request.requested_by, "admin:admin");
    report.expect("the pass read the simulator");
    assert!(
        lifecycle_ops::reconcile::serve_request(&f.state.db, &v.registry, &v.reconcile, "worker-2")
            .await
            .unwrap()
            .is_none(),
        "carried out once"
    );
    let (status, passes) = send(f, "GET", "/api/v1/reconcile/passes?vendor=pipedrive", None).await;
    assert_eq!(status, StatusCode::OK);
    let pass = passes[0].clone();
    assert_eq!(pass["running"], json!(false), "{pass}");
    assert!(pass.get("error").is_none(), "{pass}");
    assert_eq!(pass["requested_by"], "admin:admin");
    // The four seeded, Grace and the token's own admin from the simulator's fixture.
    assert_eq!(pass["accounts"], 6, "{pass}");

    let (status, found) = send(f, "GET", "/api/v1/reconcile/findings?vendor=pipedrive", None).await;
    assert_eq!(status, StatusCode::OK);
    let kind_of = |account: &str| {
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["account"] == account)
            .map(|x| x["kind"].as_str().unwrap().to_string())
    };
    assert_eq!(kind_of("left@example.com").as_deref(), Some("orphaned"), "{found}");
    assert_eq!(kind_of("gone@example.com").as_deref(), Some("missing"), "{found}");
    assert_eq!(kind_of("drift@example.com").as_deref(), Some("drifted"), "{found}");
    assert_eq!(kind_of("svc-bot@example.com").as_deref(), Some("unmanaged"), "{found}");
    assert_eq!(kind_of("kept@example.com"), None, "as HR asked: {found}");
    let (_, drifted) = send(f, "GET", "/api/v1/reconcile/findings?kind=drifted", None).await;
    assert_eq!(drifted.as_array().unwrap().len(), 1, "{drifted}");
    let (status, p) = send(f, "GET", "/api/v1/reconcile/findings?kind=weird", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");

    // The console lists them by vendor and kind, with a fix preview that writes nothing.
    let (status, html) = page(f, "/reconcile").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("group-pipedrive-orphaned") && html.contains("left@example.com"), "{html}");
    assert!(html.contains("Reconcile now") && html.contains("Fix 3 finding(s)"), "{html}");

    let (runs_before, events_before) = (run_count(f).await, lifecycle_store::events::count(&f.state.db).await.unwrap());
    let (status, html) = page(f, "/reconcile/fix?vendor=pipedrive").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Fix 3 finding(s)?") && html.contains("a <strong>leaver</strong> run"), "{html}");
    let (status, dry) = send(f, "POST", "/api/v1/reconcile/fix", Some(json!({"vendor": "pipedrive"}))).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    let workflows: Vec<(&str, &str)> = dry["fixed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["account"].as_str().unwrap(), x["workflow"].as_str().unwrap()))
        .collect();
    assert_eq!(
        workflows,
        [("drift@example.com", "mover"), ("gone@example.com", "joiner"), ("left@example.com", "leaver")],
        "{dry}"
    );
    assert!(dry["skipped"].as_array().unwrap().iter().any(|x| x["account"] == "svc-bot@example.com"), "{dry}");
    assert_eq!(run_count(f).await, runs_before, "a dry run makes no run");
    assert_eq!(lifecycle_store::events::count(&f.state.db).await.unwrap(), events_before, "nor any event");
    assert!(audit_actions(f, "reconcile.fix").await.is_empty());

    // The console's form fixes exactly what its preview showed: the token names the findings.
    let orphan = found.as_array().unwrap().iter().find(|x| x["kind"] == "orphaned").unwrap()["id"].clone();
    let drift = found.as_array().unwrap().iter().find(|x| x["kind"] == "drifted").unwrap()["id"].clone();
    let (_, preview) = page(f, &format!("/reconcile/fix?id={}", orphan.as_str().unwrap())).await;
    let (csrf, ids) = (hidden(&preview, "csrf"), hidden(&preview, "ids"));
    assert_eq!(ids, orphan.as_str().unwrap());
    let widened = format!("csrf={csrf}&vendor=&kind=&ids={ids},{}", drift.as_str().unwrap());
    assert_eq!(form(f, "/reconcile/fix", &widened).await.0, StatusCode::FORBIDDEN);
    assert_eq!(run_count(f).await, runs_before);
    let (status, html) = form(f, "/reconcile/fix", &format!("csrf={csrf}&vendor=&kind=&ids={ids}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("1 finding(s) became runs") && html.contains("a leaver run <a href=\"/runs/"), "{html}");

    // The API fixes the rest: one event and run each, audited under the admin's name.
    let (status, done) =
        send(f, "POST", "/api/v1/reconcile/fix", Some(json!({"vendor": "pipedrive", "yes": true}))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["fixed"].as_array().unwrap().len(), 2, "{done}");
    assert!(done["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["reason"].as_str().unwrap().contains("already fixed")));
    assert!(done["fixed"].as_array().unwrap().iter().all(|x| x["run_id"].is_string() && x["event_id"].is_string()));
    assert_eq!(run_count(f).await, runs_before + 3);
    assert_eq!(lifecycle_store::events::count(&f.state.db).await.unwrap(), events_before + 3);
    let audited = audit_actions(f, "reconcile.fix").await;
    assert_eq!(audited.len(), 3);
    assert!(audited.iter().all(|e| e.actor == "admin:admin"));
    // The findings name their fix, and the console links it.
    let (_, found) = send(f, "GET", "/api/v1/reconcile/findings?kind=orphaned", None).await;
    let event_id = found[0]["fix_event_id"].as_str().expect("the orphan names its fix").to_string();
    let (_, html) = page(f, "/reconcile?vendor=pipedrive&kind=orphaned").await;
    assert!(html.contains(&format!("/events/{event_id}")), "{html}");
    // And the run the fix made, with its state (read for the whole page at once).
    let fix_run = runs::for_event(&f.state.db, &event_id).await.unwrap().remove(0);
    assert!(html.contains(&format!("run <a href=\"/runs/{}\">", fix_run.id)), "{html}");
    assert!(html.contains(&format!("state-{0}\">{0}</span>", fix_run.state)), "{html}");
    // A second fix makes nothing more.
    let (_, again) = send(f, "POST", "/api/v1/reconcile/fix", Some(json!({"yes": true}))).await;
    assert_eq!(again["fixed"], json!([]), "{again}");
    assert_eq!(run_count(f).await, runs_before + 3);
}

/// A fix is judged again when made: its preview (API, console) shows the person's latest event and
/// the pass's time the event would be dated; a person who changed since the pass (a leaver after a
/// "missing") is skipped and said so, and no joiner gives them access back.
#[tokio::test]
async fn a_fix_preview_shows_the_latest_event_and_a_person_changed_since_the_pass_is_skipped() {
    let w = with_pipedrive().await;
    let f = &w.f;
    let mut joiners = std::collections::HashMap::new();
    for who in ["gone", "back"] {
        let e = pd_event("joiner", &format!("{who}@example.com"), "Sales Rep", "2026-01-05T09:00:00Z");
        let run = ended(f, e, RunState::Succeeded).await;
        joiners.insert(who, runs::get(&f.state.db, &run).await.unwrap().unwrap().event_id);
    }
    // Neither has a Pipedrive account: both missing.
    let v = &f.state.vendors;
    let connector = v.registry.get(VendorKind::Pipedrive).unwrap();
    let report =
        lifecycle_ops::reconcile::reconcile(&f.state.db, &*connector, &v.reconcile, "test", None, &|_: usize| {})
            .await
            .unwrap()
            .unwrap();
    let missing: Vec<&str> = report
        .findings
        .iter()
        .filter(|x| x.kind == lifecycle_domain::FindingKind::Missing)
        .map(|x| x.account.as_str())
        .collect();
    assert_eq!(missing, ["back@example.com", "gone@example.com"], "{report:?}");
    let pass_time = report.findings.iter().find(|x| x.account == "gone@example.com").unwrap().last_seen_at;

    let (_, dry) = send(f, "POST", "/api/v1/reconcile/fix", Some(json!({"kind": "missing"}))).await;
    let gone = dry["fixed"].as_array().unwrap().iter().find(|x| x["account"] == "gone@example.com").unwrap().clone();
    assert_eq!(gone["latest_event"]["event_id"], json!(joiners["gone"]), "{dry}");
    assert_eq!(gone["latest_event"]["type"], "joiner", "{dry}");
    let dated: chrono::DateTime<chrono::Utc> = gone["occurred_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(dated, pass_time, "dated the pass's time: {dry}");
    let (status, html) = page(f, "/reconcile/fix?kind=missing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("joiner event {}", joiners["gone"])), "the preview shows the latest event: {html}");

    // HR: back@ leaves after the pass.
    ended(f, pd_event("leaver", "back@example.com", "Sales Rep", "2026-03-01T18:00:00Z"), RunState::Succeeded).await;
    let runs_before = run_count(f).await;

    let (_, dry) = send(f, "POST", "/api/v1/reconcile/fix", Some(json!({"kind": "missing"}))).await;
    let skipped = dry["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{dry}");
    assert_eq!(
        (skipped[0]["account"].clone(), skipped[0]["person_changed"].clone()),
        (json!("back@example.com"), json!(true))
    );
    assert_eq!(skipped[0]["latest_event"]["type"], "leaver", "{dry}");
    assert!(dry["message"].as_str().unwrap().contains("1 because the person changed since the pass"), "{dry}");
    let (_, html) = page(f, "/reconcile/fix?kind=missing").await;
    assert!(html.contains("Changed since the pass:") && html.contains("back@example.com"), "{html}");

    let (status, done) =
        send(f, "POST", "/api/v1/reconcile/fix", Some(json!({"vendor": "pipedrive", "kind": "missing", "yes": true})))
            .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let fixed: Vec<&str> = done["fixed"].as_array().unwrap().iter().map(|x| x["account"].as_str().unwrap()).collect();
    assert_eq!(fixed, ["gone@example.com"], "no joiner for the leaver: {done}");
    assert_eq!(done["skipped"][0]["account"], "back@example.com", "{done}");
    assert!(done["skipped"][0]["reason"].as_str().unwrap().contains("changed since the pass"), "{done}");
    assert_eq!(run_count(f).await, runs_before + 1, "one run, gone@'s joiner");
    assert_eq!(audit_actions(f, "reconcile.fix").await.len(), 1);
}

#[tokio::test]
async fn a_recheck_applies_to_needs_manual_action_runs_only() {
    let w = with_pipedrive().await;
    let f = &w.f;
    let done =
        ended(f, pd_event("joiner", "ada@example.com", "Sales Rep", "2026-01-05T09:00:00Z"), RunState::Succeeded).await;
    let manual = ended(
        f,
        pd_event("joiner", "bob@example.com", "Sales Rep", "2026-01-05T09:00:00Z"),
        RunState::NeedsManualAction,
    )
    .await;

    let (status, p) = send(f, "POST", &format!("/api/v1/runs/{done}/recheck"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("needs_manual_action"), "{p}");
    let (status, _) = page(f, &format!("/runs/{done}/recheck")).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The bulk form: a dry run counts, then the same filter re-checks.
    let (status, dry) =
        send(f, "POST", "/api/v1/runs/recheck", Some(json!({"vendor": "pipedrive", "dry_run": true}))).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!((dry["selected"].clone(), dry["would_replay"].clone()), (json!(1), json!([manual.clone()])), "{dry}");
    let (_, html) = page(f, "/runs?state=needs_manual_action").await;
    assert!(html.contains("Re-check all matching"), "{html}");
    let (status, html) = page(f, "/runs/recheck?vendor=pipedrive").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Re-check 1 run(s)?"), "{html}");

    let (status, one) = send(f, "POST", &format!("/api/v1/runs/{manual}/recheck"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["state_before"], "needs_manual_action");
    // Now queued, it is no longer one to re-check: the console's confirmation says so.
    let (status, html) = page(f, &format!("/runs/{manual}/recheck")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    // Back to work (the broker is absent here: the sweeper would publish it).
    assert_eq!(runs::get(&f.state.db, &manual).await.unwrap().unwrap().state, RunState::Queued);
    // The console: a confirmation page, then the form back to the run.
    let other = ended(
        f,
        pd_event("joiner", "cy@example.com", "Sales Rep", "2026-01-05T09:00:00Z"),
        RunState::NeedsManualAction,
    )
    .await;
    let (status, html) = page(f, &format!("/runs/{other}")).await;
    assert!(status == StatusCode::OK && html.contains(&format!("/runs/{other}/recheck")), "{html}");
    let (status, html) = page(f, &format!("/runs/{other}/recheck")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let csrf = hidden(&html, "csrf");
    let (status, location) = form(f, &format!("/runs/{other}/recheck"), &format!("csrf={csrf}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with(&format!("/runs/{other}?done=rechecked")), "{location}");
    let audited = audit_actions(f, "run.recheck").await;
    assert_eq!(audited.len(), 2);
    assert!(audited.iter().all(|e| e.actor == "admin:admin"));
}

#[tokio::test]
async fn plans_name_each_bad_field_and_plan_a_good_event_without_storing_it() {
    let w = with_pipedrive().await;
    let f = &w.f;
    let bad =
        json!({"type": "joiner", "employee": {"id": "E-1", "email": "not-an-address"}, "apps": {"pipedrive": {}}});
    let (status, p) = send(f, "POST", "/api/v1/plans", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("employee.email"), "{p}");
    assert_eq!(p["errors"][0]["field"], "employee.email", "{p}");
    let (status, _) = send(f, "POST", "/api/v1/plans", Some(json!("a string"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let good = pd_event("joiner", "ada@example.com", "Sales Rep", "2026-01-05T09:00:00Z");
    let (status, plan) = send(f, "POST", "/api/v1/plans", Some(good)).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["vendors"][0]["vendor"], "pipedrive", "{plan}");
    let actions = plan["vendors"][0]["actions"].as_array().unwrap();
    assert!(actions.iter().any(|a| a["text"].as_str().unwrap().contains("ada@example.com")), "{plan}");
    assert!(plan["text"].as_str().unwrap().contains("1. "), "{plan}");
    // The console's page shows the same plan, numbered, and names a bad field.
    let (_, html) = page(f, "/plan").await;
    let csrf = hidden(&html, "csrf");
    let body = |event: &Value| format!("csrf={csrf}&event={}", urlencode(&event.to_string()));
    let (status, html) =
        form(f, "/plan", &body(&pd_event("joiner", "ada@example.com", "Sales Rep", "2026-01-05T09:00:00Z"))).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"plan-pipedrive\"") && html.contains("<ol><li>"), "{html}");
    let (_, html) = form(f, "/plan", &body(&json!({"type": "joiner"}))).await;
    assert!(html.contains("id=\"field-errors\"") && html.contains("<code>employee</code>"), "{html}");
    assert_eq!(lifecycle_store::events::count(&f.state.db).await.unwrap(), 0, "a plan stores nothing");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- bulk actions and the edit form ----

/// The console's preview and confirmation of a bulk action: the token covers
/// exactly the previewed runs and the action, so a form with an id added or
/// removed, or another action, is refused and changes nothing.
#[tokio::test]
async fn a_bulk_action_does_exactly_what_its_preview_showed_and_a_tampered_form_is_refused() {
    let f = &fixture().await;
    let at = "2026-01-05T09:00:00Z";
    let a = ended(f, pd_event("joiner", "a@example.com", "Sales Rep", at), RunState::Dead).await;
    let b = ended(f, pd_event("joiner", "b@example.com", "Sales Rep", at), RunState::Dead).await;
    let c = ended(f, pd_event("joiner", "c@example.com", "Sales Rep", at), RunState::Dead).await;
    let ok = ended(f, pd_event("joiner", "d@example.com", "Sales Rep", at), RunState::Succeeded).await;

    // The dead runs list offers the bulk form, a checkbox per run, no JavaScript.
    let (_, html) = page(f, "/dead").await;
    assert!(html.contains("id=\"bulk\"") && html.contains(&format!("name=\"run\" value=\"{a}\"")), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("<option selected>replay</option>"), "a dead list preselects replay");

    let (status, html) = page(f, &format!("/runs/bulk?action=replay&scope=selected&run={a}&run={b}&run={ok}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("replay 2 run(s)?") && html.contains("At most 500 runs"), "{html}");
    let refused = &html[html.find("id=\"refused\"").expect("the refusals")..];
    assert!(refused.contains(&ok) && refused.contains("only dead and needs_manual_action"), "{refused}");
    let (csrf, ids) = (hidden(&html, "csrf"), hidden(&html, "ids"));
    let mut expected = [a.clone(), b.clone()];
    expected.sort();
    assert_eq!(ids, expected.join(","));

    let before = lifecycle_store::audit::list(&f.state.db, &Default::default()).await.unwrap().len();
    for tampered in [
        format!("csrf={csrf}&action=replay&ids={ids},{c}"),
        format!("csrf={csrf}&action=replay&ids={a}"),
        format!("csrf={csrf}&action=discard&ids={ids}&reason=x"),
        format!("csrf=1700000000.00&action=replay&ids={ids}"),
    ] {
        let (status, _) = form(f, "/runs/bulk", &tampered).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tampered}");
    }
    for id in [&a, &b, &c] {
        assert_eq!(runs::get(&f.state.db, id).await.unwrap().unwrap().state, RunState::Dead, "nothing changed");
    }
    assert_eq!(lifecycle_store::audit::list(&f.state.db, &Default::default()).await.unwrap().len(), before);

    // The ids in another order are the same selection.
    let (status, html) = form(f, "/runs/bulk", &format!("csrf={csrf}&action=replay&ids={b},{a}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("replay: done 2, refused 0"), "{html}");
    for id in [&a, &b] {
        assert_eq!(runs::get(&f.state.db, id).await.unwrap().unwrap().state, RunState::Queued);
    }
    assert_eq!(runs::get(&f.state.db, &c).await.unwrap().unwrap().state, RunState::Dead);
    assert_eq!(audit_actions(f, "run.replay").await.len(), 2, "each run audited as one replay is");
    let bulk = audit_actions(f, "runs.bulk").await;
    assert_eq!(bulk.len(), 1);
    assert_eq!((bulk[0].actor.as_str(), bulk[0].target_id.as_str()), ("admin:admin", "replay"));
    assert!(bulk[0].details.as_deref().unwrap().contains("\"count\":2"), "{:?}", bulk[0].details);

    // By filter: every dead run matching it, resolved to ids at the preview.
    let (status, html) = page(f, "/runs/bulk?action=discard&scope=filter&page=dead&vendor=pipedrive").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("discard 1 run(s)?") && html.contains("vendor pipedrive"), "{html}");
    let (csrf, ids) = (hidden(&html, "csrf"), hidden(&html, "ids"));
    assert_eq!(ids, c);
    let (status, _) = form(f, "/runs/bulk", &format!("csrf={csrf}&action=discard&ids={ids}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a discard needs a reason");
    let (status, html) =
        form(f, "/runs/bulk", &format!("csrf={csrf}&action=discard&ids={ids}&reason=bogus+role")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let run = runs::get(&f.state.db, &c).await.unwrap().unwrap();
    assert_eq!(run.discard_reason.as_deref(), Some("bogus role"));
}

/// The edit form: a bad value is named as the intake names it and changes
/// nothing; a good one edits, keeps the original, and is shown on the page.
#[tokio::test]
async fn the_edit_form_names_bad_fields_and_keeps_the_original() {
    let f = &fixture().await;
    let id =
        ended(f, pd_event("joiner", "typo@example.com", "Sales Rep.", "2026-01-05T09:00:00Z"), RunState::Dead).await;
    let (status, html) = page(f, &format!("/runs/{id}/edit")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Sales Rep.") && html.contains("id=\"edit-form\""), "{html}");
    let csrf = hidden(&html, "csrf");

    let bad = urlencode(r#"{"role": "Sales\u200d Rep"}"#);
    let (status, html) = form(f, &format!("/runs/{id}/edit"), &format!("csrf={csrf}&set={bad}&replay=on")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("<code>apps.pipedrive.role</code>"), "{html}");
    let (status, _) = form(f, &format!("/runs/{id}/edit"), "csrf=1700000000.00&set=role%3DSales+Rep").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(runs::get(&f.state.db, &id).await.unwrap().unwrap().state, RunState::Dead);
    assert!(audit_actions(f, "run.edit").await.is_empty());

    let (status, location) =
        form(f, &format!("/runs/{id}/edit"), &format!("csrf={csrf}&set=role%3DSales+Rep&reason=typo")).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, format!("/runs/{id}/edit?done=edited").as_str()));
    let (_, html) = page(f, &format!("/runs/{id}/edit?done=edited")).await;
    let original = &html[html.find("id=\"input-original\"").expect("the original")..];
    assert!(original.contains("Sales Rep."), "{original}");
    assert!(html.contains("id=\"edits\"") && html.contains("admin:admin"), "{html}");
    assert_eq!(audit_actions(f, "run.edit").await.len(), 1);
}
