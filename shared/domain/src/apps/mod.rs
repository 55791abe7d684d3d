//! What each event asks of each vendor (the `apps` object of an event).
//!
//! One file per vendor holds its part of the intake: the struct and its
//! validation for each event type (a joiner must say which role to grant, a
//! leaver needs only what finds the account). Adding a vendor adds its file
//! and one variant to [`AppRequest`]; the shared reading of fields is
//! [`Fields`], written once.

mod calendly;
mod circleci;
mod crowdstrike;
mod github;
mod jira;
mod pipedrive;

pub use calendly::CalendlyApp;
pub use circleci::CircleciApp;
pub use crowdstrike::CrowdstrikeApp;
pub use github::{GithubApp, GITHUB_ROLES};
pub use jira::JiraApp;
pub use pipedrive::PipedriveApp;

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
    Github(GithubApp),
}

impl AppRequest {
    pub fn vendor(&self) -> VendorKind {
        match self {
            AppRequest::Pipedrive(_) => VendorKind::Pipedrive,
            AppRequest::Crowdstrike(_) => VendorKind::Crowdstrike,
            AppRequest::Jira(_) => VendorKind::Jira,
            AppRequest::Calendly(_) => VendorKind::Calendly,
            AppRequest::Circleci(_) => VendorKind::Circleci,
            AppRequest::Github(_) => VendorKind::Github,
        }
    }
}

impl AppRequest {
    /// The person's login at the vendor, for vendors that know people by login rather than by
    /// e-mail address (CircleCI, GitHub): how reconcile ties an account to a person.
    pub fn login(&self) -> Option<&str> {
        match self {
            AppRequest::Circleci(a) => a.login.as_deref(),
            AppRequest::Github(a) => a.login.as_deref(),
            AppRequest::Pipedrive(_) | AppRequest::Crowdstrike(_) | AppRequest::Jira(_) | AppRequest::Calendly(_) => {
                None
            }
        }
    }

    /// Adds what `more` gives to what this gives, as several SCIM groups giving one vendor
    /// unite: each vendor's rule is in its file (lists are united; a single value, such as
    /// Pipedrive's role, stays the first one's). Requests of two vendors leave this as it is.
    pub fn unite(&mut self, more: &AppRequest) {
        match (self, more) {
            (AppRequest::Crowdstrike(a), AppRequest::Crowdstrike(b)) => a.unite(b),
            (AppRequest::Jira(a), AppRequest::Jira(b)) => a.unite(b),
            (AppRequest::Github(a), AppRequest::Github(b)) => a.unite(b),
            // Pipedrive: one role, the first's. Calendly, CircleCI: nothing to unite.
            _ => {}
        }
    }

    /// Sets the person's login at a login-based vendor (from their SCIM user, say); other
    /// vendors take none and are left as they are (`false`).
    pub fn set_login(&mut self, login: &str) -> bool {
        match self {
            AppRequest::Circleci(a) => a.login = Some(login.to_string()),
            AppRequest::Github(a) => a.login = Some(login.to_string()),
            AppRequest::Pipedrive(_) | AppRequest::Crowdstrike(_) | AppRequest::Jira(_) | AppRequest::Calendly(_) => {
                return false
            }
        }
        true
    }
}

/// Adds each of `more` missing from `list`, keeping `list`'s order.
pub(crate) fn add_missing(list: &mut Vec<String>, more: &[String]) {
    for m in more {
        if !list.contains(m) {
            list.push(m.clone());
        }
    }
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
    let mut f = Fields { obj, field, errs };
    let app = match vendor {
        VendorKind::Pipedrive => AppRequest::Pipedrive(PipedriveApp::parse(ty, &mut f)),
        VendorKind::Crowdstrike => AppRequest::Crowdstrike(CrowdstrikeApp::parse(ty, &mut f)),
        VendorKind::Jira => AppRequest::Jira(JiraApp::parse(ty, &mut f)),
        VendorKind::Calendly => AppRequest::Calendly(CalendlyApp::parse(ty, &mut f)),
        VendorKind::Circleci => AppRequest::Circleci(CircleciApp::parse(ty, &mut f)),
        VendorKind::Github => AppRequest::Github(GithubApp::parse(ty, &mut f)),
    };
    (errs.len() == before).then_some(app)
}

/// One vendor's object in `apps`, read field by field; every problem is
/// recorded under `apps.<vendor>.<key>`.
pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    field: &'a str,
    errs: &'a mut FieldErrors,
}

impl Fields<'_> {
    /// Records a problem with `key` (`apps.<vendor>.<key>`).
    pub(crate) fn problem(&mut self, key: &str, detail: &str) {
        self.errs.push(&format!("{}.{key}", self.field), detail);
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key)
    }

    /// Refuses any key not in `allowed`.
    pub(crate) fn only(&mut self, allowed: &[&str]) {
        for key in self.obj.keys() {
            if !allowed.contains(&key.as_str()) {
                let hint = if allowed.is_empty() {
                    "this vendor takes no fields".to_string()
                } else {
                    format!("allowed: {}", allowed.join(", "))
                };
                self.errs.push(&format!("{}.{key}", self.field), &format!("is not a known field ({hint})"));
            }
        }
    }

    /// An optional name (trimmed); `null` is absent.
    pub(crate) fn name(&mut self, key: &str) -> Option<String> {
        let value = self.obj.get(key)?;
        let path = format!("{}.{key}", self.field);
        match value {
            Value::String(s) => match name_problem(s, MAX_NAME) {
                None => Some(s.trim().to_string()),
                Some(problem) => {
                    self.errs.push(&path, &problem);
                    None
                }
            },
            Value::Null => None,
            _ => {
                self.errs.push(&path, "must be a string");
                None
            }
        }
    }

    /// An optional list of names (trimmed, duplicates dropped, at most 100).
    pub(crate) fn names(&mut self, key: &str) -> Option<Vec<String>> {
        let value = self.obj.get(key)?;
        let path = format!("{}.{key}", self.field);
        let Some(items) = value.as_array() else {
            self.errs.push(&path, "must be an array of strings");
            return None;
        };
        if items.len() > MAX_LIST {
            self.errs.push(&path, &format!("must have at most {MAX_LIST} items"));
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
                    Some(problem) => self.errs.push(&format!("{path}[{i}]"), &problem),
                },
                None => self.errs.push(&format!("{path}[{i}]"), "must be a string"),
            }
        }
        Some(out)
    }
}
