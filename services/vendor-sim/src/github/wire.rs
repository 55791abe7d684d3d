//! The JSON GitHub sends and accepts, from its published definition
//! (`shared/vendors/tests/vendors/published/github/api.github.com.2022-11-28.excerpt.json`):
//! `basic-error` and `validation-error`, the schemas each answer uses (`simple-user`,
//! `public-user`, `private-user`, `team`, `organization-invitation`, `org-membership`,
//! `team-membership`), the operations and their query parameters, `per_page`/`page` with the
//! `Link` header, request bodies, and the `x-ratelimit-*` headers of GitHub's docs.
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes GitHub's API down a second time, so that one misunderstanding cannot pass both sides'
//! tests.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::model::{Invitation, OrgRole, Team, TeamRole, User};
use super::{ORG_ID, ORG_LOGIN};
use crate::extract::{self, BodyError, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};

pub(super) const DOCS: &str = "https://docs.github.com/rest";
const RATE_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
pub(super) const SECONDARY_MESSAGE: &str =
    "You have exceeded a secondary rate limit. Please wait a few minutes before \
     you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:SIM.";
/// The API version the definition describes; the only one the simulator serves.
pub(super) const API_VERSION: &str = "2022-11-28";
const DEFAULT_PER_PAGE: usize = 30;
pub(super) const MAX_PER_PAGE: usize = 100;

/// The query string; a malformed one is a GitHub-shaped 400.
pub(super) type Params = extract::Params<ApiError>;
pub(super) type ApiResult = Result<Response, ApiError>;

// ---------------------------------------------------------------------------------------------
// Errors

/// A GitHub error answer.
#[derive(Debug)]
pub(super) enum ApiError {
    /// `basic-error`: `{message, documentation_url, status}`.
    Basic { status: StatusCode, message: String },
    /// `validation-error` (422): `{message: "Validation Failed", documentation_url, errors}`.
    Validation { errors: Vec<Value> },
    /// A 422 that is only `{message, documentation_url}` (remove-outside-collaborator's).
    Unprocessable { message: String },
    /// A status without a body (the definition declares none: a team membership's 404).
    Bare(StatusCode),
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError::Basic { status, message: message.into() }
    }

    pub(super) fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Not Found")
    }

    pub(super) fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// An admin-only operation called by someone who is not an org owner.
    pub(super) fn must_be_admin(what: &str) -> Self {
        ApiError::forbidden(format!("You must be an admin to {what}."))
    }

    /// One validation error item: `{resource, field, code, message?}`.
    pub(super) fn invalid(resource: &str, field: &str, code: &str, message: Option<String>) -> Self {
        let mut item = json!({ "resource": resource, "field": field, "code": code });
        if let Some(m) = message {
            item["message"] = m.into();
        }
        ApiError::Validation { errors: vec![item] }
    }

    /// A `custom` validation error with a message (GitHub's wording for business refusals).
    pub(super) fn custom(resource: &str, field: &str, message: impl Into<String>) -> Self {
        ApiError::invalid(resource, field, "custom", Some(message.into()))
    }

    pub(super) fn status(&self) -> StatusCode {
        match self {
            ApiError::Basic { status, .. } => *status,
            ApiError::Validation { .. } | ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Bare(status) => *status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self {
            ApiError::Basic { message, .. } => json!({
                "message": message,
                "documentation_url": DOCS,
                "status": status.as_u16().to_string(),
            }),
            ApiError::Validation { errors } => json!({
                "message": "Validation Failed",
                "errors": errors,
                "documentation_url": DOCS,
            }),
            ApiError::Unprocessable { message } => json!({ "message": message, "documentation_url": DOCS }),
            ApiError::Bare(_) => return status.into_response(),
        };
        (status, Json(body)).into_response()
    }
}

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "Malformed query string")
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Malformed => ApiError::new(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
            BodyError::NotAnObject => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request.\n\nThe body must be a JSON object.")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The answers' schemas

/// The API root as the caller reached it (`http://HOST:PORT/github`): URLs in answers and in
/// `Link` point back at the simulator.
pub(super) fn request_base(headers: &HeaderMap, fallback: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or(fallback);
    format!("http://{host}{}", super::VENDOR.prefix())
}

/// `simple-user` (also the items of list-members, list-outside-collaborators and, as
/// `team-member`, list-members-in-org).
pub(super) fn simple_user(base: &str, u: &User) -> Value {
    let url = format!("{base}/users/{}", u.login);
    json!({
        "login": u.login,
        "id": u.id,
        "node_id": format!("U_sim{}", u.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", u.id),
        "gravatar_id": "",
        "url": url,
        "html_url": format!("https://github.com/{}", u.login),
        "followers_url": format!("{url}/followers"),
        "following_url": format!("{url}/following{{/other_user}}"),
        "gists_url": format!("{url}/gists{{/gist_id}}"),
        "starred_url": format!("{url}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{url}/subscriptions"),
        "organizations_url": format!("{url}/orgs"),
        "repos_url": format!("{url}/repos"),
        "events_url": format!("{url}/events{{/privacy}}"),
        "received_events_url": format!("{url}/received_events"),
        "type": "User",
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// `public-user` (additionalProperties: false): users/get-by-username.
pub(super) fn public_user(base: &str, u: &User) -> Value {
    let mut v = simple_user(base, u);
    let extra = json!({
        "name": u.name,
        "company": null,
        "blog": "",
        "location": null,
        "email": u.email,
        "hireable": null,
        "bio": null,
        "twitter_username": null,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": u.created_at,
        "updated_at": u.created_at,
    });
    if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

/// `private-user`: users/get-authenticated, the token's own account.
pub(super) fn private_user(base: &str, u: &User) -> Value {
    let mut v = public_user(base, u);
    v["user_view_type"] = "private".into();
    for key in ["private_gists", "total_private_repos", "owned_private_repos", "disk_usage", "collaborators"] {
        v[key] = 0.into();
    }
    v["two_factor_authentication"] = u.two_factor.into();
    v
}

/// `organization-simple` of `sim-org`.
pub(super) fn organization(base: &str) -> Value {
    let url = format!("{base}/orgs/{ORG_LOGIN}");
    json!({
        "login": ORG_LOGIN,
        "id": ORG_ID,
        "node_id": format!("O_sim{ORG_ID}"),
        "url": url,
        "repos_url": format!("{url}/repos"),
        "events_url": format!("{url}/events"),
        "hooks_url": format!("{url}/hooks"),
        "issues_url": format!("{url}/issues"),
        "members_url": format!("{url}/members{{/member}}"),
        "public_members_url": format!("{url}/public_members{{/member}}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{ORG_ID}?v=4"),
        "description": "The simulator's organization",
    })
}

/// `org-membership`.
pub(super) fn org_membership(base: &str, u: &User, state: &str, role: OrgRole) -> Value {
    json!({
        "url": format!("{base}/orgs/{ORG_LOGIN}/memberships/{}", u.login),
        "state": state,
        "role": role.as_str(),
        "organization_url": format!("{base}/orgs/{ORG_LOGIN}"),
        "organization": organization(base),
        "user": simple_user(base, u),
    })
}

fn team_url(base: &str, id: u64) -> String {
    format!("{base}/organizations/{ORG_ID}/team/{id}")
}

/// `team`.
pub(super) fn team(base: &str, t: &Team) -> Value {
    let url = team_url(base, t.id);
    json!({
        "id": t.id,
        "node_id": format!("T_sim{}", t.id),
        "url": url,
        "html_url": format!("https://github.com/orgs/{ORG_LOGIN}/teams/{}", t.slug),
        "name": t.name,
        "slug": t.slug,
        "description": t.description,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": format!("{url}/members{{/member}}"),
        "repositories_url": format!("{url}/repos"),
        "type": "organization",
        "organization_id": ORG_ID,
        "parent": null,
    })
}

/// `team-membership`.
pub(super) fn team_membership(base: &str, team_id: u64, login: &str, role: TeamRole, state: &str) -> Value {
    json!({
        "url": format!("{}/memberships/{login}", team_url(base, team_id)),
        "role": role.as_str(),
        "state": state,
    })
}

/// `organization-invitation`.
pub(super) fn invitation(base: &str, i: &Invitation, invitee: Option<&User>, inviter: &User) -> Value {
    json!({
        "id": i.id,
        "node_id": format!("OI_sim{}", i.id),
        "login": invitee.map(|u| u.login.clone()),
        "email": i.email,
        "role": i.role.as_str(),
        "created_at": i.created_at,
        "failed_at": null,
        "failed_reason": null,
        "inviter": simple_user(base, inviter),
        "team_count": i.team_ids.len(),
        "invitation_teams_url": format!("{base}/organizations/{ORG_ID}/invitations/{}/teams", i.id),
        "invitation_source": "member",
    })
}

// ---------------------------------------------------------------------------------------------
// Pages

/// `per_page` (default 30) and `page` (1-based), already checked by `operations::check_query`.
#[derive(Clone, Copy, Debug)]
pub(super) struct PageReq {
    pub(super) per_page: usize,
    pub(super) page: usize,
}

impl PageReq {
    pub(super) fn parse(params: &Params) -> Self {
        let num = |k: &str, d: usize| params.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        PageReq { per_page: num("per_page", DEFAULT_PER_PAGE), page: num("page", 1) }
    }

    /// One page of `items` as a JSON array, with GitHub's `Link` header (`next`, `last`,
    /// `prev`, `first` as they apply) pointing at this same request with another `page`.
    pub(super) fn respond(self, items: Vec<Value>, base: &str, uri: &Uri, params: &Params) -> Response {
        let total = items.len();
        let pages = total.div_ceil(self.per_page).max(1);
        let start = (self.page - 1).saturating_mul(self.per_page).min(total);
        let page: Vec<Value> = items.into_iter().skip(start).take(self.per_page).collect();
        let mut response = Json(page).into_response();
        let link_to = |n: usize| {
            let mut query: Vec<String> =
                params.pairs().iter().filter(|(k, _)| k != "page").map(|(k, v)| format!("{k}={v}")).collect();
            query.push(format!("page={n}"));
            format!("<{base}{}?{}>", uri.path(), query.join("&"))
        };
        let mut links = Vec::new();
        if self.page > 1 {
            links.push(format!("{}; rel=\"prev\"", link_to((self.page - 1).min(pages))));
        }
        if self.page < pages {
            links.push(format!("{}; rel=\"next\"", link_to(self.page + 1)));
            links.push(format!("{}; rel=\"last\"", link_to(pages)));
        }
        if self.page > 1 {
            links.push(format!("{}; rel=\"first\"", link_to(1)));
        }
        if !links.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
                response.headers_mut().insert(header::LINK, v);
            }
        }
        response
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// GitHub's primary-limit headers (`x-ratelimit-reset` in Unix epoch seconds) and its 403 when
/// the hour's budget is spent.
pub struct GithubLimits;

impl RateLimitStyle for GithubLimits {
    fn headers(d: &Decision, _now_ms: i64, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-used", HeaderValue::from(d.limit.saturating_sub(d.remaining)));
        headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at_secs()));
        headers.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        primary_exceeded(d, now_ms, None)
    }
}

/// The primary limit spent: 403, `x-ratelimit-remaining: 0`, GitHub's message.
pub(super) fn primary_exceeded(d: &Decision, now_ms: i64, user_id: Option<u64>) -> Response {
    let who = user_id.map_or_else(|| "this token".to_owned(), |id| format!("user ID {id}"));
    let body = json!({
        "message": format!(
            "API rate limit exceeded for {who}. If you reach out to GitHub Support for help, please include the \
             request ID 0000:0000:SIM."
        ),
        "documentation_url": RATE_DOCS,
    });
    let mut response = (StatusCode::FORBIDDEN, Json(body)).into_response();
    let spent = Decision { remaining: 0, ..*d };
    GithubLimits::headers(&spent, now_ms, response.headers_mut());
    response
}

/// A secondary limit: 403 (or 429) with `retry-after` and GitHub's message; the primary
/// headers as they stand.
pub(super) fn secondary_exceeded(status: StatusCode, d: &Decision, now_ms: i64, retry_after_secs: u64) -> Response {
    let body = json!({ "message": SECONDARY_MESSAGE, "documentation_url": RATE_DOCS });
    let mut response = (status, Json(body)).into_response();
    GithubLimits::headers(d, now_ms, response.headers_mut());
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}
