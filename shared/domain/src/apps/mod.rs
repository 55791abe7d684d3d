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

use crate::event_type::EventType;
use crate::field::FieldErrors;
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

/// What each vendor's own request type says about the vendor: the one place a
/// vendor's quirk is written, so that no caller branches on a vendor's name.
/// Every item is required, so a new vendor states each rule rather than
/// inheriting a silent default.
pub trait VendorApp: Clone + Send + Sync + 'static {
    /// The vendor whose request this is.
    const VENDOR: VendorKind;

    /// The vendor knows people by login rather than by e-mail address (CircleCI, GitHub):
    /// its accounts carry a login, and an HR record, which carries none, cannot give it.
    const BY_LOGIN: bool;

    /// Why SCIM groups cannot give this vendor, when they cannot; `None` when they can.
    const SCIM_REFUSAL: Option<&'static str>;

    /// This vendor's request in `app`; `None` for another vendor's. The typed way
    /// from the intake's [`AppRequest`] to the vendor's own type.
    fn of(app: &AppRequest) -> Option<&Self>;

    /// Adds what `more` gives to what this gives, as several SCIM groups giving the vendor
    /// unite: lists are united; a single value stays the first one's.
    fn unite(&mut self, more: &Self);

    /// The person's login at the vendor, where [`BY_LOGIN`](VendorApp::BY_LOGIN).
    fn login(&self) -> Option<&str>;

    /// Sets the person's login (from their SCIM user, say); `false` where the vendor
    /// takes none, leaving the request as it is.
    fn set_login(&mut self, login: &str) -> bool;
}

impl AppRequest {
    pub fn vendor(&self) -> VendorKind {
        match self {
            AppRequest::Pipedrive(_) => PipedriveApp::VENDOR,
            AppRequest::Crowdstrike(_) => CrowdstrikeApp::VENDOR,
            AppRequest::Jira(_) => JiraApp::VENDOR,
            AppRequest::Calendly(_) => CalendlyApp::VENDOR,
            AppRequest::Circleci(_) => CircleciApp::VENDOR,
            AppRequest::Github(_) => GithubApp::VENDOR,
        }
    }

    /// The person's login at the vendor, for vendors that know people by login rather than by
    /// e-mail address ([`VendorApp::BY_LOGIN`]): how reconcile ties an account to a person.
    pub fn login(&self) -> Option<&str> {
        match self {
            AppRequest::Pipedrive(a) => a.login(),
            AppRequest::Crowdstrike(a) => a.login(),
            AppRequest::Jira(a) => a.login(),
            AppRequest::Calendly(a) => a.login(),
            AppRequest::Circleci(a) => a.login(),
            AppRequest::Github(a) => a.login(),
        }
    }

    /// Adds what `more` gives to what this gives, by the vendor's own rule
    /// ([`VendorApp::unite`]). Requests of two vendors leave this as it is.
    pub fn unite(&mut self, more: &AppRequest) {
        // One arm per vendor and no catch-all: a new vendor cannot be skipped.
        match self {
            AppRequest::Pipedrive(a) => unite_with(a, more),
            AppRequest::Crowdstrike(a) => unite_with(a, more),
            AppRequest::Jira(a) => unite_with(a, more),
            AppRequest::Calendly(a) => unite_with(a, more),
            AppRequest::Circleci(a) => unite_with(a, more),
            AppRequest::Github(a) => unite_with(a, more),
        }
    }

    /// Sets the person's login at a login-based vendor (from their SCIM user, say); other
    /// vendors take none and are left as they are (`false`).
    pub fn set_login(&mut self, login: &str) -> bool {
        match self {
            AppRequest::Pipedrive(a) => a.set_login(login),
            AppRequest::Crowdstrike(a) => a.set_login(login),
            AppRequest::Jira(a) => a.set_login(login),
            AppRequest::Calendly(a) => a.set_login(login),
            AppRequest::Circleci(a) => a.set_login(login),
            AppRequest::Github(a) => a.set_login(login),
        }
    }
}

fn unite_with<A: VendorApp>(app: &mut A, more: &AppRequest) {
    if let Some(more) = A::of(more) {
        app.unite(more);
    }
}

/// What a vendor's request type says, asked of the vendor alone (no request at hand):
/// configuration checks and reconcile ask these.
impl VendorKind {
    /// See [`VendorApp::BY_LOGIN`].
    pub fn knows_people_by_login(self) -> bool {
        match self {
            VendorKind::Pipedrive => PipedriveApp::BY_LOGIN,
            VendorKind::Crowdstrike => CrowdstrikeApp::BY_LOGIN,
            VendorKind::Jira => JiraApp::BY_LOGIN,
            VendorKind::Calendly => CalendlyApp::BY_LOGIN,
            VendorKind::Circleci => CircleciApp::BY_LOGIN,
            VendorKind::Github => GithubApp::BY_LOGIN,
        }
    }

    /// Whether a SCIM group can give it (see [`VendorApp::SCIM_REFUSAL`]).
    pub fn scim_can_map(self) -> bool {
        self.scim_refusal().is_none()
    }

    /// See [`VendorApp::SCIM_REFUSAL`].
    pub fn scim_refusal(self) -> Option<&'static str> {
        match self {
            VendorKind::Pipedrive => PipedriveApp::SCIM_REFUSAL,
            VendorKind::Crowdstrike => CrowdstrikeApp::SCIM_REFUSAL,
            VendorKind::Jira => JiraApp::SCIM_REFUSAL,
            VendorKind::Calendly => CalendlyApp::SCIM_REFUSAL,
            VendorKind::Circleci => CircleciApp::SCIM_REFUSAL,
            VendorKind::Github => GithubApp::SCIM_REFUSAL,
        }
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

/// `apps.<vendor>` parsed on its own, its problems as text: for tests of each vendor's rules.
#[cfg(test)]
pub(crate) fn parsed(vendor: VendorKind, ty: EventType, value: &Value) -> Result<AppRequest, String> {
    let mut errs = FieldErrors::default();
    parse_app(vendor, ty, value, &format!("apps.{vendor}"), &mut errs).ok_or_else(|| format!("{:?}", errs.into_vec()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A leaver's request at every vendor, as little as each takes.
    fn every_vendor() -> Vec<AppRequest> {
        VendorKind::ALL
            .into_iter()
            .map(|v| {
                // CircleCI needs a login even for a leaver; GitHub takes one.
                let app = match v {
                    VendorKind::Circleci | VendorKind::Github => json!({"login": "ada-x"}),
                    _ => json!({}),
                };
                parsed(v, EventType::Leaver, &app).expect("a minimal leaver")
            })
            .collect()
    }

    /// What a vendor says of itself and what its requests do agree: a vendor known by login
    /// takes one and gives it back; the others take none.
    #[test]
    fn a_vendor_known_by_login_takes_and_gives_a_login_and_no_other_does() {
        for mut app in every_vendor() {
            let vendor = app.vendor();
            assert_eq!(app.set_login("grace-x"), vendor.knows_people_by_login(), "{vendor}");
            let expected = vendor.knows_people_by_login().then_some("grace-x");
            assert_eq!(app.login(), expected, "{vendor}");
        }
        let refused: Vec<VendorKind> = VendorKind::ALL.into_iter().filter(|v| v.scim_refusal().is_some()).collect();
        assert_eq!(refused, [VendorKind::Circleci], "only CircleCI cannot be given by a SCIM group");
    }

    /// Each vendor's requests unite by its own rule; another vendor's request changes nothing.
    #[test]
    fn requests_unite_by_their_vendors_rule_and_never_across_vendors() {
        let all = every_vendor();
        for app in &all {
            for other in all.iter().filter(|o| o.vendor() != app.vendor()) {
                let mut united = app.clone();
                united.unite(other);
                assert_eq!(&united, app, "{} with {}", app.vendor(), other.vendor());
            }
        }
        let mut cs = AppRequest::Crowdstrike(CrowdstrikeApp { roles: vec!["a".into(), "b".into()] });
        cs.unite(&AppRequest::Crowdstrike(CrowdstrikeApp { roles: vec!["b".into(), "c".into()] }));
        assert_eq!(cs, AppRequest::Crowdstrike(CrowdstrikeApp { roles: vec!["a".into(), "b".into(), "c".into()] }));
        let mut pd = AppRequest::Pipedrive(PipedriveApp { role: Some("Sales Rep".into()) });
        pd.unite(&AppRequest::Pipedrive(PipedriveApp { role: Some("Admin".into()) }));
        assert_eq!(pd, AppRequest::Pipedrive(PipedriveApp { role: Some("Sales Rep".into()) }), "the first role stays");
    }
}
