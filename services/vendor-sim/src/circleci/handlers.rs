//! CircleCI's HTTP handlers, behind [`guard`] (token, then the per-token rate limit). Org
//! endpoints take the org UUID and need an org admin.

use axum::extract::{Path, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::model::{Caller, Org};
use super::wire::{request_token, ApiError, ApiResult, CircleLimits, PageReq, Params};
use super::{State, VENDOR};
use crate::extract::Op;
use crate::ratelimit::RateLimitStyle;
use crate::sim::{now_ms, Sim};
use crate::token::Token;

/// Authenticate, then rate-limit per token; every response after auth gets the headers.
pub(super) async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let token = request_token(req.headers());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let ci = &mut world.tenants.circleci;
        let Some((token, user_id)) =
            token.as_ref().map(Token::expose).and_then(|t| ci.tokens.get(t).map(|id| (t, id.clone())))
        else {
            return ApiError::unauthorized().into_response();
        };
        (Caller { user_id }, ci.limiter.check(token, now))
    };
    if !decision.allowed {
        return CircleLimits::rejection(&decision, now);
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    CircleLimits::headers(&decision, now, response.headers_mut());
    response
}

pub(super) async fn me(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>) -> ApiResult {
    let world = sim.lock();
    let user = world.tenants.circleci.users.get(&caller.user_id).ok_or_else(ApiError::unauthorized)?;
    Ok(Json(State::user_json(user)).into_response())
}

/// The caller's orgs, alphabetically by name (then slug); no pagination. Same-named orgs of
/// different VCSs sit side by side, Bitbucket first: only the slug tells them apart.
pub(super) async fn collaborations(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let mut orgs: Vec<&Org> = ci.orgs.values().filter(|o| ci.role_of(&o.id, &caller.user_id).is_some()).collect();
    orgs.sort_by_key(|o| (o.name.to_lowercase(), o.slug.to_lowercase()));
    let items: Vec<Value> = orgs
        .iter()
        .map(|o| {
            json!({
                "id": o.id,
                "vcs_type": o.vcs_type,
                "name": o.name,
                "avatar_url": o.avatar_url,
                "slug": o.slug,
            })
        })
        .collect();
    Ok(Json(items).into_response())
}

pub(super) async fn list_members(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(org_raw): Path<String>,
    params: Params,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org = ci.admin_org(&caller, &org_raw)?;
    let page = PageReq::parse(&params)?;
    let roster = ci.rosters.get(&org.id).ok_or_else(ApiError::not_found)?;
    Ok(page.respond(roster.order.range(page.range()).map(|(pos, id)| (*pos, id)), |id| {
        let u = ci.users.get(id)?;
        Some(json!({ "id": u.id, "login": u.login, "name": u.name }))
    }))
}

pub(super) async fn get_member(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, user_raw)): Path<(String, String)>,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org = ci.admin_org(&caller, &org_raw)?;
    let user_id = user_raw.to_ascii_lowercase();
    let role = ci.role_of(&org.id, &user_id).ok_or_else(ApiError::not_found)?;
    let u = ci.users.get(&user_id).ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({ "id": u.id, "login": u.login, "name": u.name, "role": role.as_str() })).into_response())
}

/// Immediate and irreversible: the person must be re-invited through the web UI to come back.
pub(super) async fn remove_member(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, user_raw)): Path<(String, String)>,
    op: Op,
) -> ApiResult {
    let mut world = sim.lock();
    let world = &mut *world;
    let ci = &mut world.tenants.circleci;
    let org_id = ci.admin_org(&caller, &org_raw)?.id.clone();
    let user_id = user_raw.to_ascii_lowercase();
    let roster = ci.rosters.get_mut(&org_id).ok_or_else(ApiError::not_found)?;
    let (seq, role) = roster.members.remove(&user_id).ok_or_else(ApiError::not_found)?;
    roster.order.remove(&seq);
    let mut left_groups = Vec::new();
    for g in ci.groups.values_mut().filter(|g| g.org_id == org_id) {
        if g.members.remove(&user_id) {
            left_groups.push(Value::from(g.name.clone()));
        }
    }
    let mut details = Map::new();
    details.insert("org_id".into(), org_id.into());
    details.insert("user_id".into(), user_id.clone().into());
    details.insert("login".into(), ci.users.get(&user_id).map(|u| u.login.clone()).into());
    details.insert("role".into(), role.as_str().into());
    details.insert("groups".into(), Value::Array(left_groups));
    world.journal.mutation(VENDOR, &op.method, &op.path, "member.remove", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_groups(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(org_raw): Path<String>,
    params: Params,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org_id = ci.admin_org(&caller, &org_raw)?.id.clone();
    let page = PageReq::parse(&params)?;
    let groups = ci.groups.range(page.range()).filter(|(_, g)| g.org_id == org_id).map(|(pos, g)| (*pos, g));
    Ok(page.respond(groups, |g| Some(json!({ "id": g.id, "name": g.name, "member_count": g.members.len() }))))
}

pub(super) async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let id = raw.to_ascii_lowercase();
    let user = ci.users.get(&id).filter(|u| ci.can_see(&caller.user_id, &u.id)).ok_or_else(ApiError::not_found)?;
    Ok(Json(State::user_json(user)).into_response())
}
