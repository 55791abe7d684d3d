//! Jira's REST handlers, behind [`guard`] (credential, then the per-account rate limit): users
//! by `accountId` only, site access, and groups by `groupId` (or `groupname` where the
//! definition takes it). Each handler takes exactly its operation's query parameters and body
//! fields (operation ids of the Jira Cloud platform definition in the comments); anything else
//! is a 400 in Jira's error shape.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::model::{AccountType, Caller, Group, Invitation, NewUser, User};
use super::wire::{
    credential, group_details, group_name, limit_headers, query_without_paging, unknown_product, ApiError, ApiResult,
    Expand, Page, PageLimit, Params,
};
use super::{State, PRODUCTS, VENDOR};
use crate::extract::{json_object, valid_email, Empty, Op};
use crate::sim::{now_ms, Sim};

impl Caller {
    fn require_admin(&self) -> Result<(), ApiError> {
        if self.site_admin {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "You do not have permission to perform this operation: it requires site administration rights.",
            ))
        }
    }
}

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

/// findUsers and getAllUsers serve at most this many a page (see [`PageLimit`]).
const USER_PAGE: PageLimit = PageLimit::Clamp(1000);
/// getUsersFromGroup: "number should be between 1 and 50".
const MEMBER_PAGE: PageLimit = PageLimit::Between(1, 50);
/// bulkGetGroups publishes no maximum; the simulator serves up to 1000.
const GROUP_PAGE: PageLimit = PageLimit::Clamp(1000);

/// getCurrentUser: `GET /myself[?expand=]`.
pub(super) async fn myself(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    params.only(&["expand"])?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    Ok(Json(jira.user_json(jira.site_user(&caller.account_id)?, Expand::parse(&params))).into_response())
}

/// getUser: `GET /user?accountId=[&expand=groups,applicationRoles]`.
pub(super) async fn get_user(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.only(&["accountId", "username", "key", "expand"])?;
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    Ok(Json(jira.user_json(jira.site_user(account_id)?, Expand::parse(&params))).into_response())
}

/// findUsers: `GET /user/search?query=|accountId=|property=[&startAt&maxResults]`. "Returns a
/// list of active users"; `query` "can match the prefix" of `displayName` or `emailAddress` —
/// a hidden address too, although it reads `null` in the answer. Accounts without site
/// access are not found, nor are deactivated ones.
pub(super) async fn search_users(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    params.only(&["query", "username", "accountId", "startAt", "maxResults", "property"])?;
    params.refuse_legacy_user_ids()?;
    let page = Page::parse(&params, USER_PAGE)?;
    let query = params.get("query").map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    let account = params.get("accountId").map(str::trim).filter(|a| !a.is_empty());
    let property = params.get("property").map(str::trim).filter(|p| !p.is_empty());
    if query.is_none() && account.is_none() && property.is_none() {
        return Err(ApiError::bad_request(
            "One of 'query', 'accountId' or 'property' query parameters must be provided.",
        ));
    }
    if query.is_some() && account.is_some() {
        return Err(ApiError::bad_request("The 'query' and 'accountId' query parameters cannot be used together."));
    }
    // `thepropertykey.something.nested=1`; the simulator keeps no user properties, so a valid
    // one matches nobody.
    if let Some(p) = property {
        let valid = p.split_once('=').is_some_and(|(path, value)| !path.is_empty() && !value.is_empty());
        if !valid {
            return Err(ApiError::bad_request(format!("The 'property' parameter is not valid: '{p}'.")));
        }
    }
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let found: Vec<&User> = jira
        .users
        .values()
        .filter(|u| u.site_access && u.active && property.is_none())
        // Only site admins see app and customer accounts here.
        .filter(|u| caller.site_admin || u.account_type == AccountType::Atlassian)
        .filter(|u| account.is_none_or(|a| u.account_id == a))
        .filter(|u| {
            query.as_deref().is_none_or(|q| {
                u.display_name.to_lowercase().starts_with(q)
                    || u.email.as_deref().is_some_and(|e| e.to_lowercase().starts_with(q))
            })
        })
        .collect();
    let out: Vec<Value> = page.slice(&found).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(out).into_response())
}

/// getAllUsers: `GET /users/search[?startAt&maxResults]`: "all users, including active users,
/// inactive users and previously deleted users that have an Atlassian account", of every type
/// (site admins only). A previously deleted user (site access removed) reads `active: false`.
pub(super) async fn all_users(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
) -> ApiResult {
    caller.require_admin()?;
    params.only(&["startAt", "maxResults"])?;
    let page = Page::parse(&params, USER_PAGE)?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let all: Vec<&User> = jira.users.values().collect();
    let out: Vec<Value> = page.slice(&all).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(out).into_response())
}

/// createUser: `POST /user` `NewUserDetails` (`emailAddress`, `products` required). A new
/// address makes a Jira-managed user with those products and an invitation; "if the user
/// exists and has access to Jira, the operation returns a 201" (that user, unchanged, no
/// invitation); "if the user exists but does not have access to Jira" (removed from the site,
/// or no product), a 400.
pub(super) async fn create_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    params.only(&[])?;
    let obj = json_object(&body, Empty::IsObject)?;
    for field in obj.keys() {
        match field.as_str() {
            "emailAddress" | "products" => {}
            // "No longer available": accepted and ignored, as the definition says (the person
            // sets their name and password when they accept the invitation).
            "displayName" | "password" | "applicationKeys" | "self" => {}
            "name" | "key" => {
                return Err(ApiError::field(
                    field,
                    "This property is no longer available: users are identified by accountId only.",
                ))
            }
            other => return Err(ApiError::bad_request(format!("Unrecognized field \"{other}\" in NewUserDetails."))),
        }
    }
    for ignored in ["displayName", "password", "self"] {
        if obj.get(ignored).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(ApiError::field(ignored, &format!("{ignored} must be a string.")));
        }
    }
    let email = match obj.get("emailAddress") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::field("emailAddress", "You must specify an email address."))
        }
        Some(_) => return Err(ApiError::field("emailAddress", "emailAddress must be a string.")),
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
    if let Some(existing) = jira.user_by_email(&email) {
        if existing.site_access && !existing.products.is_empty() {
            // Nothing changes and no invitation is sent: the answer is the existing user.
            let existing = existing.clone();
            return Ok((StatusCode::CREATED, Json(created_answer(jira, &existing))).into_response());
        }
        return Err(ApiError::bad_request(
            "The user already exists but does not have access to Jira: give their account access in the Atlassian administration.",
        ));
    }
    // The person names themself when they accept the invitation: until then, the address's local part.
    let input = NewUser { products: products.clone(), display_name: None, ..NewUser::person(&email, "") };
    let account_id = jira.insert_user(input, now)?;
    // "Creates a Jira-managed user and sends an invitation email."
    jira.invitations.push(Invitation { email: email.clone(), account_id: account_id.clone(), at_ms: now });
    let user = jira.user(&account_id).cloned().ok_or_else(|| ApiError::bad_request("the new user vanished"))?;
    let data = created_answer(jira, &user);
    let action = "user.create";
    let mut details = Map::new();
    details.insert("account_id".into(), account_id.into());
    details.insert("products".into(), json!(products));
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
    Ok((StatusCode::CREATED, Json(data)).into_response())
}

/// createUser's answer: the user, its `groups` and `applicationRoles` counted (`size`) but not
/// listed, as the definition's example shows.
fn created_answer(jira: &State, user: &User) -> Value {
    let mut data = jira.user_json(user, Expand::default());
    data["groups"] = json!({ "size": jira.groups_of(&user.account_id).len(), "items": [] });
    data["applicationRoles"] = json!({ "size": user.products.len(), "items": [] });
    data
}

/// removeUser: `DELETE /user?accountId=`: removes site access (not the Atlassian account).
/// Refused for SCIM-managed accounts.
pub(super) async fn delete_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
) -> ApiResult {
    caller.require_admin()?;
    params.only(&["accountId", "username", "key"])?;
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

/// getUserGroups: `GET /user/groups?accountId=`: `GroupName`s.
pub(super) async fn user_groups(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.only(&["accountId", "username", "key"])?;
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    jira.site_user(account_id)?;
    let groups: Vec<Value> = jira.groups_of(account_id).into_iter().map(group_name).collect();
    Ok(Json(groups).into_response())
}

// ---------------------------------------------------------------------------------------------
// Groups

/// bulkGetGroups: `GET /group/bulk[?groupId=…][&groupName=…][&accessType=][&applicationKey=]`:
/// a page bean of `GroupDetails`; unknown ids and names are simply not returned.
/// `accessType` and `applicationKey` are checked against the definition's values but not
/// played (the simulator keeps no group access levels or product groups): every group passes.
pub(super) async fn bulk_groups(AxState(sim): AxState<Sim>, params: Params, uri: Uri) -> ApiResult {
    params.only(&["startAt", "maxResults", "groupId", "groupName", "accessType", "applicationKey"])?;
    let page = Page::parse(&params, GROUP_PAGE)?;
    if let Some(t) = params.get("accessType").filter(|t| !["site-admin", "admin", "user"].contains(t)) {
        return Err(ApiError::bad_request(format!(
            "Invalid accessType '{t}': valid values are site-admin, admin, user."
        )));
    }
    if let Some(k) = params.get("applicationKey").filter(|k| !PRODUCTS.iter().any(|(key, _)| key == k)) {
        return Err(ApiError::bad_request(format!("Invalid applicationKey '{k}'.")));
    }
    let ids = params.all("groupId");
    let names: Vec<String> = params.all("groupName").into_iter().map(str::to_lowercase).collect();
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let mut groups: Vec<&Group> = jira
        .groups
        .values()
        .filter(|g| ids.is_empty() || g.shown_id().is_some_and(|id| ids.contains(&id)))
        .filter(|g| names.is_empty() || names.contains(&g.name.to_lowercase()))
        .collect();
    groups.sort_by_key(|g| g.name.to_lowercase());
    let values: Vec<Value> = page.slice(&groups).iter().map(|g| group_details(g)).collect();
    Ok(Json(page.bean("/group/bulk", &query_without_paging(&uri), values, groups.len())).into_response())
}

/// getUsersFromGroup: `GET /group/member?groupId=|groupname=[&includeInactiveUsers][&startAt]
/// [&maxResults]`: a page bean of `UserDetails`, at most 50 a page (more is a 400); inactive
/// members only with `includeInactiveUsers=true`.
pub(super) async fn group_members(AxState(sim): AxState<Sim>, params: Params, uri: Uri) -> ApiResult {
    params.only(&["groupname", "groupId", "includeInactiveUsers", "startAt", "maxResults"])?;
    let page = Page::parse(&params, MEMBER_PAGE)?;
    let include_inactive = params.boolean("includeInactiveUsers", false)?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let group = resolve_group(jira, &params)?;
    let members: Vec<&User> = group
        .members
        .iter()
        .filter_map(|a| jira.user(a))
        .filter(|u| u.site_access && (include_inactive || u.active))
        .collect();
    let values: Vec<Value> = page.slice(&members).iter().map(|u| jira.user_details_json(u)).collect();
    Ok(Json(page.bean("/group/member", &query_without_paging(&uri), values, members.len())).into_response())
}

/// The group a request addresses: by `groupId`, or by `groupname` ("use of groupId is
/// recommended"), never both. A group Jira shows without an id is found by name only.
pub(super) fn resolve_group<'a>(jira: &'a State, params: &Params) -> Result<&'a Group, ApiError> {
    let id = params.get("groupId").map(str::trim).filter(|v| !v.is_empty());
    let name = params.get("groupname").map(str::trim).filter(|v| !v.is_empty());
    let id = match (id, name) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("The 'groupname' and 'groupId' parameters cannot be used together."))
        }
        (None, Some(name)) => {
            return jira.groups.values().find(|g| g.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Specified group does not exist: no group is named '{name}'."),
                )
            })
        }
        (None, None) => return Err(ApiError::bad_request("Either 'groupname' or 'groupId' must be specified.")),
        (Some(id), None) => id,
    };
    if let Some(g) = jira.groups.get(id).filter(|g| !g.null_id) {
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

/// addUserToGroup: `POST /group/user?groupId=|groupname=` `UpdateUserToGroupBean`
/// (`{"accountId"}`); 201 with the `Group`.
pub(super) async fn add_to_group(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    params.only(&["groupname", "groupId"])?;
    let obj = json_object(&body, Empty::IsObject)?;
    for field in obj.keys() {
        match field.as_str() {
            "accountId" => {}
            "name" => return Err(ApiError::bad_request("Users are identified by accountId only.")),
            other => {
                return Err(ApiError::bad_request(format!("Unrecognized field \"{other}\" in UpdateUserToGroupBean.")))
            }
        }
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
    let data = group_name(&jira.groups[&group_id]);
    let mut details = Map::new();
    details.insert("group_id".into(), group_id.into());
    details.insert("group_name".into(), name.into());
    details.insert("account_id".into(), account_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "group.add", details);
    Ok((StatusCode::CREATED, Json(data)).into_response())
}

/// removeUserFromGroup: `DELETE /group/user?groupId=|groupname=&accountId=`; 200, no body
/// (the definition gives none).
pub(super) async fn remove_from_group(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
) -> ApiResult {
    caller.require_admin()?;
    params.only(&["groupname", "groupId", "username", "accountId"])?;
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
    let mut details = Map::new();
    details.insert("group_id".into(), group_id.into());
    details.insert("group_name".into(), name.into());
    details.insert("account_id".into(), account_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "group.remove", details);
    Ok(StatusCode::OK.into_response())
}
