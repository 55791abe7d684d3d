//! Jira's REST handlers, behind [`guard`] (credential, then the per-account rate limit): users
//! by `accountId` only, site access, and groups by `groupId` only.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::model::{AccountType, Caller, Group, Invitation, NewUser, User};
use super::wire::{credential, group_ref, limit_headers, unknown_product, ApiError, ApiResult, Expand, Page, Params};
use super::{State, PRODUCTS, VENDOR};
use crate::extract::{json_object, valid_email, Empty, Op};
use crate::sim::{now_ms, Sim};

/// Authenticate, then rate-limit per account; every response after auth carries the headers.
pub(super) async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let presented = credential(req.headers());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let jira = &mut world.tenants.jira;
        let Some(caller) = presented.as_ref().and_then(|c| jira.authenticate(c)) else {
            return ApiError::unauthorized().into_response();
        };
        let decision = jira.limiter.check(&caller.account_id, now);
        if !decision.allowed {
            return jira.rate_limited(&decision, now, false);
        }
        (caller, decision)
    };
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    limit_headers(&decision, response.headers_mut());
    response
}

// ---------------------------------------------------------------------------------------------
// Users

pub(super) async fn myself(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    let world = sim.lock();
    let jira = &world.tenants.jira;
    Ok(Json(jira.user_json(jira.site_user(&caller.account_id)?, Expand::parse(&params))).into_response())
}

pub(super) async fn get_user(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    Ok(Json(jira.user_json(jira.site_user(account_id)?, Expand::parse(&params))).into_response())
}

/// `GET /user/search?query=`: matches display names and addresses — hidden ones too, although
/// they read `null` in the answer. Accounts without site access are not found.
pub(super) async fn search_users(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    params.refuse_legacy_user_ids()?;
    let page = Page::parse(&params)?;
    let query = params.get("query").map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    let account = params.get("accountId").map(str::trim).filter(|a| !a.is_empty());
    if query.is_none() && account.is_none() {
        return Err(ApiError::bad_request("One of 'query' or 'accountId' query parameters must be provided."));
    }
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let found: Vec<&User> = jira
        .users
        .values()
        .filter(|u| u.site_access)
        // Only site admins see app and customer accounts here.
        .filter(|u| caller.site_admin || u.account_type == AccountType::Atlassian)
        .filter(|u| account.is_none_or(|a| u.account_id == a))
        .filter(|u| {
            query.as_deref().is_none_or(|q| {
                u.display_name.to_lowercase().contains(q)
                    || u.email.as_deref().is_some_and(|e| e.to_lowercase().contains(q))
            })
        })
        .collect();
    let out: Vec<Value> = page.slice(&found).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(out).into_response())
}

/// `GET /users/search`: every account on the site, of every type (site admins only).
pub(super) async fn all_users(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    caller.require_admin()?;
    let page = Page::parse(&params)?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let all: Vec<&User> = jira.users.values().filter(|u| u.site_access).collect();
    let out: Vec<Value> = page.slice(&all).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(out).into_response())
}

pub(super) async fn create_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let obj = json_object(&body, Empty::IsObject)?;
    let email = match obj.get("emailAddress") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::field("emailAddress", "You must specify an email address."))
        }
        Some(_) => return Err(ApiError::field("emailAddress", "emailAddress must be a string.")),
    };
    let display_name = match obj.get("displayName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::field("displayName", "displayName must be a string.")),
    };
    let products: BTreeSet<String> = match obj.get("products") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                p.as_str().map(str::to_owned).ok_or_else(|| ApiError::field("products", "products must be strings."))
            })
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => {
            return Err(ApiError::field(
                "products",
                "products is required: the product keys to give access to (may be empty).",
            ))
        }
        Some(_) => return Err(ApiError::field("products", "products must be an array of product keys.")),
    };
    if !valid_email(&email) {
        return Err(ApiError::field("emailAddress", "You must specify a valid email address."));
    }
    if let Some(p) = products.iter().find(|p| !PRODUCTS.iter().any(|(k, _)| k == *p)) {
        return Err(unknown_product(p));
    }

    let now = now_ms();
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let (account_id, action) = match jira.user_by_email(&email).map(|u| (u.account_id.clone(), u.site_access)) {
        Some((_, true)) => {
            return Err(ApiError::bad_request("A user with that email address already exists."));
        }
        // The Atlassian account exists but lost its site access: it comes back, same accountId.
        Some((account_id, false)) => {
            if let Some(u) = jira.user_mut(&account_id) {
                u.site_access = true;
                u.products = products.clone();
                u.modified_ms = now;
            }
            (account_id, "user.restore")
        }
        None => {
            let name = display_name.unwrap_or_default();
            let input = NewUser { products: products.clone(), ..NewUser::person(&email, &name) };
            (jira.insert_user(input, now)?, "user.create")
        }
    };
    // "Creates a Jira-managed user and sends an invitation email."
    jira.invitations.push(Invitation { email: email.clone(), account_id: account_id.clone(), at_ms: now });
    let user = jira.user(&account_id).cloned().ok_or_else(|| ApiError::bad_request("the new user vanished"))?;
    // Jira's answer counts the new user's groups and application roles without listing them.
    let mut data = jira.user_json(&user, Expand::default());
    data["groups"] = json!({ "size": jira.groups_of(&account_id).len(), "items": [] });
    data["applicationRoles"] = json!({ "size": user.products.len(), "items": [] });
    let mut details = Map::new();
    details.insert("account_id".into(), account_id.into());
    details.insert("products".into(), json!(products));
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
    Ok((StatusCode::CREATED, Json(data)).into_response())
}

/// Removes site access (not the Atlassian account). Refused for SCIM-managed accounts.
pub(super) async fn delete_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
) -> ApiResult {
    caller.require_admin()?;
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?.to_owned();
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let user = jira.site_user(&account_id)?;
    if user.scim_id.is_some() {
        return Err(ApiError::bad_request(
            "This user is managed by an external identity provider through SCIM, so they cannot be deleted with this API: deactivate them through SCIM or in your identity provider.",
        ));
    }
    if account_id == caller.account_id {
        return Err(ApiError::bad_request("You cannot delete yourself."));
    }
    let mut removed = Vec::new();
    for g in jira.groups.values_mut() {
        if g.members.remove(&account_id) {
            removed.push(g.group_id.clone());
        }
    }
    if let Some(u) = jira.user_mut(&account_id) {
        u.site_access = false;
        u.products.clear();
        u.modified_ms = now_ms();
    }
    let mut details = Map::new();
    details.insert("account_id".into(), account_id.into());
    details.insert("groups_removed".into(), json!(removed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.delete", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn user_groups(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    jira.site_user(account_id)?;
    let groups: Vec<Value> = jira.groups_of(account_id).into_iter().map(group_ref).collect();
    Ok(Json(groups).into_response())
}

// ---------------------------------------------------------------------------------------------
// Groups

pub(super) async fn bulk_groups(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = Page::parse(&params)?;
    let ids = params.all("groupId");
    let names: Vec<String> = params.all("groupName").into_iter().map(str::to_lowercase).collect();
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let mut groups: Vec<&Group> = jira
        .groups
        .values()
        .filter(|g| ids.is_empty() || ids.contains(&g.group_id.as_str()))
        .filter(|g| names.is_empty() || names.contains(&g.name.to_lowercase()))
        .collect();
    groups.sort_by_key(|g| g.name.to_lowercase());
    let values: Vec<Value> =
        page.slice(&groups).iter().map(|g| json!({ "name": g.name, "groupId": g.group_id })).collect();
    Ok(Json(page.bean("/group/bulk", values, groups.len())).into_response())
}

pub(super) async fn group_members(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = Page::parse(&params)?;
    let include_inactive = matches!(params.get("includeInactiveUsers"), Some("true"));
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let group = resolve_group(jira, &params)?;
    let members: Vec<&User> = group
        .members
        .iter()
        .filter_map(|a| jira.user(a))
        .filter(|u| u.site_access && (include_inactive || u.active))
        .collect();
    let values: Vec<Value> = page.slice(&members).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(page.bean("/group/member", values, members.len())).into_response())
}

/// The group a request addresses: by `groupId` only. Names are deprecated as identifiers.
pub(super) fn resolve_group<'a>(jira: &'a State, params: &Params) -> Result<&'a Group, ApiError> {
    let id = params.get("groupId").map(str::trim).filter(|v| !v.is_empty());
    let Some(id) = id else {
        if params.get("groupname").is_some() || params.get("groupName").is_some() {
            return Err(ApiError::bad_request(
                "Group names are deprecated as identifiers: address the group by groupId.",
            ));
        }
        return Err(ApiError::bad_request("The query parameter 'groupId' is required."));
    };
    if let Some(g) = jira.groups.get(id) {
        return Ok(g);
    }
    if let Some(g) = jira.groups.values().find(|g| g.name.eq_ignore_ascii_case(id)) {
        return Err(ApiError::bad_request(format!(
            "'{id}' is a group name, not a groupId: the group '{}' has groupId {}.",
            g.name, g.group_id
        )));
    }
    Err(ApiError::new(StatusCode::NOT_FOUND, format!("Specified group does not exist: no group has groupId '{id}'.")))
}

pub(super) async fn add_to_group(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let obj = json_object(&body, Empty::IsObject)?;
    if obj.contains_key("name") || obj.contains_key("username") {
        return Err(ApiError::bad_request("Users are identified by accountId only."));
    }
    let account_id = match obj.get("accountId") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(ApiError::field("accountId", "accountId is required.")),
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let group = resolve_group(jira, &params)?;
    let (group_id, name) = (group.group_id.clone(), group.name.clone());
    jira.site_user(&account_id)?;
    if group.members.contains(&account_id) {
        return Err(ApiError::bad_request(format!("Cannot add user. User is already a member of '{name}'.")));
    }
    jira.add_member(&group_id, &account_id);
    let data = group_ref(&jira.groups[&group_id]);
    let mut details = Map::new();
    details.insert("group_id".into(), group_id.into());
    details.insert("group_name".into(), name.into());
    details.insert("account_id".into(), account_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "group.add", details);
    Ok((StatusCode::CREATED, Json(data)).into_response())
}

pub(super) async fn remove_from_group(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
) -> ApiResult {
    caller.require_admin()?;
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?.to_owned();
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let group = resolve_group(jira, &params)?;
    let (group_id, name) = (group.group_id.clone(), group.name.clone());
    jira.site_user(&account_id)?;
    if !group.members.contains(&account_id) {
        return Err(ApiError::bad_request(format!("Cannot remove user. User is not a member of '{name}'.")));
    }
    if let Some(g) = jira.groups.get_mut(&group_id) {
        g.members.remove(&account_id);
    }
    let data = group_ref(&jira.groups[&group_id]);
    let mut details = Map::new();
    details.insert("group_id".into(), group_id.into());
    details.insert("group_name".into(), name.into());
    details.insert("account_id".into(), account_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "group.remove", details);
    Ok(Json(data).into_response())
}
