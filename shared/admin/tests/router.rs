//! The admin router's guards, without a broker: credentials, CSRF tokens,
//! JSON-only changes, body limits, and the headers every page carries.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use lifecycle_admin::{router, AdminState, Limits};
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
    let state = AdminState::new(db, publisher, "admin", Secret::new("s3cret"));
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
    // A token the console issued passes the guard (the run then does not exist).
    let token = f.state.csrf.issue("admin");
    let res = f.app.clone().oneshot(post(format!("csrf={token}&reason=x"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // ... unless the browser says the form came from another site.
    let res = f
        .app
        .clone()
        .oneshot(
            authed("POST", "/runs/some-run/replay")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "127.0.0.1:8081")
                .header(header::ORIGIN, "http://evil.example")
                .body(Body::from(format!("csrf={token}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
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
