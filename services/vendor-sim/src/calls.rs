//! What happened: every request (the call log), per-vendor counters, and the ordered log of
//! successful mutations that tests use to prove ordering ("deals reassigned, then user
//! deactivated").
//!
//! The call log keeps paths without their vendor prefix; query strings are kept with secret
//! parameters (tokens) redacted. Nothing here ever holds a credential.

use std::collections::{BTreeMap, HashMap, VecDeque};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::registry::Vendor;
use crate::sim::{now_ms, rfc3339_ms, Sim};

/// How many calls the call log keeps (oldest are evicted first).
pub const CALL_LOG_CAPACITY: usize = 100_000;
/// How many mutations each vendor's log keeps (oldest are evicted first).
pub const MUTATION_LOG_CAPACITY: usize = 100_000;

/// Query parameters whose values never reach the call log.
const SECRET_PARAMS: &[&str] = &["api_token", "access_token", "token", "client_secret", "password", "circle-token"];

/// Per-vendor request counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Every request under the vendor's prefix, whatever its outcome.
    pub requests: u64,
    /// Requests answered as rate-limited: 429 (by the limiter or by an injected fault), and a
    /// 403 that carries a rate-limit wait (GitHub's answer to a spent primary or secondary limit).
    pub rate_limited: u64,
    /// Requests per route template, e.g. `"GET /users/{id}"`; `"GET (unmatched)"` for paths
    /// that match no route.
    pub by_route: BTreeMap<String, u64>,
}

/// One request as seen from outside.
#[derive(Clone, Debug)]
pub struct Call {
    pub n: u64,
    pub vendor: Vendor,
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    /// `None` when the connection was dropped without a response.
    pub status: Option<u16>,
    pub at_ms: i64,
    pub fault: Option<&'static str>,
}

impl Call {
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("n".into(), self.n.into());
        obj.insert("vendor".into(), self.vendor.name().into());
        obj.insert("method".into(), self.method.as_str().into());
        obj.insert("path".into(), self.path.clone().into());
        if let Some(q) = &self.query {
            obj.insert("query".into(), q.clone().into());
        }
        obj.insert("status".into(), self.status.map_or(Value::Null, Value::from));
        obj.insert("at".into(), rfc3339_ms(self.at_ms).into());
        if let Some(kind) = self.fault {
            obj.insert("fault".into(), kind.into());
        }
        Value::Object(obj)
    }
}

/// One successful mutating request, recorded by the handler that applied it.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// Global across all vendors: orders mutations across vendors too.
    pub seq: u64,
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    /// What it did, e.g. `user.create`, `user.deactivate`, `role.assign`, `deal.update`.
    pub action: &'static str,
    /// The ids involved and other details (`user_id`, `deal_id`, `changed`, ...).
    pub details: Map<String, Value>,
}

impl LogEntry {
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("seq".into(), self.seq.into());
        obj.insert("at".into(), rfc3339_ms(self.at_ms).into());
        obj.insert("method".into(), self.method.clone().into());
        obj.insert("path".into(), self.path.clone().into());
        obj.insert("action".into(), self.action.into());
        for (k, v) in &self.details {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }
}

#[derive(Default)]
struct VendorJournal {
    counters: Counters,
    log: VecDeque<LogEntry>,
}

/// Call log, counters and mutation logs of all vendors.
#[derive(Default)]
pub struct Journal {
    next_seq: u64,
    next_call: u64,
    calls: VecDeque<Call>,
    vendors: HashMap<Vendor, VendorJournal>,
}

impl Journal {
    /// Record a successful mutation. Handlers call this in the same critical section as the
    /// change itself, so log order is the order in which changes happened.
    pub fn mutation(
        &mut self,
        vendor: Vendor,
        method: &Method,
        path: &str,
        action: &'static str,
        details: Map<String, Value>,
    ) {
        self.next_seq += 1;
        let log = &mut self.vendors.entry(vendor).or_default().log;
        if log.len() >= MUTATION_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(LogEntry {
            seq: self.next_seq,
            at_ms: now_ms(),
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            action,
            details,
        });
    }

    /// Record an answered (or dropped) request and count it.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &mut self,
        vendor: Vendor,
        method: Method,
        path: String,
        query: Option<String>,
        route: Option<&str>,
        status: Option<u16>,
        fault: Option<&'static str>,
    ) {
        let counters = &mut self.vendors.entry(vendor).or_default().counters;
        counters.requests += 1;
        if status == Some(429) {
            counters.rate_limited += 1;
        }
        let key = format!("{} {}", method, route.unwrap_or("(unmatched)"));
        *counters.by_route.entry(key).or_default() += 1;

        self.next_call += 1;
        if self.calls.len() >= CALL_LOG_CAPACITY {
            self.calls.pop_front();
        }
        self.calls.push_back(Call { n: self.next_call, vendor, method, path, query, status, at_ms: now_ms(), fault });
    }

    /// Counts a rate-limit answer that is not a 429 (GitHub's 403s), already logged by [`Journal::call`].
    pub fn count_rate_limited(&mut self, vendor: Vendor) {
        self.vendors.entry(vendor).or_default().counters.rate_limited += 1;
    }

    pub fn counters(&self, vendor: Vendor) -> Counters {
        self.vendors.get(&vendor).map(|j| j.counters.clone()).unwrap_or_default()
    }

    pub fn log(&self, vendor: Vendor) -> Vec<Value> {
        self.vendors.get(&vendor).map(|j| j.log.iter().map(LogEntry::to_json).collect()).unwrap_or_default()
    }

    /// The call log, oldest first, optionally for one vendor only.
    pub fn calls(&self, vendor: Option<Vendor>) -> Vec<Value> {
        self.calls.iter().filter(|c| vendor.is_none_or(|v| c.vendor == v)).map(Call::to_json).collect()
    }

    /// How many calls were ever recorded (including evicted ones).
    pub fn total_calls(&self) -> u64 {
        self.next_call
    }
}

/// Response extension: the route template that matched (with the vendor prefix).
#[derive(Clone)]
pub struct RouteTemplate(pub MatchedPath);

/// Response extension: which fault shaped the response, and whether it was dropped.
#[derive(Clone, Copy)]
pub struct FaultApplied {
    pub kind: &'static str,
    pub dropped: bool,
}

/// Route middleware: copy the matched route template onto the response for [`record`].
pub async fn tag_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(m) = matched {
        response.extensions_mut().insert(RouteTemplate(m));
    }
    response
}

/// Vendor middleware: once a request is answered, add it to the call log and the counters.
pub async fn record(State((sim, vendor)): State<(Sim, Vendor)>, req: Request, next: Next) -> Response {
    if sim.recording_exchanges() {
        let keeper = sim.clone();
        let recorded = |req| answer(sim, vendor, req, next);
        return crate::exchanges::capture(vendor, req, recorded, move |x| keeper.keep_exchange(x)).await;
    }
    answer(sim, vendor, req, next).await
}

async fn answer(sim: Sim, vendor: Vendor, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(redact_query);
    let response = next.run(req).await;

    let route = response.extensions().get::<RouteTemplate>().map(|r| {
        let full = r.0.as_str();
        full.strip_prefix(vendor.prefix()).unwrap_or(full).to_owned()
    });
    let fault = response.extensions().get::<FaultApplied>().copied();
    let status = match fault {
        Some(f) if f.dropped => None,
        _ => Some(response.status().as_u16()),
    };
    tracing::debug!(%vendor, %method, %path, ?status, "request");
    let headers = response.headers();
    let throttled_403 = status == Some(403)
        && (headers.contains_key("retry-after")
            || headers.get("x-ratelimit-remaining").is_some_and(|v| v.as_bytes() == b"0"));
    let mut sim = sim.lock();
    sim.journal.call(vendor, method, path, query, route.as_deref(), status, fault.map(|f| f.kind));
    if throttled_403 {
        sim.journal.count_rate_limited(vendor);
    }
    drop(sim);
    response
}

/// Whether query parameter `name` carries a credential.
pub(crate) fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// The query string with the values of secret parameters replaced by `REDACTED`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            if is_secret_param(name) {
                format!("{name}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_query_hides_tokens_and_keeps_the_rest() {
        assert_eq!(
            redact_query("term=ada&api_token=secret&search_by_email=1"),
            "term=ada&api_token=REDACTED&search_by_email=1"
        );
        assert_eq!(redact_query("start=0"), "start=0");
    }

    #[test]
    fn call_log_is_capped_and_keeps_the_newest() {
        let mut journal = Journal::default();
        for i in 0..CALL_LOG_CAPACITY + 5 {
            journal.call(
                Vendor::Pipedrive,
                Method::GET,
                format!("/users/{i}"),
                None,
                Some("/users/{id}"),
                Some(200),
                None,
            );
        }
        let calls = journal.calls(Some(Vendor::Pipedrive));
        assert_eq!(calls.len(), CALL_LOG_CAPACITY);
        assert_eq!(calls[0]["path"], "/users/5");
        assert_eq!(journal.counters(Vendor::Pipedrive).requests, (CALL_LOG_CAPACITY + 5) as u64);
    }
}
