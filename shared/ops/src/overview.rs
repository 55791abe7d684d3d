//! Views for the glance an operator takes first: counts by state and vendor,
//! one person's access across every app, and the audit log.

use crate::views::RunSummary;
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_store::audit::{self, AuditFilter};
use lifecycle_store::runs::{self, RunFilter};
use lifecycle_store::Db;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The extra column for dead runs an operator has discarded (they are `dead`
/// in the database).
pub const DISCARDED: &str = "discarded";

/// The states in the order a person reads them, and [`DISCARDED`].
pub const COUNT_COLUMNS: [&str; 7] = [
    RunState::Queued.as_str(),
    RunState::Running.as_str(),
    RunState::RetryScheduled.as_str(),
    RunState::Succeeded.as_str(),
    RunState::NeedsManualAction.as_str(),
    RunState::Dead.as_str(),
    DISCARDED,
];

#[derive(Debug, Clone, Serialize)]
pub struct VendorCounts {
    pub vendor: VendorKind,
    /// State -> runs; `dead` counts only runs not discarded, `discarded` the others.
    pub counts: BTreeMap<String, i64>,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub vendors: Vec<VendorCounts>,
    /// The same, summed over vendors.
    pub totals: BTreeMap<String, i64>,
    pub total: i64,
}

impl Counts {
    /// A column ([`COUNT_COLUMNS`]) of one vendor's row.
    pub fn get(&self, vendor: VendorKind, column: &str) -> i64 {
        self.vendors.iter().find(|v| v.vendor == vendor).and_then(|v| v.counts.get(column).copied()).unwrap_or(0)
    }
    /// A column ([`COUNT_COLUMNS`]) summed over vendors.
    pub fn total_of(&self, column: &str) -> i64 {
        self.totals.get(column).copied().unwrap_or(0)
    }
}

/// Runs by state and vendor: every known vendor appears, with zeros.
pub async fn counts(db: &Db) -> Result<Counts, OpsError> {
    let mut by_vendor: BTreeMap<VendorKind, BTreeMap<String, i64>> =
        VendorKind::ALL.into_iter().map(|v| (v, COUNT_COLUMNS.iter().map(|s| (s.to_string(), 0)).collect())).collect();
    for (state, vendor, n) in runs::counts(db).await? {
        *by_vendor.entry(vendor).or_default().entry(state.as_str().to_string()).or_default() += n;
    }
    // Discarded runs are few (each took a person's decision): listing them is cheap.
    let discarded =
        runs::list(db, &RunFilter { discarded: Some(true), states: vec![RunState::Dead], ..Default::default() })
            .await?;
    for r in discarded {
        let v = by_vendor.entry(r.vendor).or_default();
        *v.entry(RunState::Dead.as_str().to_string()).or_default() -= 1;
        *v.entry(DISCARDED.to_string()).or_default() += 1;
    }
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let mut vendors: Vec<VendorCounts> = by_vendor
        .into_iter()
        .map(|(vendor, counts)| {
            for (s, n) in &counts {
                *totals.entry(s.clone()).or_default() += n;
            }
            let total = counts.values().sum();
            VendorCounts { vendor, counts, total }
        })
        .collect();
    // By name, as people scan them.
    vendors.sort_by_key(|v| v.vendor.as_str());
    let total = totals.values().sum();
    Ok(Counts { vendors, totals, total })
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
        RunState::Succeeded => match r.access.as_deref() {
            Some("active") => "joined",
            Some("invited") => "invited",
            Some("deactivated" | "removed" | "absent") => "removed",
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

    fn run(workflow: Workflow, state: RunState, access: Option<&str>) -> RunSummary {
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
            access: access.map(str::to_string),
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
        assert_eq!(status_of(&run(W::Joiner, S::Succeeded, Some("active"))), "joined");
        assert_eq!(status_of(&run(W::Joiner, S::Succeeded, Some("invited"))), "invited");
        assert_eq!(status_of(&run(W::Leaver, S::Succeeded, Some("deactivated"))), "removed");
        assert_eq!(status_of(&run(W::Leaver, S::Succeeded, Some("absent"))), "removed");
        assert_eq!(status_of(&run(W::Leaver, S::NeedsManualAction, None)), "needs a person");
        assert_eq!(status_of(&run(W::Joiner, S::Dead, None)), "failed");
        assert_eq!(status_of(&run(W::Mover, S::RetryScheduled, None)), "in progress");
    }
}
