//! The JSON CircleCI sends and accepts: `{"message"}` errors, users as shown, the `items` /
//! `next_page_token` lists and their cursor tokens, the caller's token, and the rate-limit
//! headers.
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes CircleCI's API down a second time, from the vendor's documentation (docs/vendors/circleci.md), so that a misunderstanding
//! of it written once cannot pass both sides' tests.

use std::ops::Bound;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::model::User;
use super::State;
use crate::extract::{self, basic, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};
use crate::token::Token;

const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;
/// Page tokens are cursors, lightly disguised so that nobody mistakes them for offsets.
const PAGE_TOKEN_MASK: u64 = 0x9e37_79b9_7f4a_7c15;

/// The query string; a malformed one is a CircleCI-shaped 400.
pub(super) type Params = extract::Params<ApiError>;

// ---------------------------------------------------------------------------------------------
// Errors and users as shown

/// A CircleCI error: `{"message": "..."}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    pub(super) fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Not found.")
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "You must log in first.")
    }

    pub(super) fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Permission denied: this requires an organization admin.")
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "message": self.message }))).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::bad_request("Malformed query string.")
    }
}

impl State {
    /// A user as `/me` and `/user/{id}` show it.
    pub(super) fn user_json(u: &User) -> Value {
        json!({ "id": u.id, "login": u.login, "name": u.name, "avatar_url": u.avatar_url })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading requests

/// The caller's token: `Circle-Token`, else the username of HTTP Basic auth.
pub(super) fn request_token(headers: &HeaderMap) -> Option<Token> {
    if let Some(v) = headers.get("circle-token") {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty()).map(Token::from);
    }
    let decoded = basic(headers)?;
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| Token::from(user))
}

// ---------------------------------------------------------------------------------------------
// Pagination

#[derive(Clone, Copy, Debug)]
pub(super) struct PageReq {
    /// Serve items strictly after this position.
    pub(super) after: Option<u64>,
    pub(super) size: usize,
}

impl PageReq {
    pub(super) fn parse(params: &Params) -> Result<Self, ApiError> {
        let after = match params.get("page-token") {
            None | Some("") => None,
            Some(t) => Some(decode_page_token(t).ok_or_else(|| ApiError::bad_request("Invalid page-token."))?),
        };
        let size = match params.get("page-size") {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::bad_request("page-size must be a positive integer."))?
                .min(MAX_PAGE_SIZE),
        };
        Ok(PageReq { after, size })
    }

    /// The positions this page may start from.
    pub(super) fn range(self) -> (Bound<u64>, Bound<u64>) {
        (self.after.map_or(Bound::Unbounded, Bound::Excluded), Bound::Unbounded)
    }

    /// One page of `items` (ordered by position), rendered, in CircleCI's list envelope.
    pub(super) fn respond<'a, T: 'a>(
        self,
        items: impl Iterator<Item = (u64, &'a T)>,
        render: impl Fn(&T) -> Option<Value>,
    ) -> Response {
        let mut page = Vec::with_capacity(self.size);
        let mut last = None;
        let mut more = false;
        for (pos, item) in items.filter(|(pos, _)| self.after.is_none_or(|a| *pos > a)) {
            if page.len() == self.size {
                more = true;
                break;
            }
            if let Some(v) = render(item) {
                page.push(v);
                last = Some(pos);
            }
        }
        let next = if more { last.map(encode_page_token) } else { None };
        Json(json!({ "items": page, "next_page_token": next })).into_response()
    }
}

pub(super) fn encode_page_token(position: u64) -> String {
    format!("{:016x}", position ^ PAGE_TOKEN_MASK)
}

pub(super) fn decode_page_token(token: &str) -> Option<u64> {
    (token.len() == 16).then_some(())?;
    u64::from_str_radix(token, 16).ok().map(|v| v ^ PAGE_TOKEN_MASK)
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// How CircleCI renders rate-limit decisions: `X-RateLimit-*` (Reset in seconds from now),
/// and a 429 without `Retry-After`.
pub struct CircleLimits;

impl RateLimitStyle for CircleLimits {
    fn headers(d: &Decision, now_ms: i64, headers: &mut HeaderMap) {
        let reset_in = ((d.reset_at_ms - now_ms).max(0) + 999) / 1000;
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset_in));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded").into_response();
        Self::headers(d, now_ms, response.headers_mut());
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;
    use base64::Engine as _;

    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        for pos in [0, 1, 42, u64::MAX] {
            assert_eq!(decode_page_token(&encode_page_token(pos)), Some(pos));
        }
        assert_eq!(decode_page_token("20"), None);
        assert_eq!(decode_page_token("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn basic_auth_username_is_the_token() {
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("tok:");
        h.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        assert_eq!(request_token(&h).as_ref().map(Token::expose), Some("tok"));
        h.insert("circle-token", "other".parse().unwrap());
        assert_eq!(request_token(&h).as_ref().map(Token::expose), Some("other"), "Circle-Token wins");
    }
}
