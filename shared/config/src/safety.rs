//! `[safety]`: the blast-radius guard's thresholds on destructive work
//! (leavers, and reconcile's fixes that run a leaver) over a sliding window,
//! overall and per vendor. A run past a threshold is `held` until an operator
//! releases or cancels it. None set (the default): nothing is ever held.
//!
//! ```toml
//! [safety]
//! leavers = "50/1h"            # at all vendors together
//! [safety.vendors.pipedrive]
//! leavers = "20/1h"            # at Pipedrive alone
//! ```

use crate::reference::types::ByVendor;
use lifecycle_domain::VendorKind;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SafetySettings {
    /// Leavers (and reconcile's fixes that run one) at every vendor together
    /// within any window of that length; the run past it is held. Unset: no limit.
    pub leavers: Option<Threshold>,
    /// Per vendor (`[safety.vendors.<name>]`). Keyed by vendor: a typo would
    /// otherwise silently guard nothing, so it is refused at load.
    #[schemars(with = "ByVendor<VendorSafety>")]
    pub vendors: BTreeMap<VendorKind, VendorSafety>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VendorSafety {
    /// As `safety.leavers`, counting this vendor's leavers alone.
    pub leavers: Option<Threshold>,
}

/// `"<count>/<window>"`: at most `count` within any `window` (`50/1h`, `200/24h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u64,
    pub window: Duration,
}

impl FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a threshold: write a count and a window, like \"50/1h\"");
        let (count, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        let window = humantime_serde::re::humantime::parse_duration(window.trim()).map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("{s:?}: the count must be at least 1 (leave the setting out to have no threshold)"));
        }
        if window.is_zero() {
            return Err(format!("{s:?}: the window must be longer than 0"));
        }
        Ok(Threshold { count, window })
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl SafetySettings {
    /// Each vendor's own leaver threshold, where one is set.
    pub fn vendor_leavers(&self) -> impl Iterator<Item = (VendorKind, Threshold)> + '_ {
        self.vendors.iter().filter_map(|(vendor, v)| Some((*vendor, v.leavers?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_a_count_over_a_window() {
        assert_eq!("50/1h".parse::<Threshold>().unwrap(), Threshold { count: 50, window: Duration::from_secs(3600) });
        assert_eq!(" 3 / 90m ".parse::<Threshold>().unwrap().window, Duration::from_secs(5400));
        for bad in ["50", "x/1h", "50/soon", "-1/1h", ""] {
            assert!(bad.parse::<Threshold>().unwrap_err().contains("like \"50/1h\""), "{bad}");
        }
        assert!("0/1h".parse::<Threshold>().unwrap_err().contains("at least 1"));
        assert!("5/0s".parse::<Threshold>().unwrap_err().contains("longer than 0"));
    }

    #[test]
    fn the_section_is_read_and_checked_at_start_up() {
        use figment::providers::{Format, Toml};
        let load = |toml: &str| crate::Settings::from_figment(figment::Figment::from(Toml::string(toml)));
        let s = load("[safety]\nleavers = \"50/1h\"\n[safety.vendors.pipedrive]\nleavers = \"20/30m\"\n").unwrap();
        assert_eq!(s.safety.leavers, Some(Threshold { count: 50, window: Duration::from_secs(3600) }));
        assert_eq!(s.safety.vendor_leavers().collect::<Vec<_>>().len(), 1);
        assert!(load("").unwrap().safety.leavers.is_none(), "no threshold by default");
        let err = load("[safety.vendors.myspace]\nleavers = \"5/1h\"\n").err().unwrap().to_string();
        assert!(err.contains("myspace") && err.contains("pipedrive"), "names it and the known vendors: {err}");
        let err = load("[safety]\nleavers = \"fifty\"\n").err().unwrap().to_string();
        assert!(err.contains("like \"50/1h\""), "{err}");
        let err = load("[safety]\nmovers = \"5/1h\"\n").err().unwrap().to_string();
        assert!(err.contains("movers"), "{err}");
    }
}
