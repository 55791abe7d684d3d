//! Runs the blast-radius guard held (`[safety]`, see `lifecycle_store::safety`):
//! listing them, and releasing or cancelling them as a whole or by filter
//! (vendor, since, person). Each release or cancel is one transaction with one
//! audit entry naming the operator, the filter and the count.

use crate::views::RunSummary;
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_config::SafetySettings;
use lifecycle_domain::{RunState, VendorKind};
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::runs::{self, RunFilter};
use lifecycle_store::safety::{self as store, Guard, Limit};
use lifecycle_store::{Db, StoreError};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

pub const ACTION_RELEASE: &str = "safety.release";
pub const ACTION_CANCEL: &str = "safety.cancel";

/// The store's guard from the settings.
pub fn guard(s: &SafetySettings) -> Guard {
    let limit = |t: lifecycle_config::safety::Threshold| Limit { count: t.count, window: t.window };
    Guard {
        leavers: s.leavers.map(limit),
        vendor_leavers: s.vendor_leavers().map(|(v, t)| (v, limit(t))).collect(),
        ..Default::default()
    }
}

/// Which held runs an operator acts on. All unset: every held run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeldFilter {
    pub vendor: Option<VendorKind>,
    /// Held runs that arrived at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// The person's e-mail or employee id.
    pub employee: Option<String>,
}

impl HeldFilter {
    fn runs(&self) -> RunFilter {
        RunFilter {
            states: vec![RunState::Held],
            vendor: self.vendor,
            employee: self.employee.clone(),
            since: self.since,
            ..Default::default()
        }
    }
}

/// The held runs a filter selects: how many, at which vendors, and the first few.
#[derive(Debug, Clone, Serialize)]
pub struct HeldView {
    pub count: usize,
    pub by_vendor: BTreeMap<VendorKind, usize>,
    /// Oldest first, at most the sample size asked for.
    pub sample: Vec<RunSummary>,
}

/// The held runs `filter` selects, oldest first.
pub async fn held_runs(db: &Db, filter: &HeldFilter) -> Result<Vec<runs::Run>, OpsError> {
    let mut all = runs::list(db, &filter.runs()).await?;
    all.sort_by_key(|r| r.seq);
    Ok(all)
}

/// What `filter` selects, with a sample of `sample` runs (shown before confirming).
pub async fn held(db: &Db, filter: &HeldFilter, sample: usize) -> Result<HeldView, OpsError> {
    let all = held_runs(db, filter).await?;
    let mut by_vendor = BTreeMap::new();
    for r in &all {
        *by_vendor.entry(r.vendor).or_insert(0) += 1;
    }
    let count = all.len();
    Ok(HeldView { count, by_vendor, sample: all.into_iter().take(sample).map(RunSummary::from).collect() })
}

/// What a release or a cancel did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeldOutcome {
    /// `release` or `cancel`.
    pub action: &'static str,
    pub dry_run: bool,
    /// Held runs the filter selected.
    pub selected: usize,
    /// Released (now `queued`) or cancelled; with `dry_run`, those that would be.
    pub done: Vec<String>,
    /// No longer held when it came to them (released or cancelled meanwhile).
    pub skipped: Vec<String>,
}

impl HeldOutcome {
    pub fn line(&self) -> String {
        let verb = if self.action == "release" { "released" } else { "cancelled" };
        if self.dry_run {
            return format!("dry run: {} held run(s) would be {verb}", self.done.len());
        }
        format!("{verb} {} held run(s); {} were no longer held", self.done.len(), self.skipped.len())
    }
}

/// Releases the held runs `filter` selects: each becomes `queued` with its
/// outbox row (the producer's relay publishes it; a worker's sweeper if no
/// relay does), not counted against the threshold again.
pub async fn release(
    db: &Db,
    filter: &HeldFilter,
    actor: &str,
    reason: Option<&str>,
    dry_run: bool,
) -> Result<HeldOutcome, OpsError> {
    act(db, filter, actor, reason, dry_run, true).await
}

/// Cancels the held runs `filter` selects: each ends `cancelled`, saying by whom.
pub async fn cancel(
    db: &Db,
    filter: &HeldFilter,
    actor: &str,
    reason: Option<&str>,
    dry_run: bool,
) -> Result<HeldOutcome, OpsError> {
    act(db, filter, actor, reason, dry_run, false).await
}

async fn act(
    db: &Db,
    filter: &HeldFilter,
    actor: &str,
    reason: Option<&str>,
    dry_run: bool,
    release: bool,
) -> Result<HeldOutcome, OpsError> {
    let selected = held_runs(db, filter).await?;
    let mut out = HeldOutcome {
        action: if release { "release" } else { "cancel" },
        dry_run,
        selected: selected.len(),
        ..Default::default()
    };
    if dry_run {
        out.done = selected.into_iter().map(|r| r.id).collect();
        return Ok(out);
    }
    if selected.is_empty() {
        return Ok(out);
    }
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    for r in selected {
        let done = if release {
            store::release(&txn, &r.id).await?.is_some()
        } else {
            store::cancel(&txn, &r.id, actor).await?
        };
        if done {
            out.done.push(r.id);
        } else {
            out.skipped.push(r.id);
        }
    }
    // One entry for the batch: the filter, the count and the runs.
    audit::record(
        &txn,
        NewEntry {
            actor,
            action: if release { ACTION_RELEASE } else { ACTION_CANCEL },
            target_kind: "held_runs",
            target_id: &describe(filter),
            reason: reason.filter(|r| !r.trim().is_empty()),
            details: Some(json!({ "filter": filter, "count": out.done.len(), "runs": out.done })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    tracing::info!(actor, action = out.action, count = out.done.len(), "held runs acted on");
    Ok(out)
}

/// "vendor=pipedrive since=... employee=...", or "all".
fn describe(f: &HeldFilter) -> String {
    let mut parts = Vec::new();
    if let Some(v) = f.vendor {
        parts.push(format!("vendor={v}"));
    }
    if let Some(t) = f.since {
        parts.push(format!("since={}", t.to_rfc3339()));
    }
    if let Some(e) = &f.employee {
        parts.push(format!("employee={e}"));
    }
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(" ")
    }
}
