//! What each event asks of each vendor (the `apps` object of an event).
//!
//! One struct per vendor, validated per event type: a joiner must say which
//! role to grant, a leaver needs only what finds the account.

use crate::event::{EventType, FieldErrors};
use crate::text::name_problem;
use crate::vendor::VendorKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "vendor", rename_all = "lowercase")]
pub enum AppRequest {
    Pipedrive(PipedriveApp),
    Crowdstrike(CrowdstrikeApp),
    Jira(JiraApp),
    Calendly(CalendlyApp),
    Circleci(CircleciApp),
}

impl AppRequest {
    pub fn vendor(&self) -> VendorKind {
        match self {
            AppRequest::Pipedrive(_) => VendorKind::Pipedrive,
            AppRequest::Crowdstrike(_) => VendorKind::Crowdstrike,
            AppRequest::Jira(_) => VendorKind::Jira,
            AppRequest::Calendly(_) => VendorKind::Calendly,
            AppRequest::Circleci(_) => VendorKind::Circleci,
        }
    }
}

/// Pipedrive: one role, by name (resolved to an id through `GET /roles`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipedriveApp {
    pub role: Option<String>,
}

/// CrowdStrike Falcon: role ids, case-sensitive (e.g. `falcon_analyst`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrowdstrikeApp {
    pub roles: Vec<String>,
}

/// Jira Cloud: products granted at creation, and groups by `groupId` (never by name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraApp {
    pub products: Vec<String>,
    pub groups: Vec<String>,
}

/// Calendly: membership only (roles cannot be set through the REST API).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendlyApp {}

/// CircleCI: the member's VCS login (`apps.circleci.login`), which is how members are found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircleciApp {
    pub login: Option<String>,
}

const MAX_NAME: usize = 255;
const MAX_LIST: usize = 100;

/// Validates `apps.<vendor>` for an event of type `ty`, recording each problem under `field`.
pub(crate) fn parse_app(
    vendor: VendorKind,
    ty: EventType,
    value: &Value,
    field: &str,
    errs: &mut FieldErrors,
) -> Option<AppRequest> {
    let Some(obj) = value.as_object() else {
        errs.push(field, "must be an object");
        return None;
    };
    let before = errs.len();
    let app = match vendor {
        VendorKind::Pipedrive => {
            only_fields(obj, &["role"], field, errs);
            let role = opt_name(obj, "role", field, errs);
            if role.is_none() && matches!(ty, EventType::Joiner | EventType::Mover) && !obj.contains_key("role") {
                errs.push(&format!("{field}.role"), "is required for a joiner or a mover");
            }
            AppRequest::Pipedrive(PipedriveApp { role })
        }
        VendorKind::Crowdstrike => {
            only_fields(obj, &["roles"], field, errs);
            let roles = opt_names(obj, "roles", field, errs);
            match (&roles, ty) {
                (None, EventType::Joiner | EventType::Mover) if !obj.contains_key("roles") => {
                    errs.push(&format!("{field}.roles"), "is required for a joiner or a mover")
                }
                (Some(r), EventType::Joiner) if r.is_empty() => {
                    errs.push(&format!("{field}.roles"), "must name at least one role for a joiner")
                }
                _ => {}
            }
            AppRequest::Crowdstrike(CrowdstrikeApp { roles: roles.unwrap_or_default() })
        }
        VendorKind::Jira => {
            only_fields(obj, &["products", "groups"], field, errs);
            let products = opt_names(obj, "products", field, errs);
            let groups = opt_names(obj, "groups", field, errs);
            if ty == EventType::Joiner
                && products.as_ref().is_none_or(|p| p.is_empty())
                && obj.get("products").is_none_or(|p| p.is_array())
            {
                errs.push(
                    &format!("{field}.products"),
                    "must name at least one product (e.g. jira-software) for a joiner",
                );
            }
            if ty == EventType::Mover && groups.is_none() && !obj.contains_key("groups") {
                errs.push(
                    &format!("{field}.groups"),
                    "is required for a mover (the groups the person should end up in)",
                );
            }
            if let Some(groups) = &groups {
                for (i, g) in groups.iter().enumerate() {
                    if !looks_like_group_id(g) {
                        errs.push(&format!("{field}.groups[{i}]"), "must be a Jira groupId (a UUID), not a group name");
                    }
                }
            }
            AppRequest::Jira(JiraApp { products: products.unwrap_or_default(), groups: groups.unwrap_or_default() })
        }
        VendorKind::Calendly => {
            only_fields(obj, &[], field, errs);
            AppRequest::Calendly(CalendlyApp {})
        }
        VendorKind::Circleci => {
            only_fields(obj, &["login"], field, errs);
            let login = opt_name(obj, "login", field, errs);
            if login.is_none() && !obj.contains_key("login") {
                errs.push(
                    &format!("{field}.login"),
                    "is required (the member's VCS login, how CircleCI members are found)",
                );
            }
            AppRequest::Circleci(CircleciApp { login })
        }
    };
    (errs.len() == before).then_some(app)
}

fn only_fields(obj: &Map<String, Value>, allowed: &[&str], field: &str, errs: &mut FieldErrors) {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            let hint = if allowed.is_empty() {
                "this vendor takes no fields".to_string()
            } else {
                format!("allowed: {}", allowed.join(", "))
            };
            errs.push(&format!("{field}.{key}"), &format!("is not a known field ({hint})"));
        }
    }
}

fn opt_name(obj: &Map<String, Value>, key: &str, field: &str, errs: &mut FieldErrors) -> Option<String> {
    let value = obj.get(key)?;
    let path = format!("{field}.{key}");
    match value {
        Value::String(s) => match name_problem(s, MAX_NAME) {
            None => Some(s.trim().to_string()),
            Some(problem) => {
                errs.push(&path, &problem);
                None
            }
        },
        Value::Null => None,
        _ => {
            errs.push(&path, "must be a string");
            None
        }
    }
}

fn opt_names(obj: &Map<String, Value>, key: &str, field: &str, errs: &mut FieldErrors) -> Option<Vec<String>> {
    let value = obj.get(key)?;
    let path = format!("{field}.{key}");
    let Some(items) = value.as_array() else {
        errs.push(&path, "must be an array of strings");
        return None;
    };
    if items.len() > MAX_LIST {
        errs.push(&path, &format!("must have at most {MAX_LIST} items"));
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => match name_problem(s, MAX_NAME) {
                None => {
                    let s = s.trim().to_string();
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                Some(problem) => errs.push(&format!("{path}[{i}]"), &problem),
            },
            None => errs.push(&format!("{path}[{i}]"), "must be a string"),
        }
    }
    Some(out)
}

fn looks_like_group_id(s: &str) -> bool {
    // Jira group ids are UUIDs; accepting only that shape catches the common
    // mistake of sending a group *name*, which Jira has deprecated as an identifier.
    uuid::Uuid::parse_str(s).is_ok()
}
