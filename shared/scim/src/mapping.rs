//! From a SCIM user and their groups to lifecycle events (docs/contract.md §6).
//!
//! What a person should have is the union of what their groups give, in
//! configuration order, and what everyone gets ([`Mapping::desired`]); how
//! each vendor's access unites is the vendor's own rule ([`AppRequest::unite`]:
//! CrowdStrike roles, Jira products and groups, GitHub teams are united; a
//! single role, Pipedrive's or GitHub's, is the first group's).
//!
//! What lifecycle last asked for a user is kept with them ([`Applied`]), and
//! each write is compared with it ([`plan`]). A write makes at most one event
//! of each kind, each naming only the vendors it concerns:
//! - **joiner** for vendors the person should now have and did not (a user
//!   created or reactivated, a group joined that gives a new vendor);
//! - **mover** for vendors kept whose access changed (another Pipedrive role,
//!   one CrowdStrike role more);
//! - **leaver** for vendors no longer given at all (the last group giving it
//!   left), and for every vendor when the user is deactivated or deleted.
//!
//! A mover cannot express "remove this vendor" (every vendor's mover states
//! the access to end with), hence the separate leaver. Changes that alter no
//! vendor's access (a phone number, a name) make no event: the name and
//! address are what a joiner sends, and no vendor's mover renames people.
//! The person is identified at the vendors by the address of their joiner
//! for as long as they have any vendor; a changed `userName` applies from
//! their next joiner.

use crate::resource::Person;
use crate::ScimError;
use lifecycle_config::ScimSettings;
use lifecycle_domain::{AppRequest, Event, EventType, VendorKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The configured mapping of groups (and of everyone) to apps.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    everyone: BTreeMap<VendorKind, AppRequest>,
    /// Lower-cased group name and its apps, in configuration order.
    groups: Vec<(String, BTreeMap<VendorKind, AppRequest>)>,
}

impl Mapping {
    pub fn new(settings: &ScimSettings) -> Mapping {
        Mapping {
            everyone: settings.everyone.clone(),
            groups: settings.groups.iter().map(|g| (g.name.to_lowercase(), g.apps.clone())).collect(),
        }
    }

    /// Whether a group of this name gives anything (a rename or a delete of
    /// another group changes nobody's access).
    pub fn maps(&self, group: &str) -> bool {
        let g = group.to_lowercase();
        self.groups.iter().any(|(name, _)| *name == g)
    }

    /// What a member of `groups` (display names) should have.
    pub fn desired<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> BTreeMap<VendorKind, AppRequest> {
        let member_of: Vec<String> = groups.into_iter().map(str::to_lowercase).collect();
        let mut out: BTreeMap<VendorKind, AppRequest> = BTreeMap::new();
        let given = self.groups.iter().filter(|(name, _)| member_of.contains(name)).map(|(_, apps)| apps);
        for apps in given.chain(std::iter::once(&self.everyone)) {
            for (vendor, app) in apps {
                match out.get_mut(vendor) {
                    None => {
                        out.insert(*vendor, app.clone());
                    }
                    Some(have) => have.unite(app),
                }
            }
        }
        out
    }
}

/// `apps` with the person's login filled in at each login-based vendor they have one for.
pub fn with_logins(
    mut apps: BTreeMap<VendorKind, AppRequest>,
    logins: &BTreeMap<VendorKind, String>,
) -> BTreeMap<VendorKind, AppRequest> {
    for (vendor, app) in apps.iter_mut() {
        if let Some(login) = logins.get(vendor) {
            app.set_login(login);
        }
    }
    apps
}

/// What lifecycle last asked for an active user: kept with the user, and
/// what the next write is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub employee_id: String,
    pub email: String,
    pub apps: BTreeMap<VendorKind, AppRequest>,
}

/// A user as the write leaves them, when active.
#[derive(Debug, Clone)]
pub struct Target {
    /// `externalId`, else the SCIM id.
    pub employee_id: String,
    pub person: Person,
    pub apps: BTreeMap<VendorKind, AppRequest>,
}

/// One event to store.
#[derive(Debug, Clone)]
pub struct Planned {
    pub event_type: EventType,
    /// The event as the intake would have received it (kept with the event).
    pub body: Value,
    pub event: Event,
}

/// The events that take the person from `before` to `after` (`None`:
/// inactive or deleted), and what to keep as applied afterwards.
pub fn plan(before: Option<&Applied>, after: Option<&Target>) -> Result<(Vec<Planned>, Option<Applied>), ScimError> {
    let empty = BTreeMap::new();
    let had = before.map_or(&empty, |b| &b.apps);
    let wants = after.map_or(&empty, |a| &a.apps);
    // The person keeps the identity of their joiner while they have any vendor.
    let (employee_id, email) = match (before, after) {
        (Some(b), _) if !b.apps.is_empty() => (b.employee_id.clone(), b.email.clone()),
        (_, Some(a)) => (a.employee_id.clone(), a.person.email.to_string()),
        (Some(b), None) => (b.employee_id.clone(), b.email.clone()),
        (None, None) => return Ok((Vec::new(), None)),
    };
    let mut employee = json!({"id": employee_id, "email": email});
    if let Some(a) = after {
        employee["given_name"] = json!(a.person.given_name);
        employee["family_name"] = json!(a.person.family_name);
    }
    let pick = |from: &BTreeMap<VendorKind, AppRequest>, keep: &dyn Fn(&VendorKind, &AppRequest) -> bool| {
        from.iter()
            .filter(|(v, a)| keep(v, a))
            .map(|(v, a)| (v.as_str().to_string(), app_json(a)))
            .collect::<Map<_, _>>()
    };
    let leaving = pick(had, &|v, _| !wants.contains_key(v));
    let moving = pick(wants, &|v, a| had.get(v).is_some_and(|h| h != a));
    let joining = pick(wants, &|v, _| !had.contains_key(v));
    let mut planned = Vec::new();
    for (ty, apps) in [(EventType::Leaver, leaving), (EventType::Mover, moving), (EventType::Joiner, joining)] {
        if apps.is_empty() {
            continue;
        }
        let body = json!({"type": ty.as_str(), "employee": employee, "apps": apps});
        let event = Event::parse(&body).map_err(|errors| {
            let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", scim_name(&e.field), e.detail)).collect();
            ScimError::invalid_value(format!("the user cannot be provisioned: {}", fields.join("; ")))
        })?;
        planned.push(Planned { event_type: ty, body, event });
    }
    let applied = after.map(|a| Applied { employee_id, email, apps: a.apps.clone() });
    Ok((planned, applied))
}

/// An app as the intake's `apps.<vendor>` object.
pub fn app_json(app: &AppRequest) -> Value {
    let mut v = serde_json::to_value(app).expect("an app always serializes");
    if let Value::Object(o) = &mut v {
        o.remove("vendor");
        o.retain(|_, x| !x.is_null());
    }
    v
}

/// The SCIM attribute an event field comes from, for error messages.
fn scim_name(field: &str) -> &str {
    match field {
        "employee.id" => "externalId",
        "employee.email" => "userName",
        "employee.given_name" => "name.givenName",
        "employee.family_name" => "name.familyName",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_config::GroupApps;
    use lifecycle_domain::apps::{CalendlyApp, CrowdstrikeApp, JiraApp, PipedriveApp};
    use lifecycle_domain::EmployeeEmail;

    fn pd(role: &str) -> AppRequest {
        AppRequest::Pipedrive(PipedriveApp { role: Some(role.into()) })
    }
    fn cs(roles: &[&str]) -> AppRequest {
        AppRequest::Crowdstrike(CrowdstrikeApp { roles: roles.iter().map(|r| r.to_string()).collect() })
    }
    const JIRA_GROUP: &str = "276f955c-63d7-42c8-9520-92d01dca0625";

    fn mapping() -> Mapping {
        let mut s = ScimSettings::default();
        s.everyone.insert(VendorKind::Calendly, AppRequest::Calendly(CalendlyApp {}));
        let group = |name: &str, apps: Vec<AppRequest>| GroupApps {
            name: name.into(),
            apps: apps.into_iter().map(|a| (a.vendor(), a)).collect(),
        };
        s.groups = vec![
            group("Sales", vec![pd("Sales Rep")]),
            group("Sales Leads", vec![pd("Sales Manager"), cs(&["falcon_viewer"])]),
            group("SOC", vec![cs(&["falcon_analyst"])]),
            group(
                "Engineering",
                vec![AppRequest::Jira(JiraApp {
                    products: vec!["jira-software".into()],
                    groups: vec![JIRA_GROUP.into()],
                })],
            ),
        ];
        Mapping::new(&s)
    }

    fn target(apps: BTreeMap<VendorKind, AppRequest>) -> Target {
        Target {
            employee_id: "00u1".into(),
            person: Person {
                email: EmployeeEmail::parse("ada@example.com").unwrap(),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                logins: Default::default(),
            },
            apps,
        }
    }

    /// GitHub from SCIM groups: teams united, the login from the user's `githubLogin`; a
    /// person whose IdP sends no login is invited by address, and a change of their teams is
    /// refused naming the attribute to map.
    #[test]
    fn github_teams_unite_and_the_login_comes_from_the_user() {
        use lifecycle_domain::apps::GithubApp;
        let gh = |teams: &[&str]| {
            AppRequest::Github(GithubApp {
                teams: Some(teams.iter().map(|t| t.to_string()).collect()),
                ..GithubApp::default()
            })
        };
        let mut s = ScimSettings::default();
        s.groups.push(GroupApps { name: "Platform".into(), apps: [(VendorKind::Github, gh(&["platform"]))].into() });
        s.groups.push(GroupApps { name: "SRE".into(), apps: [(VendorKind::Github, gh(&["sre", "platform"]))].into() });
        let m = Mapping::new(&s);
        let apps = m.desired(["platform", "SRE"]);
        let AppRequest::Github(g) = &apps[&VendorKind::Github] else { panic!() };
        assert_eq!(g.teams.as_deref(), Some(&["platform".to_string(), "sre".to_string()][..]));

        let logins = [(VendorKind::Github, "ada-gh".to_string())].into();
        let (events, before) = plan(None, Some(&target(with_logins(apps.clone(), &logins)))).unwrap();
        assert_eq!(events[0].body["apps"]["github"]["login"], "ada-gh");
        let (events, _) = plan(before.as_ref(), Some(&target(with_logins(m.desired(["SRE"]), &logins)))).unwrap();
        assert_eq!(events[0].event_type, EventType::Mover);
        assert_eq!(events[0].body["apps"]["github"]["teams"], json!(["sre", "platform"]));

        let (events, before) = plan(None, Some(&target(apps))).unwrap();
        assert!(events[0].body["apps"]["github"].get("login").is_none(), "invited by address");
        let err = plan(before.as_ref(), Some(&target(m.desired(["SRE"])))).unwrap_err();
        assert!(format!("{err:?}").contains("apps.github.login"), "{err:?}");
    }

    #[test]
    fn groups_unite_and_the_first_pipedrive_role_wins() {
        let m = mapping();
        let d = m.desired(["SOC", "sales leads", "Sales", "Unmapped"]);
        assert_eq!(d[&VendorKind::Pipedrive], pd("Sales Rep"), "Sales is listed before Sales Leads");
        assert_eq!(d[&VendorKind::Crowdstrike], cs(&["falcon_viewer", "falcon_analyst"]));
        assert!(d.contains_key(&VendorKind::Calendly));
        assert_eq!(m.desired([]).keys().collect::<Vec<_>>(), [&VendorKind::Calendly]);
        assert!(m.maps("soc") && !m.maps("Unmapped"));
    }

    #[test]
    fn created_active_is_one_joiner_for_everything() {
        let m = mapping();
        let (events, applied) = plan(None, Some(&target(m.desired(["Sales"])))).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, EventType::Joiner);
        assert_eq!(events[0].body["apps"], json!({"pipedrive": {"role": "Sales Rep"}, "calendly": {}}));
        assert_eq!(events[0].body["employee"]["given_name"], "Ada");
        assert_eq!(applied.unwrap().apps.len(), 2);
    }

    #[test]
    fn a_group_change_moves_kept_vendors_and_leaves_dropped_ones() {
        let m = mapping();
        let (_, before) = plan(None, Some(&target(m.desired(["Sales", "SOC"])))).unwrap();
        // Sales -> Sales Leads (another role, a CrowdStrike role more), SOC kept,
        // Engineering joined; then everything but SOC left.
        let (events, after) =
            plan(before.as_ref(), Some(&target(m.desired(["Sales Leads", "SOC", "Engineering"])))).unwrap();
        let kinds: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(kinds, [EventType::Mover, EventType::Joiner]);
        assert_eq!(
            events[0].body["apps"],
            json!({"pipedrive": {"role": "Sales Manager"}, "crowdstrike": {"roles": ["falcon_viewer", "falcon_analyst"]}})
        );
        assert_eq!(events[1].body["apps"]["jira"]["groups"], json!([JIRA_GROUP]));
        let (events, _) = plan(after.as_ref(), Some(&target(m.desired(["SOC"])))).unwrap();
        let kinds: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(kinds, [EventType::Leaver, EventType::Mover]);
        assert_eq!(events[0].body["apps"].as_object().unwrap().keys().collect::<Vec<_>>(), ["jira", "pipedrive"]);
        assert_eq!(events[1].body["apps"], json!({"crowdstrike": {"roles": ["falcon_analyst"]}}));
    }

    #[test]
    fn deactivation_is_a_leaver_for_all_and_nothing_changed_is_no_event() {
        let m = mapping();
        let (_, before) = plan(None, Some(&target(m.desired(["Sales"])))).unwrap();
        let (events, _) = plan(before.as_ref(), Some(&target(m.desired(["Sales", "Unmapped"])))).unwrap();
        assert!(events.is_empty(), "an unmapped group changes nothing");
        let (events, after) = plan(before.as_ref(), None).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, EventType::Leaver);
        assert_eq!(events[0].body["employee"], json!({"id": "00u1", "email": "ada@example.com"}));
        assert!(after.is_none());
        // Reactivated: a joiner again.
        let (events, _) = plan(None, Some(&target(m.desired(["Sales"])))).unwrap();
        assert_eq!(events[0].event_type, EventType::Joiner);
        assert!(plan(None, None).unwrap().0.is_empty());
    }

    #[test]
    fn the_joiner_identity_is_kept_while_the_person_has_vendors() {
        let m = mapping();
        let (_, before) = plan(None, Some(&target(m.desired(["Sales"])))).unwrap();
        let mut renamed = target(m.desired(["Sales", "SOC"]));
        renamed.person.email = EmployeeEmail::parse("ada.king@example.com").unwrap();
        let (events, after) = plan(before.as_ref(), Some(&renamed)).unwrap();
        assert_eq!(events[0].body["employee"]["email"], "ada@example.com");
        assert_eq!(after.unwrap().email, "ada@example.com");
    }
}
