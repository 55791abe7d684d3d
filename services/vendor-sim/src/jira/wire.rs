//! The JSON Jira sends and accepts: users (privacy rules included), groups, page beans, the
//! `{"errorMessages", "errors"}` errors and SCIM's, the query parameters it reads, credentials,
//! and the rate-limit headers.
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes Jira's and SCIM's APIs down a second time, from the vendor's published definitions
//! (the Jira Cloud platform OpenAPI and Atlassian's "User provisioning" OpenAPI; see
//! docs/vendors/jira.md), so that a misunderstanding of them written once cannot pass both
//! sides' tests.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::model::{Group, User};
use super::{State, PRODUCTS};
use crate::extract::{self, basic, bearer, BodyError, MalformedQuery};
use crate::ratelimit::Decision;
use crate::sim::rfc3339_s;
use crate::token::Token;

/// How `self` links look; the host is the simulated site's, not the simulator's.
const SITE: &str = "https://sim.atlassian.net/rest/api/3";
const DEFAULT_PAGE: usize = 50;
const SCIM_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Atlassian's extension (`ScimUser` in the User provisioning definition), with `atlassianAccountId`.
pub(super) const SCIM_ATLASSIAN_EXT: &str = "urn:scim:schemas:extension:atlassian-external:1.0";
pub(super) const SCIM_LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub(super) const SCIM_PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

// ---------------------------------------------------------------------------------------------
// Errors

/// A Jira error response: `{"errorMessages": [...], "errors": {...}}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) messages: Vec<String>,
    pub(super) errors: Map<String, Value>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, messages: vec![message.into()], errors: Map::new() }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A validation error on one field: Jira puts these in `errors`, with no `errorMessages`.
    pub(super) fn field(field: &str, message: &str) -> Self {
        let mut errors = Map::new();
        errors.insert(field.to_owned(), message.into());
        ApiError { status: StatusCode::BAD_REQUEST, messages: Vec::new(), errors }
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Client must be authenticated to access this resource.")
    }

    pub(super) fn message(&self) -> String {
        let mut all = self.messages.clone();
        all.extend(self.errors.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())));
        all.join("; ")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({ "errorMessages": self.messages, "errors": self.errors }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"protected-by-api-token\""));
        }
        response
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

/// What the SCIM API answers a request without a valid API key: the definition's `Failure`
/// (`{"error", "traceId"}`), not a SCIM error.
pub(super) fn scim_unauthorized(message: &str) -> Response {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    (StatusCode::UNAUTHORIZED, Json(json!({ "error": message, "traceId": trace_id }))).into_response()
}

/// A SCIM error response (RFC 7644 §3.12; `ScimError` in the definition).
#[derive(Debug)]
pub(super) struct ScimError {
    pub(super) status: StatusCode,
    pub(super) detail: String,
    pub(super) scim_type: Option<&'static str>,
}

impl ScimError {
    pub(super) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ScimError { status, detail: detail.into(), scim_type: None }
    }

    pub(super) fn invalid(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError { status: StatusCode::BAD_REQUEST, detail: detail.into(), scim_type: Some(scim_type) }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [SCIM_ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = t.into();
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
        response
    }
}

pub(super) type ScimResult = Result<Response, ScimError>;

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::bad_request("malformed query string")
    }
}

/// Jira reads an empty body as `{}` (see [`extract::Empty`]).
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotAnObject => ApiError::bad_request("The request body must be a JSON object."),
            BodyError::Malformed => {
                ApiError::bad_request("Unexpected character in the request body: it is not valid JSON.")
            }
        }
    }
}

impl From<MalformedQuery> for ScimError {
    fn from(_: MalformedQuery) -> Self {
        ScimError::invalid("invalidValue", "malformed query string")
    }
}

/// Only a PATCH reads a SCIM body: something that is not an object has no `schemas` either.
impl From<BodyError> for ScimError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotAnObject => {
                ScimError::invalid("invalidSyntax", format!("schemas must contain {SCIM_PATCH_SCHEMA}"))
            }
            BodyError::Malformed => ScimError::invalid("invalidSyntax", "The body is not valid JSON"),
        }
    }
}

/// The query string; a malformed one is a Jira-shaped 400.
pub(super) type Params = extract::Params<ApiError>;

/// The query string of the SCIM API; a malformed one is a SCIM-shaped 400.
pub(super) type ScimParams = extract::Params<ScimError>;

/// The SCIM API's readings of the query string.
impl ScimParams {
    /// Only the operation's own query parameters: anything else is a 400 (`invalidSyntax`).
    pub(super) fn only(&self, allowed: &[&str]) -> Result<(), ScimError> {
        match self.pairs().iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ScimError::invalid(
                "invalidSyntax",
                format!("Unsupported query parameter {k} (this operation takes {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }
}

/// Jira's own readings of the query string.
impl Params {
    pub(super) fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("The query parameter '{key}' is required.")))
    }

    /// Only the operation's own query parameters (as its definition lists them): anything else
    /// is a 400 naming it.
    pub(super) fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.pairs().iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::bad_request(format!(
                "Unrecognized query parameter '{k}': this operation takes {}.",
                if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") }
            ))),
            None => Ok(()),
        }
    }

    /// A boolean parameter (`true`/`false`), `default` when absent.
    pub(super) fn boolean(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key).map(str::trim) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!("The '{key}' parameter must be true or false, not '{v}'."))),
        }
    }

    /// Users are identified by `accountId` only since Atlassian's GDPR changes.
    pub(super) fn refuse_legacy_user_ids(&self) -> Result<(), ApiError> {
        for legacy in ["username", "key", "userKey"] {
            if self.get(legacy).is_some() {
                return Err(ApiError::bad_request(format!(
                    "The '{legacy}' parameter is not supported: users are identified by accountId only (see the GDPR migration guide)."
                )));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reading requests

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Expand {
    pub(super) groups: bool,
    pub(super) application_roles: bool,
}

impl Expand {
    pub(super) fn parse(params: &Params) -> Self {
        let mut e = Expand::default();
        for part in params.all("expand").iter().flat_map(|v| v.split(',')) {
            match part.trim() {
                "groups" => e.groups = true,
                "applicationRoles" => e.application_roles = true,
                _ => {}
            }
        }
        e
    }
}

/// What an operation does with `maxResults` (default 50 everywhere).
#[derive(Clone, Copy, Debug)]
pub(super) enum PageLimit {
    /// Serves at most this many, whatever is asked: getAllUsers "limited to 1000"; findUsers
    /// "up to the thousandth user"; bulkGetGroups publishes no maximum (1000 is ours).
    Clamp(usize),
    /// getUsersFromGroup: "number should be between 1 and 50"; anything else is a 400.
    Between(usize, usize),
}

/// `startAt`/`maxResults`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Page {
    pub(super) start: usize,
    pub(super) max: usize,
}

impl Page {
    pub(super) fn parse(params: &Params, limit: PageLimit) -> Result<Self, ApiError> {
        // Both are integers in the definitions (`maxResults` an int32).
        let number = |key: &str, default: usize| -> Result<usize, ApiError> {
            match params.get(key).map(str::trim) {
                None | Some("") => Ok(default),
                Some(raw) => raw.parse::<u32>().ok().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                    ApiError::bad_request(format!("The '{key}' parameter must be a non-negative integer, not '{raw}'."))
                }),
            }
        };
        let start = number("startAt", 0)?;
        let asked = number("maxResults", DEFAULT_PAGE)?;
        let max = match limit {
            PageLimit::Clamp(most) => asked.min(most),
            PageLimit::Between(least, most) if (least..=most).contains(&asked) => asked,
            PageLimit::Between(least, most) => {
                return Err(ApiError::bad_request(format!(
                    "The 'maxResults' parameter must be between {least} and {most}, not {asked}."
                )))
            }
        };
        Ok(Page { start, max })
    }

    pub(super) fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = self.start.min(items.len());
        let end = start.saturating_add(self.max).min(items.len());
        &items[start..end]
    }

    /// A Jira page bean: `{self, nextPage?, maxResults, startAt, total, isLast, values}`;
    /// `query` is the request's other parameters, for the links.
    pub(super) fn bean(&self, path: &str, query: &str, values: Vec<Value>, total: usize) -> Value {
        let link = |start: usize| {
            let sep = if query.is_empty() { "" } else { "&" };
            format!("{SITE}{path}?{query}{sep}startAt={start}&maxResults={}", self.max)
        };
        let next = self.start.saturating_add(values.len());
        let is_last = next >= total;
        let mut bean = json!({
            "self": link(self.start),
            "maxResults": self.max,
            "startAt": self.start,
            "total": total,
            "isLast": is_last,
            "values": values,
        });
        if !is_last {
            bean["nextPage"] = link(next).into();
        }
        bean
    }
}

/// The request's query string without `startAt` and `maxResults`, as sent: the rest of a page
/// bean's `self` and `nextPage` links.
pub(super) fn query_without_paging(uri: &Uri) -> String {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !pair.is_empty() && key != "startAt" && key != "maxResults"
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A presented credential.
#[derive(Debug)]
pub(super) enum Credential {
    Basic { email: String, token: Token },
    Bearer(Token),
}

/// Bearer first, then Basic `email:api_token`.
pub(super) fn credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(token) = bearer(headers) {
        return Some(Credential::Bearer(token));
    }
    let text = basic(headers)?;
    let (email, token) = text.split_once(':')?;
    Some(Credential::Basic { email: email.to_owned(), token: Token::from(token) })
}

pub(super) fn limit_headers(d: &Decision, h: &mut HeaderMap) {
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    // "Near" is under a fifth of the budget left.
    let near = u64::from(d.remaining) * 5 < u64::from(d.limit);
    h.insert("x-ratelimit-nearlimit", HeaderValue::from_static(if near { "true" } else { "false" }));
}

// ---------------------------------------------------------------------------------------------
// Users and groups as shown

impl State {
    /// A `User` (getUser, findUsers, getAllUsers, createUser, getCurrentUser). A previously
    /// deleted user (no site access) reads inactive.
    pub(super) fn user_json(&self, u: &User, expand: Expand) -> Value {
        let mut v = self.user_details_json(u);
        v["locale"] = u.locale.clone().into();
        if expand.groups {
            let items: Vec<Value> = self.groups_of(&u.account_id).into_iter().map(group_name).collect();
            v["groups"] = json!({ "size": items.len(), "items": items });
        }
        if expand.application_roles {
            let items: Vec<Value> = u.products.iter().map(|k| json!({ "key": k, "name": product_name(k) })).collect();
            v["applicationRoles"] = json!({ "size": items.len(), "items": items });
        }
        v
    }

    /// A `UserDetails` (the values of getUsersFromGroup): a `User` without `locale` or expansions.
    pub(super) fn user_details_json(&self, u: &User) -> Value {
        let mut v = json!({
            "self": format!("{SITE}/user?accountId={}", u.account_id),
            "accountId": u.account_id,
            "accountType": u.account_type.as_str(),
            "avatarUrls": avatar_urls(&u.account_id),
            "displayName": u.display_name,
            "active": u.active && u.site_access,
            "timeZone": u.time_zone,
        });
        // Privacy: the definition says a hidden address "may be returned as null", but its schema
        // types `emailAddress` a string: a hidden address is left out, as an app account's (which
        // has none). Clients read null and absent alike.
        if let Some(shown) = u.shown_email() {
            v["emailAddress"] = shown.into();
        }
        v
    }

    /// A `ScimUser` with Atlassian's extension naming the account.
    pub(super) fn scim_json(&self, u: &User) -> Value {
        let scim_id = u.scim_id.as_deref().unwrap_or_default();
        let email = u.email.as_deref().unwrap_or_default();
        json!({
            "schemas": [SCIM_USER_SCHEMA, SCIM_ATLASSIAN_EXT],
            "id": scim_id,
            "userName": email,
            "emails": [{ "value": email, "type": "work", "primary": true }],
            "name": { "formatted": u.display_name },
            "displayName": u.display_name,
            "active": u.active,
            SCIM_ATLASSIAN_EXT: { "atlassianAccountId": u.account_id },
            "meta": {
                // The definition's `ScimMetadata.resourceType` enum: USER, GROUP, DIRECTORY.
                "resourceType": "USER",
                "created": rfc3339_s(u.created_ms),
                "lastModified": rfc3339_s(u.modified_ms),
                "location": format!("https://api.atlassian.com/scim/directory/{}/Users/{scim_id}", self.directory_id),
            },
        })
    }

    /// The 429 Jira sends: `Retry-After` in seconds, the reset as an ISO 8601 timestamp.
    pub(super) fn rate_limited(&self, d: &Decision, now_ms: i64, scim: bool) -> Response {
        let retry_after = self.retry_after_secs.map_or_else(|| d.retry_after_secs(now_ms), i64::from);
        let mut response = if scim {
            ScimError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests: rate limit exceeded").into_response()
        } else {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.").into_response()
        };
        let h = response.headers_mut();
        limit_headers(d, h);
        h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        if let Ok(v) = HeaderValue::from_str(&rfc3339_s(now_ms + retry_after * 1000)) {
            h.insert("x-ratelimit-reset", v);
        }
        h.insert("ratelimit-reason", HeaderValue::from_static("jira-burst-based"));
        response
    }
}

/// A `GroupName` (getUserGroups, `expand=groups`) or a `Group` (addUserToGroup's 201):
/// `groupId` is nullable, and a group Jira answers without one links by name.
pub(super) fn group_name(g: &Group) -> Value {
    let link = match g.shown_id() {
        Some(id) => format!("{SITE}/group?groupId={id}"),
        None => format!("{SITE}/group?groupname={}", g.name),
    };
    json!({ "name": g.name, "groupId": g.shown_id(), "self": link })
}

/// A `GroupDetails` (the values of bulkGetGroups).
pub(super) fn group_details(g: &Group) -> Value {
    json!({ "name": g.name, "groupId": g.shown_id() })
}

pub(super) fn product_name(key: &str) -> &str {
    PRODUCTS.iter().find(|(k, _)| *k == key).map_or(key, |(_, n)| n)
}

pub(super) fn unknown_product(p: &str) -> ApiError {
    let known: Vec<&str> = PRODUCTS.iter().map(|(k, _)| *k).collect();
    ApiError::field("products", &format!("'{p}' is not a product of this site (products: {})", known.join(", ")))
}

pub(super) fn avatar_urls(account_id: &str) -> Value {
    let url = |size: u32| format!("https://avatar-management.sim.example/{account_id}/{size}");
    json!({ "16x16": url(16), "24x24": url(24), "32x32": url(32), "48x48": url(48) })
}

pub(super) fn is_scim_path(path: &str) -> bool {
    path.starts_with("/directory/")
}
