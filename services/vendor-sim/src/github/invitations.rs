//! GitHub's organization invitations: list, create (by `invitee_id` or `email`), cancel, and an
//! invitation's teams.

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::guard::Base;
use super::handlers::{admin, invitation_json, log, org};
use super::model::{Caller, Invitation, InvitationState, InviteRole};
use super::operations::{check_body, Field};
use super::wire::{self, ApiError, ApiResult, PageReq, Params};
use super::State;
use crate::extract::{Empty, Op};
use crate::sim::{now_ms, rfc3339_s, Sim};

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
