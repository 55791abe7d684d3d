//! Calendly's HTTP handlers, behind [`guard`] (token, then the per-token rate limit, then the
//! operation's query parameters; it also notes the base URL the caller used, which every URI in
//! an answer is built from).

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::model::{Base, Caller, Invitation, InvitationStatus, Membership, Role};
use super::operations;
use super::wire::{
    email_filter, expect_uri, org_uri, request_base, resource, user_uri, ApiError, ApiResult, CalendlyLimits, PageReq,
    Params,
};
use super::VENDOR;
use crate::extract::{bearer, json_object, valid_email, Empty, MalformedQuery, Op};
use crate::ratelimit::RateLimitStyle;
use crate::sim::{now_ms, rfc3339_ms, Sim};
use crate::token::Token;

impl Caller {
    fn require_manager(&self) -> Result<(), ApiError> {
        if self.role.is_some_and(Role::manages) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// Authenticate, rate-limit per token, then refuse a query parameter the operation does not
/// take; every response after auth gets the rate-limit headers.
pub(super) async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let token = bearer(req.headers());
    let base = request_base(req.headers(), sim.config());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let cal = &mut world.tenants.calendly;
        if cal.base != base {
            cal.base.clone_from(&base);
        }
        let Some((token, caller)) = token.as_ref().map(Token::expose).and_then(|t| cal.authenticate(t).map(|c| (t, c)))
        else {
            return ApiError::unauthenticated().into_response();
        };
        (caller, cal.limiter.check(token, now))
    };
    if !decision.allowed {
        return CalendlyLimits::rejection(&decision, now);
    }
    if let Err(e) = check_query(&req) {
        let mut response = e.into_response();
        CalendlyLimits::headers(&decision, now, response.headers_mut());
        return response;
    }
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(Base(base));
    let mut response = next.run(req).await;
    CalendlyLimits::headers(&decision, now, response.headers_mut());
    response
}

/// The request's query against its operation's parameters (`operations::OPERATIONS`).
fn check_query(req: &Request) -> Result<(), ApiError> {
    let Some(matched) = req.extensions().get::<MatchedPath>() else {
        return Ok(());
    };
    let route = matched.as_str().strip_prefix(VENDOR.prefix()).unwrap_or(matched.as_str());
    // Every route is in the table (the simulator's tests walk it); none is left unchecked.
    let Some(op) = operations::find(req.method().as_str(), route) else {
        return Ok(());
    };
    let params = Params::from_uri(req.uri()).ok_or(MalformedQuery)?;
    operations::check_query(op, &params)
}

// ---------------------------------------------------------------------------------------------
// Users

pub(super) async fn me(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
) -> ApiResult {
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    let user = cal.users.get(&caller.user).ok_or_else(ApiError::unauthenticated)?;
    Ok(resource(cal.user_json(&base, user)))
}

pub(super) async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(uuid): Path<String>,
) -> ApiResult {
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    let user = cal.users.get(&uuid).ok_or_else(ApiError::not_found)?;
    // Admins see anyone; others only people of their own organization.
    let same_org = caller.role.is_some() && cal.membership_of(&uuid).is_some();
    if !(caller.role.is_some_and(Role::manages) || same_org || caller.user == uuid) {
        return Err(ApiError::forbidden());
    }
    Ok(resource(cal.user_json(&base, user)))
}

// ---------------------------------------------------------------------------------------------
// Memberships

pub(super) async fn list_memberships(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    params: Params,
) -> ApiResult {
    let page = PageReq::parse('m', &params)?;
    let organization = params.get("organization").map(|o| expect_uri("organization", o)).transpose()?;
    let user = params.get("user").map(|u| expect_uri("user", u)).transpose()?;
    let email = email_filter(&params)?;
    let role = match params.get("role") {
        None => None,
        Some(r) => Some(Role::parse(r).ok_or_else(|| ApiError::invalid("role", "must be one of owner, admin, user"))?),
    };
    if organization.is_none() && user.is_none() {
        return Err(ApiError::invalid("organization", "is required (or user)"));
    }
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    if let Some(org) = organization {
        // Must match exactly the URI /users/me returned.
        if org != org_uri(&base, &cal.org_uuid) {
            return Err(ApiError::not_found());
        }
        caller.require_manager()?;
    }
    let user_uuid = match user {
        None => None,
        Some(u) => {
            let found = cal.users.keys().find(|uuid| user_uri(&base, uuid) == u).cloned();
            // Only managers may look at other people's memberships.
            if found.as_deref() != Some(caller.user.as_str()) {
                caller.require_manager()?;
            }
            Some(found.unwrap_or_default())
        }
    };
    let items: Vec<&Membership> = cal
        .memberships
        .values()
        .filter(|m| user_uuid.as_ref().is_none_or(|u| &m.user == u))
        .filter(|m| role.is_none_or(|r| m.role == r))
        .filter(|m| email.as_ref().is_none_or(|e| cal.users[&m.user].email.to_lowercase() == *e))
        .collect();
    Ok(page.respond(&items, |m| m.seq, |m| cal.membership_json(&base, m), &base, "/organization_memberships", &params))
}

pub(super) async fn get_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(uuid): Path<String>,
) -> ApiResult {
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    let m = cal.membership_by_uuid(&uuid).ok_or_else(ApiError::not_found)?;
    if m.user != caller.user {
        caller.require_manager()?;
    }
    Ok(resource(cal.membership_json(&base, m)))
}

pub(super) async fn remove_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    op: Op,
) -> ApiResult {
    caller.require_manager()?;
    let mut world = sim.lock();
    let world = &mut *world;
    let cal = &mut world.tenants.calendly;
    let m = cal.membership_by_uuid(&uuid).ok_or_else(ApiError::not_found)?.clone();
    if m.role == Role::Owner {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Permission Denied",
            "The owner of the organization cannot be removed. Transfer ownership first.",
        ));
    }
    cal.memberships.remove(&m.seq);
    // The Calendly account stays; only the membership goes.
    let user = &cal.users[&m.user];
    let mut details = Map::new();
    details.insert("membership_uuid".into(), m.uuid.clone().into());
    details.insert("user_uuid".into(), m.user.clone().into());
    details.insert("email".into(), user.email.clone().into());
    details.insert("role".into(), m.role.as_str().into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "membership.delete", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Invitations

pub(super) async fn list_invitations(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org): Path<String>,
    params: Params,
) -> ApiResult {
    let descending = sort_descending(&params)?;
    // Tokens are bound to the order they were made for.
    let page = PageReq::parse(if descending { 'j' } else { 'i' }, &params)?;
    let status = match params.get("status") {
        None => None,
        Some(s) => Some(
            InvitationStatus::listed(s)
                .ok_or_else(|| ApiError::invalid("status", "must be one of pending, accepted, declined"))?,
        ),
    };
    let email = email_filter(&params)?;
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    if org != cal.org_uuid {
        return Err(ApiError::not_found());
    }
    caller.require_manager()?;
    let mut items: Vec<&Invitation> = cal
        .invitations
        .values()
        .filter(|i| i.status != InvitationStatus::Revoked && status.is_none_or(|s| i.status == s))
        .filter(|i| email.as_ref().is_none_or(|e| i.email.to_lowercase() == *e))
        .collect();
    // Pages are cut on an ascending key: the newest first is the reversed sequence.
    let key = |i: &Invitation| if descending { u64::MAX - i.seq } else { i.seq };
    if descending {
        items.reverse();
    }
    let path = format!("/organizations/{org}/invitations");
    Ok(page.respond(&items, key, |i| cal.invitation_json(&base, i), &base, &path, &params))
}

/// `sort`: comma-separated `field:direction`; invitations sort on `created_at` only (default
/// `created_at:asc`). Whether the newest come first.
fn sort_descending(params: &Params) -> Result<bool, ApiError> {
    let Some(sort) = params.get("sort") else {
        return Ok(false);
    };
    let mut descending = None;
    for part in sort.split(',') {
        let d = match part.trim() {
            "created_at:asc" => false,
            "created_at:desc" => true,
            _ => return Err(ApiError::invalid("sort", "must be created_at:asc or created_at:desc")),
        };
        descending.get_or_insert(d);
    }
    Ok(descending.unwrap_or(false))
}

pub(super) async fn get_invitation(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path((org, uuid)): Path<(String, String)>,
) -> ApiResult {
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    if org != cal.org_uuid {
        return Err(ApiError::not_found());
    }
    caller.require_manager()?;
    // Revoked invitations are gone, as from the listings.
    let inv = cal
        .invitations
        .values()
        .find(|i| i.uuid == uuid && i.status != InvitationStatus::Revoked)
        .ok_or_else(ApiError::not_found)?;
    Ok(resource(cal.invitation_json(&base, inv)))
}

pub(super) async fn invite(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org): Path<String>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    let obj = json_object(&body, Empty::IsMalformed)?;
    // The body has one field.
    if let Some(other) = obj.keys().find(|k| *k != "email") {
        return Err(ApiError::invalid(other, "is not a valid parameter"));
    }
    let email = match obj.get("email") {
        Some(Value::String(e)) if valid_email(e.trim()) => e.trim().to_owned(),
        Some(Value::String(_)) => return Err(ApiError::invalid("email", "is not a valid email address")),
        None | Some(Value::Null) => return Err(ApiError::invalid("email", "is required")),
        Some(_) => return Err(ApiError::invalid("email", "must be a string")),
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let cal = &mut world.tenants.calendly;
    if org != cal.org_uuid {
        return Err(ApiError::not_found());
    }
    caller.require_manager()?;
    // The definition answers 201, 400, 401, 403, 404 or 500 here: a refusal of the address is
    // its 400.
    if cal.membership_by_email(&email).is_some() {
        return Err(ApiError::invalid("email", "is already a member of this organization"));
    }
    if cal.pending_invitation(&email).is_some() {
        return Err(ApiError::invalid("email", "already has a pending invitation to this organization"));
    }
    let now = rfc3339_ms(now_ms());
    let seq = cal.insert_invitation(&email, InvitationStatus::Pending, &now);
    let inv = &cal.invitations[&seq];
    let data = cal.invitation_json(&base, inv);
    let mut details = Map::new();
    details.insert("invitation_uuid".into(), inv.uuid.clone().into());
    details.insert("email".into(), email.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "invitation.create", details);
    Ok((StatusCode::CREATED, Json(json!({ "resource": data }))).into_response())
}

pub(super) async fn revoke_invitation(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org, uuid)): Path<(String, String)>,
    op: Op,
) -> ApiResult {
    let mut world = sim.lock();
    let world = &mut *world;
    let cal = &mut world.tenants.calendly;
    if org != cal.org_uuid {
        return Err(ApiError::not_found());
    }
    caller.require_manager()?;
    let inv = cal
        .invitations
        .values_mut()
        .find(|i| i.uuid == uuid && i.status != InvitationStatus::Revoked)
        .ok_or_else(ApiError::not_found)?;
    if inv.status != InvitationStatus::Pending {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid Argument",
            message: format!(
                "Only pending invitations can be revoked; this invitation is {}. Remove the membership instead.",
                inv.status.as_str()
            ),
            details: Vec::new(),
        });
    }
    inv.status = InvitationStatus::Revoked;
    inv.updated_at = rfc3339_ms(now_ms());
    let mut details = Map::new();
    details.insert("invitation_uuid".into(), inv.uuid.clone().into());
    details.insert("email".into(), inv.email.clone().into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "invitation.revoke", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}
