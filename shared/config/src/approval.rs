//! `[approval]`: vendor × workflow pairs whose runs await an operator's
//! approval before they start (`awaiting_approval`), optionally only when the
//! request asks for something named (a role, a group). Each rule names its
//! approvers (operator names, as the admin API and console know them) and a
//! deadline after which an undecided run ends `rejected`; it may escalate once
//! to a second group first. Leavers are never subject to approval: a rule
//! naming them is refused at start-up, as a removal must never wait on a
//! person. No rule (the default): nothing awaits approval.
//!
//! ```toml
//! [approval]
//! approvers = ["alice", "bob"]    # the default for every rule
//! deadline = "24h"                # the default deadline (24h if unset)
//!
//! [[approval.rules]]
//! vendor = "pipedrive"
//! workflows = ["joiner", "mover"]
//! field = "role"                  # the app request's field (optional)
//! values = ["Admin"]              # it needs approval when it is one of these
//!
//! [[approval.rules]]
//! vendor = "crowdstrike"
//! field = "roles"                 # a list: when it contains one of the values
//! values = ["falcon_admin"]
//! approvers = ["carol"]
//! escalate_to = ["dave"]          # once, after escalate_after
//! escalate_after = "4h"
//! ```

use crate::reference::types::{HumanDuration, VendorName, WorkflowName};
use lifecycle_domain::{VendorKind, Workflow};
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// The deadline when neither the rule nor the section names one.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// Who may approve (operator names, as the admin API and console know
    /// them), for every rule that names none.
    pub approvers: Vec<String>,
    /// How long a run awaits a decision, for every rule that names none; an
    /// undecided run then ends `rejected`. Unset: 24h.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub deadline: Option<Duration>,
    /// Who is asked next when nobody decided within `escalate_after`, for every rule that names none.
    pub escalate_to: Vec<String>,
    /// When a rule's approval escalates to `escalate_to`, for every rule that names none.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub escalate_after: Option<Duration>,
    /// One table per rule (`[[approval.rules]]`).
    pub rules: Vec<ApprovalRule>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// The vendor whose runs this rule holds. A misspelt vendor is refused at
    /// load, naming it and the known ones.
    #[schemars(with = "VendorName")]
    pub vendor: VendorKind,
    /// The workflows it holds: `joiner`, `mover` (never `leaver`: a removal
    /// must not wait on a person). Absent: joiners and movers.
    #[serde(default)]
    #[schemars(with = "Vec<WorkflowName>")]
    pub workflows: Vec<Workflow>,
    /// A field of the run's app request (`role`, `roles`, `groups`); absent:
    /// every run of the pairs needs approval.
    #[serde(default)]
    pub field: Option<String>,
    /// With `field`: approval is needed when the field is one of these (or,
    /// for a list, contains one).
    #[serde(default)]
    pub values: Vec<String>,
    /// Who may approve; absent: `approval.approvers`.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Absent: `approval.deadline`.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub deadline: Option<Duration>,
    /// Absent: `approval.escalate_to`.
    #[serde(default)]
    pub escalate_to: Vec<String>,
    /// Before the deadline. Absent: `approval.escalate_after`.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub escalate_after: Option<Duration>,
}

/// A rule with the section's defaults filled in, as the store applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRule {
    pub vendor: VendorKind,
    pub workflows: Vec<Workflow>,
    pub field: Option<String>,
    pub values: Vec<String>,
    pub approvers: Vec<String>,
    pub deadline: Duration,
    pub escalate_to: Vec<String>,
    pub escalate_after: Option<Duration>,
}

impl ApprovalSettings {
    /// Each rule as applied. Call after [`check`](Self::check).
    pub fn effective(&self) -> Vec<EffectiveRule> {
        self.rules.iter().map(|r| self.effective_rule(r)).collect()
    }

    fn effective_rule(&self, r: &ApprovalRule) -> EffectiveRule {
        let workflows =
            if r.workflows.is_empty() { vec![Workflow::Joiner, Workflow::Mover] } else { r.workflows.clone() };
        let pick =
            |own: &Vec<String>, section: &Vec<String>| if own.is_empty() { section.clone() } else { own.clone() };
        let escalate_to = pick(&r.escalate_to, &self.escalate_to);
        EffectiveRule {
            vendor: r.vendor,
            workflows,
            field: r.field.clone(),
            values: r.values.clone(),
            approvers: pick(&r.approvers, &self.approvers),
            deadline: r.deadline.or(self.deadline).unwrap_or(DEFAULT_DEADLINE),
            escalate_after: if escalate_to.is_empty() { None } else { r.escalate_after.or(self.escalate_after) },
            escalate_to,
        }
    }

    /// Checked at start-up: a rule that could never be decided, or one that
    /// would make a removal wait, is refused rather than silently ignored.
    pub fn check(&self) -> Result<(), String> {
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("approval.rules[{i}] ({} {:?})", r.vendor, r.workflows);
            let e = self.effective_rule(r);
            if e.workflows.contains(&Workflow::Leaver) {
                return Err(format!("{at}: leavers are never subject to approval (a removal must not wait on a person); remove \"leaver\""));
            }
            if r.field.is_some() == r.values.is_empty() {
                return Err(format!("{at}: name both a field and its values, or neither"));
            }
            if e.approvers.iter().all(|a| a.trim().is_empty()) {
                return Err(format!("{at}: no approvers (set approvers in the rule or in [approval])"));
            }
            if e.deadline.is_zero() {
                return Err(format!("{at}: the deadline must be longer than 0"));
            }
            match (e.escalate_to.is_empty(), e.escalate_after) {
                (false, None) => return Err(format!("{at}: escalate_to needs escalate_after")),
                (true, _) if r.escalate_after.is_some() => {
                    return Err(format!("{at}: escalate_after needs escalate_to"))
                }
                (false, Some(after)) if after >= e.deadline => {
                    return Err(format!("{at}: escalate_after must come before the deadline"))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<crate::Settings, String> {
        use figment::providers::{Format, Toml};
        crate::Settings::from_figment(figment::Figment::from(Toml::string(toml))).map_err(|e| e.to_string())
    }

    #[test]
    fn rules_are_read_with_the_section_defaults() {
        let s = load(
            "[approval]\napprovers = [\"alice\", \"bob\"]\ndeadline = \"24h\"\n\
             [[approval.rules]]\nvendor = \"pipedrive\"\nworkflows = [\"joiner\", \"mover\"]\nfield = \"role\"\nvalues = [\"Admin\"]\n\
             [[approval.rules]]\nvendor = \"crowdstrike\"\nfield = \"roles\"\nvalues = [\"falcon_admin\"]\n\
             approvers = [\"carol\"]\nescalate_to = [\"dave\"]\nescalate_after = \"4h\"\n",
        )
        .unwrap();
        let rules = s.approval.effective();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].approvers, ["alice", "bob"]);
        assert_eq!(rules[0].deadline, Duration::from_secs(86400));
        assert_eq!(rules[1].workflows, [Workflow::Joiner, Workflow::Mover], "joiners and movers by default");
        assert_eq!(rules[1].approvers, ["carol"]);
        assert_eq!(rules[1].escalate_after, Some(Duration::from_secs(4 * 3600)));
        assert!(load("").unwrap().approval.rules.is_empty(), "no approvals by default");
    }

    #[test]
    fn bad_rules_are_refused_at_start_up() {
        let base = "[approval]\napprovers = [\"alice\"]\n[[approval.rules]]\n";
        for (rule, says) in [
            ("vendor = \"pipedrive\"\nworkflows = [\"leaver\"]\n", "leavers are never subject to approval"),
            ("vendor = \"myspace\"\n", "found `myspace`, expected `one of `pipedrive`"),
            ("vendor = \"pipedrive\"\nfield = \"role\"\n", "both a field and its values"),
            ("vendor = \"pipedrive\"\nescalate_to = [\"x\"]\n", "escalate_to needs escalate_after"),
            ("vendor = \"pipedrive\"\nescalate_to = [\"x\"]\nescalate_after = \"48h\"\n", "before the deadline"),
            ("vendor = \"pipedrive\"\nmaybe = true\n", "maybe"),
        ] {
            let err = load(&format!("{base}{rule}")).err().unwrap();
            assert!(err.contains(says), "{rule}: {err}");
        }
        let err = load("[[approval.rules]]\nvendor = \"jira\"\n").err().unwrap();
        assert!(err.contains("no approvers"), "{err}");
    }
}
