//! BambooHR's "Get Employee" (`GET /api/gateway.php/{companyDomain}/v1/employees/{id}/`), with
//! its auth and rate limit, and its error answers: the status with the reason in the
//! `X-BambooHR-Error-Message` header and an empty body.

use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use crate::extract::{basic, MalformedQuery, Params};
use crate::ratelimit::{Decision, RateLimitStyle};
use crate::sim::{now_ms, Sim};

/// An error as BambooHR answers one.
pub(crate) struct ApiError {
    status: StatusCode,
    message: &'static str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: &'static str) -> Self {
        ApiError { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.headers_mut().insert("X-BambooHR-Error-Message", HeaderValue::from_static(self.message));
        response
    }
}

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "Malformed query string")
    }
}

/// How BambooHR answers a rate-limited read since 2026-09-16: 429 with `Retry-After`.
pub(crate) struct Limits;

impl RateLimitStyle for Limits {
    fn headers(_: &Decision, _: i64, _: &mut HeaderMap) {
        // BambooHR sends no rate-limit headers on allowed requests.
    }

    fn rejection(decision: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded").into_response();
        let retry = HeaderValue::from(decision.retry_after_secs(now_ms));
        response.headers_mut().insert(header::RETRY_AFTER, retry);
        response
    }
}

/// The API key of `Authorization: Basic` (the key as the user; the password is ignored).
pub(crate) fn api_key(headers: &HeaderMap) -> Option<String> {
    let credentials = basic(headers)?;
    let (user, _password) = credentials.split_once(':').unwrap_or((credentials.as_str(), ""));
    (!user.is_empty()).then(|| user.to_owned())
}

/// Get Employee: the requested `fields` (comma-separated) and `id`; fields the simulator does
/// not know are left out, as BambooHR leaves out fields the key may not read. JSON when the
/// request accepts it, else XML (BambooHR's default).
pub(super) async fn get_employee(
    AxState(sim): AxState<Sim>,
    Path((company, raw_id)): Path<(String, String)>,
    headers: HeaderMap,
    params: Params<ApiError>,
) -> Response {
    let now = now_ms();
    let key = api_key(&headers);
    let employee = {
        let mut world = sim.lock();
        let bamboo = &mut world.tenants.bamboohr;
        let Some(key) = key.filter(|k| bamboo.api_keys.iter().any(|t| t.matches(k))) else {
            return ApiError::new(StatusCode::UNAUTHORIZED, "Invalid API key").into_response();
        };
        let decision = bamboo.limiter.check(&key, now);
        if !decision.allowed {
            return Limits::rejection(&decision, now);
        }
        if company != super::COMPANY_DOMAIN {
            return ApiError::new(StatusCode::NOT_FOUND, "Company not found").into_response();
        }
        let Some(employee) = raw_id.parse::<u64>().ok().and_then(|id| bamboo.employees.get(&id)).cloned() else {
            return ApiError::new(StatusCode::NOT_FOUND, "Employee not found").into_response();
        };
        employee
    };
    let mut out = Map::new();
    out.insert("id".into(), employee.field("id").unwrap_or_default());
    for name in params.get("fields").unwrap_or_default().split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if let Some(value) = employee.field(name) {
            out.insert(name.to_owned(), value);
        }
    }
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        Json(Value::Object(out)).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/xml")], xml(&out)).into_response()
    }
}

/// `<employee id="1"><field id="firstName">Ada</field>...</employee>`.
fn xml(fields: &Map<String, Value>) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let id = fields.get("id").and_then(Value::as_str).unwrap_or_default();
    let mut out = format!("<?xml version=\"1.0\"?>\n<employee id=\"{}\">", escape(id));
    for (name, value) in fields.iter().filter(|(k, _)| *k != "id") {
        let text = value.as_str().unwrap_or_default();
        out.push_str(&format!("<field id=\"{}\">{}</field>", escape(name), escape(text)));
    }
    out.push_str("</employee>");
    out
}
