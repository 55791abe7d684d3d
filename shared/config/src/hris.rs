//! `[hris]`: HR systems as event sources (issue 27) — the birthright rules
//! that decide which apps a person gets from their HR record, and each
//! source's tenants.
//!
//! ```toml
//! [hris]
//! timezone = "Europe/Berlin"                      # hire and termination dates are days here
//! everyone = { calendly = {} }
//!
//! [[hris.rules]]
//! when = { department = "Sales" }                 # department, job_title, location, employment_status
//! apps = { pipedrive = { role = "Sales Rep" } }
//!
//! [[hris.rules]]
//! when = { department = ["Security", "IT"], location = "Berlin" }
//! apps = { crowdstrike = { roles = ["falcon_analyst"] } }
//!
//! [[hris.bamboohr.tenants]]                       # each source's module reads its own table
//! name = "acme"
//! company_id = "12345"
//! ...
//! ```
//!
//! A rule applies when every field it names matches one of its values
//! (compared without case); the apps of every applying rule and `everyone`
//! unite, in configuration order, as SCIM groups do (`AppRequest::unite`).
//! Each app is checked at load exactly as the intake checks a joiner's
//! `apps` (the SCIM mapping's parser), so a rule that could never make a
//! valid event stops start-up with the field named.
//!
//! The `[hris.<source>]` tables stay raw JSON here, like `[vendors.*]`: the
//! source's module in `lifecycle-hris` owns its fields and refuses unknown ones.

use crate::reference::types::{AppsByVendor, HumanDuration};
use lifecycle_domain::{AppRequest, VendorKind};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The HR systems a `[hris.<name>]` table may configure.
pub const HRIS_SOURCES: [&str; 3] = ["bamboohr", "hibob", "personio"];

/// A record field a rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleField {
    Department,
    JobTitle,
    Location,
    /// The source's own status text ("Active", "onboarding", ...).
    EmploymentStatus,
}

impl RuleField {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleField::Department => "department",
            RuleField::JobTitle => "job_title",
            RuleField::Location => "location",
            RuleField::EmploymentStatus => "employment_status",
        }
    }
}

/// One `[[hris.rules]]`: when its conditions hold, the person gets its apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrisRule {
    /// Every field must match; a field matches when it equals one of its
    /// values without regard to case (values are kept lower-cased).
    pub when: BTreeMap<RuleField, Vec<String>>,
    pub apps: BTreeMap<VendorKind, AppRequest>,
}

impl HrisRule {
    /// Whether the rule applies to a record whose fields `value` reads.
    pub fn applies(&self, value: impl Fn(RuleField) -> Option<String>) -> bool {
        self.when.iter().all(|(field, allowed)| {
            value(*field).is_some_and(|v| {
                let v = v.trim().to_lowercase();
                allowed.contains(&v)
            })
        })
    }
}

#[derive(Clone, Deserialize)]
#[serde(try_from = "RawHris")]
pub struct HrisSettings {
    /// The zone hire and termination dates are days in (an IANA name).
    pub timezone: jiff::tz::TimeZone,
    pub timezone_name: String,
    /// What every active person gets.
    pub everyone: BTreeMap<VendorKind, AppRequest>,
    /// In configuration order (for Pipedrive, which holds one role, the first rule applying wins).
    pub rules: Vec<HrisRule>,
    /// Each configured source's table (`[hris.bamboohr]`, ...), parsed by its module.
    pub sources: BTreeMap<String, Value>,
    /// Larger deliveries get 413 before their signature is checked.
    pub max_body_bytes: usize,
    /// How often the processing loop looks for due deliveries when nothing woke it.
    pub poll_interval: Duration,
    /// How long a producer holds a delivery it processes before another may take it.
    pub lease: Duration,
    /// The first and the longest wait before a delivery whose details could
    /// not be read (a 429, a 5xx) is tried again; the waits double between.
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    /// A delivery still failing transiently this long after it arrived needs a person.
    pub retry_max_age: Duration,
}

impl Default for HrisSettings {
    fn default() -> Self {
        Self {
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: "UTC".into(),
            everyone: BTreeMap::new(),
            rules: Vec::new(),
            sources: BTreeMap::new(),
            max_body_bytes: 64 * 1024,
            poll_interval: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            retry_min_delay: Duration::from_secs(5),
            retry_max_delay: Duration::from_secs(15 * 60),
            retry_max_age: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl HrisSettings {
    /// The `[hris.<source>]` table, when that source is configured.
    pub fn source(&self, name: &str) -> Option<&Value> {
        self.sources.get(name)
    }
}

/// Tables are free-form per source (each names its own secrets): only their names show.
impl std::fmt::Debug for HrisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HrisSettings")
            .field("timezone", &self.timezone_name)
            .field("everyone", &self.everyone)
            .field("rules", &self.rules)
            .field("sources", &format_args!("{:?} (tables not shown)", self.sources.keys().collect::<Vec<_>>()))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("poll_interval", &self.poll_interval)
            .field("lease", &self.lease)
            .field("retry_min_delay", &self.retry_min_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("retry_max_age", &self.retry_max_age)
            .finish()
    }
}

/// `[hris]` as written; its field docs are the settings reference's.
#[derive(Deserialize, JsonSchema)]
#[serde(default)]
struct RawHris {
    /// The zone HR's hire and termination dates are days in (an IANA name
    /// such as `Europe/Berlin`): a leaver dated the 31st leaves at that day's end there.
    timezone: String,
    /// What every active person gets.
    #[schemars(with = "AppsByVendor")]
    everyone: Map<String, Value>,
    /// One table per birthright rule (`[[hris.rules]]`), in order: the apps
    /// of every rule that applies and of `everyone` unite (for Pipedrive,
    /// which holds one role, the first rule applying wins).
    rules: Vec<RawRule>,
    /// Larger HR deliveries get 413 before their signature is checked (1024 to 1048576).
    max_body_bytes: usize,
    /// How often the producer looks for deliveries due for processing when nothing woke it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    poll_interval: Duration,
    /// How long a producer holds a delivery it processes before another may take it (at least 2s).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    lease: Duration,
    /// The first wait before a delivery whose details could not be read (a
    /// 429, a 5xx) is tried again; the waits double up to `retry_max_delay`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    retry_min_delay: Duration,
    /// The longest wait between two tries of a delivery.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    retry_max_delay: Duration,
    /// A delivery still failing transiently this long after it arrived needs a person.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    retry_max_age: Duration,
    /// `[hris.<source>]`, and any misspelt key (refused by name below: serde's
    /// `deny_unknown_fields` does not combine with a flattened map). Each
    /// source's reference comes from its own module (`lifecycle-hris`).
    #[serde(flatten)]
    #[schemars(skip)]
    rest: BTreeMap<String, Value>,
}

/// The reference shows what is written (`RawHris`), not the checked form.
impl JsonSchema for HrisSettings {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HrisSettings".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawHris::json_schema(generator)
    }
}

impl Default for RawHris {
    fn default() -> Self {
        let d = HrisSettings::default();
        Self {
            timezone: d.timezone_name,
            everyone: Map::new(),
            rules: Vec::new(),
            max_body_bytes: d.max_body_bytes,
            poll_interval: d.poll_interval,
            lease: d.lease,
            retry_min_delay: d.retry_min_delay,
            retry_max_delay: d.retry_max_delay,
            retry_max_age: d.retry_max_age,
            rest: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// The conditions, all of which must hold: `department`, `job_title`,
    /// `location`, `employment_status`, each a string or a list of strings,
    /// compared without case (`{ department = ["Security", "IT"], location = "Berlin" }`).
    #[schemars(with = "std::collections::BTreeMap<String, Vec<String>>")]
    when: Map<String, Value>,
    /// What a person the rule applies to gets.
    #[schemars(with = "AppsByVendor")]
    apps: Map<String, Value>,
}

impl TryFrom<RawHris> for HrisSettings {
    type Error = String;

    fn try_from(raw: RawHris) -> Result<Self, String> {
        let name = raw.timezone.trim().to_string();
        let timezone = jiff::tz::TimeZone::get(&name).map_err(|_| {
            format!("hris.timezone {name:?} is not a known time zone (an IANA name such as Europe/Berlin or UTC)")
        })?;
        if let Some(key) = raw.rest.keys().find(|k| !HRIS_SOURCES.contains(&k.as_str())) {
            return Err(format!(
                "hris.{key}: unknown key (known: timezone, everyone, rules, max_body_bytes, poll_interval, lease, \
                 retry_min_delay, retry_max_delay, retry_max_age, and the sources {})",
                HRIS_SOURCES.join(", ")
            ));
        }
        if !(1024..=1024 * 1024).contains(&raw.max_body_bytes) {
            return Err("hris.max_body_bytes must be 1024 to 1048576".into());
        }
        if raw.poll_interval.is_zero() || raw.retry_min_delay.is_zero() {
            return Err("hris.poll_interval and hris.retry_min_delay must be more than 0".into());
        }
        if raw.retry_max_delay < raw.retry_min_delay {
            return Err("hris.retry_max_delay must be at least hris.retry_min_delay".into());
        }
        if raw.lease < Duration::from_secs(2) {
            return Err("hris.lease must be at least 2s".into());
        }
        let everyone = check_apps("hris.everyone", &raw.everyone)?;
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = format!("hris.rules[{i}]");
            if r.when.is_empty() {
                return Err(format!("{at}.when must name at least one field (what everyone gets is hris.everyone)"));
            }
            let mut when = BTreeMap::new();
            for (field, values) in &r.when {
                let f: RuleField = serde_json::from_value(Value::String(field.clone())).map_err(|_| {
                    format!("{at}.when.{field}: not a field rules can test (department, job_title, location, employment_status)")
                })?;
                let list: Vec<String> = match values {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| format!("{at}.when.{field} must be a string or a list of strings"))?,
                    _ => return Err(format!("{at}.when.{field} must be a string or a list of strings")),
                };
                let list: Vec<String> = list.iter().map(|s| s.trim().to_lowercase()).collect();
                if list.is_empty() || list.iter().any(String::is_empty) {
                    return Err(format!("{at}.when.{field} must hold non-empty values"));
                }
                when.insert(f, list);
            }
            if r.apps.is_empty() {
                return Err(format!("{at}: apps must name at least one vendor"));
            }
            let apps = check_apps(&at, &r.apps)?;
            rules.push(HrisRule { when, apps });
        }
        Ok(HrisSettings {
            timezone,
            timezone_name: name,
            everyone,
            rules,
            sources: raw.rest,
            max_body_bytes: raw.max_body_bytes,
            poll_interval: raw.poll_interval,
            lease: raw.lease,
            retry_min_delay: raw.retry_min_delay,
            retry_max_delay: raw.retry_max_delay,
            retry_max_age: raw.retry_max_age,
        })
    }
}

/// The SCIM mapping's check, with the HR record's own limit: it carries no
/// VCS login, which a vendor that knows people by login needs per person.
fn check_apps(at: &str, table: &Map<String, Value>) -> Result<BTreeMap<VendorKind, AppRequest>, String> {
    for login_based in VendorKind::ALL.into_iter().filter(|v| v.knows_people_by_login()) {
        if table.contains_key(login_based.as_str()) {
            return Err(format!(
                "{at}: {login_based} cannot be given by an HR rule: it needs each person's own login, which an HR record does not carry"
            ));
        }
    }
    crate::scim::apps(at, table)
}

/// A mapping for tests (here and in other crates): Sales → Pipedrive
/// "Sales Rep", Security → CrowdStrike falcon_analyst, everyone → Calendly.
#[doc(hidden)]
pub const fn example_rules() -> &'static str {
    r#"everyone = { calendly = {} }
[[hris.rules]]
when = { department = "Sales" }
apps = { pipedrive = { role = "Sales Rep" } }
[[hris.rules]]
when = { department = ["Security", "SOC"] }
apps = { crowdstrike = { roles = ["falcon_analyst"] } }
"#
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};
    use figment::Figment;

    fn load(toml: &str) -> Result<HrisSettings, String> {
        #[derive(Deserialize)]
        struct T {
            #[serde(default)]
            hris: HrisSettings,
        }
        Figment::new().merge(Toml::string(toml)).extract::<T>().map(|t| t.hris).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_load_in_order_with_their_sources() {
        let s = load(&format!(
            "[hris]\ntimezone = \"Europe/Berlin\"\n{}\n[[hris.bamboohr.tenants]]\nname = \"acme\"\nwebhook_secret = \"not-shown-0123456789\"\n",
            example_rules()
        ))
        .unwrap();
        assert_eq!(s.timezone_name, "Europe/Berlin");
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.rules[1].when[&RuleField::Department], ["security", "soc"]);
        assert!(s.everyone.contains_key(&VendorKind::Calendly));
        assert_eq!(s.source("bamboohr").unwrap()["tenants"][0]["name"], "acme");
        assert!(!format!("{s:?}").contains("not-shown"), "source tables are not printed");
        let d = load("").unwrap();
        assert!(d.sources.is_empty() && d.rules.is_empty() && d.timezone_name == "UTC");
    }

    #[test]
    fn a_rule_applies_when_every_field_matches_one_value_without_case() {
        let s =
            load("[hris]\n[[hris.rules]]\nwhen = { department = [\"Sales\", \"Biz\"], location = \"Berlin\" }\napps = { calendly = {} }")
                .unwrap();
        let rule = &s.rules[0];
        let record = |dept: &'static str, loc: Option<&'static str>| {
            move |f: RuleField| match f {
                RuleField::Department => Some(dept.to_string()),
                RuleField::Location => loc.map(str::to_string),
                _ => None,
            }
        };
        assert!(rule.applies(record("SALES", Some(" berlin "))));
        assert!(rule.applies(record("biz", Some("Berlin"))));
        assert!(!rule.applies(record("Sales", Some("Paris"))));
        assert!(!rule.applies(record("Sales", None)), "a missing field matches nothing");
    }

    #[test]
    fn a_bad_rule_names_the_field() {
        let e = load("[hris]\ntimezone = \"Mars/Olympus\"").unwrap_err();
        assert!(e.contains("hris.timezone"), "{e}");
        let e =
            load("[hris]\n[[hris.rules]]\nwhen = { department = \"Sales\" }\napps = { pipedrive = {} }").unwrap_err();
        assert!(e.contains("hris.rules[0].pipedrive.role"), "{e}");
        let e = load("[hris]\n[[hris.rules]]\nwhen = { team = \"x\" }\napps = { calendly = {} }").unwrap_err();
        assert!(e.contains("hris.rules[0].when.team"), "{e}");
        let e = load("[hris]\n[[hris.rules]]\nwhen = {}\napps = { calendly = {} }").unwrap_err();
        assert!(e.contains("at least one field"), "{e}");
        let e = load("[hris]\n[[hris.rules]]\nwhen = { department = 3 }\napps = { calendly = {} }").unwrap_err();
        assert!(e.contains("string or a list"), "{e}");
        let e = load("[hris]\neveryone = { github = { login = \"x\" } }").unwrap_err();
        assert!(e.contains("hris.everyone") && e.contains("github"), "{e}");
        let e = load("[hris]\n[hris.workday]\nurl = \"x\"").unwrap_err();
        assert!(e.contains("hris.workday"), "{e}");
        let e = load("[hris]\n[[hris.rules]]\nwhen = { department = \"x\" }\napps = { calendly = {} }\nextra = 1")
            .unwrap_err();
        assert!(e.contains("extra"), "{e}");
    }
}
