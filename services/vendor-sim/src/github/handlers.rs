//! GitHub's HTTP handlers, one per operation of the definition (operationIds in the doc
//! comments), behind [`guard`]: User-Agent, token, API version, the primary and secondary rate
//! limits, the operation's query parameters; after the handler, `ETag` / `If-None-Match` on
//! every `GET` (a 304 does not count against the primary limit) and the `x-ratelimit-*` headers.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::model::{Caller, Invitation, InvitationState, InviteRole, OrgRole, TeamRole, User};
use super::state::Verdict;
use super::wire::{
    self, check_body, check_query, ApiError, ApiResult, Field, GithubLimits, PageReq, Params, API_VERSION,
};
use super::{State, ORG_LOGIN, VENDOR};
use crate::extract::{Empty, MalformedQuery, Op};
use crate::ratelimit::RateLimitStyle;
use crate::sim::{now_ms, rfc3339_s, Sim};
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
    let Some(op) = wire::find(req.method().as_str(), route) else {
        return Ok(());
    };
    let params = Params::from_uri(req.uri()).ok_or(MalformedQuery)?;
    check_query(op, &params)
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `{org}` must be `sim-org` (case-insensitive, as logins are); anything else is a 404.
fn org(raw: &str) -> Result<(), ApiError> {
    if raw.eq_ignore_ascii_case(ORG_LOGIN) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// Reads of the org need a member (admin or member).
fn member(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Some(OrgRole::Admin | OrgRole::Member) => Ok(()),
        _ => Err(ApiError::forbidden(format!("You must be a member of {ORG_LOGIN} to see this."))),
    }
}

fn admin(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::must_be_admin(what))
    }
}

fn log(world: &mut crate::sim::World, op: &Op, action: &'static str, details: Value) {
    let details: Map<String, Value> = match details {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
}

fn user<'a>(gh: &'a State, login: &str) -> Result<&'a User, ApiError> {
    gh.user_by_login(login).ok_or_else(ApiError::not_found)
}

fn invitation_json(gh: &State, base: &str, i: &Invitation) -> Value {
    let invitee = i.user_id.and_then(|id| gh.users.get(&id));
    let inviter = gh.users.get(&i.inviter_id).or_else(|| gh.users.values().next());
    match inviter {
        Some(inviter) => wire::invitation(base, i, invitee, inviter),
        None => Value::Null,
    }
}

fn two_fa_filter(caller: &Caller, resource: &str, params: &Params) -> Result<Option<bool>, ApiError> {
    match params.get("filter") {
        None | Some("all") => Ok(None),
        Some(f) => {
            if !caller.is_admin() {
                // The 2FA filters are for owners only.
                return Err(ApiError::custom(resource, "filter", "Only owners can use this filter."));
            }
            // No account here uses an insecure 2FA method: 2fa_insecure lists nobody.
            Ok(Some(f == "2fa_disabled"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users

/// users/get-authenticated: the token's own account as `private-user`.
pub(super) async fn get_authenticated(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
) -> ApiResult {
    let world = sim.lock();
    let gh = &world.tenants.github;
    let u = gh.users.get(&caller.user_id).ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Bad credentials"))?;
    Ok(Json(wire::private_user(&base, u)).into_response())
}

/// users/get-by-username: any account, as `public-user`.
pub(super) async fn get_by_username(
    AxState(sim): AxState<Sim>,
    Extension(Base(base)): Extension<Base>,
    Path(username): Path<String>,
) -> ApiResult {
    let world = sim.lock();
    let u = user(&world.tenants.github, &username)?;
    Ok(Json(wire::public_user(&base, u)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Members and memberships

/// orgs/list-members: admins and members (billing managers are not members), `role`, `filter`.
pub(super) async fn list_members(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org_raw): Path<String>,
    params: Params,
    uri: axum::http::Uri,
) -> ApiResult {
    org(&org_raw)?;
    member(&caller)?;
    let two_fa_disabled = two_fa_filter(&caller, "Organization", &params)?;
    let role = params.get("role").unwrap_or("all");
    let world = sim.lock();
    let gh = &world.tenants.github;
    let items: Vec<Value> = gh
        .members
        .iter()
        .filter(|(_, r)| match role {
            "admin" => *r == OrgRole::Admin,
            "member" => *r == OrgRole::Member,
            _ => *r != OrgRole::BillingManager,
        })
        .filter_map(|(id, _)| gh.users.get(id))
        .filter(|u| two_fa_disabled.is_none_or(|disabled| disabled && !u.two_factor))
        .map(|u| wire::simple_user(&base, u))
        .collect();
    Ok(PageReq::parse(&params).respond(items, &base, &uri, &params))
}

/// orgs/get-membership-for-user: active (with the role), pending (an invitation by login,
/// with the invited role), or 404.
pub(super) async fn get_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path((org_raw, username)): Path<(String, String)>,
) -> ApiResult {
    org(&org_raw)?;
    member(&caller)?;
    let world = sim.lock();
    let gh = &world.tenants.github;
    let u = user(gh, &username)?;
    if let Some(role) = gh.role_of(u.id) {
        return Ok(Json(wire::org_membership(&base, u, "active", role)).into_response());
    }
    match gh.pending_for_user(u) {
        Some(i) => Ok(Json(wire::org_membership(&base, u, "pending", i.role.org_role())).into_response()),
        None => Err(ApiError::not_found()),
    }
}

/// orgs/set-membership-for-user: changes an active member's role (never demoting the last
/// owner); for someone pending, changes the invitation's role; for anyone else, invites them.
pub(super) async fn set_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path((org_raw, username)): Path<(String, String)>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "set a user's membership in an organization")?;
    let fields = [("role", Field::Enum(&["admin", "member"]))];
    let map = check_body("OrganizationMembership", &body, Empty::IsObject, &fields)?;
    let role = match map.get("role").and_then(Value::as_str) {
        Some("admin") => OrgRole::Admin,
        _ => OrgRole::Member,
    };
    let mut guard = sim.lock();
    let world = &mut *guard;
    let gh = &mut world.tenants.github;
    let u = user(gh, &username)?.clone();
    if let Some(previous) = gh.role_of(u.id) {
        if previous == OrgRole::Admin && role != OrgRole::Admin && gh.admin_count() == 1 {
            return Err(ApiError::forbidden("You cannot demote the last owner of an organization."));
        }
        if previous != role {
            if let Some(m) = gh.members.iter_mut().find(|(id, _)| *id == u.id) {
                m.1 = role;
            }
            let details = json!({ "user_id": u.id, "login": u.login, "previous_role": previous.as_str(),
                                  "role": role.as_str() });
            log(world, &op, "membership.role", details);
        }
        return Ok(Json(wire::org_membership(&base, &u, "active", role)).into_response());
    }
    let invite_role = if role == OrgRole::Admin { InviteRole::Admin } else { InviteRole::DirectMember };
    if let Some(id) = gh.pending_for_user(&u).map(|i| i.id) {
        let inv = gh.invitations.get_mut(&id).ok_or_else(ApiError::not_found)?;
        if inv.role != invite_role {
            let previous = inv.role.as_str();
            inv.role = invite_role;
            let details = json!({ "invitation_id": id, "login": u.login, "previous_role": previous,
                                  "role": invite_role.as_str() });
            log(world, &op, "invitation.update", details);
        }
        return Ok(Json(wire::org_membership(&base, &u, "pending", role)).into_response());
    }
    let id = gh.new_invitation_id();
    let inv = Invitation {
        id,
        user_id: Some(u.id),
        email: None,
        role: invite_role,
        team_ids: Vec::new(),
        inviter_id: caller.user_id,
        created_at: rfc3339_s(now_ms()),
        state: InvitationState::Pending,
    };
    gh.invitations.insert(id, inv);
    let details = json!({ "invitation_id": id, "user_id": u.id, "login": u.login, "email": null,
                          "role": invite_role.as_str(), "team_ids": [] });
    log(world, &op, "invitation.create", details);
    Ok(Json(wire::org_membership(&base, &u, "pending", role)).into_response())
}

/// orgs/remove-membership-for-user: removes a member (from every team too) or cancels their
/// pending invitation; never the last owner (403); 404 when neither.
pub(super) async fn remove_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, username)): Path<(String, String)>,
    op: Op,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "remove a member from an organization")?;
    let mut guard = sim.lock();
    let world = &mut *guard;
    let gh = &mut world.tenants.github;
    let u = user(gh, &username)?.clone();
    if let Some(role) = gh.role_of(u.id) {
        if role == OrgRole::Admin && gh.admin_count() == 1 {
            return Err(ApiError::forbidden("You cannot remove the last owner of an organization."));
        }
        let teams: Vec<String> =
            gh.teams.values().filter(|t| t.role_of(u.id).is_some()).map(|t| t.slug.clone()).collect();
        gh.leave(u.id);
        let details = json!({ "user_id": u.id, "login": u.login, "role": role.as_str(), "teams_removed": teams });
        log(world, &op, "membership.remove", details);
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if let Some(id) = gh.pending_for_user(&u).map(|i| i.id) {
        if let Some(inv) = gh.invitations.get_mut(&id) {
            inv.state = InvitationState::Cancelled;
        }
        log(world, &op, "invitation.cancel", json!({ "invitation_id": id, "login": u.login }));
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Err(ApiError::not_found())
}

// ---------------------------------------------------------------------------------------------
// Invitations

/// orgs/list-pending-invitations: oldest first; `role` and `invitation_source` filters.
pub(super) async fn list_invitations(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org_raw): Path<String>,
    params: Params,
    uri: axum::http::Uri,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "list pending invitations")?;
    let role = params.get("role").unwrap_or("all");
    // Every invitation here was sent by a member (none through SCIM).
    let scim_only = params.get("invitation_source") == Some("scim");
    let world = sim.lock();
    let gh = &world.tenants.github;
    let items: Vec<Value> = gh
        .invitations
        .values()
        .filter(|i| i.state == InvitationState::Pending && !scim_only)
        .filter(|i| role == "all" || i.role.as_str() == role)
        .map(|i| invitation_json(gh, &base, i))
        .collect();
    Ok(PageReq::parse(&params).respond(items, &base, &uri, &params))
}

/// orgs/create-invitation: `invitee_id` or `email`, `role`, `team_ids`; 422 for a member
/// ("already a part"), someone already invited ("already exists"), an unknown team or account.
pub(super) async fn create_invitation(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org_raw): Path<String>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "create an organization invitation")?;
    const R: &str = "OrganizationInvitation";
    let fields = [
        ("invitee_id", Field::Int),
        ("email", Field::Str),
        ("role", Field::Enum(&["admin", "direct_member", "billing_manager", "reinstate"])),
        ("team_ids", Field::IntArray),
    ];
    let map = check_body(R, &body, Empty::IsMalformed, &fields)?;
    let invitee_id = map.get("invitee_id").and_then(Value::as_u64);
    let email = map.get("email").and_then(Value::as_str).map(str::trim).map(str::to_owned);
    // `reinstate` restores a former member's role; the simulator keeps none, so it is a member's.
    let role = match map.get("role").and_then(Value::as_str) {
        Some("admin") => InviteRole::Admin,
        Some("billing_manager") => InviteRole::BillingManager,
        _ => InviteRole::DirectMember,
    };
    let team_ids: Vec<u64> = map
        .get("team_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let mut guard = sim.lock();
    let world = &mut *guard;
    let gh = &mut world.tenants.github;
    let (account, field) = match (invitee_id, &email) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::custom(R, "invitee_id", "Exactly one of invitee_id and email is required."));
        }
        (Some(id), None) => {
            let u = gh.users.get(&id).ok_or_else(|| ApiError::invalid(R, "invitee_id", "invalid", None))?;
            (Some(u.clone()), "invitee_id")
        }
        (None, Some(e)) => {
            if !crate::extract::valid_email(e) {
                return Err(ApiError::invalid(R, "email", "invalid", None));
            }
            (gh.user_by_email(e).cloned(), "email")
        }
    };
    if let Some(u) = &account {
        if gh.role_of(u.id).is_some() {
            return Err(ApiError::custom(R, field, "Invitee is already a part of this organization"));
        }
    }
    let pending = match (&account, &email) {
        (Some(u), _) => gh.pending_for_user(u).is_some(),
        (None, Some(e)) => gh.pending_for_email(e).is_some(),
        (None, None) => false,
    };
    if pending {
        return Err(ApiError::invalid(R, field, "already_exists", Some("A pending invitation already exists".into())));
    }
    if let Some(bad) = team_ids.iter().find(|t| !gh.teams.contains_key(t)) {
        return Err(ApiError::invalid(R, "team_ids", "invalid", Some(format!("No team with id {bad}"))));
    }
    let mut team_ids = team_ids;
    team_ids.dedup();
    let id = gh.new_invitation_id();
    let inv = Invitation {
        id,
        user_id: account.as_ref().map(|u| u.id),
        email: email.clone(),
        role,
        team_ids: team_ids.clone(),
        inviter_id: caller.user_id,
        created_at: rfc3339_s(now_ms()),
        state: InvitationState::Pending,
    };
    let answer = invitation_json(gh, &base, &inv);
    gh.invitations.insert(id, inv);
    let details = json!({ "invitation_id": id, "user_id": account.as_ref().map(|u| u.id),
                          "login": account.as_ref().map(|u| u.login.clone()), "email": email,
                          "role": role.as_str(), "team_ids": team_ids });
    log(world, &op, "invitation.create", details);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

fn pending_invitation(gh: &State, raw: &str) -> Result<u64, ApiError> {
    let id: u64 = raw.parse().map_err(|_| ApiError::not_found())?;
    gh.invitations
        .get(&id)
        .filter(|i| i.state == InvitationState::Pending)
        .map(|i| i.id)
        .ok_or_else(ApiError::not_found)
}

/// orgs/cancel-invitation: a pending invitation by id; 404 otherwise.
pub(super) async fn cancel_invitation(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, invitation_raw)): Path<(String, String)>,
    op: Op,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "cancel an organization invitation")?;
    let mut guard = sim.lock();
    let world = &mut *guard;
    let gh = &mut world.tenants.github;
    let id = pending_invitation(gh, &invitation_raw)?;
    let Some(inv) = gh.invitations.get_mut(&id) else {
        return Err(ApiError::not_found());
    };
    inv.state = InvitationState::Cancelled;
    let (user_id, email) = (inv.user_id, inv.email.clone());
    let login = user_id.and_then(|u| gh.users.get(&u)).map(|u| u.login.clone());
    log(world, &op, "invitation.cancel", json!({ "invitation_id": id, "login": login, "email": email }));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// orgs/list-invitation-teams: the teams a pending invitation will add the invitee to.
pub(super) async fn list_invitation_teams(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path((org_raw, invitation_raw)): Path<(String, String)>,
    params: Params,
    uri: axum::http::Uri,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "list an invitation's teams")?;
    let world = sim.lock();
    let gh = &world.tenants.github;
    let id = pending_invitation(gh, &invitation_raw)?;
    let items: Vec<Value> =
        gh.invitations[&id].team_ids.iter().filter_map(|t| gh.teams.get(t)).map(|t| wire::team(&base, t)).collect();
    Ok(PageReq::parse(&params).respond(items, &base, &uri, &params))
}

// ---------------------------------------------------------------------------------------------
// Outside collaborators

/// orgs/list-outside-collaborators.
pub(super) async fn list_outside(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org_raw): Path<String>,
    params: Params,
    uri: axum::http::Uri,
) -> ApiResult {
    org(&org_raw)?;
    member(&caller)?;
    let two_fa_disabled = two_fa_filter(&caller, "Organization", &params)?;
    let world = sim.lock();
    let gh = &world.tenants.github;
    let items: Vec<Value> = gh
        .outside
        .iter()
        .filter_map(|id| gh.users.get(id))
        .filter(|u| two_fa_disabled.is_none_or(|disabled| disabled && !u.two_factor))
        .map(|u| wire::simple_user(&base, u))
        .collect();
    Ok(PageReq::parse(&params).respond(items, &base, &uri, &params))
}

/// orgs/remove-outside-collaborator: 204 whether or not they were one; 422 for a member.
pub(super) async fn remove_outside(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, username)): Path<(String, String)>,
    op: Op,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "remove an outside collaborator")?;
    let mut guard = sim.lock();
    let world = &mut *guard;
    let gh = &mut world.tenants.github;
    let u = user(gh, &username)?.clone();
    if matches!(gh.role_of(u.id), Some(OrgRole::Admin | OrgRole::Member)) {
        return Err(ApiError::Unprocessable {
            message: "You cannot specify an organization member to remove as an outside collaborator.".into(),
        });
    }
    if gh.outside.contains(&u.id) {
        gh.outside.retain(|id| *id != u.id);
        log(world, &op, "outside_collaborator.remove", json!({ "user_id": u.id, "login": u.login }));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Teams

/// teams/list: the org's teams by name; `team_type=enterprise` lists none (no enterprise here).
pub(super) async fn list_teams(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org_raw): Path<String>,
    params: Params,
    uri: axum::http::Uri,
) -> ApiResult {
    org(&org_raw)?;
    member(&caller)?;
    let world = sim.lock();
    let gh = &world.tenants.github;
    let items: Vec<Value> = if params.get("team_type") == Some("enterprise") {
        Vec::new()
    } else {
        gh.teams_by_name().into_iter().map(|t| wire::team(&base, t)).collect()
    };
    Ok(PageReq::parse(&params).respond(items, &base, &uri, &params))
}

/// teams/list-members-in-org: active team members (`team-member` items), `role` filter.
pub(super) async fn list_team_members(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path((org_raw, slug)): Path<(String, String)>,
    params: Params,
    uri: axum::http::Uri,
) -> ApiResult {
    org(&org_raw)?;
    member(&caller)?;
    let role = params.get("role").unwrap_or("all");
    let world = sim.lock();
    let gh = &world.tenants.github;
    let team = gh.team_by_slug(&slug).ok_or_else(ApiError::not_found)?;
    let items: Vec<Value> = team
        .members
        .iter()
        .filter(|(_, r)| role == "all" || r.as_str() == role)
        .filter_map(|(id, _)| gh.users.get(id))
        .map(|u| wire::simple_user(&base, u))
        .collect();
    Ok(PageReq::parse(&params).respond(items, &base, &uri, &params))
}

/// teams/get-membership-for-user-in-org: active, pending (an invitation carrying the team),
/// or a bare 404 as the definition has it.
pub(super) async fn get_team_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path((org_raw, slug, username)): Path<(String, String, String)>,
) -> ApiResult {
    org(&org_raw)?;
    member(&caller)?;
    let world = sim.lock();
    let gh = &world.tenants.github;
    let team = gh.team_by_slug(&slug).ok_or_else(ApiError::not_found)?;
    let u = gh.user_by_login(&username).ok_or(ApiError::Bare(StatusCode::NOT_FOUND))?;
    if let Some(role) = team.role_of(u.id) {
        return Ok(Json(wire::team_membership(&base, team.id, &u.login, role, "active")).into_response());
    }
    match gh.pending_for_user(u).filter(|i| i.team_ids.contains(&team.id)) {
        Some(_) => {
            Ok(Json(wire::team_membership(&base, team.id, &u.login, TeamRole::Member, "pending")).into_response())
        }
        None => Err(ApiError::Bare(StatusCode::NOT_FOUND)),
    }
}

/// teams/add-or-update-membership-for-user-in-org: idempotent; only org members (422 for
/// anyone else in the simulator: lifecycle sends invitations with `team_ids` instead).
pub(super) async fn put_team_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path((org_raw, slug, username)): Path<(String, String, String)>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "add or update a team membership")?;
    let map = check_body("TeamMember", &body, Empty::IsObject, &[("role", Field::Enum(&["member", "maintainer"]))])?;
    let role = match map.get("role").and_then(Value::as_str) {
        Some("maintainer") => TeamRole::Maintainer,
        _ => TeamRole::Member,
    };
    let mut guard = sim.lock();
    let world = &mut *guard;
    let gh = &mut world.tenants.github;
    let team_id = gh.team_id_by_slug(&slug).ok_or_else(ApiError::not_found)?;
    let u = user(gh, &username)?.clone();
    if !matches!(gh.role_of(u.id), Some(OrgRole::Admin | OrgRole::Member)) {
        let message = format!("{} must be an organization member", u.login);
        return Err(ApiError::custom("TeamMember", "user", message));
    }
    let Some(team) = gh.teams.get_mut(&team_id) else {
        return Err(ApiError::not_found());
    };
    let slug = team.slug.clone();
    match team.members.iter_mut().find(|(id, _)| *id == u.id) {
        Some(m) if m.1 == role => {}
        Some(m) => {
            let previous = m.1.as_str();
            m.1 = role;
            let details = json!({ "team_id": team_id, "team_slug": slug, "user_id": u.id, "login": u.login,
                                  "previous_role": previous, "role": role.as_str() });
            log(world, &op, "team.update", details);
        }
        None => {
            team.members.push((u.id, role));
            let details = json!({ "team_id": team_id, "team_slug": slug, "user_id": u.id, "login": u.login,
                                  "role": role.as_str() });
            log(world, &op, "team.add", details);
        }
    }
    Ok(Json(wire::team_membership(&base, team_id, &u.login, role, "active")).into_response())
}

/// teams/remove-membership-for-user-in-org: 204, or 404 when they were not in the team.
pub(super) async fn delete_team_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, slug, username)): Path<(String, String, String)>,
    op: Op,
) -> ApiResult {
    org(&org_raw)?;
    admin(&caller, "remove a team membership")?;
    let mut guard = sim.lock();
    let world = &mut *guard;
    let gh = &mut world.tenants.github;
    let team_id = gh.team_id_by_slug(&slug).ok_or_else(ApiError::not_found)?;
    let u = user(gh, &username)?.clone();
    let Some(team) = gh.teams.get_mut(&team_id) else {
        return Err(ApiError::not_found());
    };
    let Some(pos) = team.members.iter().position(|(id, _)| *id == u.id) else {
        return Err(ApiError::not_found());
    };
    team.members.remove(pos);
    let details = json!({ "team_id": team_id, "team_slug": team.slug, "user_id": u.id, "login": u.login });
    log(world, &op, "team.remove", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}
