//! The admin router's guards, without a broker: credentials, CSRF tokens,
//! JSON-only changes, body limits, and the headers every page carries.

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
async fn wrong_passwords_from_one_address_are_slowed_and_a_right_one_from_another_is_not() {
    let f = fixture().await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(f.app.clone().oneshot(from("203.0.113.7", "guess")).await.unwrap().status().as_u16());
    }
    let took = started.elapsed();
    // Three free failures, then gates of 25, 50, 100 and 200 ms that each next guess waits out.
    assert_eq!(statuses, [401; 7]);
    assert!(took >= Duration::from_millis(375), "seven wrong passwords took {took:?}");
    // The next gate (400 ms) is longer than an attempt waits: refused at once, password unseen.
    let res = f.app.clone().oneshot(from("203.0.113.7", "s3cret")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    assert!(body_text(res).await.contains("too-many-failed-authentications"));
    // Another address with the right password is served at once.
    let started = std::time::Instant::now();
    let res = f.app.clone().oneshot(from("198.51.100.1", "s3cret")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
    // Once the gate opens, the right password goes through and clears the record.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(f.app.clone().oneshot(from("203.0.113.7", "s3cret")).await.unwrap().status(), StatusCode::OK);
    let started = std::time::Instant::now();
    assert_eq!(f.app.clone().oneshot(from("203.0.113.7", "guess")).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() < Duration::from_millis(100), "a fresh start: {:?}", started.elapsed());
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
