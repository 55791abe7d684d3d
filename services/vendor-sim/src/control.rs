//! The control endpoints under `/_sim/`: how tests read and shape the simulated world.
//! No auth: the simulator is a test double and listens on loopback by default.
//!
//! - `GET  /_sim/health`          liveness
//! - `GET  /_sim/state`           every vendor's data, counters and mutation log
//! - `GET  /_sim/calls?vendor=`   the call log (reads too), oldest first
//! - `POST /_sim/reset`           back to start-up (`{"fixture":"default"}` optional)
//! - `POST /_sim/seed`            add data, keyed by vendor
//! - `GET|POST /_sim/config`      runtime knobs per vendor (rate limits, ...)
//! - `GET|POST|DELETE /_sim/faults`, `DELETE /_sim/faults/{id}`   injected faults
//!
//! Errors are `{"error": "..."}` with status 400 (or 404).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::faults::FaultSpec;
use crate::registry::Vendor;
use crate::sim::Sim;
use crate::Fixture;

/// Seeds for load tests can be large.
const CONTROL_BODY_LIMIT: usize = 256 * 1024 * 1024;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/_sim/health", get(health))
        .route("/_sim/state", get(state))
        .route("/_sim/calls", get(calls))
        .route("/_sim/reset", post(reset))
        .route("/_sim/seed", post(seed))
        .route("/_sim/config", get(get_config).post(set_config))
        .route("/_sim/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/_sim/faults/{id}", delete(remove_fault))
        .layer(DefaultBodyLimit::max(CONTROL_BODY_LIMIT))
}

/// Anything outside the control endpoints and the vendor prefixes.
pub async fn not_found() -> Response {
    ControlError(StatusCode::NOT_FOUND, "no such endpoint in the vendor simulator".into()).into_response()
}

/// A control endpoint's error: `{"error": "..."}`.
#[derive(Debug)]
pub struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, message.into())
}

type Reply = Result<Json<Value>, ControlError>;

/// Parse an optional JSON body: empty means `None`.
fn parse_body(body: &Bytes) -> Result<Option<Value>, ControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| bad_request(format!("malformed JSON body: {e}")))
}

/// A body keyed by vendor name: every key must be a known vendor.
fn by_vendor(body: Option<Value>) -> Result<Vec<(Vendor, Value)>, ControlError> {
    let map = match body {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(bad_request("body must be a JSON object keyed by vendor")),
    };
    map.into_iter()
        .map(|(name, value)| match Vendor::from_name(&name) {
            Some(v) => Ok((v, value)),
            None => Err(bad_request(format!("unknown vendor {name:?}"))),
        })
        .collect()
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn state(State(sim): State<Sim>) -> Json<Value> {
    let world = sim.lock();
    let mut out = Map::new();
    for &vendor in Vendor::ALL {
        let mut snapshot = match world.tenants.get(vendor).snapshot() {
            Value::Object(map) => map,
            other => {
                let mut map = Map::new();
                map.insert("data".into(), other);
                map
            }
        };
        snapshot.insert("counters".into(), serde_json::to_value(world.journal.counters(vendor)).unwrap_or_default());
        snapshot.insert("log".into(), Value::Array(world.journal.log(vendor)));
        out.insert(vendor.name().into(), Value::Object(snapshot));
    }
    Json(Value::Object(out))
}

#[derive(Deserialize)]
struct CallsQuery {
    vendor: Option<String>,
}

async fn calls(State(sim): State<Sim>, Query(query): Query<CallsQuery>) -> Reply {
    let vendor = query
        .vendor
        .map(|name| Vendor::from_name(&name).ok_or_else(|| bad_request(format!("unknown vendor {name:?}"))))
        .transpose()?;
    let world = sim.lock();
    Ok(Json(json!({
        "calls": world.journal.calls(vendor),
        "total": world.journal.total_calls(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    #[serde(default)]
    fixture: Option<Fixture>,
}

async fn reset(State(sim): State<Sim>, body: Bytes) -> Reply {
    let fixture = match parse_body(&body)? {
        None => Fixture::Empty,
        Some(v) => serde_json::from_value::<ResetBody>(v)
            .map_err(|e| bad_request(format!("invalid reset body: {e}")))?
            .fixture
            .unwrap_or(Fixture::Empty),
    };
    sim.reset(fixture);
    let name = match fixture {
        Fixture::Empty => "empty",
        Fixture::Default => "default",
    };
    Ok(Json(json!({ "reset": true, "fixture": name })))
}

async fn seed(State(sim): State<Sim>, body: Bytes) -> Reply {
    let parts = by_vendor(parse_body(&body)?)?;
    let mut world = sim.lock();
    let mut created = Map::new();
    for (vendor, value) in parts {
        let out = world.tenants.get_mut(vendor).seed(value).map_err(|e| bad_request(format!("{vendor}: {e}")))?;
        created.insert(vendor.name().into(), out);
    }
    Ok(Json(Value::Object(created)))
}

fn current_config(sim: &Sim) -> Value {
    let world = sim.lock();
    let map: Map<String, Value> =
        Vendor::ALL.iter().map(|&v| (v.name().to_owned(), world.tenants.get(v).config())).collect();
    Value::Object(map)
}

async fn get_config(State(sim): State<Sim>) -> Json<Value> {
    Json(current_config(&sim))
}

async fn set_config(State(sim): State<Sim>, body: Bytes) -> Reply {
    let parts = by_vendor(parse_body(&body)?)?;
    {
        let mut world = sim.lock();
        for (vendor, patch) in parts {
            world.tenants.get_mut(vendor).configure(patch).map_err(|e| bad_request(format!("{vendor}: {e}")))?;
        }
    }
    Ok(Json(current_config(&sim)))
}

async fn list_faults(State(sim): State<Sim>) -> Json<Value> {
    Json(json!({ "faults": sim.lock().faults.list() }))
}

async fn add_fault(State(sim): State<Sim>, body: Bytes) -> Reply {
    let spec = parse_body(&body)?.ok_or_else(|| bad_request("a fault needs a JSON body"))?;
    let spec: FaultSpec = serde_json::from_value(spec).map_err(|e| bad_request(format!("invalid fault: {e}")))?;
    let id = sim.lock().faults.add(spec).map_err(bad_request)?;
    Ok(Json(json!({ "id": id })))
}

async fn clear_faults(State(sim): State<Sim>) -> Json<Value> {
    sim.lock().faults.clear();
    Json(json!({ "faults": [] }))
}

async fn remove_fault(State(sim): State<Sim>, Path(id): Path<String>) -> Reply {
    let id: u64 = id.parse().map_err(|_| bad_request("fault id must be an integer"))?;
    if sim.lock().faults.remove(id) {
        Ok(Json(json!({ "removed": id })))
    } else {
        Err(ControlError(StatusCode::NOT_FOUND, format!("no active fault {id}")))
    }
}
