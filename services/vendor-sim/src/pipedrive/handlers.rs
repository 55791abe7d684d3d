//! Pipedrive's HTTP handlers, behind [`guard`] (auth, then the per-token rate limit). Each
//! validates the whole request before it changes anything, and logs a successful change in the
//! same critical section as the change.

use axum::body::Bytes;
use axum::extract::{Path, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::model::{Caller, Deal, DealStatus, NewUser, Role, User};
use super::wire::{
    assignment_json, ok, parse_id, permissions, request_token, ApiError, ApiResult, Fields, PageReq, Params,
    PipedriveLimits, UserOut, COMPANY_DOMAIN, COMPANY_ID, COMPANY_NAME,
};
use super::VENDOR;
use crate::extract::{json_object, valid_email, Empty, Op};
use crate::ratelimit::RateLimitStyle;
use crate::registry::update_field;
use crate::sim::{now_ms, rfc3339_s, Sim};
use crate::token::Token;

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
// Users

pub(super) async fn list_users(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    caller.require_admin("list all users")?;
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let users: Vec<&User> = pd.users.values().collect();
    Ok(page.respond(&users, |u| pd.user_out(u)))
}

pub(super) async fn me(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>) -> ApiResult {
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let mut data = pd.user_json(pd.user(caller.user_id)?);
    data["company_id"] = COMPANY_ID.into();
    data["company_name"] = COMPANY_NAME.into();
    data["company_domain"] = COMPANY_DOMAIN.into();
    Ok(ok(data))
}

pub(super) async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult {
    let id = parse_id(&raw, "user")?;
    // Quirk: a non-admin token gets its owner's own data, whatever id it asked for.
    let id = if caller.is_admin { id } else { caller.user_id };
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    Ok(ok(pd.user_json(pd.user(id)?)))
}

pub(super) async fn find_users(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let term = params
        .get("term")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("term is required"))?
        .to_lowercase();
    let by_email = matches!(params.get("search_by_email"), Some("1" | "true"));
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let found: Vec<UserOut> = pd
        .users
        .values()
        .filter(|u| {
            let haystack = if by_email { &u.email } else { &u.name };
            haystack.to_lowercase().contains(&term)
        })
        .map(|u| pd.user_out(u))
        .collect();
    // Quirk: no match is `"data": null`, not an empty list.
    Ok(ok((!found.is_empty()).then_some(found)))
}

pub(super) async fn create_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("add users")?;
    let obj = json_object(&body, Empty::IsObject)?;
    let f = Fields(&obj);
    let input = NewUser {
        name: f.string("name")?,
        email: f.string("email")?,
        active: f.flag("active_flag")?,
        is_admin: f.flag("is_admin")?,
        role_id: f.id("role_id")?,
        phone: f.string("phone")?,
        locale: f.string("locale")?,
        timezone_name: f.string("timezone_name")?,
        default_currency: f.string("default_currency")?,
        api_token: None,
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    let id = pd.insert_user(input, now_ms())?;
    let user = &pd.users[&id];
    let data = pd.user_json(user);
    let mut details = Map::new();
    details.insert("user_id".into(), id.into());
    if let Some(h) = user.role {
        details.insert("role_id".into(), h.role_id.into());
    }
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.create", details);
    Ok((StatusCode::CREATED, Json(json!({ "success": true, "data": data }))).into_response())
}

pub(super) async fn update_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("update users")?;
    let id = parse_id(&raw, "user")?;
    let obj = json_object(&body, Empty::IsObject)?;
    let f = Fields(&obj);
    let name = f.string("name")?;
    let email = f.string("email")?;
    let active = f.flag("active_flag")?;
    let is_admin = f.flag("is_admin")?;
    let role_id = f.nullable_id("role_id")?;
    let phone = f.string("phone")?;
    let locale = f.string("locale")?;
    let timezone_name = f.string("timezone_name")?;
    let default_currency = f.string("default_currency")?;

    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    let before = pd.user(id)?.clone();

    // Validate everything before changing anything.
    let name = name.map(|n| n.trim().to_owned());
    if name.as_deref() == Some("") {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    let email = email.map(|e| e.trim().to_owned());
    if let Some(e) = &email {
        if !valid_email(e) {
            return Err(ApiError::bad_request("email is not a valid email address"));
        }
        if pd.email_taken(e, Some(id)) {
            return Err(ApiError::bad_request("user with this email already exists"));
        }
    }
    if let Some(Some(r)) = role_id {
        pd.role(r).map_err(|_| ApiError::bad_request(format!("role_id {r} does not exist")))?;
    }
    let last_admin = before.active && before.is_admin && !pd.other_active_admin_exists(id);
    if last_admin && active == Some(false) {
        return Err(ApiError::bad_request("Cannot deactivate the last admin of the company"));
    }
    if last_admin && is_admin == Some(false) {
        return Err(ApiError::bad_request("Cannot remove admin rights from the last admin of the company"));
    }

    let mut changed: Vec<&str> = Vec::new();
    if let Some(r) = role_id {
        if before.role.map(|h| h.role_id) != r {
            pd.set_role(id, r);
            changed.push("role_id");
        }
    }
    let now = now_ms();
    if let Some(e) = &email {
        if *e != before.email {
            pd.emails.remove(&before.email.to_lowercase());
            pd.emails.insert(e.to_lowercase(), id);
        }
    }
    let Some(user) = pd.users.get_mut(&id) else {
        return Err(ApiError::not_found("User not found"));
    };
    update_field(&mut user.name, name, "name", &mut changed);
    update_field(&mut user.email, email, "email", &mut changed);
    update_field(&mut user.active, active, "active_flag", &mut changed);
    update_field(&mut user.is_admin, is_admin, "is_admin", &mut changed);
    update_field(&mut user.phone, phone.map(Some), "phone", &mut changed);
    update_field(&mut user.locale, locale, "locale", &mut changed);
    update_field(&mut user.timezone_name, timezone_name, "timezone_name", &mut changed);
    update_field(&mut user.default_currency, default_currency, "default_currency", &mut changed);
    if !changed.is_empty() {
        user.modified = rfc3339_s(now);
    }
    let user = user.clone();
    let data = pd.user_json(&user);

    let action = match active {
        Some(false) => "user.deactivate",
        Some(true) if !before.active => "user.activate",
        _ => "user.update",
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

pub(super) async fn user_role_assignments(
    AxState(sim): AxState<Sim>,
    Path(raw): Path<String>,
    params: Params,
) -> ApiResult {
    let id = parse_id(&raw, "user")?;
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let user = world.tenants.pipedrive.user(id)?;
    let all: Vec<Value> = user.role.map(|h| assignment_json(id, h)).into_iter().collect();
    let data: Vec<Value> = all.iter().skip(page.start).take(page.limit).cloned().collect();
    let more = page.start + data.len() < all.len();
    // Unlike the other lists, "none" is an empty list here.
    Ok(Json(json!({
        "success": true,
        "data": data,
        "additional_data": { "pagination": {
            "start": page.start,
            "limit": page.limit,
            "more_items_in_collection": more,
        }},
    }))
    .into_response())
}

pub(super) async fn user_permissions(AxState(sim): AxState<Sim>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_id(&raw, "user")?;
    let world = sim.lock();
    Ok(ok(permissions(world.tenants.pipedrive.user(id)?)))
}

// ---------------------------------------------------------------------------------------------
// Roles

pub(super) async fn list_roles(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let roles: Vec<&Role> = pd.roles.values().collect();
    Ok(page.respond(&roles, |r| pd.role_json(r)))
}

pub(super) async fn get_role(AxState(sim): AxState<Sim>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_id(&raw, "role")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    Ok(ok(pd.role_json(pd.role(id)?)))
}

pub(super) async fn list_role_assignments(
    AxState(sim): AxState<Sim>,
    Path(raw): Path<String>,
    params: Params,
) -> ApiResult {
    let id = parse_id(&raw, "role")?;
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let role = pd.role(id)?;
    let holders: Vec<&User> = pd.users.values().filter(|u| u.role.is_some_and(|h| h.role_id == id)).collect();
    Ok(page.respond(&holders, |u| {
        json!({
            "user_id": u.id,
            "role_id": id,
            "parent_role_id": role.parent_role_id,
            "name": role.name,
            "active_flag": true,
            "type": "assignment",
        })
    }))
}

/// The `user_id` of a role assignment request: JSON body, or `user_id` query parameter.
pub(super) fn assignment_user_id(body: &Bytes, params: &Params) -> Result<i64, ApiError> {
    let obj = json_object(body, Empty::IsObject)?;
    if let Some(id) = Fields(&obj).id("user_id")? {
        return Ok(id);
    }
    match params.get("user_id") {
        Some(raw) => parse_id(raw, "user"),
        None => Err(ApiError::bad_request("user_id is required")),
    }
}

pub(super) async fn assign_role(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("manage role assignments")?;
    let role_id = parse_id(&raw, "role")?;
    let user_id = assignment_user_id(&body, &params)?;
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    pd.role(role_id)?;
    pd.user(user_id)?;
    // A user holds at most one role: assigning moves them here.
    let previous = pd.set_role(user_id, Some(role_id));
    let mut details = Map::new();
    details.insert("role_id".into(), role_id.into());
    details.insert("user_id".into(), user_id.into());
    details.insert("previous_role_id".into(), json!(previous));
    world.journal.mutation(VENDOR, &op.method, &op.path, "role.assign", details);
    Ok(ok(json!({ "user_id": user_id, "role_id": role_id })))
}

pub(super) async fn unassign_role(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("manage role assignments")?;
    let role_id = parse_id(&raw, "role")?;
    let user_id = assignment_user_id(&body, &params)?;
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
    Ok(ok(json!({ "user_id": user_id, "role_id": role_id })))
}

// ---------------------------------------------------------------------------------------------
// Deals

pub(super) async fn list_deals(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = PageReq::parse(&params)?;
    let owner = match params.get("user_id") {
        None | Some("") => None,
        Some(raw) => Some(parse_id(raw, "user")?),
    };
    let status = params.get("status").unwrap_or("all_not_deleted");
    let wanted: fn(DealStatus) -> bool = match status {
        "all_not_deleted" => |s| s != DealStatus::Deleted,
        "open" => |s| s == DealStatus::Open,
        "won" => |s| s == DealStatus::Won,
        "lost" => |s| s == DealStatus::Lost,
        "deleted" => |s| s == DealStatus::Deleted,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid status {other:?}: open, won, lost, deleted or all_not_deleted"
            )))
        }
    };
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let deals: Vec<&Deal> =
        pd.deals.values().filter(|d| owner.is_none_or(|o| d.owner == o) && wanted(d.status)).collect();
    Ok(page.respond(&deals, |d| pd.deal_out(d)))
}

pub(super) async fn get_deal(AxState(sim): AxState<Sim>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_id(&raw, "deal")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let deal = pd.deals.get(&id).ok_or_else(|| ApiError::not_found("Deal not found"))?;
    Ok(ok(pd.deal_json(deal)))
}

pub(super) async fn update_deal(AxState(sim): AxState<Sim>, Path(raw): Path<String>, op: Op, body: Bytes) -> ApiResult {
    let id = parse_id(&raw, "deal")?;
    let obj = json_object(&body, Empty::IsObject)?;
    let f = Fields(&obj);
    let owner = f.id("user_id")?;
    let title = f.string("title")?;
    let value = f.number("value")?;
    let currency = f.string("currency")?;
    let status = f
        .string("status")?
        .map(|s| DealStatus::parse(&s).ok_or_else(|| ApiError::bad_request(format!("invalid status {s:?}"))))
        .transpose()?;
    if title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request("title must not be empty"));
    }

    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    if !pd.deals.contains_key(&id) {
        return Err(ApiError::not_found("Deal not found"));
    }
    if let Some(o) = owner {
        if !pd.users.get(&o).is_some_and(|u| u.active) {
            return Err(ApiError::bad_request(format!("User {o} does not exist or is not active")));
        }
    }
    let Some(deal) = pd.deals.get_mut(&id) else {
        return Err(ApiError::not_found("Deal not found"));
    };
    let previous_owner = deal.owner;
    let mut changed: Vec<&str> = Vec::new();
    if let Some(o) = owner {
        if o != deal.owner {
            deal.owner = o;
            deal.owner_history.push(o);
            changed.push("user_id");
        }
    }
    update_field(&mut deal.title, title, "title", &mut changed);
    update_field(&mut deal.value, value, "value", &mut changed);
    update_field(&mut deal.currency, currency, "currency", &mut changed);
    update_field(&mut deal.status, status, "status", &mut changed);
    if !changed.is_empty() {
        deal.update_time = rfc3339_s(now_ms());
    }
    let deal = deal.clone();
    let data = pd.deal_json(&deal);
    let mut details = Map::new();
    details.insert("deal_id".into(), id.into());
    details.insert("user_id".into(), deal.owner.into());
    if deal.owner != previous_owner {
        details.insert("previous_user_id".into(), previous_owner.into());
    }
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "deal.update", details);
    Ok(ok(data))
}
