//! GitHub's teams of the organization: list them, list a team's members, and a person's team
//! membership (read, set, remove).

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::guard::Base;
use super::handlers::{admin, log, member, org, user};
use super::model::{Caller, OrgRole, TeamRole};
use super::operations::{check_body, Field};
use super::wire::{self, ApiError, ApiResult, PageReq, Params};
use crate::extract::{Empty, Op};
use crate::sim::Sim;

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
