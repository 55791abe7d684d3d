//! The JSON CrowdStrike sends and accepts: the `{"meta", "resources", "errors"}` envelope,
//! user and role entities, the query parameters it reads, and the rate-limit headers.
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes Falcon's API down a second time, from the vendor's documentation (docs/vendors/crowdstrike.md), so that a misunderstanding
//! of it written once cannot pass both sides' tests.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::model::{Role, User};
use super::CUSTOMER_ID;
use crate::extract::{self, BodyError, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};

pub(super) const DEFAULT_LIMIT: usize = 100;
pub(super) const MAX_LIMIT: usize = 500;
const MAX_IDS: usize = 100;

/// The query string; a malformed one is a Falcon-shaped 400.
pub(super) type Params = extract::Params<ApiError>;

impl Params {
    /// Every value of a repeated parameter (`ids=a&ids=b`), commas splitting too, deduplicated.
    pub(super) fn ids(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in self.all(key) {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if !out.iter().any(|o| o == part) {
                    out.push(part.to_owned());
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Envelope and errors

pub(super) fn meta() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("query_time".into(), json!(0.003));
    m.insert("powered_by".into(), "user-management".into());
    m.insert("trace_id".into(), uuid::Uuid::new_v4().to_string().into());
    m
}

/// A CrowdStrike error: `{"meta": {...}, "resources": [], "errors": [{"code", "message"}]}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) errors: Vec<Value>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, errors: vec![json!({ "code": status.as_u16(), "message": message.into() })] }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "access denied, invalid bearer token")
    }

    pub(super) fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "access denied, authorization failed")
    }

    pub(super) fn token_refused() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Failed to issue access token - Not Authorized")
    }

    pub(super) fn message(&self) -> String {
        self.errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; ")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "meta": meta(), "resources": [], "errors": self.errors });
        (self.status, Json(body)).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn resources(
    status: StatusCode,
    items: Vec<Value>,
    extra_meta: Option<(&str, Value)>,
    errors: Vec<Value>,
) -> Response {
    let mut m = meta();
    if let Some((k, v)) = extra_meta {
        m.insert(k.into(), v);
    }
    (status, Json(json!({ "meta": m, "resources": items, "errors": errors }))).into_response()
}

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::bad_request("malformed query string")
    }
}

/// An empty body is malformed here (see [`extract::Empty`]).
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotAnObject => ApiError::bad_request("request body must be a JSON object"),
            BodyError::Malformed => ApiError::bad_request("malformed JSON in request body"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entities as shown

/// A user entity as the API shows it: no roles (they live behind their own endpoints).
pub(super) fn user_json(u: &User) -> Value {
    json!({
        "uid": u.uid,
        "username": u.username,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "customer_id": CUSTOMER_ID,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

pub(super) fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id,
        "display_name": r.display_name,
        "description": r.description,
        "cid": CUSTOMER_ID,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading requests

pub(super) fn string_field(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

/// `user_uuid` from the query string; in the body it is refused, as the real API does.
pub(super) fn user_uuid_param(params: &Params, body: Option<&Map<String, Value>>) -> Result<String, ApiError> {
    match params.get("user_uuid").map(str::trim).filter(|s| !s.is_empty()) {
        Some(uid) => Ok(uid.to_owned()),
        None if body.is_some_and(|b| b.contains_key("user_uuid") || b.contains_key("uid")) => {
            Err(ApiError::bad_request("user_uuid must be given as a query parameter, not in the body"))
        }
        None => Err(ApiError::bad_request("user_uuid is a required query parameter")),
    }
}

pub(super) fn ids_param(params: &Params) -> Result<Vec<String>, ApiError> {
    let ids = params.ids("ids");
    if ids.is_empty() {
        return Err(ApiError::bad_request("ids is required"));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!("too many ids: {} given, at most {MAX_IDS} per request", ids.len())));
    }
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// How CrowdStrike renders rate-limit decisions.
pub struct FalconLimits;

impl RateLimitStyle for FalconLimits {
    fn headers(d: &Decision, _now_ms: i64, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded.").into_response();
        Self::headers(d, now_ms, response.headers_mut());
        // A Unix timestamp in seconds (rounded up), not a delta.
        let retry_at = -((-d.retry_at_ms).div_euclid(1000));
        response.headers_mut().insert("x-ratelimit-retryafter", HeaderValue::from(retry_at));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_an_epoch_timestamp_rounded_up() {
        let d = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_at_ms: 1_700_000_060_000,
            daily_limit: None,
            daily_remaining: None,
            retry_at_ms: 1_700_000_060_001,
        };
        let r = FalconLimits::rejection(&d, 1_700_000_000_000);
        assert_eq!(r.headers()["x-ratelimit-retryafter"], "1700000061");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    }

    #[test]
    fn ids_split_on_commas_and_repeat_once() {
        let p = Params::from_uri(&"/x?ids=a,b&ids=b&ids=&ids=c".parse().unwrap()).unwrap();
        assert_eq!(p.ids("ids"), ["a", "b", "c"]);
    }
}
