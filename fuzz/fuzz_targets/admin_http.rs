//! The admin listener, through its real router in-process (no socket): the
//! `Authorization: Basic` check, the query strings of the API and the console
//! (filters, times, limits, ids), the console's forms and the API's JSON
//! bodies, against an empty database.
//!
//! Input, one field per line: `route` (below) / `Authorization` (`-`: the
//! right credentials, `none`: no header, else the value as sent) / a path
//! parameter / the query string / `Origin` (`-`: none) / the body (the rest).
//!
//! Asserts: no panic and no 5xx; a request passes the credential check (is
//! not answered 401) exactly when a plain reading of RFC 7617 says its
//! credentials are the configured ones; a console form never succeeds
//! without a token the server issued; a console page never echoes markup
//! from the request (`<fuzz`).
#![no_main]

#[path = "common/router.rs"]
mod router;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request};
use base64::Engine;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use lifecycle_config::Secret;
use router::RouterHarness;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use tower::ServiceExt;

const USER: &str = "admin";
const PASSWORD: &str = "fuzz-admin-password-0123";

fn harness() -> &'static RouterHarness {
    static H: OnceLock<RouterHarness> = OnceLock::new();
    H.get_or_init(|| {
        RouterHarness::new(|db, publisher| {
            let state = lifecycle_admin::AdminState::new(db, publisher, USER, Secret::new(PASSWORD));
            let settings = lifecycle_config::AdminSettings::default();
            lifecycle_admin::router(state, lifecycle_admin::limits(&settings))
        })
    })
}

/// The reference reading of `Authorization: Basic base64(user:password)`.
fn basic_ok(v: Option<&[u8]>) -> bool {
    let Some(v) = v else { return false };
    if !v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return false;
    }
    let s = std::str::from_utf8(v).unwrap();
    let Some(encoded) = s.strip_prefix("Basic ").or_else(|| s.strip_prefix("basic ")) else { return false };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    raw == format!("{USER}:{PASSWORD}").as_bytes()
}

/// Bytes as they may stand in a URI: unreserved characters and `%&=+,:;` as
/// they are (so the fuzzer shapes the query and its escapes), the rest escaped.
fn uri_part(bytes: &[u8], in_path: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        let keep = b.is_ascii_alphanumeric() || b"-._~%+,:".contains(&b) || (!in_path && b"&=;".contains(&b));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn field<'a>(lines: &[&'a [u8]], i: usize) -> &'a [u8] {
    lines.get(i).copied().unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.splitn(6, |b| *b == b'\n').collect();
    let param = uri_part(field(&lines, 2), true);
    let param = if param.is_empty() { "x".to_string() } else { param };
    let query = uri_part(field(&lines, 3), false);
    let body = field(&lines, 5).to_vec();
    // (method, path, JSON body, a console page, a console form)
    let (method, path, json, page, form) = match lines[0] {
        b"run" => (Method::GET, format!("/api/v1/runs/{param}"), false, false, false),
        b"dead" => (Method::GET, format!("/api/v1/dead?{query}"), false, false, false),
        b"replay-all" => (Method::POST, "/api/v1/dead/replay".into(), true, false, false),
        b"replay" => (Method::POST, format!("/api/v1/dead/{param}/replay"), true, false, false),
        b"discard" => (Method::POST, format!("/api/v1/dead/{param}/discard"), true, false, false),
        b"event" => (Method::GET, format!("/api/v1/events/{param}"), false, false, false),
        b"counts" => (Method::GET, "/api/v1/counts".into(), false, false, false),
        b"employee" => (Method::GET, format!("/api/v1/employees/{param}"), false, false, false),
        b"audit" => (Method::GET, format!("/api/v1/audit?{query}"), false, false, false),
        b"console" => (Method::GET, format!("/?{query}"), false, true, false),
        b"console-runs" => (Method::GET, format!("/runs?{query}"), false, true, false),
        b"console-run" => (Method::GET, format!("/runs/{param}?{query}"), false, true, false),
        b"console-confirm" => (Method::GET, format!("/runs/{param}/replay?{query}"), false, true, false),
        b"console-replay" => (Method::POST, format!("/runs/{param}/replay"), false, true, true),
        b"console-discard" => (Method::POST, format!("/runs/{param}/discard"), false, true, true),
        b"console-dead" => (Method::GET, format!("/dead?{query}"), false, true, false),
        b"console-event" => (Method::GET, format!("/events/{param}"), false, true, false),
        b"console-employees" => (Method::GET, format!("/employees?{query}"), false, true, false),
        b"console-audit" => (Method::GET, format!("/audit?{query}"), false, true, false),
        _ => (Method::GET, format!("/api/v1/runs?{query}"), false, false, false),
    };
    let auth: Option<Vec<u8>> = match field(&lines, 1) {
        b"-" => Some(
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")))
                .into_bytes(),
        ),
        b"none" => None,
        raw => Some(raw.to_vec()),
    };

    let mut req = Request::builder().method(method).uri(&path);
    if let Some(a) = &auth {
        // What hyper would not have let through is not a request.
        let Ok(value) = HeaderValue::from_bytes(a) else { return };
        req = req.header("authorization", value);
    }
    match field(&lines, 4) {
        b"-" | b"" => {}
        origin => {
            let Ok(value) = HeaderValue::from_bytes(origin) else { return };
            req = req.header("origin", value);
        }
    }
    if json {
        req = req.header("content-type", "application/json");
    } else if form {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let Ok(mut req) = req.body(Body::from(body)) else { return };
    let h = harness();
    let ip = h.next_ip();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::new(IpAddr::V4(ip), 40000)));

    let watch_markup = data.windows(5).any(|w| w == b"<fuzz");
    let (status, text) = h.rt.block_on(async {
        let res = h.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let text = if page && watch_markup {
            String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned()
        } else {
            String::new()
        };
        (status, text)
    });
    let shown = String::from_utf8_lossy(data);
    assert!(!status.is_server_error(), "{status} for {path} {shown:?}");
    assert_eq!(status != 401, basic_ok(auth.as_deref()), "{status} for {path} {shown:?}");
    if form {
        assert!(!status.is_success() && !status.is_redirection(), "a form without a token: {status} {shown:?}");
    }
    assert!(!text.contains("<fuzz"), "markup from the request echoed: {path} {shown:?}");
});
