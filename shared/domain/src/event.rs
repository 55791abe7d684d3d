//! An HR or identity-provider event, parsed from the intake body (docs/contract.md §1).
//!
//! [`Event::parse`] checks every rule and reports *every* bad field at once,
//! each named by its dotted path, so a client can fix its payload in one go.

use crate::apps::{parse_app, AppRequest};
use crate::email::EmployeeEmail;
use crate::field::FieldErrors;
use crate::text::name_problem;
use crate::vendor::VendorKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

// Their homes are leaf modules (so the apps and the JSON walker need not import this
// file); they stay reachable here, where callers have always found them.
pub use crate::event_type::EventType;
pub use crate::field::FieldError;
pub use crate::json::payload_hash;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    pub id: String,
    pub email: EmployeeEmail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

impl Employee {
    /// "Ada Lovelace", or the e-mail address when no name was given.
    pub fn display_name(&self) -> String {
        match (&self.given_name, &self.family_name) {
            (Some(g), Some(f)) => format!("{g} {f}"),
            (Some(n), None) | (None, Some(n)) => n.clone(),
            (None, None) => self.email.to_string(),
        }
    }
}

/// A validated event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    /// When the change happened at the source: effects for one person at one
    /// vendor follow it (absent: the time it arrived).
    pub occurred_at: Option<DateTime<Utc>>,
    /// When the change should take effect: until then its runs are `scheduled`.
    pub effective_at: Option<DateTime<Utc>>,
    pub employee: Employee,
    pub successor_email: Option<EmployeeEmail>,
    /// The vendors a joiner, mover or leaver touches, each with its desired access.
    pub apps: BTreeMap<VendorKind, AppRequest>,
    /// A cancel's vendors (all of them when it names none); empty otherwise.
    pub cancel_at: BTreeSet<VendorKind>,
}

/// What one run needs to do its work: the event, narrowed to one vendor.
/// Stored with the run, so a run never needs its event to execute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInput {
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    pub employee: Employee,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_email: Option<EmployeeEmail>,
    pub app: AppRequest,
}

/// Why a request body is not an event: every front end (the intake, plans,
/// the admin API, the console, the ctl) says it the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all.
    MalformedJson(String),
    /// JSON, but not a valid event: each bad field (or repeated key) named.
    Invalid { detail: String, errors: Vec<FieldError> },
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::MalformedJson(d) | BodyError::Invalid { detail: d, .. } => f.write_str(d),
        }
    }
}

impl Event {
    /// A request body as JSON and as an event: not JSON, a repeated key
    /// (which readers resolve differently) or an invalid field is refused.
    pub fn parse_body(bytes: &[u8]) -> Result<(Value, Event), BodyError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| BodyError::MalformedJson(format!("the body is not valid JSON: {e}")))?;
        let repeated = crate::json::repeated_key_errors(bytes);
        if !repeated.is_empty() {
            let fields: Vec<&str> = repeated.iter().map(|e| e.field.as_str()).collect();
            return Err(BodyError::Invalid {
                detail: format!(
                    "the body repeats keys, which readers resolve differently; send each once: {}",
                    fields.join(", ")
                ),
                errors: repeated,
            });
        }
        let event = Event::parse(&value).map_err(|errors| {
            let detail = match errors.as_slice() {
                // Not an object at all (`[]`, a string): no field to name.
                [whole] if whole.field.is_empty() => whole.detail.clone(),
                // Each field's own detail is in `errors`.
                _ => {
                    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                    format!("the event has invalid fields: {}", fields.join(", "))
                }
            };
            BodyError::Invalid { detail, errors }
        })?;
        Ok((value, event))
    }

    /// One run input per vendor the event touches, in vendor order.
    pub fn run_inputs(&self) -> Vec<RunInput> {
        self.apps
            .values()
            .map(|app| RunInput {
                event_type: self.event_type,
                occurred_at: self.occurred_at,
                employee: self.employee.clone(),
                successor_email: self.successor_email.clone(),
                app: app.clone(),
            })
            .collect()
    }

    /// Parses and validates an intake body.
    pub fn parse(value: &Value) -> Result<Event, Vec<FieldError>> {
        let mut errs = FieldErrors::default();
        let Some(obj) = value.as_object() else {
            errs.push("", "the body must be a JSON object");
            return Err(errs.into_vec());
        };
        for key in obj.keys() {
            if !["type", "occurred_at", "effective_at", "employee", "successor_email", "apps"].contains(&key.as_str()) {
                errs.push(
                    key,
                    "is not a known field (allowed: type, occurred_at, effective_at, employee, successor_email, apps)",
                );
            }
        }

        let event_type = match obj.get("type") {
            None | Some(Value::Null) => {
                errs.push("type", "is required (joiner, mover, leaver or cancel)");
                None
            }
            Some(Value::String(s)) => match s.as_str() {
                "joiner" => Some(EventType::Joiner),
                "mover" => Some(EventType::Mover),
                "leaver" => Some(EventType::Leaver),
                "cancel" => Some(EventType::Cancel),
                _ => {
                    errs.push("type", "must be one of joiner, mover, leaver, cancel");
                    None
                }
            },
            Some(_) => {
                errs.push("type", "must be a string: joiner, mover, leaver or cancel");
                None
            }
        };

        let occurred_at = timestamp(obj, "occurred_at", &mut errs);
        let effective_at = timestamp(obj, "effective_at", &mut errs);
        if event_type == Some(EventType::Cancel) && effective_at.is_some() {
            errs.push("effective_at", "a cancel takes effect at once: leave effective_at out");
        }

        let employee = parse_employee(obj.get("employee"), event_type, &mut errs);

        let successor_email = match obj.get("successor_email") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match EmployeeEmail::parse(s) {
                Ok(e) => Some(e),
                Err(e) => {
                    errs.push("successor_email", &format!("is not a valid e-mail address: {e}"));
                    None
                }
            },
            Some(_) => {
                errs.push("successor_email", "must be a string holding an e-mail address");
                None
            }
        };
        if let (Some(s), Some(e)) = (&successor_email, &employee) {
            if *s == e.email {
                errs.push("successor_email", "must not be the leaving employee's own address");
            }
        }

        let mut apps = BTreeMap::new();
        let mut cancel_at = BTreeSet::new();
        match obj.get("apps") {
            // A cancel without apps withdraws at every vendor.
            None | Some(Value::Null) if event_type == Some(EventType::Cancel) => cancel_at.extend(VendorKind::ALL),
            None | Some(Value::Null) => {
                errs.push("apps", "is required: an object naming each vendor this event touches")
            }
            Some(Value::Object(map)) if map.is_empty() => errs.push("apps", "must name at least one vendor"),
            Some(Value::Object(map)) => {
                for (name, app_value) in map {
                    let field = format!("apps.{name}");
                    match VendorKind::from_str(name) {
                        Err(e) => errs.push(&field, &e.to_string()),
                        Ok(vendor) if event_type == Some(EventType::Cancel) => match app_value.as_object() {
                            Some(o) if o.is_empty() => {
                                cancel_at.insert(vendor);
                            }
                            _ => errs.push(&field, "a cancel names vendors only: give {}"),
                        },
                        Ok(vendor) => {
                            if let Some(ty) = event_type {
                                if let Some(app) = parse_app(vendor, ty, app_value, &field, &mut errs) {
                                    apps.insert(vendor, app);
                                }
                            } else if !app_value.is_object() {
                                errs.push(&field, "must be an object");
                            }
                        }
                    }
                }
            }
            Some(_) => errs.push("apps", "must be an object keyed by vendor"),
        }

        match (errs.len() == 0, event_type, employee) {
            (true, Some(event_type), Some(employee)) => {
                Ok(Event { event_type, occurred_at, effective_at, employee, successor_email, apps, cancel_at })
            }
            _ => Err(errs.into_vec()),
        }
    }
}

/// An optional RFC 3339 timestamp field; the offset is required (RFC 3339
/// has no local times), so `2026-12-31T17:00:00-05:00` and
/// `2026-12-31T22:00:00Z` are the same instant and `2026-12-31T17:00:00` is refused.
fn timestamp(obj: &Map<String, Value>, field: &str, errs: &mut FieldErrors) -> Option<DateTime<Utc>> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errs.push(
                    field,
                    "must be an RFC 3339 timestamp with an offset, like 2026-11-22T09:00:00Z or 2026-11-22T10:00:00+01:00",
                );
                None
            }
        },
        Some(_) => {
            errs.push(field, "must be a string holding an RFC 3339 timestamp with an offset");
            None
        }
    }
}

fn parse_employee(value: Option<&Value>, ty: Option<EventType>, errs: &mut FieldErrors) -> Option<Employee> {
    let obj: &Map<String, Value> = match value {
        None | Some(Value::Null) => {
            errs.push("employee", "is required");
            return None;
        }
        Some(Value::Object(o)) => o,
        Some(_) => {
            errs.push("employee", "must be an object");
            return None;
        }
    };
    let before = errs.len();
    for key in obj.keys() {
        if !["id", "email", "given_name", "family_name"].contains(&key.as_str()) {
            errs.push(&format!("employee.{key}"), "is not a known field (allowed: id, email, given_name, family_name)");
        }
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) => match name_problem(s, 255) {
            None => Some(s.trim().to_string()),
            Some(problem) => {
                errs.push("employee.id", &problem);
                None
            }
        },
        None | Some(Value::Null) => {
            errs.push("employee.id", "is required");
            None
        }
        Some(_) => {
            errs.push("employee.id", "must be a string");
            None
        }
    };
    let email = match obj.get("email") {
        Some(Value::String(s)) => match EmployeeEmail::parse(s) {
            Ok(e) => Some(e),
            Err(e) => {
                errs.push("employee.email", &format!("is not a valid e-mail address: {e}"));
                None
            }
        },
        None | Some(Value::Null) => {
            errs.push("employee.email", "is required");
            None
        }
        Some(_) => {
            errs.push("employee.email", "must be a string holding an e-mail address");
            None
        }
    };
    let mut name = |key: &str| -> Option<String> {
        let field = format!("employee.{key}");
        match obj.get(key) {
            Some(Value::String(s)) => match name_problem(s, 255) {
                None => Some(s.trim().to_string()),
                Some(problem) => {
                    errs.push(&field, &problem);
                    None
                }
            },
            None | Some(Value::Null) => {
                if ty == Some(EventType::Joiner) {
                    errs.push(&field, "is required for a joiner");
                }
                None
            }
            Some(_) => {
                errs.push(&field, "must be a string");
                None
            }
        }
    };
    let given_name = name("given_name");
    let family_name = name("family_name");
    if errs.len() != before {
        return None;
    }
    Some(Employee { id: id?, email: email?, given_name, family_name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract_joiner() -> Value {
        json!({
          "type": "joiner",
          "occurred_at": "2026-11-22T09:00:00Z",
          "employee": {"id": "E-1001", "email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace"},
          "successor_email": "grace@example.com",
          "apps": {
            "pipedrive":   { "role": "Sales Rep" },
            "crowdstrike": { "roles": ["falcon_analyst"] },
            "jira":        { "products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"] },
            "calendly":    {},
            "circleci":    { "login": "ada-gh" },
            "github":      { "login": "ada-gh", "role": "member", "teams": ["platform"] }
          }
        })
    }

    fn fields(v: Value) -> Vec<String> {
        Event::parse(&v).unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn parses_the_contract_example() {
        let event = Event::parse(&contract_joiner()).unwrap();
        assert_eq!(event.event_type, EventType::Joiner);
        assert_eq!(event.apps.len(), 6);
        assert_eq!(event.run_inputs().len(), 6);
        assert_eq!(event.employee.display_name(), "Ada Lovelace");
    }

    #[test]
    fn names_every_bad_field_at_once() {
        let mut v = contract_joiner();
        v["employee"]["email"] = json!("not-an-email");
        v["type"] = json!(7);
        v["apps"]["workday"] = json!({});
        let f = fields(v);
        assert!(f.contains(&"employee.email".to_string()), "{f:?}");
        assert!(f.contains(&"type".to_string()), "{f:?}");
        assert!(f.contains(&"apps.workday".to_string()), "{f:?}");
    }

    #[test]
    fn requires_names_for_a_joiner_only() {
        let mut v = contract_joiner();
        v["employee"].as_object_mut().unwrap().remove("given_name");
        assert_eq!(fields(v.clone()), vec!["employee.given_name"]);
        v["type"] = json!("leaver");
        assert!(Event::parse(&v).is_ok());
    }

    #[test]
    fn rejects_unknown_and_mistyped_fields() {
        let mut v = contract_joiner();
        v["sucessor_email"] = json!("x@example.com");
        v["apps"]["crowdstrike"]["roles"] = json!("falcon_analyst");
        v["apps"]["jira"]["groups"] = json!(["jira-software-users"]);
        let f = fields(v);
        assert!(f.contains(&"sucessor_email".to_string()));
        assert!(f.contains(&"apps.crowdstrike.roles".to_string()));
        assert!(f.contains(&"apps.jira.groups[0]".to_string()));
    }

    #[test]
    fn missing_email_is_named() {
        let mut v = contract_joiner();
        v["employee"].as_object_mut().unwrap().remove("email");
        assert_eq!(fields(v), vec!["employee.email"]);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_named_as_the_whole_body() {
        for body in [json!([]), json!([1, 2]), json!("joiner"), json!(null)] {
            let errors = Event::parse(&body).unwrap_err();
            assert_eq!(errors, vec![FieldError::new("", "the body must be a JSON object")], "{body}");
            assert_eq!(errors[0].pointer, "#");
        }
    }

    #[test]
    fn invisible_format_characters_are_refused_in_addresses_names_and_ids() {
        let mut v = contract_joiner();
        v["employee"]["given_name"] = json!("Ada\u{202e}");
        v["employee"]["family_name"] = json!("\u{200b}Lovelace");
        v["employee"]["id"] = json!("E-\u{2066}1001");
        v["employee"]["email"] = json!("ada\u{200b}@example.com");
        v["successor_email"] = json!("grace@exa\u{feff}mple.com");
        v["apps"]["pipedrive"]["role"] = json!("Sales\u{200d} Rep");
        v["apps"]["crowdstrike"]["roles"] = json!(["falcon\u{200b}_analyst"]);
        let errors = Event::parse(&v).unwrap_err();
        let named = |f: &str| errors.iter().find(|e| e.field == f).unwrap_or_else(|| panic!("{f}: {errors:?}")).clone();
        for f in [
            "employee.given_name",
            "employee.family_name",
            "employee.id",
            "apps.pipedrive.role",
            "apps.crowdstrike.roles[0]",
        ] {
            assert!(named(f).detail.contains("invisible formatting characters (found U+"), "{:?}", named(f));
        }
        for f in ["employee.email", "successor_email"] {
            assert!(named(f).detail.contains("invisible formatting characters"), "{:?}", named(f));
        }
    }

    /// A leaver of the contract's shape with `field` set to `at`.
    fn leaver_at(field: &str, at: &str) -> Value {
        let mut v = contract_joiner();
        v["type"] = json!("leaver");
        v[field] = json!(at);
        v
    }

    #[test]
    fn an_offset_and_utc_name_the_same_instant_for_both_times() {
        for field in ["effective_at", "occurred_at"] {
            let new_york = Event::parse(&leaver_at(field, "2026-12-31T17:00:00-05:00")).unwrap();
            let utc = Event::parse(&leaver_at(field, "2026-12-31T22:00:00Z")).unwrap();
            let expected: DateTime<Utc> = "2026-12-31T22:00:00Z".parse().unwrap();
            let (a, b) = match field {
                "effective_at" => (new_york.effective_at, utc.effective_at),
                _ => (new_york.occurred_at, utc.occurred_at),
            };
            assert_eq!(a, Some(expected), "{field}");
            assert_eq!(a, b, "{field}");
        }
        // The time is kept on its own field only.
        let e = Event::parse(&leaver_at("effective_at", "2026-12-31T17:00:00-05:00")).unwrap();
        assert_eq!(e.occurred_at, Some("2026-11-22T09:00:00Z".parse().unwrap()));
    }

    #[test]
    fn a_time_without_an_offset_is_refused_naming_its_field() {
        for field in ["effective_at", "occurred_at"] {
            let errors = Event::parse(&leaver_at(field, "2026-12-31T17:00:00")).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, field);
            assert_eq!(errors[0].pointer, format!("#/{field}"));
            assert!(errors[0].detail.contains("offset"), "{:?}", errors[0]);
        }
        for bad in [json!(1767218400), json!("tomorrow"), json!("2026-12-31"), json!({})] {
            let mut v = leaver_at("effective_at", "2026-12-31T22:00:00Z");
            v["effective_at"] = bad.clone();
            assert_eq!(fields(v), vec!["effective_at"], "{bad}");
        }
        let absent = Event::parse(&contract_joiner()).unwrap();
        assert_eq!(absent.effective_at, None);
    }

    fn cancel(apps: Option<Value>) -> Value {
        let mut v = json!({"type": "cancel", "employee": {"id": "E-1001", "email": "Ada@Example.com"}});
        if let Some(apps) = apps {
            v["apps"] = apps;
        }
        v
    }

    #[test]
    fn a_cancel_takes_effect_at_once_and_refuses_effective_at() {
        let mut v = cancel(None);
        v["effective_at"] = json!("2026-12-31T22:00:00Z");
        let errors = Event::parse(&v).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), vec!["effective_at"], "{errors:?}");
        // occurred_at is allowed: it is when HR withdrew the change.
        let mut v = cancel(None);
        v["occurred_at"] = json!("2026-12-31T17:00:00-05:00");
        assert!(Event::parse(&v).is_ok());
    }

    #[test]
    fn a_cancels_apps_name_vendors_only() {
        let e = Event::parse(&cancel(Some(json!({"pipedrive": {}, "jira": {}})))).unwrap();
        assert_eq!(e.event_type, EventType::Cancel);
        assert_eq!(e.cancel_at, BTreeSet::from([VendorKind::Pipedrive, VendorKind::Jira]));
        assert!(e.apps.is_empty(), "a cancel makes no runs");
        assert_eq!(e.event_type.workflow(), None);

        let errors = Event::parse(&cancel(Some(json!({"pipedrive": {"role": "Sales Rep"}, "jira": {}})))).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), vec!["apps.pipedrive"], "{errors:?}");
        for bad in [json!(null), json!([]), json!("x"), json!(true)] {
            let f = fields(cancel(Some(json!({ "calendly": bad.clone() }))));
            assert_eq!(f, vec!["apps.calendly"], "{bad}");
        }
        assert_eq!(fields(cancel(Some(json!({"workday": {}})))), vec!["apps.workday"]);
    }

    #[test]
    fn a_cancel_without_apps_reaches_every_vendor() {
        for v in [cancel(None), cancel(Some(Value::Null))] {
            let e = Event::parse(&v).unwrap();
            assert_eq!(e.cancel_at, VendorKind::ALL.into_iter().collect::<BTreeSet<_>>(), "{v}");
            assert_eq!(e.cancel_at.len(), VendorKind::ALL.len());
            assert!(e.apps.is_empty());
        }
        // Only a cancel may leave apps out.
        let mut v = cancel(None);
        v["type"] = json!("leaver");
        assert_eq!(fields(v), vec!["apps"]);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,400}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = Event::parse(&v);
            }
        }

        #[test]
        fn mutated_contract_events_either_parse_or_name_a_field(
            path in proptest::sample::select(vec!["type", "employee", "employee.id", "employee.email", "employee.given_name", "apps", "apps.pipedrive", "apps.pipedrive.role", "apps.crowdstrike.roles", "apps.circleci.login", "successor_email", "occurred_at"]),
            replacement in proptest::prop_oneof![
                proptest::strategy::Just(json!(null)),
                proptest::strategy::Just(json!(42)),
                proptest::strategy::Just(json!("")),
                proptest::strategy::Just(json!([])),
                proptest::strategy::Just(json!({})),
                proptest::strategy::Just(json!(true)),
                ".{0,30}".prop_map(Value::String),
            ],
        ) {
            let mut v = contract_joiner();
            let mut target = &mut v;
            let parts: Vec<&str> = path.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                target = target.get_mut(*p).unwrap();
            }
            target[parts[parts.len() - 1]] = replacement;
            match Event::parse(&v) {
                Ok(_) => {}
                Err(errors) => {
                    proptest::prop_assert!(!errors.is_empty());
                    for e in errors {
                        proptest::prop_assert!(!e.detail.is_empty());
                    }
                }
            }
        }
    }
    use proptest::prelude::Strategy;
}
