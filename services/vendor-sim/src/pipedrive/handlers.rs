//! Pipedrive's HTTP handlers, behind [`guard`] (auth, then the per-token rate limit). Each
//! checks the whole request against its operation in Pipedrive's definition (an unknown query
//! parameter or body field, a missing required one or a wrong type is a 400) before it changes
//! anything, and logs a successful change in the same critical section as the change.
//!
//! API v1 (`/api/v1`) here: users, roles, role assignments. API v2 (`/api/v2`): deals, in
//! [`super::deals`]. The v1 deals endpoints are out of support and not served (404).

use axum::body::Bytes;
use axum::extract::{Path, Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Map, Value};

use super::model::{Caller, NewUser, Role, User};
use super::v1::{parse_access, permissions};
use super::wire::{
    ok, parse_id, request_token, v1_time, ApiError, ApiResult, Fields, PageReq, Params, PipedriveLimits, Query,
    COMPANY_DOMAIN, COMPANY_ID, COMPANY_NAME,
};
use super::VENDOR;
use crate::extract::{json_object, Empty, Op};
use crate::ratelimit::RateLimitStyle;
use crate::registry::update_field;
use crate::sim::{now_ms, Sim};
use crate::token::Token;

impl Caller {
    /// Writes, and reading every user, are for admins: anyone else gets Pipedrive's 403.
    fn require_admin(self, what: &str) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }
}

/// Authenticate, then rate-limit per token; every response after auth gets the headers.
pub(super) async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let token = request_token(req.uri(), req.headers());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let pd = &mut world.tenants.pipedrive;
        let Some((token, caller)) = token.as_ref().map(Token::expose).and_then(|t| pd.authenticate(t).map(|c| (t, c)))
        else {
            return ApiError::unauthorized().into_response();
        };
        (caller, pd.limiter.check(token, now))
    };
    if !decision.allowed {
        return PipedriveLimits::rejection(&decision, now);
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    PipedriveLimits::headers(&decision, now, response.headers_mut());
    response
}

// ---------------------------------------------------------------------------------------------
// Users (API v1)

/// getUsers: no parameters, no paging; every user, deactivated ones included. Admins only.
pub(super) async fn list_users(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    Query::only(&params, &[])?;
    caller.require_admin("list all users")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let users: Vec<Value> = pd.users.values().map(|u| pd.user_json(u, Some(caller.user_id))).collect();
    Ok(ok(users))
}

/// getCurrentUser: the token's user, with the company.
pub(super) async fn me(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    Query::only(&params, &[])?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let mut data = pd.user_json(pd.user(caller.user_id)?, Some(caller.user_id));
    data["company_id"] = COMPANY_ID.into();
    data["company_name"] = COMPANY_NAME.into();
    data["company_domain"] = COMPANY_DOMAIN.into();
    Ok(ok(data))
}

/// getUser. Quirk: a non-admin token gets its owner's own data, whatever id it asked for.
pub(super) async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
) -> ApiResult {
    Query::only(&params, &[])?;
    let id = parse_id(&raw, "user")?;
    let id = if caller.is_admin { id } else { caller.user_id };
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    Ok(ok(pd.user_json(pd.user(id)?, Some(caller.user_id))))
}

/// findUsersByName: `term` (required), `search_by_email` 0 or 1. Partial, case-insensitive
/// matches; none is an empty list (the definition's `data` is an array).
pub(super) async fn find_users(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    let q = Query::only(&params, &["term", "search_by_email"])?;
    let term = q
        .get("term")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("term is required"))?
        .to_lowercase();
    let by_email = match q.get("search_by_email") {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::bad_request("search_by_email must be 0 or 1")),
    };
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let found: Vec<Value> = pd
        .users
        .values()
        .filter(|u| {
            let haystack = if by_email { &u.email } else { &u.name };
            haystack.to_lowercase().contains(&term)
        })
        .map(|u| pd.user_json(u, Some(caller.user_id)))
        .collect();
    Ok(ok(found))
}

/// addUser: `email` (required), `access[]`, `active_flag`; nothing else (`name` left this body
/// in 2023). Admins only. Pipedrive answers 200 with the user.
pub(super) async fn create_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    Query::only(&params, &[])?;
    caller.require_admin("add users")?;
    let obj = json_object(&body, Empty::IsObject)?;
    let f = Fields(&obj);
    f.only(&["email", "access", "active_flag"])?;
    let email = f.string("email")?.ok_or_else(|| ApiError::bad_request("email is required"))?;
    let access = f.present("access").map(parse_access).transpose()?;
    let input = NewUser { email: Some(email), active: f.bool("active_flag")?, access, ..NewUser::default() };
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    let id = pd.insert_user(input, now_ms())?;
    let data = pd.user_json(&pd.users[&id], Some(caller.user_id));
    let mut details = Map::new();
    details.insert("user_id".into(), id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.create", details);
    Ok(ok(data))
}

/// updateUser: `active_flag` (required), the only field it takes. The last active admin
/// cannot be deactivated. Admins only.
pub(super) async fn update_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    Query::only(&params, &[])?;
    caller.require_admin("update users")?;
    let id = parse_id(&raw, "user")?;
    let obj = json_object(&body, Empty::IsObject)?;
    let f = Fields(&obj);
    f.only(&["active_flag"])?;
    let active = f.bool("active_flag")?.ok_or_else(|| ApiError::bad_request("active_flag is required"))?;

    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    let before = pd.user(id)?.clone();
    let last_admin = before.active && before.is_admin() && !pd.other_active_admin_exists(id);
    if last_admin && !active {
        return Err(ApiError::bad_request("Cannot deactivate the last admin of the company"));
    }
    let Some(user) = pd.users.get_mut(&id) else {
        return Err(ApiError::not_found("User not found"));
    };
    let mut changed: Vec<&str> = Vec::new();
    update_field(&mut user.active, Some(active), "active_flag", &mut changed);
    if !changed.is_empty() {
        user.modified = v1_time(now_ms());
    }
    let user = user.clone();
    let data = pd.user_json(&user, Some(caller.user_id));

    let action = match (before.active, active) {
        (_, false) => "user.deactivate",
        (false, true) => "user.activate",
        (true, true) => "user.update",
    };
    let mut details = Map::new();
    details.insert("user_id".into(), id.into());
    if let Some(h) = user.role {
        details.insert("role_id".into(), h.role_id.into());
    }
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
    Ok(ok(data))
}

/// getUserRoleAssignments: `start`, `limit`.
pub(super) async fn user_role_assignments(
    AxState(sim): AxState<Sim>,
    Path(raw): Path<String>,
    params: Params,
) -> ApiResult {
    let page = PageReq::parse(&Query::only(&params, &["start", "limit"])?)?;
    let id = parse_id(&raw, "user")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let held: Vec<i64> = pd.user(id)?.role.map(|h| h.role_id).into_iter().collect();
    Ok(page.respond(&held, |role_id| pd.assignment_out(id, *role_id)))
}

/// getUserPermissions.
pub(super) async fn user_permissions(AxState(sim): AxState<Sim>, Path(raw): Path<String>, params: Params) -> ApiResult {
    Query::only(&params, &[])?;
    let id = parse_id(&raw, "user")?;
    let world = sim.lock();
    Ok(ok(permissions(world.tenants.pipedrive.user(id)?)))
}

// ---------------------------------------------------------------------------------------------
// Roles (API v1)

/// getRoles: `start`, `limit`.
pub(super) async fn list_roles(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = PageReq::parse(&Query::only(&params, &["start", "limit"])?)?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let roles: Vec<&Role> = pd.roles.values().collect();
    Ok(page.respond(&roles, |r| pd.role_out(r)))
}

/// getRole.
pub(super) async fn get_role(AxState(sim): AxState<Sim>, Path(raw): Path<String>, params: Params) -> ApiResult {
    Query::only(&params, &[])?;
    let id = parse_id(&raw, "role")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    Ok(ok(pd.role_out(pd.role(id)?)))
}

/// getRoleAssignments: `start`, `limit`.
pub(super) async fn list_role_assignments(
    AxState(sim): AxState<Sim>,
    Path(raw): Path<String>,
    params: Params,
) -> ApiResult {
    let page = PageReq::parse(&Query::only(&params, &["start", "limit"])?)?;
    let id = parse_id(&raw, "role")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    pd.role(id)?;
    let holders: Vec<&User> = pd.users.values().filter(|u| u.role.is_some_and(|h| h.role_id == id)).collect();
    Ok(page.respond(&holders, |u| pd.assignment_out(u.id, id)))
}

/// The `user_id` of addRoleAssignment and deleteRoleAssignment: the body's only field, required.
fn assignment_user_id(body: &Bytes, params: &Params) -> Result<i64, ApiError> {
    Query::only(params, &[])?;
    let obj = json_object(body, Empty::IsObject)?;
    let f = Fields(&obj);
    f.only(&["user_id"])?;
    f.id("user_id")?.ok_or_else(|| ApiError::bad_request("user_id is required"))
}

/// addRoleAssignment `{user_id}`. A user holds at most one role: assigning moves them here.
pub(super) async fn assign_role(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("manage role assignments")?;
    let user_id = assignment_user_id(&body, &params)?;
    let role_id = parse_id(&raw, "role")?;
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    pd.role(role_id)?;
    pd.user(user_id)?;
    let previous = pd.set_role(user_id, Some(role_id));
    let mut details = Map::new();
    details.insert("role_id".into(), role_id.into());
    details.insert("user_id".into(), user_id.into());
    details.insert("previous_role_id".into(), json!(previous));
    world.journal.mutation(VENDOR, &op.method, &op.path, "role.assign", details);
    Ok(ok(json!({ "user_id": user_id, "role_id": role_id })))
}

/// deleteRoleAssignment `{user_id}`: answers `{id}`, the role the user left.
pub(super) async fn unassign_role(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("manage role assignments")?;
    let user_id = assignment_user_id(&body, &params)?;
    let role_id = parse_id(&raw, "role")?;
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    pd.role(role_id)?;
    let user = pd.user(user_id)?;
    if user.role.map(|h| h.role_id) != Some(role_id) {
        return Err(ApiError::bad_request(format!("User {user_id} is not assigned to role {role_id}")));
    }
    pd.set_role(user_id, None);
    let mut details = Map::new();
    details.insert("role_id".into(), role_id.into());
    details.insert("user_id".into(), user_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "role.unassign", details);
    Ok(ok(json!({ "id": role_id })))
}
