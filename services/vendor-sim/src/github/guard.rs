//! The middleware in front of every GitHub handler: User-Agent, token, API version, the primary
//! and secondary rate limits, the operation's query parameters; after the handler, `ETag` /
//! `If-None-Match` on every `GET` (a 304 does not count against the primary limit) and the
//! `x-ratelimit-*` headers.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::operations::{check_query, find};
use super::state::Verdict;
use super::wire::{self, ApiError, GithubLimits, Params, API_VERSION};
use super::VENDOR;
use crate::extract::MalformedQuery;
use crate::ratelimit::RateLimitStyle;
use crate::sim::{now_ms, Sim};
use crate::token::Token;

/// The API root the caller used, for URLs in answers and `Link`.
#[derive(Clone)]
pub(super) struct Base(pub(super) String);

/// The token of `Authorization: Bearer TOKEN` or `Authorization: token TOKEN` (both accepted
/// by GitHub for personal access tokens).
pub(super) fn request_token(headers: &HeaderMap) -> Option<Token> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    let token = token.trim();
    let scheme_ok = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    (scheme_ok && !token.is_empty()).then(|| Token::from(token))
}

/// User-Agent, auth, API version, rate limits, query; then ETag / 304 and the rate headers.
pub(super) async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let has_agent =
        req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).is_some_and(|v| !v.trim().is_empty());
    if !has_agent {
        // GitHub refuses requests without a User-Agent before anything else.
        return ApiError::forbidden(
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header \
             (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
        )
        .into_response();
    }
    let Some(token) = request_token(req.headers()) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "Requires authentication").into_response();
    };
    if let Some(v) = req.headers().get("x-github-api-version") {
        let v = v.to_str().unwrap_or_default();
        if v != API_VERSION {
            let message = format!("API version {v:?} is not supported by this simulator (only {API_VERSION}).");
            return ApiError::new(StatusCode::BAD_REQUEST, message).into_response();
        }
    }
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    let now = now_ms();
    let (caller, verdict, retry_after) = {
        let mut world = sim.lock();
        let gh = &mut world.tenants.github;
        let Some(caller) = gh.authenticate(token.expose()) else {
            return ApiError::new(StatusCode::UNAUTHORIZED, "Bad credentials").into_response();
        };
        let verdict = gh.limits.check(caller.user_id, write, now);
        (caller, verdict, gh.limits.secondary_retry_after_secs)
    };
    let decision = match verdict {
        Verdict::Allowed(d) => d,
        Verdict::Primary(d) => return wire::primary_exceeded(&d, now, Some(caller.user_id)),
        Verdict::Secondary(d) => return wire::secondary_exceeded(StatusCode::FORBIDDEN, &d, now, retry_after),
    };
    if let Err(e) = check_request_query(&req) {
        let mut response = e.into_response();
        GithubLimits::headers(&decision, now, response.headers_mut());
        return response;
    }
    let user_id = caller.user_id;
    let base = wire::request_base(req.headers(), &sim.config().listen.to_string());
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let is_get = req.method() == Method::GET;
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(Base(base));
    let response = next.run(req).await;
    let (mut response, decision) = if is_get && response.status() == StatusCode::OK {
        with_etag(response, if_none_match.as_deref(), &sim, user_id, now, decision).await
    } else {
        (response, decision)
    };
    GithubLimits::headers(&decision, now, response.headers_mut());
    response
}

/// Adds a weak `ETag` to a 200; answers 304 (no body) when the caller already has it, and
/// gives the request back to the primary limit, as GitHub does for conditional requests.
async fn with_etag(
    response: Response,
    if_none_match: Option<&str>,
    sim: &Sim,
    user_id: u64,
    now: i64,
    decision: crate::ratelimit::Decision,
) -> (Response, crate::ratelimit::Decision) {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), decision);
    };
    let etag = etag_of(&bytes);
    let matches = if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("W/\"0\""));
    if matches {
        let decision = {
            let mut world = sim.lock();
            let limits = &mut world.tenants.github.limits;
            limits.refund(user_id);
            limits.peek(Some(user_id), now)
        };
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        not_modified.headers_mut().insert(header::ETAG, etag_value);
        if let Some(link) = parts.headers.get(header::LINK) {
            not_modified.headers_mut().insert(header::LINK, link.clone());
        }
        return (not_modified, decision);
    }
    parts.headers.insert(header::ETAG, etag_value);
    (Response::from_parts(parts, Body::from(bytes)), decision)
}

pub(super) fn etag_of(bytes: &Bytes) -> String {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    format!("W/\"{:016x}\"", h.finish())
}

/// The request's query against its operation (`wire::OPERATIONS`).
fn check_request_query(req: &Request) -> Result<(), ApiError> {
    let Some(matched) = req.extensions().get::<MatchedPath>() else {
        return Ok(());
    };
    let route = matched.as_str().strip_prefix(VENDOR.prefix()).unwrap_or(matched.as_str());
    let Some(op) = find(req.method().as_str(), route) else {
        return Ok(());
    };
    let params = Params::from_uri(req.uri()).ok_or(MalformedQuery)?;
    check_query(op, &params)
}
