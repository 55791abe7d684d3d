//! `[reconcile]`: the worker's periodic comparison of each vendor's accounts
//! with what HR said, and which accounts it leaves alone.

use crate::reference::types::{ByVendor, HumanDuration};
use lifecycle_domain::VendorKind;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcileSettings {
    /// How often a worker reconciles each configured vendor; "0s" turns the
    /// periodic pass off (operators can still run `lifecycle-ctl reconcile`).
    /// Of a fleet, one worker runs each pass.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub interval: Duration,
    /// Accounts that no event names and that are known and wanted (service
    /// accounts, the admin): not reported as unmanaged. Addresses or logins,
    /// `*` matching any run of characters (`*@svc.example.com`), at every vendor.
    pub allowlist: Vec<String>,
    /// The same, for one vendor: `[reconcile.vendor_allowlist] pipedrive = ["admin@example.com"]`.
    /// Keyed by vendor, so a misspelt one is refused at load rather than allowing nothing.
    #[schemars(with = "ByVendor<Vec<String>>")]
    pub vendor_allowlist: BTreeMap<VendorKind, Vec<String>>,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self { interval: Duration::from_secs(24 * 3600), allowlist: Vec::new(), vendor_allowlist: BTreeMap::new() }
    }
}

impl ReconcileSettings {
    /// Whether `key` (an address or a login) is allowed at `vendor`. Case-insensitive.
    pub fn allows(&self, vendor: VendorKind, key: &str) -> bool {
        let key = key.to_lowercase();
        self.allowlist
            .iter()
            .chain(self.vendor_allowlist.get(&vendor).into_iter().flatten())
            .any(|pattern| glob(&pattern.to_lowercase(), &key))
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_matches_whole_keys_with_stars_for_any_run() {
        let s = ReconcileSettings {
            allowlist: vec!["*@svc.example.com".into(), "Admin@Example.com".into()],
            vendor_allowlist: [(VendorKind::Circleci, vec!["ci-*-bot".to_string()])].into(),
            ..Default::default()
        };
        assert!(s.allows(VendorKind::Pipedrive, "deploy@svc.example.com"));
        assert!(s.allows(VendorKind::Jira, "admin@example.com"));
        assert!(!s.allows(VendorKind::Jira, "admin@example.com.evil"));
        assert!(!s.allows(VendorKind::Jira, "ada@example.com"));
        assert!(s.allows(VendorKind::Circleci, "ci-release-bot"));
        assert!(!s.allows(VendorKind::Pipedrive, "ci-release-bot"), "a vendor's list is that vendor's only");
        assert!(!s.allows(VendorKind::Circleci, "ci-bot"), "the star sits between two parts that must both be there");
    }

    #[test]
    fn a_misspelt_vendor_in_the_allowlist_is_refused_at_load() {
        use figment::providers::{Format, Toml};
        let load = |toml: &str| crate::Settings::from_figment(figment::Figment::from(Toml::string(toml)));
        let s = load("[reconcile.vendor_allowlist]\ncircleci = [\"ci-*-bot\"]\n").unwrap();
        assert!(s.reconcile.allows(VendorKind::Circleci, "ci-release-bot"));
        let err = load("[reconcile.vendor_allowlist]\ncirclci = [\"ci-*-bot\"]\n").err().unwrap().to_string();
        assert!(err.contains("circlci") && err.contains("circleci"), "names it and the known vendors: {err}");
    }
}
