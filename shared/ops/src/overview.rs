//! Views for the glance an operator takes first: counts by state and vendor,
//! one person's access across every app, and the audit log.

use crate::views::RunSummary;
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::{Access, RunState, VendorKind, Workflow};
use lifecycle_store::audit::{self, AuditFilter};
use lifecycle_store::runs::{self, RunFilter};
use lifecycle_store::Db;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The extra column for dead runs an operator has discarded (they are `dead`
/// in the database).
pub const DISCARDED: &str = "discarded";

/// Where a run stands in an operator's day: the overview's columns come in
/// these groups, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// For its time, its turn, a worker or a retry: it moves on by itself.
    Waiting,
    /// A worker is doing its steps.
    AtWork,
    /// Nothing moves until a person acts.
    NeedsAPerson,
    /// Over: it will not run again unless someone replays it.
    Ended,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Waiting, Group::AtWork, Group::NeedsAPerson, Group::Ended];

    pub const fn as_str(self) -> &'static str {
        match self {
            Group::Waiting => "waiting",
            Group::AtWork => "at_work",
            Group::NeedsAPerson => "needs_a_person",
            Group::Ended => "ended",
        }
    }

    /// As the overview's header says it.
    pub const fn label(self) -> &'static str {
        match self {
            Group::Waiting => "waiting",
            Group::AtWork => "at work",
            Group::NeedsAPerson => "needs a person",
            Group::Ended => "ended",
        }
    }

    /// The group of a state. A state not named here (one added since) is
    /// placed by what the domain says of it: ended if terminal, else it waits
    /// for a person (as `held` and `awaiting_approval` do), so that it has a
    /// column without this function changing.
    pub fn of(state: RunState) -> Group {
        use RunState as S;
        #[allow(unreachable_patterns)] // Reachable as soon as a state is added.
        match state {
            S::Scheduled | S::Queued | S::RetryScheduled => Group::Waiting,
            S::Running => Group::AtWork,
            S::NeedsManualAction => Group::NeedsAPerson,
            S::Succeeded | S::Dead | S::Superseded | S::Cancelled => Group::Ended,
            other if other.is_terminal() => Group::Ended,
            _ => Group::NeedsAPerson,
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One column of the overview: a state, or [`DISCARDED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: &'static str,
    pub group: Group,
}

/// Every column, a state each (from [`RunState::ALL`], so a new state gets
/// one) and [`DISCARDED`] after `dead`; by group, and within a group in the
/// order of [`RunState::ALL`]. Every run counts in exactly one column.
pub fn columns() -> Vec<Column> {
    let mut out = Vec::with_capacity(RunState::ALL.len() + 1);
    for group in Group::ALL {
        for state in RunState::ALL.into_iter().filter(|s| Group::of(*s) == group) {
            out.push(Column { name: state.as_str(), group });
            if state == RunState::Dead {
                out.push(Column { name: DISCARDED, group });
            }
        }
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct VendorCounts {
    pub vendor: VendorKind,
    /// Column ([`columns`]) -> runs, every column present; `dead` counts only
    /// runs not discarded, `discarded` the others.
    pub counts: BTreeMap<String, i64>,
    /// Group ([`Group::as_str`]) -> runs: the sum of its columns.
    pub groups: BTreeMap<String, i64>,
    /// The sum of every column.
    pub total: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// The columns in the order a person reads them, each with its group.
    pub columns: Vec<Column>,
    pub vendors: Vec<VendorCounts>,
    /// The same, summed over vendors.
    pub totals: BTreeMap<String, i64>,
    pub group_totals: BTreeMap<String, i64>,
    pub total: i64,
}

impl Counts {
    /// A column ([`columns`]) of one vendor's row.
    pub fn get(&self, vendor: VendorKind, column: &str) -> i64 {
        self.vendors.iter().find(|v| v.vendor == vendor).and_then(|v| v.counts.get(column).copied()).unwrap_or(0)
    }
    /// A column ([`columns`]) summed over vendors.
    pub fn total_of(&self, column: &str) -> i64 {
        self.totals.get(column).copied().unwrap_or(0)
    }
}

/// Sums `counts` (column -> runs) by the group of each column.
fn by_group(columns: &[Column], counts: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut groups: BTreeMap<String, i64> = Group::ALL.iter().map(|g| (g.as_str().to_string(), 0)).collect();
    for c in columns {
        *groups.entry(c.group.as_str().to_string()).or_default() += counts.get(c.name).copied().unwrap_or(0);
    }
    groups
}

/// Runs by state and vendor: every known vendor appears, every column, with zeros.
pub async fn counts(db: &Db) -> Result<Counts, OpsError> {
    let columns = columns();
    let zeros: BTreeMap<String, i64> = columns.iter().map(|c| (c.name.to_string(), 0)).collect();
    let mut by_vendor: BTreeMap<VendorKind, BTreeMap<String, i64>> =
        VendorKind::ALL.into_iter().map(|v| (v, zeros.clone())).collect();
    for (state, vendor, n) in runs::counts(db).await? {
        *by_vendor.entry(vendor).or_insert_with(|| zeros.clone()).entry(state.as_str().to_string()).or_default() += n;
    }
    // Discarded runs are few (each took a person's decision): listing them is cheap.
    let discarded =
        runs::list(db, &RunFilter { discarded: Some(true), states: vec![RunState::Dead], ..Default::default() })
            .await?;
    for r in discarded {
        let v = by_vendor.entry(r.vendor).or_insert_with(|| zeros.clone());
        *v.entry(RunState::Dead.as_str().to_string()).or_default() -= 1;
        *v.entry(DISCARDED.to_string()).or_default() += 1;
    }
    let mut totals: BTreeMap<String, i64> = zeros.clone();
    let mut vendors: Vec<VendorCounts> = by_vendor
        .into_iter()
        .map(|(vendor, counts)| {
            for (s, n) in &counts {
                *totals.entry(s.clone()).or_default() += n;
            }
            let total = counts.values().sum();
            VendorCounts { vendor, groups: by_group(&columns, &counts), counts, total }
        })
        .collect();
    // By name, as people scan them.
    vendors.sort_by_key(|v| v.vendor.as_str());
    let total = totals.values().sum();
    let group_totals = by_group(&columns, &totals);
    Ok(Counts { columns, vendors, totals, group_totals, total })
}

/// One app of one person, as an operator says it.
#[derive(Debug, Clone, Serialize)]
pub struct EmployeeApp {
    pub vendor: VendorKind,
    /// joined, invited, removed, needs a person, failed, in progress.
    pub status: String,
    /// The latest run for this person at this vendor.
    pub run: RunSummary,
    /// How many runs this person has had at this vendor.
    pub runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmployeeView {
    /// What was asked for: an e-mail address or an HR employee id.
    pub query: String,
    pub email: Option<String>,
    pub employee_id: Option<String>,
    pub apps: Vec<EmployeeApp>,
}

/// What the latest run says about the person's access, in an operator's words.
pub fn status_of(r: &RunSummary) -> &'static str {
    match r.state {
        RunState::Scheduled => "scheduled",
        RunState::Queued | RunState::Running | RunState::RetryScheduled => "in progress",
        RunState::Superseded | RunState::Cancelled => "not applied",
        RunState::NeedsManualAction => "needs a person",
        RunState::Dead => "failed",
        // Past a `[safety]` threshold: nothing done until an operator releases it.
        RunState::Held => "held",
        // `[approval]`: nothing done until an approver decides.
        RunState::AwaitingApproval => "awaiting approval",
        RunState::Rejected => "rejected",
        RunState::Succeeded => match r.access {
            Some(Access::Active) => "joined",
            Some(Access::Invited) => "invited",
            Some(a) if a.is_gone() => "removed",
            _ if r.workflow == Workflow::Leaver => "removed",
            _ => "joined",
        },
    }
}

/// Every app of one person (by e-mail or HR id) with its latest run.
pub async fn employee(db: &Db, who: &str) -> Result<EmployeeView, OpsError> {
    let who = who.trim();
    if who.is_empty() {
        return Err(OpsError::Invalid("name an employee by e-mail address or HR id".into()));
    }
    let all = runs::list(db, &RunFilter { employee: Some(who.to_string()), ..Default::default() }).await?;
    if all.is_empty() {
        return Err(OpsError::NotFound(format!("no run is about {who}")));
    }
    // Newest first: the first run seen per vendor is the latest. Runs that
    // never applied (superseded, cancelled) say nothing of the access, unless
    // they are all there is.
    let (applied, not_applied): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|r| !RunState::NEVER_RAN.contains(&r.state));
    // Keyed by name: the apps in alphabetical order.
    let mut apps: BTreeMap<&'static str, EmployeeApp> = BTreeMap::new();
    let mut email = None;
    let mut employee_id = None;
    for r in applied.into_iter().chain(not_applied) {
        let summary = RunSummary::from(r);
        email.get_or_insert_with(|| summary.employee_email.clone());
        if employee_id.is_none() {
            employee_id = summary.employee_id.clone();
        }
        apps.entry(summary.vendor.as_str()).and_modify(|a| a.runs += 1).or_insert_with(|| EmployeeApp {
            vendor: summary.vendor,
            status: status_of(&summary).to_string(),
            run: summary,
            runs: 1,
        });
    }
    Ok(EmployeeView { query: who.to_string(), email, employee_id, apps: apps.into_values().collect() })
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub reason: Option<String>,
    pub details: Option<Value>,
}

/// The audit log, newest first.
pub async fn audit_log(db: &Db, filter: &AuditFilter) -> Result<Vec<AuditView>, OpsError> {
    Ok(audit::list(db, filter)
        .await?
        .into_iter()
        .map(|e| AuditView {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            reason: e.reason,
            details: e.details.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workflow: Workflow, state: RunState, access: Option<Access>) -> RunSummary {
        let now = Utc::now();
        RunSummary {
            run_id: "r".into(),
            event_id: "e".into(),
            vendor: VendorKind::Pipedrive,
            workflow,
            employee_email: "a@example.com".into(),
            employee_id: None,
            state,
            attempts: 1,
            access,
            outcome: None,
            last_error: None,
            blocked_by: None,
            next_attempt_at: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            replays: 0,
            replayed_at: None,
            discarded_at: None,
            discard_reason: None,
            occurred_at: None,
            effective_at: None,
            superseded_by: None,
            started_at: None,
        }
    }

    #[test]
    fn an_app_is_described_as_an_operator_says_it() {
        use {RunState as S, Workflow as W};
        assert_eq!(status_of(&run(W::Joiner, S::Succeeded, Some(Access::Active))), "joined");
        assert_eq!(status_of(&run(W::Joiner, S::Succeeded, Some(Access::Invited))), "invited");
        assert_eq!(status_of(&run(W::Leaver, S::Succeeded, Some(Access::Deactivated))), "removed");
        assert_eq!(status_of(&run(W::Leaver, S::Succeeded, Some(Access::Absent))), "removed");
        assert_eq!(status_of(&run(W::Leaver, S::NeedsManualAction, None)), "needs a person");
        assert_eq!(status_of(&run(W::Joiner, S::Dead, None)), "failed");
        assert_eq!(status_of(&run(W::Mover, S::RetryScheduled, None)), "in progress");
    }

    /// Every state has its column, once, in its group; the groups come in an
    /// operator's order and `discarded` stands next to `dead`.
    #[test]
    fn every_state_has_one_column_in_its_group() {
        let cols = columns();
        for s in RunState::ALL {
            let found: Vec<_> = cols.iter().filter(|c| c.name == s.as_str()).collect();
            assert_eq!(found.len(), 1, "{s}: one column");
            assert_eq!(found[0].group, Group::of(s), "{s}");
            // Only a terminal state is ended (needs_manual_action is terminal
            // for the engine but waits for a person).
            assert!(Group::of(s) != Group::Ended || s.is_terminal(), "{s}");
        }
        assert_eq!(cols.len(), RunState::ALL.len() + 1, "the states and discarded");
        assert!(cols.windows(2).all(|w| w[0].group <= w[1].group), "grouped: {cols:?}");
        let dead = cols.iter().position(|c| c.name == "dead").unwrap();
        assert_eq!(cols[dead + 1], Column { name: DISCARDED, group: Group::Ended });

        let group = |name: &str| Group::of(name.parse().unwrap());
        for (name, g) in [
            ("scheduled", Group::Waiting),
            ("queued", Group::Waiting),
            ("retry_scheduled", Group::Waiting),
            ("running", Group::AtWork),
            ("needs_manual_action", Group::NeedsAPerson),
            ("succeeded", Group::Ended),
            ("dead", Group::Ended),
            ("superseded", Group::Ended),
            ("cancelled", Group::Ended),
        ] {
            assert_eq!(group(name), g, "{name}");
        }
        // States of the safety work, once they exist: a held run waits for a person.
        if let Ok(held) = "held".parse::<RunState>() {
            assert_eq!(Group::of(held), Group::NeedsAPerson);
        }
    }
}
