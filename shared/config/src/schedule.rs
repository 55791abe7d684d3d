//! `[schedule]`: when a vendor's runs start ahead of their event's `effective_at`.

use crate::reference::types::{ByVendor, ByWorkflow, HumanDuration};
use lifecycle_domain::{VendorKind, Workflow};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    /// `[schedule.lead.pipedrive] joiner = "3d"`: that vendor's runs of that
    /// workflow (`joiner`, `mover` or `leaver`) start this long before the
    /// event's `effective_at` (e.g. create accounts ahead of a start date).
    /// Absent: at `effective_at`. A misspelt vendor or workflow is refused at load.
    #[schemars(with = "ByVendor<ByWorkflow<HumanDuration>>")]
    pub lead: BTreeMap<VendorKind, HashMap<Workflow, LeadTime>>,
}

/// A duration in the configuration's human form (`"3d"`, `"12h"`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct LeadTime(#[serde(with = "humantime_serde")] pub Duration);

impl ScheduleSettings {
    /// How long before `effective_at` a run of `workflow` at `vendor` starts.
    pub fn lead(&self, vendor: VendorKind, workflow: Workflow) -> Duration {
        self.lead.get(&vendor).and_then(|w| w.get(&workflow)).map_or(Duration::ZERO, |l| l.0)
    }

    /// Only the workflows an HR event starts can be dated: a lead for any
    /// other (`reassign_deals`) would never apply.
    pub(crate) fn check(&self) -> Result<(), String> {
        const SCHEDULED: [Workflow; 3] = [Workflow::Joiner, Workflow::Mover, Workflow::Leaver];
        for (vendor, workflows) in &self.lead {
            if let Some(w) = workflows.keys().find(|w| !SCHEDULED.contains(w)) {
                return Err(format!(
                    "schedule.lead.{vendor}.{w}: not a workflow that can be scheduled (joiner, mover, leaver)"
                ));
            }
        }
        Ok(())
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
    fn a_lead_is_read_per_vendor_and_workflow() {
        let s = load("[schedule.lead.pipedrive]\njoiner = \"3d\"\n").unwrap();
        assert_eq!(s.schedule.lead(VendorKind::Pipedrive, Workflow::Joiner), Duration::from_secs(3 * 86400));
        assert_eq!(s.schedule.lead(VendorKind::Pipedrive, Workflow::Leaver), Duration::ZERO);
        assert_eq!(s.schedule.lead(VendorKind::Jira, Workflow::Joiner), Duration::ZERO);
    }

    #[test]
    fn a_misspelt_vendor_or_workflow_is_refused_naming_it() {
        let err = load("[schedule.lead.pipedrve]\njoiner = \"3d\"\n").err().unwrap().to_string();
        assert!(err.contains("pipedrve") && err.contains("pipedrive"), "names it and the known vendors: {err}");
        let err = load("[schedule.lead.pipedrive]\njoinr = \"3d\"\n").err().unwrap().to_string();
        assert!(err.contains("joinr") && err.contains("joiner"), "names it and the known workflows: {err}");
        let err = load("[schedule.lead.pipedrive]\nreassign_deals = \"3d\"\n").err().unwrap().to_string();
        assert!(err.contains("schedule.lead.pipedrive.reassign_deals: not a workflow that can be scheduled"), "{err}");
    }
}
