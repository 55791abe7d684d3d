//! The JSON Calendly sends and accepts: resources whose identifiers are full URIs, the
//! collection envelope with its opaque cursors, the `{"title", "message", "details"}` errors,
//! and the rate-limit headers.
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes Calendly's API down a second time, from the vendor's definition (the speakeasy SDK's
//! models in `../shared/vendor-specs/calendly/`; docs/vendors/calendly.md), so that a
//! misunderstanding of it written once cannot pass both sides' tests.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::model::{Invitation, Membership, User};
use super::{State, VENDOR};
use crate::extract::{self, BodyError, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};
use crate::Config;

const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;

/// The query string; a malformed one is a Calendly-shaped 400.
pub(super) type Params = extract::Params<ApiError>;

// ---------------------------------------------------------------------------------------------
// Errors

/// A Calendly error: `{"title", "message", "details"?}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) title: &'static str,
    pub(super) message: String,
    pub(super) details: Vec<(String, String)>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, title, message: message.into(), details: Vec::new() }
    }

    pub(super) fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid Argument",
            message: "The supplied parameters are invalid.".into(),
            details: vec![(parameter.to_owned(), message.into())],
        }
    }

    pub(super) fn unauthenticated() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthenticated", "The access token is invalid")
    }

    pub(super) fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Permission Denied", "You do not have permission to access this resource.")
    }

    pub(super) fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found", "The server could not find the requested resource.")
    }

    pub(super) fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => ApiError::unauthenticated(),
            403 => ApiError::forbidden(),
            404 => ApiError::not_found(),
            400 => ApiError::new(status, "Invalid Argument", "The supplied parameters are invalid."),
            s if s >= 500 => ApiError::new(
                status,
                "Internal Server Error",
                "The server encountered an unexpected condition that prevented it from fulfilling the request.",
            ),
            _ => ApiError::new(status, "Error", status.canonical_reason().unwrap_or("Error")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "title": self.title, "message": self.message });
        if !self.details.is_empty() {
            body["details"] = self.details.iter().map(|(p, m)| json!({ "parameter": p, "message": m })).collect();
        }
        (self.status, Json(body)).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn resource(value: Value) -> Response {
    Json(json!({ "resource": value })).into_response()
}

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "Invalid Argument", "The query string is malformed.")
    }
}

/// An empty body is malformed here (see [`extract::Empty`]).
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotAnObject => ApiError::invalid("body", "must be a JSON object"),
            BodyError::Malformed => ApiError::invalid("body", "is not valid JSON"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resources as shown

pub(super) fn org_uri(base: &str, uuid: &str) -> String {
    format!("{base}/organizations/{uuid}")
}

pub(super) fn user_uri(base: &str, uuid: &str) -> String {
    format!("{base}/users/{uuid}")
}

pub(super) fn membership_uri(base: &str, uuid: &str) -> String {
    format!("{base}/organization_memberships/{uuid}")
}

pub(super) fn invitation_uri(base: &str, org: &str, uuid: &str) -> String {
    format!("{base}/organizations/{org}/invitations/{uuid}")
}

/// The resources carry exactly the fields of the definition's models (the speakeasy SDK's
/// `shared.User`, `OrganizationMembership`, `OrganizationMembershipUser`,
/// `OrganizationInvitation`), each a string where the model has one.
impl State {
    /// `shared.User`. `current_organization` is null for an account outside the organization
    /// (the model has a string; the simulator's way to show a token whose user was removed).
    pub(super) fn user_json(&self, base: &str, u: &User) -> Value {
        let mut v = self.nested_user_json(base, u);
        v["current_organization"] =
            self.membership_of(&u.uuid).map_or(Value::Null, |_| org_uri(base, &self.org_uuid).into());
        v
    }

    /// `shared.OrganizationMembershipUser`: a user as nested in a membership.
    pub(super) fn nested_user_json(&self, base: &str, u: &User) -> Value {
        json!({
            "uri": user_uri(base, &u.uuid),
            "name": u.name,
            "slug": u.slug,
            "email": u.email,
            "scheduling_url": format!("{base}/scheduling/{}", u.slug),
            "timezone": u.timezone,
            "avatar_url": format!("{base}/avatars/{}.png", u.uuid),
            "created_at": u.created_at,
            "updated_at": u.updated_at,
        })
    }

    pub(super) fn membership_json(&self, base: &str, m: &Membership) -> Value {
        let user = &self.users[&m.user];
        json!({
            "uri": membership_uri(base, &m.uuid),
            "role": m.role.as_str(),
            "user": self.nested_user_json(base, user),
            "organization": org_uri(base, &self.org_uuid),
            "created_at": m.created_at,
            "updated_at": m.updated_at,
        })
    }

    pub(super) fn invitation_json(&self, base: &str, i: &Invitation) -> Value {
        let mut v = json!({
            "uri": invitation_uri(base, &self.org_uuid, &i.uuid),
            "organization": org_uri(base, &self.org_uuid),
            "email": i.email,
            "status": i.status.as_str(),
            "created_at": i.created_at,
            "updated_at": i.updated_at,
            "last_sent_at": i.last_sent_at,
        });
        if let Some(user) = &i.user {
            v["user"] = user_uri(base, user).into();
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Reading requests

/// `http://HOST/calendly`, from the `Host` the caller used.
pub(super) fn request_base(headers: &HeaderMap, config: &Config) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| config.listen.to_string(), str::to_owned);
    format!("http://{host}{}", VENDOR.prefix())
}

/// Where a full URI is expected: a bare UUID (or anything that is not an absolute http(s) URI)
/// is an Invalid Argument.
pub(super) fn expect_uri<'a>(parameter: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(r) if r.contains('/') && !r.starts_with('/') => Ok(value),
        _ => Err(ApiError::invalid(parameter, "must be a valid URI (a full resource URI, not a bare UUID)")),
    }
}

/// The `email` filter of the two lists, lower-cased for a case-insensitive exact match.
pub(super) fn email_filter(params: &Params) -> Result<Option<String>, ApiError> {
    match params.get("email") {
        None => Ok(None),
        Some(e) if e.trim().is_empty() => Err(ApiError::invalid("email", "must not be empty")),
        Some(e) => Ok(Some(e.to_lowercase())),
    }
}

/// Percent-encodes a query component (everything but RFC 3986 unreserved characters).
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pagination

pub(super) const TOKEN_SALT: u64 = 0x5DEE_CE66_D1CE_4E5B;

/// Where a page starts: after an item, before an item, or at the beginning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cursor {
    Start,
    After(u64),
    Before(u64),
}

/// Opaque page tokens, bound to one list (`m` memberships, `i` invitations).
pub(super) fn encode_token(list: char, cursor: Cursor) -> String {
    let (dir, seq) = match cursor {
        Cursor::After(s) => ('n', s),
        Cursor::Before(s) => ('p', s),
        Cursor::Start => ('n', 0),
    };
    format!("{list}{dir}{:016x}", seq ^ TOKEN_SALT)
}

pub(super) fn decode_token(list: char, token: &str) -> Option<Cursor> {
    let mut chars = token.chars();
    if chars.next()? != list {
        return None;
    }
    let dir = chars.next()?;
    let hex = chars.as_str();
    if hex.len() != 16 {
        return None;
    }
    let seq = u64::from_str_radix(hex, 16).ok()? ^ TOKEN_SALT;
    match dir {
        'n' => Some(Cursor::After(seq)),
        'p' => Some(Cursor::Before(seq)),
        _ => None,
    }
}

pub(super) struct PageReq {
    pub(super) list: char,
    pub(super) count: usize,
    pub(super) cursor: Cursor,
}

impl PageReq {
    pub(super) fn parse(list: char, params: &Params) -> Result<Self, ApiError> {
        let count = match params.get("count") {
            None => DEFAULT_COUNT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|c| (1..=MAX_COUNT).contains(c))
                .ok_or_else(|| ApiError::invalid("count", format!("must be an integer from 1 to {MAX_COUNT}")))?,
        };
        let cursor = match params.get("page_token") {
            None | Some("") => Cursor::Start,
            Some(raw) => decode_token(list, raw).ok_or_else(|| ApiError::invalid("page_token", "is invalid"))?,
        };
        Ok(PageReq { list, count, cursor })
    }

    /// One page of `items` (in `seq` order) in Calendly's collection envelope.
    pub(super) fn respond<T>(
        &self,
        items: &[&T],
        seq: impl Fn(&T) -> u64,
        render: impl Fn(&T) -> Value,
        base: &str,
        path: &str,
        params: &Params,
    ) -> Response {
        let page: Vec<&T> = match self.cursor {
            Cursor::Start => items.iter().take(self.count).copied().collect(),
            Cursor::After(after) => items.iter().filter(|i| seq(i) > after).take(self.count).copied().collect(),
            Cursor::Before(before) => {
                let earlier: Vec<&T> = items.iter().filter(|i| seq(i) < before).copied().collect();
                earlier[earlier.len().saturating_sub(self.count)..].to_vec()
            }
        };
        let next = page.last().map(|l| seq(l)).filter(|last| items.iter().any(|i| seq(i) > *last));
        let previous = page.first().map(|f| seq(f)).filter(|first| items.iter().any(|i| seq(i) < *first));
        let next_token = next.map(|s| encode_token(self.list, Cursor::After(s)));
        let previous_token = previous.map(|s| encode_token(self.list, Cursor::Before(s)));
        let link = |token: &Option<String>| -> Value {
            match token {
                None => Value::Null,
                Some(t) => {
                    let mut query: Vec<String> = params
                        .pairs()
                        .iter()
                        .filter(|(k, _)| k != "page_token" && k != "count")
                        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                        .collect();
                    query.insert(0, format!("count={}", self.count));
                    query.push(format!("page_token={}", encode(t)));
                    format!("{base}{path}?{}", query.join("&")).into()
                }
            }
        };
        let collection: Vec<Value> = page.iter().map(|i| render(i)).collect();
        Json(json!({
            "collection": collection,
            "pagination": {
                "count": collection.len(),
                "next_page": link(&next_token),
                "next_page_token": next_token,
                "previous_page": link(&previous_token),
                "previous_page_token": previous_token,
            },
        }))
        .into_response()
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// How Calendly renders rate-limit decisions (developer.calendly.com, "Rate Limits"): on every
/// answer `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`, the seconds
/// until the window resets. The documented 429 carries these three and no `Retry-After`, so
/// neither does ours: a client must read `X-RateLimit-Reset`.
pub struct CalendlyLimits;

impl RateLimitStyle for CalendlyLimits {
    fn headers(d: &Decision, now_ms: i64, headers: &mut HeaderMap) {
        let reset_in = ((d.reset_at_ms - now_ms).max(0) + 999) / 1000;
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset_in));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "You have exceeded the rate limit for this access token. Please wait before retrying.",
        )
        .into_response();
        Self::headers(d, now_ms, response.headers_mut());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_list() {
        for cursor in [Cursor::After(7), Cursor::Before(123_456)] {
            let t = encode_token('m', cursor);
            assert_eq!(decode_token('m', &t), Some(cursor));
            assert_eq!(decode_token('i', &t), None);
        }
        assert_eq!(decode_token('m', "mn123"), None);
        assert_eq!(decode_token('m', "garbage-garbage-garbage"), None);
    }

    #[test]
    fn bare_uuids_are_not_uris() {
        assert!(expect_uri("organization", "BBBBBBBBBBBBBBBB").is_err());
        assert!(expect_uri("organization", "http://").is_err());
        assert!(expect_uri("organization", "http://h:1/calendly/organizations/B").is_ok());
    }
}
