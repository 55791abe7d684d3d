//! `[retry]`: how transient failures are retried, and each vendor's overrides.

use crate::reference::types::{ByVendor, HumanDuration};
use lifecycle_domain::VendorKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How transient failures are retried. `[retry]` holds the defaults,
/// `[retry.vendors.<vendor>]` overrides them for one vendor.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Attempts a run gets; after the last transient failure it ends `dead`.
    pub max_attempts: u32,
    /// A run older than this (from its creation, its last replay, or its
    /// `effective_at` if later) is not tried again: it ends `dead`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub max_age: Duration,
    /// The first wait before a retry; the waits double (with jitter) up to
    /// `max_delay`. A wait the vendor names (`Retry-After`) wins.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub min_delay: Duration,
    /// The longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub max_delay: Duration,
    /// One vendor's overrides of the four above, each optional (unset: the
    /// `[retry]` value). A misspelt vendor is refused at load.
    #[schemars(with = "ByVendor<RetryOverride>")]
    pub vendors: BTreeMap<VendorKind, RetryOverride>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            vendors: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOverride {
    /// `retry.max_attempts` for this vendor.
    pub max_attempts: Option<u32>,
    /// `retry.max_age` for this vendor.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub max_age: Option<Duration>,
    /// `retry.min_delay` for this vendor.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub min_delay: Option<Duration>,
    /// `retry.max_delay` for this vendor.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub max_delay: Option<Duration>,
}

/// The retry policy for one vendor: the defaults with its overrides applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl RetrySettings {
    pub fn for_vendor(&self, vendor: VendorKind) -> RetryPolicy {
        let o = self.vendors.get(&vendor).cloned().unwrap_or_default();
        RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(self.max_attempts),
            max_age: o.max_age.unwrap_or(self.max_age),
            min_delay: o.min_delay.unwrap_or(self.min_delay),
            max_delay: o.max_delay.unwrap_or(self.max_delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};

    fn load(toml: &str) -> Result<crate::Settings, crate::ConfigError> {
        crate::Settings::from_figment(figment::Figment::from(Toml::string(toml)))
    }

    #[test]
    fn a_vendor_override_applies_to_that_vendor_only() {
        let s = load("[retry]\nmax_attempts = 3\n[retry.vendors.pipedrive]\nmax_attempts = 5\n").unwrap();
        assert_eq!(s.retry.for_vendor(VendorKind::Pipedrive).max_attempts, 5);
        assert_eq!(s.retry.for_vendor(VendorKind::Jira).max_attempts, 3);
    }

    #[test]
    fn a_misspelt_vendor_is_refused_at_load_not_ignored() {
        let err = load("[retry.vendors.pipedrve]\nmax_attempts = 5\n").err().unwrap().to_string();
        assert!(err.contains("pipedrve") && err.contains("pipedrive"), "names it and the known vendors: {err}");
    }
}
