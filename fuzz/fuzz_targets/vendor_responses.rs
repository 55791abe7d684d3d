//! Vendor answers, the worker's untrusted input: the real vendor clients
//! (`shared/vendors`) call a local responder that answers every request with
//! the fuzzed status, header and body. That covers each client's decoding of
//! its vendor's JSON (envelopes, pagination, the odd shapes each vendor
//! sends), the error bodies turned into messages, `VendorHttp`'s status
//! handling and the `Retry-After` reading of a 429.
//!
//! Input, one field per line: the call (below) / the status (`200`) / one
//! header (`Retry-After: 5`, `-` for none) / the body (the rest).
//!
//! Asserts: no panic; every call returns (a pagination that never ends is
//! cut off and reported); no error message carries a credential.
//!
//! Not reached: Jira's REST client (its constructor is crate-private; its
//! SCIM client is here) and the per-vendor rate-limit header readers
//! (crate-private; `http::retry_after_seconds` stands in for them).
#![no_main]

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use libfuzzer_sys::fuzz_target;
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use lifecycle_vendors::http::VendorHttp;
use lifecycle_vendors::ratelimit::Limiter;
use lifecycle_vendors::{calendly, circleci, crowdstrike, jira, pipedrive};
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const TOKEN: &str = "fuzz-vendor-secret-token-0123";
/// More requests than this in one call: a pagination that does not end.
/// (Calendly stops at 10,000 pages by design.)
const MAX_REQUESTS: usize = 10_050;

#[derive(Default)]
struct Reply {
    status: u16,
    header: Option<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

struct Harness {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<AtomicUsize>,
    runaway: Arc<AtomicBool>,
    /// Rebuilt after a 429 closed its limiter (which would delay the next runs).
    http: Mutex<Option<VendorHttp>>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let reply = Arc::new(Mutex::new(Reply::default()));
        let requests = Arc::new(AtomicUsize::new(0));
        let runaway = Arc::new(AtomicBool::new(false));
        let (r, n, stop) = (reply.clone(), requests.clone(), runaway.clone());
        let app = axum::Router::new().fallback(move || {
            let (r, n, stop) = (r.clone(), n.clone(), stop.clone());
            async move {
                if n.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
                    // End the loop (every client stops on a 4xx) and say why afterwards.
                    stop.store(true, Ordering::Relaxed);
                    return Response::builder().status(400).body(Body::from("{}")).unwrap();
                }
                let r = r.lock().unwrap();
                let mut res = Response::builder().status(r.status).header("content-type", "application/json");
                if let Some((name, value)) = &r.header {
                    res = res.header(name, value);
                }
                res.body(Body::from(r.body.clone())).unwrap()
            }
        });
        let addr = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            addr
        });
        Harness { rt, addr, reply, requests, runaway, http: Mutex::new(None) }
    })
}

fn vendor_http() -> VendorHttp {
    VendorHttp::new(
        VendorKind::Pipedrive,
        Duration::from_secs(5),
        Arc::new(Limiter::new(None)),
        lifecycle_vendors::http::retry_after_seconds,
    )
}

fn email() -> EmployeeEmail {
    EmployeeEmail::parse("ada@example.com").unwrap()
}

/// Runs one call; its error, if any, as text.
fn check<T, E: Display>(r: Result<T, E>) -> Option<String> {
    r.err().map(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(4, |b| *b == b'\n');
    let call = lines.next().unwrap_or_default().to_vec();
    let status = std::str::from_utf8(lines.next().unwrap_or_default()).ok().and_then(|s| s.trim().parse::<u16>().ok());
    let Some(status) = status.filter(|s| StatusCode::from_u16(*s).is_ok() && *s >= 200) else { return };
    let header = match lines.next().unwrap_or_default() {
        b"-" | b"" => None,
        line => {
            let Some(colon) = line.iter().position(|b| *b == b':') else { return };
            let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
            else {
                return;
            };
            // The responder sets these itself; a second one is another test.
            if name == "content-length" || name == "transfer-encoding" || name == "content-type" {
                return;
            }
            Some((name, value))
        }
    };
    let body = lines.next().unwrap_or_default().to_vec();

    let h = harness();
    *h.reply.lock().unwrap() = Reply { status, header, body };
    h.requests.store(0, Ordering::Relaxed);
    h.runaway.store(false, Ordering::Relaxed);
    let http = h.http.lock().unwrap().get_or_insert_with(vendor_http).clone();
    let base = format!("http://{}", h.addr);
    let secret = || Secret::new(TOKEN);

    let error = h.rt.block_on(async {
        let pd = pipedrive::Client::new(http.clone(), &format!("{base}/pipedrive"), secret(), Default::default());
        let cs = crowdstrike::Client::new(
            http.clone(),
            crowdstrike::Endpoint::new(&format!("{base}/crowdstrike"), None),
            "fuzz-client-id",
            secret(),
        );
        let cal = calendly::Client::new(http.clone(), &format!("{base}/calendly"), secret());
        let cci = circleci::Client::new(http.clone(), format!("{base}/circleci/api/v2").parse().unwrap(), secret());
        let scim = jira::ScimClient::new(http.clone(), &format!("{base}/scim/directory/d1"), secret());
        let ada = email();
        match call.as_slice() {
            b"pd-find" => check(pd.find_user_by_email(&ada).await),
            b"pd-get" => check(pd.get_user(17).await),
            b"pd-list" => check(pd.list_users().await),
            b"pd-create" => check(pd.create_user(&ada).await),
            b"pd-update" => check(pd.set_active(17, false).await),
            b"pd-roles" => check(pd.roles().await),
            b"pd-assignments" => check(pd.role_assignments(17).await),
            b"pd-assign" => check(pd.assign_role(2, 17).await),
            b"pd-deals" => check(pd.open_deals(17).await),
            b"pd-deal" => check(pd.get_deal(5).await),
            b"pd-set-owner" => check(pd.set_deal_owner(5, 17).await),
            b"cs-uids" => check(cs.user_uids().await),
            b"cs-users" => check(cs.users(&["u-1".to_string()]).await),
            b"cs-find" => check(cs.find_user(&ada).await),
            b"cs-get" => check(cs.get_user("u-1").await),
            b"cs-create" => check(cs.create_user(&ada, "Ada", "Lovelace").await),
            b"cs-roles" => check(cs.role_ids().await),
            b"cs-user-roles" => check(cs.user_roles("u-1").await),
            b"cs-grant" => check(cs.grant_roles("u-1", &["falcon_analyst".to_string()]).await),
            b"cs-revoke" => check(cs.revoke_role("u-1", "falcon_analyst").await),
            b"cs-revoke-all" => {
                check(cs.revoke_roles("u-1", &["falcon_analyst".to_string(), "falcon_admin".to_string()]).await)
            }
            b"cs-delete" => check(cs.delete_user("u-1").await),
            b"cal-me" => check(cal.me().await),
            b"cal-org" => check(cal.organization().await),
            b"cal-member" => match cal.organization().await {
                Ok(Ok(org)) => check(cal.find_membership(&org, &ada).await),
                other => check(other),
            },
            b"cal-invitation" => match cal.organization().await {
                Ok(Ok(org)) => check(cal.find_pending_invitation(&org, &ada).await),
                other => check(other),
            },
            b"cal-invite" => match cal.organization().await {
                Ok(Ok(org)) => check(cal.invite(&org, &ada).await),
                other => check(other),
            },
            b"cal-invitation-by-id" => match cal.organization().await {
                Ok(Ok(org)) => check(cal.find_invitation(&org, &ada, "i-1").await),
                other => check(other),
            },
            b"cci-me" => check(cci.me().await),
            b"cci-collabs" => check(cci.collaborations().await),
            b"scim-find" => check(scim.find_by_user_name(&ada).await),
            b"scim-set" => check(scim.set_active("s-1", false).await),
            _ => None,
        }
    });
    if status == 429 {
        // Its limiter now waits out the Retry-After; the next run gets a fresh one.
        *h.http.lock().unwrap() = None;
    }
    let shown = String::from_utf8_lossy(data);
    assert!(
        !h.runaway.load(Ordering::Relaxed),
        "{} made more than {MAX_REQUESTS} requests for one call: a pagination that does not end ({shown:?})",
        String::from_utf8_lossy(&call)
    );
    // Unless the answer itself carried it (an error body is quoted in the
    // message, and the fuzzer learns the token from this very comparison).
    let echoed = data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
    if let Some(e) = error.filter(|_| !echoed) {
        assert!(!e.contains(TOKEN), "a credential in an error message: {e:?} ({shown:?})");
    }
});
