//! `[scim]`: the SCIM 2.0 endpoint's tokens, and which vendors and access a
//! person gets from their groups (docs/contract.md §6).
//!
//! ```toml
//! [scim]
//! tokens = ["a-long-random-token-for-okta"]      # or { file = "/run/secrets/scim" }
//! everyone = { calendly = {} }
//!
//! [[scim.groups]]
//! name = "Sales"                                  # the SCIM group's displayName (any case)
//! apps = { pipedrive = { role = "Sales Rep" } }
//!
//! [[scim.groups]]
//! name = "SOC"
//! apps = { crowdstrike = { roles = ["falcon_analyst"] } }
//! ```
//!
//! Each app is checked at load exactly as the intake checks a joiner's
//! `apps` (the same parser), so a mapping that could never make a valid event
//! stops start-up with the field named.

use crate::reference::types::{AppsByVendor, SecretList};
use crate::Secret;
use lifecycle_domain::{AppRequest, Event, VendorKind};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The vendors and access one group gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupApps {
    /// The group's `displayName`, compared without regard to case.
    pub name: String,
    pub apps: BTreeMap<VendorKind, AppRequest>,
}

/// `scim.max_group_body_bytes` by default: 16 MiB, room for 50,000
/// members at some 330 bytes each.
pub const DEFAULT_MAX_GROUP_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The largest `scim.max_group_body_bytes` accepted.
pub const MAX_GROUP_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Deserialize)]
#[serde(try_from = "RawScim")]
pub struct ScimSettings {
    /// Bearer tokens accepted on `/scim/v2/*` (none: SCIM is not served, 404).
    pub tokens: Vec<Secret>,
    /// What every active user gets.
    pub everyone: BTreeMap<VendorKind, AppRequest>,
    /// What members of each group get, in configuration order (for Pipedrive,
    /// which holds one role, the first group listed wins).
    pub groups: Vec<GroupApps>,
    /// Larger request bodies get 413, except a group's writes (below).
    pub max_body_bytes: usize,
    /// Larger bodies of `POST /Groups`, `PUT` and `PATCH /Groups/{id}` get
    /// 413: a group pushed with all its members (50,000 Entra members are
    /// some 2.5 MB as `{"value": "<uuid>"}`, 8 MB with names and `$ref`s).
    pub max_group_body_bytes: usize,
    /// The largest page a list returns, whatever `count` asks.
    pub max_page_size: u64,
    /// Where clients reach the producer (`https://lifecycle.example.com`),
    /// for `Location` and `meta.location`. Unset: those are paths
    /// (`/scim/v2/Users/{id}`); a request's `Host` is never used.
    pub public_url: Option<String>,
}

impl Default for ScimSettings {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            everyone: BTreeMap::new(),
            groups: Vec::new(),
            max_body_bytes: 512 * 1024,
            max_group_body_bytes: DEFAULT_MAX_GROUP_BODY_BYTES,
            max_page_size: 200,
            public_url: None,
        }
    }
}

impl std::fmt::Debug for ScimSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimSettings")
            .field("tokens", &format_args!("{} (not shown)", self.tokens.len()))
            .field("everyone", &self.everyone)
            .field("groups", &self.groups)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_group_body_bytes", &self.max_group_body_bytes)
            .field("max_page_size", &self.max_page_size)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// `[scim]` as written; its field docs are the settings reference's.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct RawScim {
    /// Bearer tokens accepted on `/scim/v2/*` (at least 16 characters each).
    /// None: SCIM is not served (404).
    #[serde(deserialize_with = "crate::secret::secret_list")]
    #[schemars(with = "SecretList")]
    tokens: Vec<Secret>,
    /// What every active user gets.
    #[schemars(with = "AppsByVendor")]
    everyone: Map<String, Value>,
    /// One table per SCIM group that gives apps (`[[scim.groups]]`), in
    /// order: for Pipedrive, which holds one role, the first group listed wins.
    groups: Vec<RawGroup>,
    /// Larger request bodies get 413, except a group's writes (1024 to 1048576).
    max_body_bytes: usize,
    /// Larger bodies of `POST /Groups`, `PUT` and `PATCH /Groups/{id}` get
    /// 413 (from `max_body_bytes` to 67108864): a group pushed with all its
    /// members (50,000 Entra members are some 2.5 MB, 8 MB with names and `$ref`s).
    max_group_body_bytes: usize,
    /// The largest page a list returns, whatever `count` asks (1 to 1000).
    max_page_size: u64,
    /// Where clients reach the producer (`https://lifecycle.example.com`),
    /// for `Location` and `meta.location`. Unset: those are paths
    /// (`/scim/v2/Users/{id}`); a request's `Host` is never used.
    public_url: Option<String>,
}

/// The reference shows what is written (`RawScim`), not the checked form.
impl JsonSchema for ScimSettings {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScimSettings".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawScim::json_schema(generator)
    }
}

impl Default for RawScim {
    fn default() -> Self {
        let d = ScimSettings::default();
        Self {
            tokens: Vec::new(),
            everyone: Map::new(),
            groups: Vec::new(),
            max_body_bytes: d.max_body_bytes,
            max_group_body_bytes: d.max_group_body_bytes,
            max_page_size: d.max_page_size,
            public_url: None,
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    /// The SCIM group's `displayName`, compared without regard to case.
    name: String,
    /// What its members get.
    #[schemars(with = "AppsByVendor")]
    apps: Map<String, Value>,
}

impl TryFrom<RawScim> for ScimSettings {
    type Error = String;

    fn try_from(raw: RawScim) -> Result<Self, String> {
        if let Some(short) = raw.tokens.iter().find(|t| t.expose().chars().count() < crate::MIN_CREDENTIAL_CHARS) {
            // The length only: the token itself is never printed.
            return Err(format!(
                "scim.tokens: a token of {} characters is too short (at least {})",
                short.expose().chars().count(),
                crate::MIN_CREDENTIAL_CHARS
            ));
        }
        if raw.max_page_size == 0 || raw.max_page_size > 1000 {
            return Err("scim.max_page_size must be 1 to 1000".into());
        }
        // The intake listener cuts off any body past 1 MiB whatever the route.
        if !(1024..=1024 * 1024).contains(&raw.max_body_bytes) {
            return Err("scim.max_body_bytes must be 1024 to 1048576".into());
        }
        // The listener's own cap is raised to it when SCIM is served.
        if !(raw.max_body_bytes..=MAX_GROUP_BODY_BYTES).contains(&raw.max_group_body_bytes) {
            return Err(format!(
                "scim.max_group_body_bytes must be at least scim.max_body_bytes ({}) and at most {MAX_GROUP_BODY_BYTES}",
                raw.max_body_bytes
            ));
        }
        let public_url = match raw.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
                let ok = rest.is_some_and(|r| {
                    !r.is_empty()
                        && !r.starts_with('/')
                        && !r.contains(['?', '#', '@'])
                        && !r.chars().any(|c| c.is_whitespace() || c.is_control())
                });
                if !ok {
                    return Err(format!(
                        "scim.public_url {u:?} must be an http(s) URL with a host and no query (e.g. https://lifecycle.example.com)"
                    ));
                }
                Some(u.trim_end_matches('/').to_string())
            }
        };
        let everyone = apps("scim.everyone", &raw.everyone)?;
        let mut seen = BTreeSet::new();
        let mut groups = Vec::with_capacity(raw.groups.len());
        for (i, g) in raw.groups.into_iter().enumerate() {
            let name = g.name.trim().to_string();
            if name.is_empty() {
                return Err(format!("scim.groups[{i}].name must not be empty"));
            }
            if !seen.insert(name.to_lowercase()) {
                return Err(format!(
                    "scim.groups[{i}]: the group {name:?} is listed twice (names compare without case)"
                ));
            }
            if g.apps.is_empty() {
                return Err(format!("scim.groups[{i}] ({name}): apps must name at least one vendor"));
            }
            let apps = apps(&format!("scim.groups[{i}] ({name})"), &g.apps)?;
            groups.push(GroupApps { name, apps });
        }
        Ok(ScimSettings {
            tokens: raw.tokens,
            everyone,
            groups,
            max_body_bytes: raw.max_body_bytes,
            max_group_body_bytes: raw.max_group_body_bytes,
            max_page_size: raw.max_page_size,
            public_url,
        })
    }
}

/// Parses a mapping's apps with the intake's own rules, as a joiner's.
pub(crate) fn apps(at: &str, table: &Map<String, Value>) -> Result<BTreeMap<VendorKind, AppRequest>, String> {
    if table.is_empty() {
        return Ok(BTreeMap::new());
    }
    if let Some(vendor) = VendorKind::ALL.into_iter().find(|v| !v.scim_can_map() && table.contains_key(v.as_str())) {
        return Err(format!(
            "{at}: {vendor} cannot be mapped from SCIM yet: it needs each person's own VCS login, which a group cannot give"
        ));
    }
    let probe = json!({
        "type": "joiner",
        "employee": {"id": "config-check", "email": "config-check@example.com", "given_name": "Config", "family_name": "Check"},
        "apps": Value::Object(table.clone()),
    });
    match Event::parse(&probe) {
        Ok(event) => Ok(event.apps),
        Err(errors) => {
            let list: Vec<String> = errors
                .iter()
                .map(|e| format!("{at}.{}: {}", e.field.strip_prefix("apps.").unwrap_or(&e.field), e.detail))
                .collect();
            Err(list.join("; "))
        }
    }
}

/// The mapping the module's documentation shows, what follows `[scim]` and
/// its `tokens`: Sales → Pipedrive "Sales Rep", SOC → CrowdStrike
/// falcon_analyst, everyone → Calendly. For tests (here and in other crates)
/// that need a mapping; not used by the service.
#[doc(hidden)]
pub const fn example_mapping() -> &'static str {
    r#"everyone = { calendly = {} }
[[scim.groups]]
name = "Sales"
apps = { pipedrive = { role = "Sales Rep" } }
[[scim.groups]]
name = "SOC"
apps = { crowdstrike = { roles = ["falcon_analyst"] } }
"#
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};
    use figment::Figment;

    fn load(toml: &str) -> Result<ScimSettings, String> {
        #[derive(Deserialize)]
        struct T {
            #[serde(default)]
            scim: ScimSettings,
        }
        Figment::new().merge(Toml::string(toml)).extract::<T>().map(|t| t.scim).map_err(|e| e.to_string())
    }

    #[test]
    fn a_mapping_loads_in_order() {
        let s = load(&format!("[scim]\ntokens = [\"0123456789abcdef-okta\"]\n{}", example_mapping())).unwrap();
        assert_eq!(s.tokens.len(), 1);
        assert_eq!(s.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["Sales", "SOC"]);
        assert!(s.everyone.contains_key(&VendorKind::Calendly));
        assert!(!format!("{s:?}").contains("okta"), "the token is not shown");
        assert!(load("").unwrap().tokens.is_empty());
        assert_eq!(load("").unwrap().max_group_body_bytes, DEFAULT_MAX_GROUP_BODY_BYTES);
    }

    #[test]
    fn the_group_body_limit_is_checked() {
        assert_eq!(load("[scim]\nmax_group_body_bytes = 4194304").unwrap().max_group_body_bytes, 4 << 20);
        for bad in ["1024", "1073741824"] {
            let e = load(&format!("[scim]\nmax_group_body_bytes = {bad}")).unwrap_err();
            assert!(e.contains("scim.max_group_body_bytes"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_public_url_is_checked() {
        assert_eq!(load("").unwrap().public_url, None);
        let s = load("[scim]\npublic_url = \"https://lifecycle.example.com/\"").unwrap();
        assert_eq!(s.public_url.as_deref(), Some("https://lifecycle.example.com"));
        for bad in ["lifecycle.example.com", "https://", "https://x/?a=1", "ftp://x", "https://u@x"] {
            let e = load(&format!("[scim]\npublic_url = \"{bad}\"")).unwrap_err();
            assert!(e.contains("scim.public_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bad_mapping_names_the_field() {
        let e = load("[scim]\n[[scim.groups]]\nname = \"Sales\"\napps = { pipedrive = {} }").unwrap_err();
        assert!(e.contains("scim.groups[0] (Sales).pipedrive.role"), "{e}");
        let e = load("[scim]\n[[scim.groups]]\nname = \"Eng\"\napps = { jira = { products = [\"jira-software\"], groups = [\"developers\"] } }")
            .unwrap_err();
        assert!(e.contains("jira.groups[0]") && e.contains("UUID"), "{e}");
        let e = load("[scim]\neveryone = { slack = {} }").unwrap_err();
        assert!(e.contains("scim.everyone"), "{e}");
        let e = load("[scim]\neveryone = { circleci = { login = \"x\" } }").unwrap_err();
        assert!(e.contains("circleci"), "{e}");
        let e = load("[scim]\ntokens = [\"short\"]").unwrap_err();
        assert!(e.contains("too short") && !e.contains("\"short\""), "{e}");
        let e = load("[scim]\n[[scim.groups]]\nname = \"a\"\napps = { calendly = {} }\n[[scim.groups]]\nname = \"A\"\napps = { calendly = {} }")
            .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }
}
