//! HiBob's HTTP handlers, behind [`guard`] (the service user's Basic credentials, then its
//! per-minute budget).

use axum::body::Bytes;
use axum::extract::{Path, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::state::{Employee, State};
use super::ApiError;
use crate::ratelimit::Decision;
use crate::sim::{now_ms, Sim};

/// The fields returned when the body names none (Bob returns a default set).
const DEFAULT_FIELDS: [&str; 8] = [
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "root.displayName",
    "work.department",
    "work.title",
    "work.site",
];

/// The user of an `Authorization: Basic` header, for the per-user budget.
pub(super) fn basic_user(headers: &HeaderMap) -> Option<String> {
    basic(headers).map(|(user, _)| user)
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Authenticate, then rate-limit per service user.
pub(super) async fn guard(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let now = now_ms();
    let decision = {
        let mut world = sim.lock();
        let bob = &mut world.tenants.hibob;
        let Some((user, token)) = basic(req.headers()) else {
            return ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        };
        if !bob.service_user_id.matches(&user) || !bob.service_user_token.matches(&token) {
            return ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
        bob.limiter.check(&user, now)
    };
    if !decision.allowed {
        return rejection(&decision);
    }
    let mut response = next.run(req).await;
    headers(&decision, response.headers_mut());
    response
}

fn headers(decision: &Decision, headers: &mut HeaderMap) {
    let mut set = |name: &'static str, value: i64| {
        headers.insert(name, HeaderValue::from_str(&value.to_string()).expect("digits"));
    };
    set("x-ratelimit-limit", i64::from(decision.limit));
    set("x-ratelimit-remaining", i64::from(decision.remaining));
    set("x-ratelimit-reset", decision.reset_at_secs());
}

/// The 429 Bob answers past its limit.
pub(super) fn rejection(decision: &Decision) -> Response {
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
    headers(decision, response.headers_mut());
    response
}

/// The read's body: both members optional; anything else is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReadRequest {
    fields: Option<Vec<String>>,
    human_readable: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Readable {
    Machine,
    Append,
    Replace,
}

/// `POST /v1/people/{identifier}`: one employee's fields, by backend id or e-mail.
pub(super) async fn read_person(AxState(sim): AxState<Sim>, Path(identifier): Path<String>, body: Bytes) -> Response {
    let request: ReadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReadRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid request body: {e}")).into_response()
            }
        }
    };
    let readable = match request.human_readable.as_deref().unwrap_or("") {
        "" => Readable::Machine,
        "APPEND" => Readable::Append,
        "REPLACE" => Readable::Replace,
        other => {
            return ApiError::new(StatusCode::BAD_REQUEST, format!("humanReadable {other:?}: APPEND or REPLACE"))
                .into_response()
        }
    };
    let world = sim.lock();
    let bob = &world.tenants.hibob;
    let Some(employee) = bob.find(identifier.trim()) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("Employee {identifier} not found")).into_response();
    };
    let fields: Vec<String> =
        request.fields.unwrap_or_else(|| DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect());
    let mut machine = Map::new();
    let mut display = Map::new();
    for field in &fields {
        // Field ids Bob does not know (or that are empty here) are left out silently.
        let Some((m, d)) = value(bob, employee, field) else { continue };
        let path = json_path(field);
        insert(&mut machine, &path, if readable == Readable::Replace { d.clone() } else { m });
        insert(&mut display, &path, d);
    }
    if readable == Readable::Append {
        machine.insert("humanReadable".into(), Value::Object(display));
    }
    Json(Value::Object(machine)).into_response()
}

/// A field id's place in the answer: `root.x` is `x` at the top, others keep their path.
fn json_path(field: &str) -> Vec<&str> {
    let parts: Vec<&str> = field.split('.').collect();
    if parts.first() == Some(&"root") {
        parts[1..].to_vec()
    } else {
        parts
    }
}

fn insert(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = map.entry((*first).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// A field's machine and display values. Lists hold an item id and show its name; dates are
/// ISO and shown as `dd/MM/yyyy`.
fn value(bob: &State, e: &Employee, field: &str) -> Option<(Value, Value)> {
    let same = |v: Value| Some((v.clone(), v));
    let listed = |list: &str, name: &Option<String>| {
        let name = name.as_ref()?;
        Some((Value::String(bob.list_id(list, name)?), Value::String(name.clone())))
    };
    let date = |d: &Option<chrono::NaiveDate>| match d {
        Some(d) => {
            Some((Value::String(d.format("%Y-%m-%d").to_string()), Value::String(d.format("%d/%m/%Y").to_string())))
        }
        None => Some((Value::Null, Value::Null)),
    };
    match field {
        "root.id" => same(Value::String(e.id.clone())),
        "root.email" => same(e.email.clone().map(Value::String).unwrap_or(Value::Null)),
        "root.firstName" => same(Value::String(e.first_name.clone())),
        "root.surname" => same(Value::String(e.surname.clone())),
        "root.displayName" => same(Value::String(format!("{} {}", e.first_name, e.surname))),
        "work.department" => listed("department", &e.department),
        "work.title" => listed("title", &e.title),
        "work.site" => listed("site", &e.site),
        "work.startDate" => date(&e.start_date),
        "internal.status" => same(Value::String(e.status.to_owned())),
        "internal.lifecycleStatus" => {
            let mut shown = e.lifecycle_status.clone();
            if let Some(first) = shown.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            Some((Value::String(e.lifecycle_status.clone()), Value::String(shown)))
        }
        "internal.terminationDate" => date(&e.termination_date),
        _ => None,
    }
}
