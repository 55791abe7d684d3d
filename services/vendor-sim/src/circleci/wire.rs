//! The JSON CircleCI sends and accepts: `{"message"}` errors, users as shown, the query
//! parameters each operation of the definition takes, the `items` / `next_page_token` lists and
//! their cursor tokens, the caller's token, and the rate-limit headers.
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes CircleCI's API down a second time, from the vendor's published definition
//! (`https://circleci.com/api/v2/openapi.json`; docs/vendors/circleci.md), so that a
//! misunderstanding of it written once cannot pass both sides' tests.

use std::ops::Bound;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::model::User;
use super::State;
use crate::extract::{self, basic, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};
use crate::token::Token;

const DEFAULT_PAGE_SIZE: usize = 20;
/// The definition names no maximum for `limit`: larger values are served 100 at a time.
const MAX_PAGE_SIZE: usize = 100;
/// The definition's `api_key_query` (deprecated, still accepted by every operation).
pub(super) const QUERY_TOKEN: &str = "circle-token";
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

    /// `404_entity_not_found`, with the definition's example message (`Organization does not
    /// exist.`, `Group does not exist.`, `User does not exist.`).
    pub(super) fn no_such(entity: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("{entity} does not exist."))
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "You must log in first.")
    }

    /// `403_permission_denied`'s default message.
    pub(super) fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Permission denied.")
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

/// The caller's token, as the definition's security schemes allow it: `Circle-Token`
/// (`api_key_header`), else the username of HTTP Basic auth (`basic_auth`), else the deprecated
/// `circle-token` query parameter (`api_key_query`).
pub(super) fn request_token(headers: &HeaderMap, uri: &Uri) -> Option<Token> {
    if let Some(v) = headers.get("circle-token") {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty()).map(Token::from);
    }
    if let Some(decoded) = basic(headers) {
        let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
        return (!user.is_empty()).then(|| Token::from(user));
    }
    let params = Params::from_uri(uri)?;
    params.get(QUERY_TOKEN).map(str::trim).filter(|t| !t.is_empty()).map(Token::from)
}

// ---------------------------------------------------------------------------------------------
// The query parameters of each operation

/// A query parameter's type in the definition.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    /// `type: integer`, at least 1 (a page size).
    PositiveInt,
    Str,
}

/// getCurrentUser, getCollaborations, getUser, getGroup: no query parameters.
pub(super) const NONE: &[(&str, Kind)] = &[];
/// getOrganizationGroups: `limit` and `page-token` (components.parameters.limit, page_token).
pub(super) const GROUPS: &[(&str, Kind)] = &[("limit", Kind::PositiveInt), ("page-token", Kind::Str)];

impl Params {
    /// Refuses what the operation does not take: an unknown or repeated parameter, or a value
    /// of the wrong type (400 `{"message"}`). `circle-token` is every operation's.
    pub(super) fn declared(&self, declared: &[(&str, Kind)]) -> Result<(), ApiError> {
        for (key, value) in self.pairs() {
            if self.all(key).len() > 1 {
                return Err(ApiError::bad_request(format!("{key} may be given once.")));
            }
            if key == QUERY_TOKEN {
                continue;
            }
            let Some((_, kind)) = declared.iter().find(|(name, _)| name == key) else {
                let known: Vec<&str> = declared.iter().map(|(name, _)| *name).collect();
                let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                return Err(ApiError::bad_request(format!(
                    "Unknown query parameter {key:?} (this operation takes: {known})."
                )));
            };
            if let Kind::PositiveInt = kind {
                if value.parse::<u64>().ok().filter(|n| *n >= 1).is_none() {
                    return Err(ApiError::bad_request(format!("{key} must be a positive integer.")));
                }
            }
        }
        Ok(())
    }
}

/// A path parameter of `format: uuid` (getUser's `id`, getGroup's `group_id`), lower-cased;
/// anything else is a 400.
pub(super) fn uuid_param(name: &str, raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::bad_request(format!("{name} must be a UUID.")))
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
    /// `page-token` and the page size in `size_param` (`limit` for getOrganizationGroups),
    /// already [`declared`](Params::declared).
    pub(super) fn parse(params: &Params, size_param: &str) -> Result<Self, ApiError> {
        let after = match params.get("page-token") {
            None | Some("") => None,
            Some(t) => Some(decode_page_token(t).ok_or_else(|| ApiError::bad_request("Invalid page-token."))?),
        };
        let size = match params.get(size_param) {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::bad_request(format!("{size_param} must be a positive integer.")))?
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
        let uri: Uri = "/me?circle-token=query".parse().unwrap();
        assert_eq!(request_token(&HeaderMap::new(), &uri).as_ref().map(Token::expose), Some("query"));
        h.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        assert_eq!(request_token(&h, &uri).as_ref().map(Token::expose), Some("tok"));
        h.insert("circle-token", "other".parse().unwrap());
        assert_eq!(request_token(&h, &uri).as_ref().map(Token::expose), Some("other"), "Circle-Token wins");
    }

    fn params(query: &str) -> Params {
        Params::from_uri(&format!("/x?{query}").parse().unwrap()).unwrap()
    }

    #[test]
    fn each_operation_takes_only_its_own_parameters() {
        assert!(params("").declared(NONE).is_ok());
        assert!(params("circle-token=t").declared(NONE).is_ok(), "the definition's api_key_query");
        assert!(params("limit=5&page-token=x").declared(GROUPS).is_ok());
        for (query, declared) in [
            ("page-size=5", GROUPS),
            ("limit=0", GROUPS),
            ("limit=x", GROUPS),
            ("limit=1&limit=2", GROUPS),
            ("x=1", NONE),
        ] {
            let e = params(query).declared(declared).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{query}");
        }
    }

    #[test]
    fn uuid_path_parameters_are_checked_and_lower_cased() {
        assert_eq!(
            uuid_param("id", "6BCDF7AF-08C6-4694-B35A-04FDAFE03BEF").unwrap(),
            "6bcdf7af-08c6-4694-b35a-04fdafe03bef"
        );
        assert_eq!(uuid_param("id", "sim-admin").unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
