//! CrowdStrike's HTTP handlers: the token endpoint, then users and roles behind [`guard`]
//! (token, per-client rate limit, scope), and [`region_gate`] for `/crowdstrike/{region}`.

use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{OriginalUri, Request, State as AxState};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::{json, Map, Value};

use super::model::{NewUser, User};
use super::wire::{
    ids_param, resources, role_json, string_field, user_json, user_uuid_param, ApiError, ApiResult, FalconLimits,
    Params, DEFAULT_LIMIT, MAX_LIMIT,
};
use super::{CUSTOMER_ID, REGIONS, SCOPE_READ, SCOPE_WRITE, VENDOR};
use crate::extract::{bearer, json_object, Empty, Op};
use crate::ratelimit::RateLimitStyle;
use crate::registry::update_field;
use crate::sim::{now_ms, rfc3339_ms, Sim};
use crate::token::Token;

/// Bearer token, then the API client's per-minute budget, then the scope the method needs.
pub(super) async fn guard(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let now = now_ms();
    let token = bearer(req.headers());
    let (decision, scopes) = {
        let mut world = sim.lock();
        let cs = &mut world.tenants.crowdstrike;
        let Some(client) = token.as_ref().map(Token::expose).and_then(|t| cs.authenticate(t, now)) else {
            return ApiError::unauthorized().into_response();
        };
        let (client_id, scopes) = (client.client_id.clone(), client.scopes.clone());
        (cs.limiter.check(&client_id, now), scopes)
    };
    if !decision.allowed {
        return FalconLimits::rejection(&decision, now);
    }
    let needed = if req.method() == Method::GET { SCOPE_READ } else { SCOPE_WRITE };
    let mut response =
        if scopes.contains(needed) { next.run(req).await } else { ApiError::forbidden().into_response() };
    FalconLimits::headers(&decision, now, response.headers_mut());
    response
}

/// `/crowdstrike/{region}/...`: the home region is an alias of `/crowdstrike`; another region
/// is a host that has never heard of this tenant.
pub(super) async fn region_gate(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let full = req.extensions().get::<OriginalUri>().map(|u| u.0.path().to_owned()).unwrap_or_default();
    let rest = full.strip_prefix(VENDOR.prefix()).unwrap_or(&full);
    let region = rest.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
    if !REGIONS.contains(&region.as_str()) {
        return ApiError::not_found("no route found").into_response();
    }
    let home = sim.lock().tenants.crowdstrike.region.clone();
    if region == home {
        return next.run(req).await;
    }
    if req.uri().path().ends_with("/oauth2/token") {
        ApiError::token_refused().into_response()
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// `POST /oauth2/token`: form-encoded client credentials -> 201 with a bearer token.
pub(super) async fn issue_token(
    AxState(sim): AxState<Sim>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return ApiError::bad_request("expected a form-encoded body with client_id and client_secret").into_response();
    };
    let field = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    if field("grant_type").is_some_and(|g| g != "client_credentials") {
        return ApiError::bad_request("unsupported grant_type: only client_credentials").into_response();
    }
    let (Some(client_id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return ApiError::bad_request("client_id and client_secret are required").into_response();
    };
    let now = now_ms();
    let mut world = sim.lock();
    let cs = &mut world.tenants.crowdstrike;
    let known = cs.clients.get(&client_id).is_some_and(|c| c.secret.matches(&secret));
    if !known {
        return ApiError::token_refused().into_response();
    }
    let decision = cs.limiter.check(&client_id, now);
    if !decision.allowed {
        return FalconLimits::rejection(&decision, now);
    }
    let token = cs.issue(&client_id, now);
    let ttl = cs.token_ttl_secs;
    drop(world);
    let mut response = (
        StatusCode::CREATED,
        Json(json!({ "access_token": token.expose(), "token_type": "bearer", "expires_in": ttl })),
    )
        .into_response();
    FalconLimits::headers(&decision, now, response.headers_mut());
    response
}

// ---------------------------------------------------------------------------------------------
// Users

pub(super) async fn query_user_uids(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let offset = match params.get("offset") {
        None | Some("") => 0,
        Some(s) => s.parse::<usize>().map_err(|_| ApiError::bad_request("offset must be a non-negative integer"))?,
    };
    let limit = match params.get("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")))?,
    };
    // The filter by login address: exact, ignoring case.
    let wanted: Vec<&str> = params.all("uid");
    let username = match wanted.as_slice() {
        [] => None,
        [""] => return Err(ApiError::bad_request("uid must not be empty: give the user's login e-mail")),
        [one] => Some(one.to_lowercase()),
        _ => return Err(ApiError::bad_request("uid takes one login e-mail per request in this simulator")),
    };
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let matching: Vec<&User> = match &username {
        None => cs.users.values().collect(),
        Some(name) => cs.by_username.get(name).and_then(|k| cs.users.get(k)).into_iter().collect(),
    };
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).map(|u| Value::from(u.uid.clone())).collect();
    let pagination = json!({ "offset": offset, "limit": limit, "total": total });
    Ok(resources(StatusCode::OK, page, Some(("pagination", pagination)), vec![]))
}

pub(super) async fn get_users(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let ids = ids_param(&params)?;
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in &ids {
        match cs.user_by_uid(id) {
            Some(u) => found.push(user_json(u)),
            None => missing.push(json!({ "code": 404, "message": format!("user {id} not found"), "id": id })),
        }
    }
    if found.is_empty() {
        return Err(ApiError { status: StatusCode::NOT_FOUND, errors: missing });
    }
    Ok(resources(StatusCode::OK, found, None, missing))
}

pub(super) async fn create_user(AxState(sim): AxState<Sim>, op: Op, body: Bytes) -> ApiResult {
    let obj = json_object(&body, Empty::IsMalformed)?;
    let input = NewUser {
        uid: None,
        username: string_field(&obj, "username")?,
        first_name: string_field(&obj, "first_name")?,
        last_name: string_field(&obj, "last_name")?,
    };
    // Quirk: roles cannot be set here; a `roles` field is silently ignored.
    let ignored: Vec<&String> =
        obj.keys().filter(|k| !["username", "first_name", "last_name"].contains(&k.as_str())).collect();
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.insert_user(input)?;
    let user = &cs.users[&key];
    let data = user_json(user);
    let mut details = Map::new();
    details.insert("user_uuid".into(), user.uid.clone().into());
    details.insert("username".into(), user.username.clone().into());
    if !ignored.is_empty() {
        details.insert("ignored_fields".into(), json!(ignored));
    }
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.create", details);
    Ok(resources(StatusCode::CREATED, vec![data], None, vec![]))
}

pub(super) async fn update_user(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    let obj = json_object(&body, Empty::IsMalformed)?;
    let uid = user_uuid_param(&params, Some(&obj))?;
    let first = string_field(&obj, "first_name")?.map(|s| s.trim().to_owned());
    let last = string_field(&obj, "last_name")?.map(|s| s.trim().to_owned());
    if first.as_deref() == Some("") || last.as_deref() == Some("") {
        return Err(ApiError::bad_request("first_name and last_name must not be empty"));
    }
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    let mut changed: Vec<&str> = Vec::new();
    update_field(&mut user.first_name, first, "first_name", &mut changed);
    update_field(&mut user.last_name, last, "last_name", &mut changed);
    if !changed.is_empty() {
        user.updated_at = rfc3339_ms(now_ms());
    }
    let data = user_json(user);
    let mut details = Map::new();
    details.insert("user_uuid".into(), uid.into());
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.update", details);
    Ok(resources(StatusCode::OK, vec![data], None, vec![]))
}

pub(super) async fn delete_user(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    let obj = if body.iter().all(u8::is_ascii_whitespace) { None } else { json_object(&body, Empty::IsMalformed).ok() };
    let uid = user_uuid_param(&params, obj.as_ref())?;
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    let Some(user) = cs.users.remove(&key) else {
        return Err(ApiError::not_found(format!("user {uid} not found")));
    };
    cs.by_uid.remove(&user.uid);
    cs.by_username.remove(&user.username.to_lowercase());
    let mut details = Map::new();
    details.insert("user_uuid".into(), uid.clone().into());
    details.insert("username".into(), user.username.into());
    details.insert("roles_at_delete".into(), json!(user.roles));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.delete", details);
    Ok(resources(StatusCode::OK, vec![uid.into()], None, vec![]))
}

// ---------------------------------------------------------------------------------------------
// Roles

pub(super) async fn user_role_ids(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let uid = user_uuid_param(&params, None)?;
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let user = cs.user_by_uid(&uid).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    let roles: Vec<Value> = user.roles.iter().map(|r| Value::from(r.clone())).collect();
    Ok(resources(StatusCode::OK, roles, None, vec![]))
}

pub(super) async fn query_roles(AxState(sim): AxState<Sim>) -> ApiResult {
    let world = sim.lock();
    let roles: Vec<Value> = world.tenants.crowdstrike.roles.keys().map(|r| Value::from(r.clone())).collect();
    Ok(resources(StatusCode::OK, roles, None, vec![]))
}

pub(super) async fn get_roles(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let ids = ids_param(&params)?;
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in &ids {
        match cs.roles.get(id) {
            Some(r) => found.push(role_json(r)),
            None => missing.push(json!({ "code": 404, "message": format!("role {id} not found"), "id": id })),
        }
    }
    if found.is_empty() {
        return Err(ApiError { status: StatusCode::NOT_FOUND, errors: missing });
    }
    Ok(resources(StatusCode::OK, found, None, missing))
}

pub(super) async fn grant_roles(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    let obj = json_object(&body, Empty::IsMalformed)?;
    let uid = match string_field(&obj, "user_uuid")?.or_else(|| params.get("user_uuid").map(str::to_owned)) {
        Some(u) if !u.trim().is_empty() => u.trim().to_owned(),
        _ => return Err(ApiError::bad_request("user_uuid is required")),
    };
    let role_ids: Vec<String> = match obj.get("roleIds") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::bad_request("roleIds must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad_request("roleIds must be an array of role ids")),
        None => return Err(ApiError::bad_request("roleIds is required")),
    };
    if role_ids.is_empty() {
        return Err(ApiError::bad_request("roleIds must name at least one role"));
    }
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    // Case-sensitive: `Falcon_Admin` is not `falcon_admin`. All or nothing.
    let unknown: Vec<&String> = role_ids.iter().filter(|r| !cs.roles.contains_key(*r)).collect();
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::bad_request(format!("invalid role id(s): {}", list.join(", "))));
    }
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    let mut granted = Vec::new();
    for r in &role_ids {
        if user.roles.insert(r.clone()) {
            granted.push(r.clone());
        }
    }
    let out: Vec<Value> =
        role_ids.iter().map(|r| json!({ "cid": CUSTOMER_ID, "role_id": r, "user_uuid": uid })).collect();
    let mut details = Map::new();
    details.insert("user_uuid".into(), uid.into());
    details.insert("role_ids".into(), json!(granted));
    world.journal.mutation(VENDOR, &op.method, &op.path, "role.grant", details);
    Ok(resources(StatusCode::OK, out, None, vec![]))
}

pub(super) async fn revoke_roles(AxState(sim): AxState<Sim>, params: Params, op: Op) -> ApiResult {
    let uid = user_uuid_param(&params, None)?;
    let role_ids = params.ids("roleId");
    if role_ids.is_empty() {
        return Err(ApiError::bad_request("roleId is a required query parameter"));
    }
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    // Quirk: revoking a role the user does not hold is an error. All or nothing.
    let errors: Vec<Value> = role_ids
        .iter()
        .filter(|r| !user.roles.contains(*r))
        .map(|r| json!({ "code": 400, "message": format!("role {r} is not assigned to user {uid}") }))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError { status: StatusCode::BAD_REQUEST, errors });
    }
    for r in &role_ids {
        user.roles.remove(r);
    }
    for r in &role_ids {
        let mut details = Map::new();
        details.insert("user_uuid".into(), uid.clone().into());
        details.insert("role_id".into(), r.clone().into());
        world.journal.mutation(VENDOR, &op.method, &op.path, "role.revoke", details);
    }
    let out: Vec<Value> = role_ids.into_iter().map(Value::from).collect();
    Ok(resources(StatusCode::OK, out, None, vec![]))
}
