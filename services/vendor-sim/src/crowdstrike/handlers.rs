//! CrowdStrike's HTTP handlers: the token endpoint, then the user-management operations behind
//! [`guard`] (token, per-client rate limit, scope), and [`region_gate`] for
//! `/crowdstrike/{region}`. Each handler names the operation id it plays (FalconPy 1.6.2's
//! endpoint table) and checks its query parameters and body against the declaration first.

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
    body_of, fql, grant_json, meta_only, no_body, own_cid, resources, strings, text, user_json, ApiError, ApiResult,
    FalconLimits, Params, COMBINED_USER_ROLES_V2, CREATE_USER_REQUEST, CREATE_USER_V1, DEFAULT_LIMIT, GRANT_FILTERS,
    GRANT_FILTERS_PLAYED, GRANT_INPUT, IDS_REQUEST, MAX_IDS, NONE, QUERIES_ROLES_V1, QUERY_USER_V1,
    UPDATE_USER_REQUEST, USER_FILTERS, USER_FILTERS_PLAYED, USER_UUID_ONLY,
};
use super::{CUSTOMER_ID, REGIONS, SCOPE_READ, SCOPE_WRITE, VENDOR};
use crate::extract::{bearer, Op};
use crate::ratelimit::RateLimitStyle;
use crate::registry::update_field;
use crate::sim::{now_ms, rfc3339_ms, Sim};
use crate::token::Token;

/// retrieveUsersGETV1 is a `POST` that reads: it needs the read scope, like the `GET`s.
const RETRIEVE_USERS_PATH: &str = "/user-management/entities/users/GET/v1";

/// Bearer token, then the API client's per-minute budget, then the scope the operation needs.
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
    let reads = req.method() == Method::GET || req.uri().path().ends_with(RETRIEVE_USERS_PATH);
    let needed = if reads { SCOPE_READ } else { SCOPE_WRITE };
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

/// oauth2AccessToken `POST /oauth2/token`: form-encoded `client_id`, `client_secret` (and the
/// optional `member_cid`) -> 201 with a bearer token and `X-Cs-Region`, the tenant's region
/// (what FalconPy's region autodiscovery reads). `grant_type=client_credentials`, which OAuth2
/// clients send and the definition does not list, is accepted too; any other field is a 400.
pub(super) async fn issue_token(
    AxState(sim): AxState<Sim>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return ApiError::bad_request("expected a form-encoded body with client_id and client_secret").into_response();
    };
    if let Some((unknown, _)) =
        pairs.iter().find(|(k, _)| !["client_id", "client_secret", "member_cid", "grant_type"].contains(&k.as_str()))
    {
        return ApiError::bad_request(format!("unknown form field {unknown:?}")).into_response();
    }
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
    let region = cs.region.clone();
    drop(world);
    let mut response = (
        StatusCode::CREATED,
        Json(json!({ "access_token": token.expose(), "token_type": "bearer", "expires_in": ttl })),
    )
        .into_response();
    FalconLimits::headers(&decision, now, response.headers_mut());
    if let Ok(region) = region.parse() {
        response.headers_mut().insert("x-cs-region", region);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Users

/// queryUserV1 `GET /user-management/queries/users/v1`: user ids only, `filter` (FQL; `uid`
/// compared ignoring case, the rest exactly), `offset`, `limit` (1-500, default 100), `sort`
/// (default `uid|asc`), with `meta.pagination {offset, limit, total}`.
pub(super) async fn query_users(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.declared(QUERY_USER_V1)?;
    let terms = match params.get("filter") {
        Some(f) if !f.trim().is_empty() => fql(f, USER_FILTERS, USER_FILTERS_PLAYED)?,
        _ => Vec::new(),
    };
    let offset = params.int("offset", 0);
    let limit = params.int("limit", DEFAULT_LIMIT);
    let sort = params.get("sort").unwrap_or("uid|asc");
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let mut matching: Vec<&User> = cs.users.values().filter(|u| terms.iter().all(|(f, v)| matches(u, f, v))).collect();
    sort_users(&mut matching, sort);
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).map(|u| Value::from(u.uuid.clone())).collect();
    Ok(resources(StatusCode::OK, page, Some((offset, limit, total)), vec![]))
}

fn matches(u: &User, field: &str, value: &str) -> bool {
    match field {
        "uid" => u.username.eq_ignore_ascii_case(value),
        "uuid" => u.uuid == value,
        "first_name" => u.first_name == value,
        "last_name" => u.last_name == value,
        "name" => format!("{} {}", u.first_name, u.last_name) == value,
        "status" => value == "active",
        "cid" => value.eq_ignore_ascii_case(CUSTOMER_ID),
        _ => false,
    }
}

/// The sorts the simulator can tell apart; the others (all equal here) fall back to `uid`.
fn sort_users(users: &mut [&User], sort: &str) {
    let (field, order) = sort.split_once('|').unwrap_or((sort, "asc"));
    let by_uid = |u: &&User| u.username.to_lowercase();
    match field {
        "first_name" => users.sort_by_key(|u| (u.first_name.clone(), by_uid(u))),
        "last_name" => users.sort_by_key(|u| (u.last_name.clone(), by_uid(u))),
        "name" => users.sort_by_key(|u| (format!("{} {}", u.first_name, u.last_name), by_uid(u))),
        // `users` is in creation order already.
        "created_at" => {}
        _ => users.sort_by_key(by_uid),
    }
    if order == "desc" {
        users.reverse();
    }
}

/// retrieveUsersGETV1 `POST /user-management/entities/users/GET/v1` `{"ids": [...]}` (1 to
/// 5000 user ids) -> `domain.User`s. Ids that name no user are listed in `errors` (code 404);
/// when none exists the answer is a 404.
pub(super) async fn retrieve_users(AxState(sim): AxState<Sim>, params: Params, body: Bytes) -> ApiResult {
    params.declared(NONE)?;
    let obj = body_of(&body, IDS_REQUEST)?;
    let mut ids = strings(&obj, "ids").ok_or_else(|| ApiError::bad_request("ids is required"))?;
    ids.dedup();
    if ids.is_empty() {
        return Err(ApiError::bad_request("ids must name at least one user"));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!("too many ids: {} given, at most {MAX_IDS} per request", ids.len())));
    }
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in &ids {
        match cs.user_by_uuid(id) {
            Some(u) => found.push(user_json(u)),
            None => missing.push(json!({ "code": 404, "message": format!("user {id} not found"), "id": id })),
        }
    }
    if found.is_empty() {
        return Err(ApiError { status: StatusCode::NOT_FOUND, errors: missing });
    }
    Ok(resources(StatusCode::OK, found, None, missing))
}

/// createUserV1 `POST /user-management/entities/users/v1` `{uid, first_name?, last_name?,
/// password?, cid?}` (`domain.CreateUserRequest`) -> 201 with the `domain.User`. Roles are
/// never set here (the model has no field for them). `validate_only=true` checks and creates
/// nothing (200, no resources).
pub(super) async fn create_user(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    params.declared(CREATE_USER_V1)?;
    let obj = body_of(&body, CREATE_USER_REQUEST)?;
    own_cid(text(&obj, "cid").as_deref())?;
    let input = NewUser {
        uuid: None,
        username: text(&obj, "uid"),
        first_name: text(&obj, "first_name"),
        last_name: text(&obj, "last_name"),
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    if params.flag("validate_only") {
        // Validated on a copy: nothing changes.
        cs.clone().insert_user(input)?;
        return Ok(resources(StatusCode::OK, vec![], None, vec![]));
    }
    let key = cs.insert_user(input)?;
    let user = &cs.users[&key];
    let data = user_json(user);
    let mut details = Map::new();
    details.insert("user_uuid".into(), user.uuid.clone().into());
    details.insert("username".into(), user.username.clone().into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.create", details);
    Ok(resources(StatusCode::CREATED, vec![data], None, vec![]))
}

/// updateUserV1 `PATCH /user-management/entities/users/v1?user_uuid=` `{first_name,
/// last_name}` (`domain.UpdateUserRequest`; "Both ... have to [be] specified").
pub(super) async fn update_user(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    params.declared(USER_UUID_ONLY)?;
    let uuid = params.text("user_uuid").unwrap_or_default();
    let obj = body_of(&body, UPDATE_USER_REQUEST)?;
    let (Some(first), Some(last)) = (text(&obj, "first_name"), text(&obj, "last_name")) else {
        return Err(ApiError::bad_request("both first_name and last_name have to be specified"));
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uuid)?;
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uuid} not found")))?;
    let mut changed: Vec<&str> = Vec::new();
    update_field(&mut user.first_name, Some(first), "first_name", &mut changed);
    update_field(&mut user.last_name, Some(last), "last_name", &mut changed);
    if !changed.is_empty() {
        user.updated_at = rfc3339_ms(now_ms());
    }
    let data = user_json(user);
    let mut details = Map::new();
    details.insert("user_uuid".into(), uuid.into());
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.update", details);
    Ok(resources(StatusCode::OK, vec![data], None, vec![]))
}

/// deleteUserV1 `DELETE /user-management/entities/users/v1?user_uuid=` -> 200 `{meta,
/// errors: []}`. Immediate and irreversible; the user's grants go with it.
pub(super) async fn delete_user(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    params.declared(USER_UUID_ONLY)?;
    no_body(&body)?;
    let uuid = params.text("user_uuid").unwrap_or_default();
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uuid)?;
    let Some(user) = cs.users.remove(&key) else {
        return Err(ApiError::not_found(format!("user {uuid} not found")));
    };
    cs.by_uuid.remove(&user.uuid);
    cs.by_username.remove(&user.username.to_lowercase());
    let mut details = Map::new();
    details.insert("user_uuid".into(), uuid.into());
    details.insert("username".into(), user.username.into());
    details.insert("roles_at_delete".into(), json!(user.roles));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.delete", details);
    Ok(meta_only())
}

// ---------------------------------------------------------------------------------------------
// Roles

/// queriesRolesV1 `GET /user-management/queries/roles/v1` (`cid`, `user_uuid`, `action`):
/// every role id of the tenant. With `user_uuid` the user must exist; what that parameter
/// narrows the list to ("roles available" to that user for `action`) is not defined closely
/// enough to play, so the list is the tenant's either way (lifecycle never sends it).
pub(super) async fn queries_roles(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.declared(QUERIES_ROLES_V1)?;
    own_cid(params.text("cid").as_deref())?;
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    if let Some(uuid) = params.text("user_uuid") {
        cs.user_key(&uuid)?;
    }
    let roles: Vec<Value> = cs.roles.keys().map(|r| Value::from(r.clone())).collect();
    Ok(resources(StatusCode::OK, roles, None, vec![]))
}

/// CombinedUserRolesV2 `GET /user-management/combined/user-roles/v2?user_uuid=` (`cid`,
/// `direct_only`, `filter` on `role_id`/`role_name`, `offset`, `limit` 1-500, `sort`): the
/// user's grants (every grant here is direct), with `meta.pagination`.
pub(super) async fn combined_user_roles(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.declared(COMBINED_USER_ROLES_V2)?;
    own_cid(params.text("cid").as_deref())?;
    let terms = match params.get("filter") {
        Some(f) if !f.trim().is_empty() => fql(f, GRANT_FILTERS, GRANT_FILTERS_PLAYED)?,
        _ => Vec::new(),
    };
    let uuid = params.text("user_uuid").unwrap_or_default();
    let offset = params.int("offset", 0);
    let limit = params.int("limit", DEFAULT_LIMIT);
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let user = cs.user_by_uuid(&uuid).ok_or_else(|| ApiError::not_found(format!("user {uuid} not found")))?;
    let mut grants: Vec<(String, String)> = user
        .roles
        .iter()
        .map(|r| (r.clone(), cs.role_name(r)))
        .filter(|(id, name)| {
            terms.iter().all(|(f, v)| match f.as_str() {
                "role_id" => id == v,
                "role_name" => name == v,
                _ => false,
            })
        })
        .collect();
    // Default `role_name|asc`; the other sorts are all equal here (one user, one CID, direct).
    grants.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    if params.get("sort") == Some("role_name|desc") {
        grants.reverse();
    }
    let total = grants.len();
    let page: Vec<Value> =
        grants.iter().skip(offset).take(limit).map(|(id, name)| grant_json(user, id, name)).collect();
    Ok(resources(StatusCode::OK, page, Some((offset, limit, total)), vec![]))
}

/// userRolesActionV1 `POST /user-management/entities/user-role-actions/v1` `{action, cid,
/// role_ids, uuid, expires_at?}` (`flightcontrolapi.grantInput`; "CID, RoleID(s), User UUID
/// and Action are required", action `grant` or `revoke`) -> 200 `{meta, errors: []}`.
/// Role ids are case-sensitive; all or nothing: an unknown role refuses a grant, a role the
/// user does not hold refuses a revoke (400), and nothing changes. A grant of a held role is
/// a no-op. `expires_at` is accepted and not played (no grant expires here).
pub(super) async fn user_roles_action(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    params.declared(NONE)?;
    let obj = body_of(&body, GRANT_INPUT)?;
    let missing: Vec<&str> = ["action", "cid", "uuid"].into_iter().filter(|k| text(&obj, k).is_none()).collect();
    let role_ids = strings(&obj, "role_ids").unwrap_or_default();
    if !missing.is_empty() || role_ids.is_empty() {
        let mut all = missing;
        if role_ids.is_empty() {
            all.push("role_ids");
        }
        return Err(ApiError::bad_request(format!(
            "{} required: CID, RoleID(s), User UUID and Action",
            all.join(", ")
        )));
    }
    own_cid(text(&obj, "cid").as_deref())?;
    let action = text(&obj, "action").unwrap_or_default();
    if action != "grant" && action != "revoke" {
        return Err(ApiError::bad_request(format!("action {action:?}: allowed values are grant and revoke")));
    }
    let uuid = text(&obj, "uuid").unwrap_or_default();
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uuid)?;
    if action == "grant" {
        // Case-sensitive: `Falcon_Admin` is not `falcon_admin`.
        let unknown: Vec<&str> = role_ids.iter().filter(|r| !cs.roles.contains_key(*r)).map(String::as_str).collect();
        if !unknown.is_empty() {
            return Err(ApiError::bad_request(format!("invalid role id(s): {}", unknown.join(", "))));
        }
    }
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uuid} not found")))?;
    if action == "grant" {
        let granted: Vec<String> = role_ids.iter().filter(|r| user.roles.insert((*r).clone())).cloned().collect();
        let mut details = Map::new();
        details.insert("user_uuid".into(), uuid.into());
        details.insert("role_ids".into(), json!(granted));
        world.journal.mutation(VENDOR, &op.method, &op.path, "role.grant", details);
        return Ok(meta_only());
    }
    let errors: Vec<Value> = role_ids
        .iter()
        .filter(|r| !user.roles.contains(*r))
        .map(|r| json!({ "code": 400, "message": format!("role {r} is not assigned to user {uuid}") }))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError { status: StatusCode::BAD_REQUEST, errors });
    }
    for r in &role_ids {
        user.roles.remove(r);
    }
    for r in &role_ids {
        let mut details = Map::new();
        details.insert("user_uuid".into(), uuid.clone().into());
        details.insert("role_id".into(), r.clone().into());
        world.journal.mutation(VENDOR, &op.method, &op.path, "role.revoke", details);
    }
    Ok(meta_only())
}
