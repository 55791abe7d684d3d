//! The intake listener's request headers, through the real router in-process
//! (no socket): the `Authorization: Bearer` check of `POST /v1/events` and
//! `GET /v1/events/{id}`, the `Authorization: Basic` check of the Pipedrive
//! webhook, `Content-Type` and `Idempotency-Key`; and the throttle's reading
//! of `X-Forwarded-For` (`TrustedProxies::client`).
//!
//! Input, one field per line (`-` leaves a header out):
//! `route` (`events`, `status`, `webhook`) / `Authorization` / `Content-Type` /
//! `Idempotency-Key` / `X-Forwarded-For` / trusted proxies (comma-separated) /
//! peer address. The body is `{}`, never a valid event or delivery, so
//! nothing is stored and each run costs the same (`event_parse` and
//! `webhook_parse` fuzz bodies).
//!
//! Asserts: no panic and no 5xx; a request passes the credential check (is
//! not answered 401) exactly when a plain reading of RFC 6750 / RFC 7617
//! says its credentials are the configured ones; the client read from
//! `X-Forwarded-For` is the peer or one of the listed addresses.
#![no_main]

#[path = "common/router.rs"]
mod router;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use lifecycle_config::Secret;
use lifecycle_listener::TrustedProxies;
use lifecycle_producer::{AppState, BasicCredentials};
use router::RouterHarness;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-intake-token-0123456789";
const HOOK_USER: &str = "pipedrive-hooks";
const HOOK_PASSWORD: &str = "fuzz-webhook-password-0123";

fn harness() -> &'static RouterHarness {
    static H: OnceLock<RouterHarness> = OnceLock::new();
    H.get_or_init(|| {
        RouterHarness::new(|db, publisher| {
            let settings = lifecycle_config::ProducerSettings::default();
            let state = AppState {
                db,
                intake_tokens: Arc::new(vec![lifecycle_config::IntakeToken::plain(Secret::new(TOKEN), 1)]),
                max_body_bytes: settings.max_body_bytes,
                relay_wake: Arc::new(tokio::sync::Notify::new()),
                publisher,
                metrics: lifecycle_telemetry::Metrics::install(),
                pipedrive_webhook: Some(Arc::new(BasicCredentials {
                    username: Secret::new(HOOK_USER),
                    password: Secret::new(HOOK_PASSWORD),
                })),
                webhook_max_body_bytes: settings.pipedrive_webhook.max_body_bytes,
                schedule: Default::default(),
            };
            lifecycle_producer::router(state, &settings)
        })
    })
}

/// What `HeaderValue::to_str` accepts: visible ASCII, spaces and tabs.
fn header_text(v: &[u8]) -> Option<&str> {
    v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)).then(|| std::str::from_utf8(v).unwrap())
}

fn credentials<'a>(v: &'a [u8], scheme: &str) -> Option<&'a str> {
    let s = header_text(v)?;
    let rest =
        s.strip_prefix(&format!("{scheme} ")).or_else(|| s.strip_prefix(&format!("{} ", scheme.to_lowercase())))?;
    Some(rest.trim())
}

/// The reference reading of `Authorization: Bearer <token>`.
fn bearer_ok(v: Option<&[u8]>) -> bool {
    v.and_then(|v| credentials(v, "Bearer")) == Some(TOKEN)
}

/// The reference reading of `Authorization: Basic base64(user:password)`.
fn basic_ok(v: Option<&[u8]>) -> bool {
    let Some(encoded) = v.and_then(|v| credentials(v, "Basic")) else { return false };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(encoded) else { return false };
    raw == format!("{HOOK_USER}:{HOOK_PASSWORD}").as_bytes()
}

fn field<'a>(lines: &[&'a [u8]], i: usize) -> Option<&'a [u8]> {
    lines.get(i).copied().filter(|l| *l != b"-")
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.splitn(8, |b| *b == b'\n').collect();
    let route = lines[0];
    let auth = field(&lines, 1);
    let mut headers = Vec::new();
    for (i, name) in [(1, "authorization"), (2, "content-type"), (3, "idempotency-key"), (4, "x-forwarded-for")] {
        if let Some(v) = field(&lines, i) {
            // What hyper would not have let through is not a request.
            let Ok(value) = HeaderValue::from_bytes(v) else { return };
            headers.push((name, value));
        }
    }

    forwarded_for(&lines, &headers);

    let h = harness();
    let (method, uri, basic) = match route {
        b"status" => (Method::GET, "/v1/events/0192f1d0-0000-7000-8000-000000000000", false),
        b"webhook" => (Method::POST, "/v1/webhooks/pipedrive", true),
        _ => (Method::POST, "/v1/events", false),
    };
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in &headers {
        req = req.header(*name, value.clone());
    }
    let mut req = req.body(Body::from("{}")).unwrap();
    let ip = h.next_ip();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::new(IpAddr::V4(ip), 40000)));

    let status = h.rt.block_on(async { h.app.clone().oneshot(req).await.unwrap().status() });
    assert!(!status.is_server_error(), "{status} for {:?}", String::from_utf8_lossy(data));
    let expected = if basic { basic_ok(auth) } else { bearer_ok(auth) };
    assert_eq!(status != 401, expected, "{status} for {:?}", String::from_utf8_lossy(data));
});

/// `TrustedProxies::client`: the peer, or when the peer is a trusted proxy,
/// an address it forwarded for; never anything else.
fn forwarded_for(lines: &[&[u8]], headers: &[(&'static str, HeaderValue)]) {
    let Some(list) = field(lines, 5).and_then(|l| std::str::from_utf8(l).ok()) else { return };
    let entries: Vec<&str> = list.split(',').filter(|e| !e.is_empty()).collect();
    let Ok(proxies) = TrustedProxies::parse(&entries) else { return };
    let peer: IpAddr = field(lines, 6)
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    let mut map = axum::http::HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, value.clone());
    }
    let client = proxies.client(Some(peer), &map).expect("a peer gives a client");
    if client != peer {
        let listed: Vec<&[u8]> = headers
            .iter()
            .filter(|(n, _)| *n == "x-forwarded-for")
            .flat_map(|(_, v)| v.as_bytes().split(|b| *b == b','))
            .collect();
        let named = listed.iter().any(|item| {
            std::str::from_utf8(item).ok().and_then(|s| s.trim().parse::<IpAddr>().ok()).is_some_and(|ip| {
                ip == client || ip.to_canonical() == client || ip.to_canonical() == client.to_canonical()
            })
        });
        assert!(
            named,
            "client {client} is neither the peer {peer} nor forwarded ({:?})",
            map.get_all("x-forwarded-for")
        );
    }
    assert!(proxies.client(None, &map).is_none(), "no peer, no client");
}
