//! CircleCI's HTTP handlers, behind [`guard`] (token, then the per-token rate limit). Each
//! handler is one operation of the definition and refuses query parameters it does not take.

use axum::extract::{Path, Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::model::{Caller, Group, Org};
use super::wire::{request_token, uuid_param, ApiError, ApiResult, CircleLimits, PageReq, Params, GROUPS, NONE};
use super::State;
use crate::ratelimit::RateLimitStyle;
use crate::sim::{now_ms, Sim};
use crate::token::Token;

/// Authenticate, then rate-limit per token; every response after auth gets the headers.
pub(super) async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let token = request_token(req.headers(), req.uri());
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

/// getCurrentUser.
pub(super) async fn me(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    params.declared(NONE)?;
    let world = sim.lock();
    let user = world.tenants.circleci.users.get(&caller.user_id).ok_or_else(ApiError::unauthorized)?;
    Ok(Json(State::user_json(user)).into_response())
}

/// getCollaborations: the caller's orgs, alphabetically by name (then slug); no pagination.
/// Same-named orgs of different VCSs sit side by side, Bitbucket first: only the slug tells
/// them apart. Items as the definition's `Collaboration`: `vcs-type`, with a hyphen.
pub(super) async fn collaborations(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    params.declared(NONE)?;
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let mut orgs: Vec<&Org> = ci.orgs.values().filter(|o| ci.role_of(&o.id, &caller.user_id).is_some()).collect();
    orgs.sort_by_key(|o| (o.name.to_lowercase(), o.slug.to_lowercase()));
    let items: Vec<Value> = orgs
        .iter()
        .map(|o| {
            json!({
                "id": o.id,
                "vcs-type": o.vcs_type,
                "name": o.name,
                "avatar_url": o.avatar_url,
                "slug": o.slug,
            })
        })
        .collect();
    Ok(Json(items).into_response())
}

/// getUser: the token owner itself, or someone sharing one of its orgs; others 404.
pub(super) async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
) -> ApiResult {
    params.declared(NONE)?;
    let id = uuid_param("id", &raw)?;
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let user =
        ci.users.get(&id).filter(|u| ci.can_see(&caller.user_id, &u.id)).ok_or_else(|| ApiError::no_such("User"))?;
    Ok(Json(State::user_json(user)).into_response())
}

/// getOrganizationGroups: `{items: [{id, name, description}], next_page_token}`, `limit` and
/// `page-token`. Members are not part of a group as the API shows it.
pub(super) async fn list_groups(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(org_raw): Path<String>,
    params: Params,
) -> ApiResult {
    params.declared(GROUPS)?;
    let page = PageReq::parse(&params, "limit")?;
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org_id = ci.admin_org(&caller, &org_raw)?.id.clone();
    let groups = ci.groups.range(page.range()).filter(|(_, g)| g.org_id == org_id).map(|(pos, g)| (*pos, g));
    Ok(page.respond(groups, |g| Some(group_json(g))))
}

/// getGroup: one group, members not included.
pub(super) async fn get_group(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, group_raw)): Path<(String, String)>,
    params: Params,
) -> ApiResult {
    params.declared(NONE)?;
    let group_id = uuid_param("group_id", &group_raw)?;
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org_id = ci.admin_org(&caller, &org_raw)?.id.clone();
    let group = ci
        .groups
        .values()
        .find(|g| g.org_id == org_id && g.id == group_id)
        .ok_or_else(|| ApiError::no_such("Group"))?;
    Ok(Json(group_json(group)).into_response())
}

/// A group as the definition's `group` schema has it (no other field is allowed).
fn group_json(g: &Group) -> Value {
    json!({ "id": g.id, "name": g.name, "description": g.description })
}
