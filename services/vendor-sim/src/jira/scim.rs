//! The Atlassian SCIM directory API (`/jira/scim/directory/{directoryId}`), behind
//! [`scim_guard`]: list users (`filter=userName eq "..."`, 1-based paging), get one, and PATCH
//! `active` (or `displayName`). Deactivating here makes the Jira user inactive but keeps the
//! account, its site access and its groups.

use axum::body::Bytes;
use axum::extract::{Path, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::model::User;
use super::state::SCIM_RATE_KEY;
use super::wire::{
    credential, limit_headers, Credential, ScimError, ScimParams, ScimResult, SCIM_LIST_SCHEMA, SCIM_PATCH_SCHEMA,
};
use super::VENDOR;
use crate::extract::{json_object, Empty, Op};
use crate::registry::update_field;
use crate::sim::{now_ms, Sim};

const SCIM_DEFAULT_COUNT: usize = 100;
const SCIM_MAX_COUNT: usize = 100;

/// Bearer token of the directory, the right directory id, then the rate limit.
pub(super) async fn scim_guard(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let bearer = match credential(req.headers()) {
        Some(Credential::Bearer(t)) => Some(t),
        _ => None,
    };
    let directory = req.uri().path().split('/').nth(2).unwrap_or_default().to_owned();
    let now = now_ms();
    let decision = {
        let mut world = sim.lock();
        let jira = &mut world.tenants.jira;
        let token_ok = bearer.is_some_and(|t| jira.scim_token.matches(t.expose()));
        if !token_ok {
            return ScimError::new(StatusCode::UNAUTHORIZED, "Missing or invalid API key for this directory")
                .into_response();
        }
        if directory != jira.directory_id {
            return ScimError::new(StatusCode::NOT_FOUND, format!("Directory {directory} not found")).into_response();
        }
        let decision = jira.limiter.check(SCIM_RATE_KEY, now);
        if !decision.allowed {
            return jira.rate_limited(&decision, now, true);
        }
        decision
    };
    let mut response = next.run(req).await;
    limit_headers(&decision, response.headers_mut());
    response
}

pub(super) async fn scim_list_users(AxState(sim): AxState<Sim>, params: ScimParams) -> ScimResult {
    let positive = |key: &str, default: usize| -> Result<usize, ScimError> {
        match params.get(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(raw) => raw
                .parse::<usize>()
                .map_err(|_| ScimError::invalid("invalidValue", format!("{key} must be an integer"))),
        }
    };
    // 1-based; values below 1 are read as 1 (RFC 7644 §3.4.2.4).
    let start_index = positive("startIndex", 1)?.max(1);
    let count = positive("count", SCIM_DEFAULT_COUNT)?.min(SCIM_MAX_COUNT);
    let filter = params.get("filter").map(parse_scim_filter).transpose()?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let all: Vec<&User> = jira
        .users
        .values()
        .filter(|u| u.scim_id.is_some())
        .filter(|u| filter.as_deref().is_none_or(|f| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(f))))
        .collect();
    let page: Vec<Value> = all.iter().skip(start_index - 1).take(count).map(|u| jira.scim_json(u)).collect();
    Ok(Json(json!({
        "schemas": [SCIM_LIST_SCHEMA],
        "totalResults": all.len(),
        "startIndex": start_index,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
    .into_response())
}

/// Only `userName eq "value"` is supported; returns the value.
pub(super) fn parse_scim_filter(filter: &str) -> Result<String, ScimError> {
    let unsupported =
        || ScimError::invalid("invalidFilter", format!("Unsupported filter: {filter} (use userName eq \"...\")"));
    let mut parts = filter.trim().splitn(3, char::is_whitespace);
    let (attr, op, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !attr.eq_ignore_ascii_case("userName") || !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    let value = value.trim();
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).map(str::to_owned).ok_or_else(unsupported)
}

pub(super) async fn scim_get_user(AxState(sim): AxState<Sim>, Path((_dir, id)): Path<(String, String)>) -> ScimResult {
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let user =
        jira.scim_user(&id).ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("User {id} not found")))?;
    Ok(Json(jira.scim_json(user)).into_response())
}

/// `PATCH /Users/{id}`: `replace` of `active` (or `displayName`), with a path or as a value object.
/// Identity providers send `active` as a boolean or as the string "False"; both are accepted.
pub(super) async fn scim_patch_user(
    AxState(sim): AxState<Sim>,
    Path((_dir, id)): Path<(String, String)>,
    op: Op,
    body: Bytes,
) -> ScimResult {
    let body = json_object(&body, Empty::IsMalformed)?;
    if !body.get("schemas").and_then(Value::as_array).is_some_and(|s| s.iter().any(|x| x == SCIM_PATCH_SCHEMA)) {
        return Err(ScimError::invalid("invalidSyntax", format!("schemas must contain {SCIM_PATCH_SCHEMA}")));
    }
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ScimError::invalid("invalidSyntax", "Operations must be a non-empty array"))?;
    let mut active: Option<bool> = None;
    let mut display_name: Option<String> = None;
    for o in ops {
        let kind = o["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        if kind != "replace" && kind != "add" {
            return Err(ScimError::invalid("invalidValue", format!("Unsupported op {:?}", o["op"])));
        }
        let mut apply = |attr: &str, value: &Value| -> Result<(), ScimError> {
            match attr {
                "active" => {
                    active = Some(
                        scim_bool(value)
                            .ok_or_else(|| ScimError::invalid("invalidValue", "active must be a boolean"))?,
                    )
                }
                "displayName" => {
                    display_name = Some(
                        value
                            .as_str()
                            .ok_or_else(|| ScimError::invalid("invalidValue", "displayName must be a string"))?
                            .to_owned(),
                    )
                }
                other => return Err(ScimError::invalid("invalidPath", format!("Unsupported path {other}"))),
            }
            Ok(())
        };
        match o["path"].as_str() {
            Some(path) => apply(path, &o["value"])?,
            None => {
                let value = o["value"].as_object().ok_or_else(|| {
                    ScimError::invalid("invalidValue", "value must be an object when there is no path")
                })?;
                for (k, v) in value {
                    apply(k, v)?;
                }
            }
        }
    }

    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let account_id = jira
        .scim_user(&id)
        .map(|u| u.account_id.clone())
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("User {id} not found")))?;
    let Some(user) = jira.user_mut(&account_id) else {
        return Err(ScimError::new(StatusCode::NOT_FOUND, format!("User {id} not found")));
    };
    let before = user.active;
    let mut changed: Vec<&str> = Vec::new();
    update_field(&mut user.active, active, "active", &mut changed);
    update_field(&mut user.display_name, display_name, "displayName", &mut changed);
    if !changed.is_empty() {
        user.modified_ms = now_ms();
    }
    let user = user.clone();
    let data = jira.scim_json(&user);
    let action = match active {
        Some(false) if before => "scim.user.deactivate",
        Some(true) if !before => "scim.user.activate",
        _ => "scim.user.update",
    };
    let mut details = Map::new();
    details.insert("scim_id".into(), id.into());
    details.insert("account_id".into(), account_id.into());
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
    Ok(Json(data).into_response())
}

pub(super) fn scim_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// SCIM's user creation, replacement and deletion are not simulated: the identity provider
/// side of them is not what the workflows exercise.
pub(super) async fn scim_not_simulated() -> Response {
    (StatusCode::NOT_IMPLEMENTED, Json(json!({ "error": "not implemented yet", "vendor": VENDOR.name() })))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_filters_are_parsed_strictly() {
        assert_eq!(parse_scim_filter("userName eq \"a@b.example\"").unwrap(), "a@b.example");
        assert_eq!(parse_scim_filter("USERNAME EQ \"x y\"").unwrap(), "x y");
        assert!(parse_scim_filter("emails.value eq \"a@b\"").is_err());
        assert!(parse_scim_filter("userName co \"a\"").is_err());
        assert!(parse_scim_filter("userName eq a").is_err());
    }
}
