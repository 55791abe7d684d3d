//! The page's defaults are what an empty configuration loads.

use super::render::toml_value;
use super::settings_schema;
use crate::Settings;
use figment::providers::{Format, Toml};
use figment::Figment;
use serde_json::Value;

fn load(toml: &str) -> Settings {
    Settings::from_figment(Figment::from(Toml::string(toml))).unwrap_or_else(|e| panic!("{toml}: {e}"))
}

/// Everything a section holds, secrets included (their `Debug` hides them).
fn fingerprint(s: &Settings) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {} {}",
        s.database,
        s.broker,
        s.producer,
        s.admin,
        s.worker,
        s.retry,
        s.log,
        s.schedule,
        s.scim,
        s.reconcile,
        s.telemetry,
        s.safety,
        s.approval,
        s.notifications,
        s.hris,
        s.database.url.expose(),
        s.broker.url.expose(),
    )
}

/// Every key of a table (not of lists of tables, nor of tables per vendor,
/// which are empty by default) with the default the page shows.
fn defaults(schema: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    for (name, prop) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let key = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
        if prop.get("properties").is_some() && prop.get(super::types::X_TYPE).is_none() {
            defaults(prop, &key, out);
        } else if let Some(d) = prop.get("default").filter(|d| !d.is_null()) {
            out.push((key, d.clone()));
        }
    }
}

#[test]
fn each_documented_default_is_what_an_empty_configuration_loads() {
    let empty = fingerprint(&load(""));
    let mut keys = Vec::new();
    defaults(&settings_schema(), "", &mut keys);
    for (key, value) in &keys {
        let (table, field) = key.rsplit_once('.').expect("every key is in a section");
        // The value exactly as the page writes it, parsed back as TOML.
        let toml = format!("[{table}]\n{field} = {}\n", toml_value(value));
        assert_eq!(fingerprint(&load(&toml)), empty, "the page says `{toml}` is the default; an empty config differs");
    }
    assert!(keys.len() >= 60, "{} keys checked: the walk lost some", keys.len());
    let shown: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    for key in ["database.url", "broker.url", "worker.lease", "producer.max_body_bytes", "hris.timezone", "log.format"]
    {
        assert!(shown.contains(&key), "{key} has no documented default");
    }
}

#[test]
fn what_the_page_shows_as_unset_or_none_is_empty_when_nothing_is_configured() {
    let s = load("");
    let schema = settings_schema();
    let section = |name: &str, key: &str| schema["properties"][name]["properties"][key].clone();
    for (name, key) in [("admin", "password"), ("admin", "csrf_secret"), ("safety", "leavers"), ("approval", "rules")] {
        assert!(section(name, key).get("default").is_none_or(Value::is_null), "{name}.{key} has a default to show");
    }
    assert!(s.admin.password.is_none() && s.admin.csrf_secret.is_none());
    assert!(s.producer.intake_tokens.is_empty() && s.producer.pipedrive_webhook.password.is_none());
    assert!(s.safety.leavers.is_none() && s.safety.vendors.is_empty());
    assert!(s.approval.rules.is_empty() && s.notifications.webhooks.is_empty());
    assert!(s.scim.tokens.is_empty() && s.scim.groups.is_empty() && s.hris.rules.is_empty());
    assert!(s.database.max_connections.is_none() && s.database.acquire_timeout.is_none());
}

#[test]
fn every_setting_has_a_description() {
    let page = super::markdown("T", "", &[super::Part { path: String::new(), schema: settings_schema() }]);
    let bare: Vec<&str> = page.lines().filter(|l| l.starts_with("| `") && l.ends_with("|  |")).collect();
    assert!(bare.is_empty(), "settings without a doc comment: {bare:#?}");
}
