//! The JSON Pipedrive sends and accepts: the `{"success", "data"}` envelope, deals (v2) as
//! shown (users and roles: `v1.rs`), v1 offset pages and v2 cursor pages, errors, the
//! rate-limit headers, and strict reading of requests (an unknown query parameter or body field
//! is a 400).
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes Pipedrive's API down a second time, from the vendor's published definition
//! (docs/vendors/pipedrive.md names each operation), so that a misunderstanding of it written
//! once cannot pass both sides' tests.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::DateTime;
use serde::Serialize;
use serde_json::{json, Map, Number, Value};

use super::model::{Deal, DealStatus};
use super::State;
use crate::extract::{self, bearer, BodyError, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};
use crate::sim::rfc3339_s;
use crate::token::Token;

pub(super) const COMPANY_ID: i64 = 100;
pub(super) const COMPANY_NAME: &str = "Sim Company";
pub(super) const COMPANY_DOMAIN: &str = "sim";
/// The header the API token travels in (Pipedrive's authentication docs).
pub(super) const TOKEN_HEADER: &str = "x-api-token";
/// The query parameter the v1 definition's `api_key` scheme names; still accepted.
pub(super) const TOKEN_PARAM: &str = "api_token";
const DEFAULT_LIMIT: usize = 100;
/// v1 lists (roles, assignments) clamp here; v2 refuses more (getDeals: "a maximum value of 500").
pub(super) const MAX_LIMIT: usize = 500;
const ERROR_INFO: &str = "Please check developers.pipedrive.com for more information about Pipedrive API.";

/// The query string; a malformed one is a Pipedrive-shaped 400.
pub(super) type Params = extract::Params<ApiError>;

// ---------------------------------------------------------------------------------------------
// Errors and the envelope

/// A Pipedrive error response: `{"success":false,"error":..,"errorCode":..,"error_info":..}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) error: String,
    /// 401/403/429 bodies carry no `error_info`.
    pub(super) with_info: bool,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, error: error.into(), with_info: true }
    }

    pub(super) fn bad_request(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    pub(super) fn not_found(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    pub(super) fn unauthorized() -> Self {
        ApiError { status: StatusCode::UNAUTHORIZED, error: "unauthorized access".into(), with_info: false }
    }

    pub(super) fn forbidden(what: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            error: format!("You do not have permissions to {what}"),
            with_info: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "success": false,
            "error": self.error,
            "errorCode": self.status.as_u16(),
        });
        if self.with_info {
            body["error_info"] = ERROR_INFO.into();
        }
        (self.status, Json(body)).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok<T: Serialize>(data: T) -> Response {
    Json(DataEnvelope { success: true, data }).into_response()
}

#[derive(Serialize)]
pub(super) struct DataEnvelope<T> {
    pub(super) success: bool,
    pub(super) data: T,
}

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::bad_request("malformed query string")
    }
}

/// Pipedrive reads an empty body as `{}` (see [`extract::Empty`]).
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotAnObject => ApiError::bad_request("request body must be a JSON object"),
            BodyError::Malformed => ApiError::bad_request("malformed JSON in request body"),
        }
    }
}

/// v1 times: `YYYY-MM-DD HH:MM:SS` in UTC, the format the user model documents.
pub(super) fn v1_time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d %H:%M:%S").to_string()
}

// ---------------------------------------------------------------------------------------------
// Deals as API v2 shows them

/// The `include_fields` getDeals and getDeal offer, and whether each is a count (shown as 0) or
/// a reference (shown as null): the simulator keeps no activities, mail or products.
pub(super) const INCLUDE_FIELDS: &[(&str, bool)] = &[
    ("next_activity_id", false),
    ("last_activity_id", false),
    ("first_won_time", false),
    ("products_count", true),
    ("files_count", true),
    ("notes_count", true),
    ("followers_count", true),
    ("email_messages_count", true),
    ("activities_count", true),
    ("done_activities_count", true),
    ("undone_activities_count", true),
    ("participants_count", true),
    ("last_incoming_mail_time", false),
    ("last_outgoing_mail_time", false),
    ("smart_bcc_email", false),
    ("source_lead_id", false),
];

/// Just the names of [`INCLUDE_FIELDS`].
pub(super) fn include_field_names() -> Vec<&'static str> {
    INCLUDE_FIELDS.iter().map(|(name, _)| *name).collect()
}

impl State {
    /// A deal as API v2 shows it (SDK v2 model `Deal`): `owner_id` an integer, times RFC 3339,
    /// plus the `include_fields` asked for.
    pub(super) fn deal_json(&self, d: &Deal, include: &[&str]) -> Value {
        let mut v = json!({
            "id": d.id,
            "title": d.title,
            "owner_id": d.owner,
            "pipeline_id": 1,
            "stage_id": 1,
            "value": d.value,
            "currency": d.currency,
            "add_time": rfc3339_s(d.add_ms),
            "update_time": rfc3339_s(d.update_ms),
            "stage_change_time": rfc3339_s(d.add_ms),
            "is_deleted": d.status == DealStatus::Deleted,
            "is_archived": d.is_archived,
            "status": d.status.as_str(),
            "probability": null,
            "lost_reason": null,
            "visible_to": 3,
            "close_time": null,
            "label_ids": [],
            "origin": "API",
            "origin_id": null,
            "channel": null,
            "channel_id": null,
            "arr": null,
            "mrr": null,
            "acv": null,
            "custom_fields": {},
        });
        for (k, x) in &d.extra {
            v[k.as_str()] = x.clone();
        }
        for (name, count) in INCLUDE_FIELDS {
            if include.contains(name) {
                v[*name] = if *count { 0.into() } else { Value::Null };
            }
        }
        v
    }

    /// A seeded deal as `/_sim/seed` answers: as v2 shows it, plus the v1 `user_id` object the
    /// seed answered with before (tests read `user_id.id`).
    pub(super) fn seeded_deal_json(&self, d: &Deal) -> Value {
        let owner = self.users.get(&d.owner);
        let mut v = self.deal_json(d, &[]);
        v["user_id"] = json!({
            "id": d.owner,
            "name": owner.map(|u| u.name.as_str()),
            "email": owner.map(|u| u.email.as_str()),
            "active_flag": owner.is_some_and(|u| u.active),
            "value": d.owner,
        });
        v
    }
}

/// A page of API v2's list: `data` (an empty list when nothing matches) and
/// `additional_data.next_cursor` (null on the last page).
pub(super) fn v2_page(data: Vec<Value>, next_cursor: Option<String>) -> Response {
    Json(json!({
        "success": true,
        "data": data,
        "additional_data": { "next_cursor": next_cursor },
    }))
    .into_response()
}

/// A cursor: the opaque marker of the first item of the next page (its sort key and id).
pub(super) fn encode_cursor(key: &str, id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([key, id]).to_string())
}

pub(super) fn decode_cursor(cursor: &str) -> Result<(String, i64), ApiError> {
    let bad = || ApiError::bad_request("cursor is not a cursor this endpoint gave");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let (key, id): (String, i64) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((key, id))
}

// ---------------------------------------------------------------------------------------------
// Reading requests

/// The caller's token: the `x-api-token` header (current docs), `Authorization: Bearer`
/// (OAuth), or the `api_token` query parameter (the v1 definition's scheme, still accepted).
pub(super) fn request_token(uri: &Uri, headers: &HeaderMap) -> Option<Token> {
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).filter(|t| !t.is_empty()) {
        return Some(Token::from(t));
    }
    if let Some(t) = bearer(headers) {
        return Some(t);
    }
    Params::from_uri(uri).and_then(|p| p.get(TOKEN_PARAM).map(Token::from))
}

pub(super) fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {what} id {raw:?}")))
}

pub(super) fn flag_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        _ => None,
    }
}

/// The operation's query parameters, checked against the ones its definition has: any other
/// (but the token) is a 400, and so is one given twice.
pub(super) struct Query<'a> {
    params: &'a Params,
}

impl<'a> Query<'a> {
    pub(super) fn only(params: &'a Params, known: &[&str]) -> Result<Self, ApiError> {
        for (k, _) in params.pairs() {
            if k != TOKEN_PARAM && !known.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("Unknown parameter \"{k}\"")));
            }
            if params.all(k).len() > 1 {
                return Err(ApiError::bad_request(format!("Parameter \"{k}\" is given more than once")));
            }
        }
        Ok(Query { params })
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a str> {
        self.params.get(key)
    }

    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|raw| raw.parse::<i64>().map_err(|_| ApiError::bad_request(format!("{key} must be an integer"))))
            .transpose()
    }

    /// A comma-separated list whose every item is one of `allowed`.
    pub(super) fn list_of(&self, key: &str, allowed: &[&str]) -> Result<Option<Vec<&'a str>>, ApiError> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        let items: Vec<&str> = raw.split(',').map(str::trim).collect();
        if let Some(bad) = items.iter().find(|i| !allowed.contains(i)) {
            return Err(ApiError::bad_request(format!("{key}: {bad:?} is not one of {}", allowed.join(", "))));
        }
        Ok(Some(items))
    }

    /// One of `allowed`.
    pub(super) fn one_of(&self, key: &str, allowed: &[&'static str]) -> Result<Option<&'static str>, ApiError> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        allowed
            .iter()
            .copied()
            .find(|a| *a == raw)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be one of {}", allowed.join(", "))))
    }

    /// An RFC 3339 time, in Unix milliseconds.
    pub(super) fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|raw| {
                DateTime::parse_from_rfc3339(raw)
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| ApiError::bad_request(format!("{key} must be an RFC 3339 time")))
            })
            .transpose()
    }
}

/// Typed access to body fields; `null` counts as absent. Wrong types are 400s naming the field.
pub(super) struct Fields<'a>(pub(super) &'a Map<String, Value>);

impl Fields<'_> {
    /// Refuses a field the operation's schema does not have.
    pub(super) fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!("Unknown field \"{k}\" in the request body"))),
            None => Ok(()),
        }
    }

    pub(super) fn present(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
        }
    }

    /// A JSON boolean (the definitions' `type: boolean`).
    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a boolean"))),
        }
    }

    pub(super) fn id(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.present(key)
            .map(|v| {
                v.as_i64()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| ApiError::bad_request(format!("{key} must be a positive integer")))
            })
            .transpose()
    }

    pub(super) fn number(&self, key: &str) -> Result<Option<Number>, ApiError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a number"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// v1 offset pagination

#[derive(Clone, Copy, Debug)]
pub(super) struct PageReq {
    pub(super) start: usize,
    pub(super) limit: usize,
}

impl PageReq {
    pub(super) fn parse(q: &Query) -> Result<Self, ApiError> {
        let start = match q.get("start") {
            None | Some("") => 0,
            Some(s) => s.parse::<usize>().map_err(|_| ApiError::bad_request("start must be a non-negative integer"))?,
        };
        let limit = match q.get("limit") {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|l| *l >= 1)
                .ok_or_else(|| ApiError::bad_request("limit must be a positive integer"))?
                .min(MAX_LIMIT),
        };
        Ok(PageReq { start, limit })
    }

    /// The page of `items`, rendered, in the list envelope: `additional_data.pagination` has
    /// `start`, `limit` and `more_items_in_collection` (no `next_start` in these operations).
    /// An empty page is an empty list: the definitions' `data` is an array, not nullable.
    pub(super) fn respond<T>(self, items: &[T], render: impl Fn(&T) -> Value) -> Response {
        let page: Vec<Value> = items.iter().skip(self.start).take(self.limit).map(render).collect();
        let more = self.start.saturating_add(page.len()) < items.len();
        Json(json!({
            "success": true,
            "data": page,
            "additional_data": { "pagination": {
                "start": self.start,
                "limit": self.limit,
                "more_items_in_collection": more,
            }},
        }))
        .into_response()
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// How Pipedrive renders rate-limit decisions: `X-RateLimit-Reset` is the number of seconds
/// left in the window ("the remaining window before the rate limit resets", example `2`).
pub struct PipedriveLimits;

impl PipedriveLimits {
    fn put(headers: &mut HeaderMap, d: &Decision, reset_secs: i64) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset_secs));
        if let Some(left) = d.daily_remaining {
            headers.insert("x-daily-requests-left", HeaderValue::from(left));
        }
    }
}

impl RateLimitStyle for PipedriveLimits {
    fn headers(d: &Decision, now_ms: i64, headers: &mut HeaderMap) {
        // Whole seconds, rounded up: a window with 300 ms left says 1, never 0.
        let left = (d.reset_at_ms - now_ms).max(1);
        Self::put(headers, d, (left + 999) / 1000);
    }

    /// A 429: the seconds until a request will be taken again (the window's end, or the UTC
    /// day's when the daily budget is spent); no `Retry-After`, as Pipedrive sends none.
    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response =
            ApiError { status: StatusCode::TOO_MANY_REQUESTS, error: "Rate limit exceeded".into(), with_info: false }
                .into_response();
        Self::put(response.headers_mut(), d, d.retry_after_secs(now_ms));
        response
    }
}

#[cfg(test)]
mod tests;
