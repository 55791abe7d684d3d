//! Users and groups as the identity provider sends them: checked, made
//! canonical where SCIM's types ask for it (booleans), and otherwise kept as
//! sent, unknown extension attributes included, so that `GET` returns what
//! the IdP last set. Server-owned attributes (`id`, `meta`, a user's `groups`)
//! and `password` (never returned, and not ours to keep) are not stored.

use crate::patch::get_ci;
use crate::ScimError;
use lifecycle_domain::EmployeeEmail;
use serde_json::{json, Map, Value};

/// Longest `userName`, `displayName` or `externalId` accepted.
pub const MAX_NAME: usize = 255;

/// A user ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInput {
    /// What is stored and given back (without id and meta).
    pub resource: Map<String, Value>,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
}

/// A group ready to store; its members are rows of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInput {
    /// Stored without `members`.
    pub resource: Map<String, Value>,
    pub display_name: String,
    pub external_id: Option<String>,
    /// The `members` given in a POST or PUT (user ids), if any.
    pub members: Option<Vec<String>>,
}

const NEVER_STORED: [&str; 4] = ["id", "meta", "password", "groups"];
/// Boolean sub-attributes of multi-valued attributes (RFC 7643 §2.4).
const MULTI_VALUED: [&str; 8] =
    ["emails", "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles", "x509Certificates"];

pub fn parse_user(body: &Value) -> Result<UserInput, ScimError> {
    let (mut obj, user_name, external_id) = named(body, crate::USER_SCHEMA, "User", "userName")?;
    let active = match take_ci(&mut obj, "active") {
        None | Some(Value::Null) => true,
        Some(v) => boolean(&v).ok_or_else(|| ScimError::invalid_value("active must be a boolean"))?,
    };
    obj.insert("active".into(), Value::Bool(active));
    for attr in MULTI_VALUED {
        if let Some(Value::Array(items)) = get_ci_mut(&mut obj, attr) {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(p) = take_ci(item, "primary") {
                    let b = boolean(&p)
                        .ok_or_else(|| ScimError::invalid_value(format!("{attr}.primary must be a boolean")))?;
                    item.insert("primary".into(), Value::Bool(b));
                }
            }
        } else if get_ci(&obj, attr).is_some_and(|v| !v.is_array() && !v.is_null()) {
            return Err(ScimError::invalid_value(format!("{attr} must be a list")));
        }
    }
    if get_ci(&obj, "name").is_some_and(|n| !n.is_object() && !n.is_null()) {
        return Err(ScimError::invalid_value("name must be an object"));
    }
    check_user_names(&obj)?;
    Ok(UserInput { resource: obj, user_name, external_id, active })
}

pub fn parse_group(body: &Value) -> Result<GroupInput, ScimError> {
    let (mut obj, display_name, external_id) = named(body, crate::GROUP_SCHEMA, "Group", "displayName")?;
    let members = match take_ci(&mut obj, "members") {
        None | Some(Value::Null) => None,
        Some(v) => Some(crate::patch::member_ids(&v)?),
    };
    Ok(GroupInput { resource: obj, display_name, external_id, members })
}

/// The group's stored attributes checked again after a PATCH.
pub fn check_group(resource: Map<String, Value>) -> Result<GroupInput, ScimError> {
    parse_group(&Value::Object(resource))
}

/// A resource's object, its name and its `externalId`.
type Named = (Map<String, Value>, String, Option<String>);

/// What a user and a group start with: the object (its schema checked, what
/// is never stored taken out), its name (`name_attr`) and its `externalId`.
fn named(body: &Value, schema: &str, what: &str, name_attr: &str) -> Result<Named, ScimError> {
    let mut obj = object_with_schema(body, schema, what)?;
    strip(&mut obj, &NEVER_STORED);
    let name = required_name(&obj, name_attr)?;
    let external_id = optional_name(&obj, "externalId")?;
    Ok((obj, name, external_id))
}

fn object_with_schema(body: &Value, schema: &str, what: &str) -> Result<Map<String, Value>, ScimError> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("a {what} must be a JSON object")))?;
    let ok = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(schema))));
    if !ok {
        return Err(ScimError::invalid_value(format!("schemas must include {schema}")));
    }
    Ok(obj.clone())
}

/// Takes out `names`, also when written fully qualified
/// (`urn:ietf:params:scim:schemas:core:2.0:User:password`), and from an
/// object under the core schema's URN.
fn strip(obj: &mut Map<String, Value>, names: &[&str]) {
    obj.retain(|k, _| !names.iter().any(|n| n.eq_ignore_ascii_case(core_attr(k))));
    for (k, v) in obj.iter_mut() {
        if let (true, Value::Object(inner)) = (is_core_schema(k), v) {
            inner.retain(|k, _| !names.iter().any(|n| n.eq_ignore_ascii_case(k)));
        }
    }
}

fn is_core_schema(k: &str) -> bool {
    k.eq_ignore_ascii_case(crate::USER_SCHEMA) || k.eq_ignore_ascii_case(crate::GROUP_SCHEMA)
}

/// `password` for `urn:ietf:params:scim:schemas:core:2.0:User:password` (and the Group schema's), else `k`.
fn core_attr(k: &str) -> &str {
    for urn in [crate::USER_SCHEMA, crate::GROUP_SCHEMA] {
        if k.len() > urn.len() && k.is_char_boundary(urn.len()) && k[..urn.len()].eq_ignore_ascii_case(urn) {
            if let Some(attr) = k[urn.len()..].strip_prefix(':') {
                return attr;
            }
        }
    }
    k
}

fn take_ci(obj: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()?;
    obj.remove(&key)
}

fn get_ci_mut<'a>(obj: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Value> {
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()?;
    obj.get_mut(&key)
}

/// A boolean, or Entra's `"True"` / `"False"`.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn required_name(obj: &Map<String, Value>, attr: &str) -> Result<String, ScimError> {
    match get_ci(obj, attr) {
        Some(Value::String(s))
            if !s.trim().is_empty() && s.chars().count() <= MAX_NAME && !s.chars().any(char::is_control) =>
        {
            no_invisible(attr, s)?;
            Ok(s.trim().to_string())
        }
        Some(Value::String(_)) => Err(ScimError::invalid_value(format!(
            "{attr} must be 1 to {MAX_NAME} characters without control characters"
        ))),
        _ => Err(ScimError::invalid_value(format!("{attr} is required (a string)"))),
    }
}

/// Refuses a Unicode format character (zero-width, bidirectional marks...)
/// in a name, as the intake refuses it in an event's names and addresses
/// (`lifecycle_domain::text`): refused whether or not the write makes an event.
fn no_invisible(attr: &str, s: &str) -> Result<(), ScimError> {
    match s.chars().find(|c| lifecycle_domain::text::is_format(*c)) {
        None => Ok(()),
        Some(c) => Err(ScimError::invalid_value(format!(
            "{attr} must not contain invisible formatting characters (found U+{:04X}; zero-width and bidirectional \
             marks hide or reorder text)",
            c as u32
        ))),
    }
}

/// A user's names and addresses: `displayName`, `nickName`, each string of
/// `name`, each `emails[].value`, free of invisible formatting characters.
fn check_user_names(obj: &Map<String, Value>) -> Result<(), ScimError> {
    for attr in ["displayName", "nickName"] {
        if let Some(Value::String(s)) = get_ci(obj, attr) {
            no_invisible(attr, s)?;
        }
    }
    if let Some(Value::Object(name)) = get_ci(obj, "name") {
        for (k, v) in name {
            if let Value::String(s) = v {
                no_invisible(&format!("name.{k}"), s)?;
            }
        }
    }
    if let Some(Value::Array(emails)) = get_ci(obj, "emails") {
        for e in emails.iter().filter_map(Value::as_object) {
            if let Some(Value::String(s)) = get_ci(e, "value") {
                no_invisible("emails.value", s)?;
            }
        }
    }
    Ok(())
}

fn optional_name(obj: &Map<String, Value>, attr: &str) -> Result<Option<String>, ScimError> {
    match get_ci(obj, attr) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required_name(obj, attr).map(Some),
    }
}

/// The person behind a user, as lifecycle's events name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub email: EmployeeEmail,
    pub given_name: String,
    pub family_name: String,
    /// The person's login at vendors that know people by login (GitHub), from the
    /// `<vendor>Login` attributes of lifecycle's extension ([`LOGINS_SCHEMA`]), which an IdP
    /// is configured to send: `{"urn:...:lifecycle:2.0:User": {"githubLogin": "ada-gh"}}`.
    pub logins: std::collections::BTreeMap<lifecycle_domain::VendorKind, String>,
}

/// lifecycle's SCIM extension for vendor logins (`githubLogin`, ...).
pub const LOGINS_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:lifecycle:2.0:User";

/// The `<vendor>Login` attributes of the extension, for known vendors; a value that is not a
/// string is refused, unknown attributes are kept with the user and not read.
fn logins(
    resource: &Map<String, Value>,
) -> Result<std::collections::BTreeMap<lifecycle_domain::VendorKind, String>, ScimError> {
    let mut out = std::collections::BTreeMap::new();
    let Some(ext) = get_ci(resource, LOGINS_SCHEMA).and_then(Value::as_object) else { return Ok(out) };
    for vendor in lifecycle_domain::VendorKind::ALL {
        let attr = format!("{}Login", vendor.as_str());
        match get_ci(ext, &attr) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.trim().is_empty() => {
                out.insert(vendor, s.trim().to_string());
            }
            Some(_) => {
                return Err(ScimError::invalid_value(format!("{LOGINS_SCHEMA}:{attr} must be a non-empty string")))
            }
        }
    }
    Ok(out)
}

/// `employee.email` is the `userName` when it is an address, else the
/// primary (then the `work`, then the first) address in `emails`; the names
/// come from `name`. Refused with `invalidValue` naming what is missing.
pub fn person(resource: &Map<String, Value>) -> Result<Person, ScimError> {
    let user_name = get_ci(resource, "userName").and_then(Value::as_str).unwrap_or_default();
    let email = match EmployeeEmail::parse(user_name) {
        Ok(e) => e,
        Err(_) => {
            let emails: Vec<&Map<String, Value>> = get_ci(resource, "emails")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_object).collect())
                .unwrap_or_default();
            let pick = emails
                .iter()
                .find(|e| get_ci(e, "primary") == Some(&Value::Bool(true)))
                .or_else(|| {
                    emails.iter().find(|e| {
                        get_ci(e, "type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"))
                    })
                })
                .or(emails.first());
            pick.and_then(|e| get_ci(e, "value")).and_then(Value::as_str).and_then(|v| EmployeeEmail::parse(v).ok()).ok_or_else(
                || {
                    ScimError::invalid_value(
                        "userName is not an e-mail address and emails holds no valid work address: lifecycle needs one to \
                         find the person at each vendor",
                    )
                },
            )?
        }
    };
    let name = get_ci(resource, "name").and_then(Value::as_object);
    let part = |attr: &str| {
        name.and_then(|n| get_ci(n, attr))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                ScimError::invalid_value(format!("name.{attr} is required for an active user (vendors need it)"))
            })
    };
    Ok(Person { email, given_name: part("givenName")?, family_name: part("familyName")?, logins: logins(resource)? })
}

/// What `meta` says about a stored resource.
pub struct Meta<'a> {
    pub resource_type: &'a str,
    pub created: chrono::DateTime<chrono::Utc>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    pub version: i64,
    pub location: String,
}

/// The resource as served: what was stored, with `id` and `meta`.
pub fn render(stored: &Map<String, Value>, id: &str, meta: &Meta<'_>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    for (k, v) in stored {
        // Never given back, however it was stored before it was refused.
        if core_attr(k).eq_ignore_ascii_case("password") {
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": meta.resource_type,
            "created": meta.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "lastModified": meta.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "version": crate::etag(meta.version),
            "location": meta.location,
        }),
    );
    out
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5), on top-level
/// attribute names (a sub-attribute names its parent). `id`, `schemas` and
/// `meta` are always returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    pub attributes: Option<Vec<String>>,
    pub excluded: Vec<String>,
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        let names = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    // urn:...:User:name.givenName -> name
                    let s = s.rsplit_once(':').map_or(s, |(_, a)| a);
                    s.split(['.', '[']).next().unwrap_or(s).to_ascii_lowercase()
                })
                .collect()
        };
        Projection { attributes: attributes.map(names), excluded: excluded.map(names).unwrap_or_default() }
    }

    /// Whether `attr` is returned.
    pub fn wants(&self, attr: &str) -> bool {
        let a = attr.to_ascii_lowercase();
        if ["id", "schemas", "meta"].contains(&a.as_str()) {
            return true;
        }
        if self.excluded.contains(&a) {
            return false;
        }
        self.attributes.as_ref().is_none_or(|list| list.contains(&a))
    }

    pub fn apply(&self, resource: &mut Map<String, Value>) {
        resource.retain(|k, _| self.wants(k));
    }

    /// [`Projection::apply`] to a resource held as a JSON value (anything
    /// but an object is left as it is).
    pub fn apply_value(&self, resource: &mut Value) {
        if let Value::Object(o) = resource {
            self.apply(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_kept_as_sent_but_for_what_the_server_owns() {
        let body = json!({
            "schemas": [crate::USER_SCHEMA, "urn:example:custom"],
            "id": "client-chosen", "meta": {"version": "x"}, "password": "hunter2", "groups": [],
            "userName": " ada@example.com ",
            "active": "True",
            "emails": [{"value": "ada@example.com", "primary": "true"}],
            "urn:example:custom": {"badge": 42}
        });
        let u = parse_user(&body).unwrap();
        assert_eq!(u.user_name, "ada@example.com");
        assert!(u.active);
        for gone in ["id", "meta", "password", "groups"] {
            assert!(!u.resource.contains_key(gone), "{gone}");
        }
        assert_eq!(u.resource["emails"][0]["primary"], true);
        assert_eq!(u.resource["urn:example:custom"], json!({"badge": 42}));
    }

    #[test]
    fn a_password_is_not_stored_under_its_urn_either() {
        let body = json!({
            "schemas": [crate::USER_SCHEMA],
            "userName": "ada@example.com",
            "urn:ietf:params:scim:schemas:core:2.0:User:password": "hunter2",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:Password": "hunter3",
            "urn:ietf:params:scim:schemas:core:2.0:User": {"password": "hunter4", "nickName": "A"}
        });
        let u = parse_user(&body).unwrap();
        let stored = Value::Object(u.resource.clone()).to_string();
        assert!(!stored.contains("hunter"), "{stored}");
        assert_eq!(u.resource[crate::USER_SCHEMA]["nickName"], "A");
        // Rendered without it even when a row holds one from before.
        let mut old = u.resource;
        old.insert("urn:ietf:params:scim:schemas:core:2.0:User:password".into(), json!("hunter5"));
        let now = chrono::Utc::now();
        let meta = Meta { resource_type: "User", created: now, last_modified: now, version: 1, location: "/x".into() };
        assert!(!Value::Object(render(&old, "1", &meta)).to_string().contains("hunter"));
    }

    #[test]
    fn invisible_characters_in_names_are_refused_active_or_not() {
        let base = json!({
            "schemas": [crate::USER_SCHEMA], "userName": "ada@example.com", "active": false,
            "name": {"givenName": "Ada", "familyName": "Lovelace"}, "displayName": "Ada"
        });
        for (at, bad) in [
            ("/userName", json!("ada\u{200b}@example.com")),
            ("/externalId", json!("e\u{202e}1")),
            ("/displayName", json!("Ada\u{202e}")),
            ("/name/givenName", json!("A\u{200d}da")),
            ("/name/formatted", json!("\u{2066}Ada")),
            ("/emails", json!([{"value": "ada\u{feff}@example.com"}])),
        ] {
            let mut b = base.clone();
            match b.pointer_mut(at) {
                Some(slot) => *slot = bad,
                None => {
                    let (parent, key) = at.rsplit_once('/').unwrap();
                    b.pointer_mut(if parent.is_empty() { "" } else { parent }).unwrap()[key] = bad;
                }
            }
            let e = parse_user(&b).unwrap_err();
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue), "{at}");
            assert!(e.detail.contains("U+"), "{at}: {e}");
        }
        assert!(parse_user(&base).is_ok());
        let g = json!({"schemas": [crate::GROUP_SCHEMA], "displayName": "Sa\u{200b}les"});
        assert!(parse_group(&g).unwrap_err().detail.contains("U+200B"));
    }

    #[test]
    fn refusals_name_the_attribute() {
        let e = parse_user(&json!({"schemas": [crate::USER_SCHEMA]})).unwrap_err();
        assert!(e.detail.contains("userName"));
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidValue));
        assert!(parse_user(&json!({"userName": "x"})).unwrap_err().detail.contains("schemas"));
        assert!(parse_user(&json!([])).is_err());
        assert!(parse_user(&json!({"schemas": [crate::USER_SCHEMA], "userName": "x", "active": "maybe"})).is_err());
        assert!(parse_group(&json!({"schemas": [crate::GROUP_SCHEMA]})).unwrap_err().detail.contains("displayName"));
    }

    #[test]
    fn the_person_is_found_by_username_then_emails() {
        let mut u = parse_user(&json!({
            "schemas": [crate::USER_SCHEMA], "userName": "ada",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "home@example.com", "type": "home"}, {"value": "ada@example.com", "type": "work"}]
        }))
        .unwrap();
        assert_eq!(person(&u.resource).unwrap().email.to_string(), "ada@example.com");
        u.resource.remove("emails");
        let e = person(&u.resource).unwrap_err();
        assert!(e.detail.contains("userName") && e.detail.contains("emails"), "{e}");
        u.resource.insert("userName".into(), json!("Ada@Example.com"));
        u.resource.remove("name");
        assert!(person(&u.resource).unwrap_err().detail.contains("name.givenName"));
    }

    /// Vendor logins come from lifecycle's extension, `<vendor>Login` (any case); nothing else
    /// there is read, and a login that is not a string is refused.
    #[test]
    fn vendor_logins_come_from_the_lifecycle_extension() {
        let user = |ext: Value| {
            parse_user(&json!({
                "schemas": [crate::USER_SCHEMA, LOGINS_SCHEMA], "userName": "ada@example.com",
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                LOGINS_SCHEMA: ext,
            }))
            .unwrap()
        };
        let u = user(json!({"githubLogin": "ada-gh", "badge": 7, "workdayLogin": "x"}));
        let p = person(&u.resource).unwrap();
        assert_eq!(
            p.logins.into_iter().collect::<Vec<_>>(),
            vec![(lifecycle_domain::VendorKind::Github, "ada-gh".into())]
        );
        let u = user(json!({"GITHUBLOGIN": 42}));
        assert!(person(&u.resource).unwrap_err().detail.contains("githubLogin"));
    }

    #[test]
    fn projection() {
        let p = Projection::parse(None, Some("members"));
        let mut g = json!({"id": "1", "displayName": "x", "members": [], "meta": {}}).as_object().unwrap().clone();
        p.apply(&mut g);
        assert!(!g.contains_key("members") && g.contains_key("displayName") && g.contains_key("meta"));
        let p = Projection::parse(Some("userName,name.givenName"), None);
        assert!(p.wants("userName") && p.wants("name") && p.wants("id") && !p.wants("emails"));
    }
}
