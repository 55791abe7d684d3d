//! GitHub's HTTP handlers for accounts, organization memberships and outside collaborators, one
//! per operation of the definition (operationIds in the doc comments), and the checks every
//! handler shares; all behind [`super::guard`]. Invitations and teams have their own modules.

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::guard::Base;
use super::model::{Caller, Invitation, InvitationState, InviteRole, OrgRole, User};
use super::operations::{check_body, Field};
use super::wire::{self, ApiError, ApiResult, PageReq, Params};
use super::{State, ORG_LOGIN, VENDOR};
use crate::extract::{Empty, Op};
use crate::sim::{now_ms, rfc3339_s, Sim};

// ---------------------------------------------------------------------------------------------
// Helpers

/// `{org}` must be `sim-org` (case-insensitive, as logins are); anything else is a 404.
pub(super) fn org(raw: &str) -> Result<(), ApiError> {
    if raw.eq_ignore_ascii_case(ORG_LOGIN) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// Reads of the org need a member (admin or member).
pub(super) fn member(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Some(OrgRole::Admin | OrgRole::Member) => Ok(()),
        _ => Err(ApiError::forbidden(format!("You must be a member of {ORG_LOGIN} to see this."))),
    }
}

pub(super) fn admin(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::must_be_admin(what))
    }
}

pub(super) fn log(world: &mut crate::sim::World, op: &Op, action: &'static str, details: Value) {
    let details: Map<String, Value> = match details {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
}

pub(super) fn user<'a>(gh: &'a State, login: &str) -> Result<&'a User, ApiError> {
    gh.user_by_login(login).ok_or_else(ApiError::not_found)
}

pub(super) fn invitation_json(gh: &State, base: &str, i: &Invitation) -> Value {
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
