//! The Atlassian SCIM directory API (`/jira/scim/directory/{directoryId}`), behind
//! [`scim_guard`], as Atlassian's "User provisioning" definition has it: list users
//! (getUsersFromAnActiveDirectory: `filter=userName eq "…"` or `externalId eq "…"`, 1-based
//! paging, `attributes`/`excludedAttributes`), get one (getAUserFromActiveDirectory), and PATCH
//! (patchUserInformationInAnActiveDirectory) `active` or `displayName`. Deactivating here makes
//! the Jira user inactive but keeps the account, its site access and its groups. Users carry
//! Atlassian's extension `urn:scim:schemas:extension:atlassian-external:1.0`
//! (`atlassianAccountId`).
//!
//! The PATCH body is `RequestPayloadToPatch`: `schemas` and a list the definition calls
//! `operations` and RFC 7644 `Operations`. SCIM attribute names are case-insensitive (RFC 7643
//! §2.1), so either spelling (any case) is the list; a body with neither, or with both, is a 400.

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
    credential, limit_headers, scim_unauthorized, Credential, ScimError, ScimParams, ScimResult, SCIM_LIST_SCHEMA,
    SCIM_PATCH_SCHEMA,
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
            // The definition's 401 is a `Failure`, not a SCIM error.
            return scim_unauthorized("Missing or invalid API key for this directory");
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
    params.only(&["attributes", "excludedAttributes", "filter", "startIndex", "count"])?;
    let projection = Projection::parse(&params)?;
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
        .filter(|u| match &filter {
            None => true,
            Some(Filter::UserName(name)) => u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(name)),
            // The simulator's directory users carry no externalId.
            Some(Filter::ExternalId(_)) => false,
        })
        .collect();
    let page: Vec<Value> =
        all.iter().skip(start_index - 1).take(count).map(|u| projection.apply(jira.scim_json(u))).collect();
    Ok(Json(json!({
        "schemas": [SCIM_LIST_SCHEMA],
        "totalResults": all.len(),
        "startIndex": start_index,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
    .into_response())
}

/// The filters the definition supports: "a single exact match (`eq`) against the `userName`
/// and `externalId` attributes".
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Filter {
    UserName(String),
    ExternalId(String),
}

/// `userName eq "value"` or `externalId eq "value"` (names and operator in any case).
pub(super) fn parse_scim_filter(filter: &str) -> Result<Filter, ScimError> {
    let unsupported = || {
        ScimError::invalid(
            "invalidFilter",
            format!("Unsupported filter: {filter} (use userName eq \"...\" or externalId eq \"...\")"),
        )
    };
    let mut parts = filter.trim().splitn(3, char::is_whitespace);
    let (attr, op, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    let value = value.trim();
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).map(str::to_owned).ok_or_else(unsupported)?;
    if attr.eq_ignore_ascii_case("userName") {
        Ok(Filter::UserName(value))
    } else if attr.eq_ignore_ascii_case("externalId") {
        Ok(Filter::ExternalId(value))
    } else {
        Err(unsupported())
    }
}

/// `attributes` or `excludedAttributes` ("mutually exclusive"), RFC 7644 §3.4.2.5, on top-level
/// attributes: a sub-attribute (`emails.value`) selects its whole attribute; `id` and `schemas`
/// are always returned.
pub(super) enum Projection {
    All,
    Only(Vec<String>),
    Except(Vec<String>),
}

impl Projection {
    pub(super) fn parse(params: &ScimParams) -> Result<Self, ScimError> {
        let list = |key: &str| -> Option<Vec<String>> {
            params
                .get(key)
                .map(|v| v.split(',').map(|a| a.trim().to_ascii_lowercase()).filter(|a| !a.is_empty()).collect())
        };
        match (list("attributes"), list("excludedAttributes")) {
            (Some(_), Some(_)) => {
                Err(ScimError::invalid("invalidSyntax", "attributes and excludedAttributes are mutually exclusive"))
            }
            (Some(only), None) => Ok(Projection::Only(only)),
            (None, Some(except)) => Ok(Projection::Except(except)),
            (None, None) => Ok(Projection::All),
        }
    }

    pub(super) fn apply(&self, resource: Value) -> Value {
        let Value::Object(map) = resource else { return resource };
        let always = |k: &str| k == "id" || k == "schemas";
        let kept = map.into_iter().filter(|(k, _)| match self {
            Projection::All => true,
            Projection::Only(names) => always(k) || names.iter().any(|a| selects(a, k)),
            Projection::Except(names) => always(k) || !names.iter().any(|a| *a == k.to_ascii_lowercase()),
        });
        Value::Object(kept.collect())
    }
}

/// Whether attribute path `a` (lower case) names top-level attribute `key`: itself, one of its
/// sub-attributes, or either written with its schema's URN.
fn selects(a: &str, key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let core = "urn:ietf:params:scim:schemas:core:2.0:user:";
    let a = a.strip_prefix(core).unwrap_or(a);
    let sep = if key.starts_with("urn:") { ':' } else { '.' };
    a == key || a.strip_prefix(key.as_str()).is_some_and(|rest| rest.starts_with(sep))
}

pub(super) async fn scim_get_user(
    AxState(sim): AxState<Sim>,
    Path((_dir, id)): Path<(String, String)>,
    params: ScimParams,
) -> ScimResult {
    params.only(&["attributes", "excludedAttributes"])?;
    let projection = Projection::parse(&params)?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let user =
        jira.scim_user(&id).ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("User {id} not found")))?;
    Ok(Json(projection.apply(jira.scim_json(user))).into_response())
}

/// The value of `body`'s attribute `name`, whatever its case (RFC 7643 §2.1); a 400 when the
/// body spells it twice.
fn attribute<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a Value>, ScimError> {
    let mut found = body.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
    let first = found.next().map(|(_, v)| v);
    if found.next().is_some() {
        return Err(ScimError::invalid(
            "invalidSyntax",
            format!("{name} is given more than once (in different cases)"),
        ));
    }
    Ok(first)
}

/// Only these attributes (any case): anything else is a 400.
fn only_attributes(body: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), ScimError> {
    match body.keys().find(|k| !allowed.iter().any(|a| a.eq_ignore_ascii_case(k))) {
        Some(k) => Err(ScimError::invalid("invalidSyntax", format!("{what} has no attribute {k}"))),
        None => Ok(()),
    }
}

/// User attributes of the definition's `ScimUser` that a PATCH may name but the simulator does
/// not keep: a 501, not a 400, since the request is valid.
const NOT_SIMULATED: &[&str] = &[
    "userName",
    "emails",
    "name",
    "nickName",
    "title",
    "preferredLanguage",
    "department",
    "organization",
    "timezone",
    "phoneNumbers",
    "externalId",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
];

/// `PATCH /Users/{id}`: `replace` (or `add`) of `active` (or `displayName`), with a path or as a
/// value object. Identity providers send `active` as a boolean or as the string "False"; both
/// are accepted.
pub(super) async fn scim_patch_user(
    AxState(sim): AxState<Sim>,
    Path((_dir, id)): Path<(String, String)>,
    params: ScimParams,
    op: Op,
    body: Bytes,
) -> ScimResult {
    params.only(&["attributes", "excludedAttributes"])?;
    let projection = Projection::parse(&params)?;
    let body = json_object(&body, Empty::IsMalformed)?;
    only_attributes(&body, &["schemas", "operations"], "RequestPayloadToPatch")?;
    let schemas = attribute(&body, "schemas")?;
    if !schemas.and_then(Value::as_array).is_some_and(|s| s.iter().any(|x| x == SCIM_PATCH_SCHEMA)) {
        return Err(ScimError::invalid("invalidSyntax", format!("schemas must contain {SCIM_PATCH_SCHEMA}")));
    }
    let ops = attribute(&body, "operations")?
        .and_then(Value::as_array)
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ScimError::invalid("invalidSyntax", "operations (Operations) must be a non-empty array"))?;
    let mut active: Option<bool> = None;
    let mut display_name: Option<String> = None;
    for o in ops {
        let o = o.as_object().ok_or_else(|| ScimError::invalid("invalidSyntax", "each operation must be an object"))?;
        only_attributes(o, &["op", "path", "value"], "an operation")?;
        let kind = attribute(o, "op")?.and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        if kind != "replace" && kind != "add" {
            return Err(ScimError::invalid("invalidValue", format!("Unsupported op {:?}", attribute(o, "op")?)));
        }
        let value = attribute(o, "value")?.unwrap_or(&Value::Null);
        let mut apply = |attr: &str, value: &Value| -> Result<(), ScimError> {
            match attr.to_ascii_lowercase().as_str() {
                "active" => {
                    active = Some(
                        scim_bool(value)
                            .ok_or_else(|| ScimError::invalid("invalidValue", "active must be a boolean"))?,
                    )
                }
                "displayname" => {
                    display_name = Some(
                        value
                            .as_str()
                            .ok_or_else(|| ScimError::invalid("invalidValue", "displayName must be a string"))?
                            .to_owned(),
                    )
                }
                _ if NOT_SIMULATED.iter().any(|a| {
                    let top = attr.split(['.', '[']).next().unwrap_or(attr);
                    a.eq_ignore_ascii_case(attr) || a.eq_ignore_ascii_case(top)
                }) =>
                {
                    return Err(ScimError::new(
                        StatusCode::NOT_IMPLEMENTED,
                        format!("PATCH of {attr} is not simulated (only active and displayName)"),
                    ))
                }
                _ => return Err(ScimError::invalid("invalidPath", format!("Unsupported path {attr}"))),
            }
            Ok(())
        };
        match attribute(o, "path")? {
            Some(Value::String(path)) => apply(path, value)?,
            Some(_) => return Err(ScimError::invalid("invalidPath", "path must be a string")),
            None => {
                let value = value.as_object().ok_or_else(|| {
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
    let data = projection.apply(jira.scim_json(&user));
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
    use super::super::wire::SCIM_ATLASSIAN_EXT;
    use super::*;

    #[test]
    fn scim_filters_are_parsed_strictly() {
        assert_eq!(parse_scim_filter("userName eq \"a@b.example\"").unwrap(), Filter::UserName("a@b.example".into()));
        assert_eq!(parse_scim_filter("USERNAME EQ \"x y\"").unwrap(), Filter::UserName("x y".into()));
        assert_eq!(parse_scim_filter("externalId eq \"00u1\"").unwrap(), Filter::ExternalId("00u1".into()));
        assert!(parse_scim_filter("emails.value eq \"a@b\"").is_err());
        assert!(parse_scim_filter("userName co \"a\"").is_err());
        assert!(parse_scim_filter("userName eq a").is_err());
    }

    #[test]
    fn attributes_select_top_level_attributes_by_name_sub_attribute_or_urn() {
        assert!(selects("username", "userName"));
        assert!(selects("emails.value", "emails"));
        assert!(!selects("emailsx", "emails"));
        assert!(selects("urn:ietf:params:scim:schemas:core:2.0:user:active", "active"));
        let ext = SCIM_ATLASSIAN_EXT.to_ascii_lowercase();
        assert!(selects(&format!("{ext}:atlassianaccountid"), SCIM_ATLASSIAN_EXT));
        assert!(selects(&ext, SCIM_ATLASSIAN_EXT));
    }
}
