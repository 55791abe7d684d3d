//! Injected faults: make the next N matching requests to a vendor fail in a chosen way, so tests
//! can prove that retries, idempotency and "did it actually happen?" checks work.
//!
//! A fault matches on vendor, optional method and optional path glob (relative to the vendor's
//! prefix; `*` matches one segment, `**` any number). Each request consumes at most one fault:
//! the oldest matching one. Kinds:
//! - `status`: answer that status without touching state (a 429 looks like the vendor's own);
//! - `latency`: sleep, then proceed normally;
//! - `drop`: close the connection without an HTTP response;
//! - `apply_then_fail`: process the request for real (state changes, mutations are logged),
//!   then answer the fault status instead, or drop (`"then": "drop"`).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::calls::FaultApplied;
use crate::registry::Vendor;
use crate::sim::{now_ms, Sim};

/// The body of `POST /_sim/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub vendor: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub count: Option<u32>,
    /// For `apply_then_fail`: `"status"` (default) or `"drop"`.
    #[serde(default)]
    pub then: Option<String>,
}

/// What a fault does to the request it fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Status(StatusCode),
    Latency(Duration),
    Drop,
    ApplyThenFail { status: StatusCode, drop: bool },
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Status(_) => "status",
            FaultKind::Latency(_) => "latency",
            FaultKind::Drop => "drop",
            FaultKind::ApplyThenFail { .. } => "apply_then_fail",
        }
    }
}

#[derive(Clone, Debug)]
struct Fault {
    id: u64,
    vendor: Vendor,
    method: Option<Method>,
    path: Option<(String, GlobMatcher)>,
    kind: FaultKind,
    remaining: u32,
}

impl Fault {
    fn matches(&self, vendor: Vendor, method: &Method, path: &str) -> bool {
        self.vendor == vendor
            && self.method.as_ref().is_none_or(|m| m == method)
            && self.path.as_ref().is_none_or(|(_, g)| g.is_match(path))
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "vendor": self.vendor.name(),
            "method": self.method.as_ref().map(Method::as_str),
            "path": self.path.as_ref().map(|(p, _)| p.as_str()),
            "kind": self.kind.name(),
            "remaining": self.remaining,
        });
        match self.kind {
            FaultKind::Status(s) => v["status"] = s.as_u16().into(),
            FaultKind::Latency(d) => v["latency_ms"] = (d.as_millis() as u64).into(),
            FaultKind::Drop => {}
            FaultKind::ApplyThenFail { status, drop } => {
                v["status"] = status.as_u16().into();
                v["then"] = if drop { "drop" } else { "status" }.into();
            }
        }
        v
    }
}

/// The active faults.
#[derive(Default)]
pub struct Faults {
    next_id: u64,
    active: Vec<Fault>,
}

impl Faults {
    /// Validate and register a fault; returns its id.
    pub fn add(&mut self, spec: FaultSpec) -> Result<u64, String> {
        let vendor = Vendor::from_name(&spec.vendor).ok_or_else(|| format!("unknown vendor {:?}", spec.vendor))?;
        let method = spec
            .method
            .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| format!("invalid method {m:?}")))
            .transpose()?;
        let path = spec.path.map(|p| compile_glob(&p)).transpose()?;
        let status = |default: u16| -> Result<StatusCode, String> {
            let code = spec.status.unwrap_or(default);
            StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.as_u16() >= 200)
                .ok_or_else(|| format!("invalid status {code}"))
        };
        if spec.then.is_some() && spec.kind != "apply_then_fail" {
            return Err("\"then\" is only valid with kind apply_then_fail".into());
        }
        let kind = match spec.kind.as_str() {
            "status" => FaultKind::Status(status(500)?),
            "latency" => FaultKind::Latency(Duration::from_millis(
                spec.latency_ms.ok_or("latency_ms is required for kind latency")?,
            )),
            "drop" => FaultKind::Drop,
            "apply_then_fail" => FaultKind::ApplyThenFail {
                status: status(500)?,
                drop: match spec.then.as_deref() {
                    None | Some("status") => false,
                    Some("drop") => true,
                    Some(other) => return Err(format!("invalid then {other:?}: status or drop")),
                },
            },
            other => return Err(format!("invalid kind {other:?}: status, latency, drop or apply_then_fail")),
        };
        let count = spec.count.unwrap_or(1);
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        self.next_id += 1;
        self.active.push(Fault { id: self.next_id, vendor, method, path, kind, remaining: count });
        Ok(self.next_id)
    }

    /// Consume one firing of the oldest fault matching this request, if any.
    pub fn take(&mut self, vendor: Vendor, method: &Method, path: &str) -> Option<FaultKind> {
        let i = self.active.iter().position(|f| f.matches(vendor, method, path))?;
        let fault = &mut self.active[i];
        let kind = fault.kind;
        fault.remaining -= 1;
        if fault.remaining == 0 {
            self.active.remove(i);
        }
        Some(kind)
    }

    pub fn list(&self) -> Vec<Value> {
        self.active.iter().map(Fault::to_json).collect()
    }

    /// Remove one fault; false if there was none with that id.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.active.len();
        self.active.retain(|f| f.id != id);
        self.active.len() != before
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }
}

fn compile_glob(pattern: &str) -> Result<(String, GlobMatcher), String> {
    let normalized = if pattern.starts_with('/') { pattern.to_owned() } else { format!("/{pattern}") };
    let glob = GlobBuilder::new(&normalized)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("invalid path glob {pattern:?}: {e}"))?;
    Ok((normalized, glob.compile_matcher()))
}

/// A response that makes hyper abort the connection before anything is written: the body
/// fails on its first poll, so the buffered head is never flushed and the client sees the
/// connection close without a response.
pub fn dropped(kind: &'static str) -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("simulated dropped connection"))
    });
    let mut response = Response::new(Body::from_stream(failing));
    response.extensions_mut().insert(FaultApplied { kind, dropped: true });
    response
}

/// Route middleware: apply the first matching fault before the vendor's guard sees the request.
pub async fn inject(State((sim, vendor)): State<(Sim, Vendor)>, req: Request, next: Next) -> Response {
    let fault = {
        let mut world = sim.lock();
        world.faults.take(vendor, req.method(), req.uri().path())
    };
    let Some(kind) = fault else {
        return next.run(req).await;
    };
    tracing::debug!(%vendor, path = req.uri().path(), fault = kind.name(), "fault fired");
    let mut response = match kind {
        FaultKind::Latency(delay) => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
        FaultKind::Drop => return dropped(kind.name()),
        FaultKind::Status(status) => injected(&sim, vendor, &req, status),
        FaultKind::ApplyThenFail { status, drop: then_drop } => {
            let (parts, body) = req.into_parts();
            let uri = parts.uri.clone();
            let headers = parts.headers.clone();
            // The change happens (and is logged) here; the caller never sees its response.
            let _applied = next.run(Request::from_parts(parts, body)).await;
            if then_drop {
                return dropped(kind.name());
            }
            sim.lock().tenants.get(vendor).injected_error(&uri, &headers, status, now_ms())
        }
    };
    response.extensions_mut().insert(FaultApplied { kind: kind.name(), dropped: false });
    response
}

fn injected(sim: &Sim, vendor: Vendor, req: &Request, status: StatusCode) -> Response {
    sim.lock().tenants.get(vendor).injected_error(req.uri(), req.headers(), status, now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str, kind: &str, count: u32) -> FaultSpec {
        FaultSpec {
            vendor: "pipedrive".into(),
            method: None,
            path: Some(path.into()),
            kind: kind.into(),
            status: None,
            latency_ms: Some(5),
            count: Some(count),
            then: None,
        }
    }

    #[test]
    fn single_star_matches_one_segment_and_double_star_any() {
        let mut faults = Faults::default();
        faults.add(spec("/users/*", "drop", 10)).unwrap();
        assert!(faults.take(Vendor::Pipedrive, &Method::GET, "/users/5").is_some());
        assert!(faults.take(Vendor::Pipedrive, &Method::GET, "/users/5/permissions").is_none());
        faults.clear();
        faults.add(spec("/users/**", "drop", 10)).unwrap();
        assert!(faults.take(Vendor::Pipedrive, &Method::GET, "/users/5/permissions").is_some());
    }

    #[test]
    fn a_fault_fires_count_times_then_disappears() {
        let mut faults = Faults::default();
        faults.add(spec("users", "status", 2)).unwrap();
        for _ in 0..2 {
            assert_eq!(
                faults.take(Vendor::Pipedrive, &Method::POST, "/users"),
                Some(FaultKind::Status(StatusCode::INTERNAL_SERVER_ERROR))
            );
        }
        assert!(faults.take(Vendor::Pipedrive, &Method::POST, "/users").is_none());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut faults = Faults::default();
        let mut s = spec("/users", "explode", 1);
        assert!(faults.add(s).is_err());
        s = spec("/users", "latency", 1);
        s.latency_ms = None;
        assert!(faults.add(s).is_err());
        s = spec("/users", "status", 0);
        assert!(faults.add(s).is_err());
        s = spec("/users", "status", 1);
        s.vendor = "salesforce".into();
        assert!(faults.add(s).is_err());
        s = spec("/users", "status", 1);
        s.status = Some(42);
        assert!(faults.add(s).is_err());
    }
}
