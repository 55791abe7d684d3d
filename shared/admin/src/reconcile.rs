//! Starting reconcile passes from the admin listener, and how passes are
//! shown. A pass reads a vendor's whole directory within its rate budget (a
//! 5,000-person tenant takes about a minute), longer than a request may
//! last, so it runs in a task of its own and the request answers at once;
//! the pass's row says when it ends.

use crate::AdminState;
use chrono::{DateTime, Utc};
use lifecycle_domain::VendorKind;
use lifecycle_ops::OpsError;
use lifecycle_store::reconcile::Pass;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// A pass unfinished for longer than this is taken for one whose process
/// stopped mid-read (it will never finish), so it does not block a new one.
const STALE_PASS: chrono::Duration = chrono::Duration::hours(1);

/// The vendors this process is reconciling now: a second click on
/// "Reconcile now" must not read a directory twice at once (double the
/// budget spent for nothing).
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<VendorKind>>>);

impl InFlight {
    /// Claims `vendor`; false if it is already being read here.
    fn claim(&self, vendor: VendorKind) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(vendor)
    }
    fn release(&self, vendor: VendorKind) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&vendor);
    }
}

/// Releases a claimed vendor when the pass's task ends, however it ends (a
/// panic included), so the vendor is never left unreconcilable here.
struct Claimed(InFlight, VendorKind);

impl Drop for Claimed {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// What a request to reconcile started.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// A pass was started for each of these, in the background.
    pub started: Vec<VendorKind>,
    /// A pass for each of these was already reading; none was added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already_running: Vec<VendorKind>,
    pub message: String,
}

/// Starts a pass over `vendor` (or every configured vendor) in the
/// background. An unknown vendor name is the caller's to refuse; one that is
/// not configured here is [`OpsError::NotFound`].
pub async fn start(s: &AdminState, vendor: Option<VendorKind>) -> Result<Started, OpsError> {
    let configured = s.vendors.registry.vendors();
    let wanted = match vendor {
        Some(v) if !configured.contains(&v) => {
            return Err(OpsError::NotFound(format!(
                "{v} is not configured here (no [vendors.{v}] table), so it cannot be reconciled"
            )))
        }
        Some(v) => vec![v],
        None if configured.is_empty() => {
            return Err(OpsError::NotFound("no vendor is configured here, so there is nothing to reconcile".into()))
        }
        None => configured,
    };
    let mut started = Vec::new();
    let mut already_running = Vec::new();
    for v in wanted {
        // Another producer's pass (the worker's periodic one included) shows in the table.
        let running_elsewhere = lifecycle_store::reconcile::passes(&s.db, Some(v), 1)
            .await?
            .first()
            .is_some_and(|p| p.finished_at.is_none() && Utc::now() - p.started_at < STALE_PASS);
        if running_elsewhere || !s.reconciling.claim(v) {
            already_running.push(v);
            continue;
        }
        let Some(connector) = s.vendors.registry.get(v) else {
            s.reconciling.release(v);
            continue;
        };
        let claimed = Claimed(s.reconciling.clone(), v);
        let (db, settings, actor) = (s.db.clone(), s.vendors.reconcile.clone(), s.actor());
        tokio::spawn(async move {
            let _claimed = claimed;
            let progress = |_: usize| {};
            match lifecycle_ops::reconcile::reconcile(&db, &*connector, &settings, &actor, None, &progress).await {
                Ok(Some(report)) => tracing::info!(actor, "{}", report.line()),
                Ok(None) => {}
                // The pass's row holds the vendor's error for the console.
                Err(e) => tracing::warn!(vendor = v.as_str(), error = %e, "reconcile pass failed"),
            }
        });
        started.push(v);
    }
    let names = |vs: &[VendorKind]| vs.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ");
    let mut message = if started.is_empty() {
        "no pass started".to_string()
    } else {
        format!("reconciling {} in the background; GET /api/v1/reconcile/passes shows when it ends", names(&started))
    };
    if !already_running.is_empty() {
        message.push_str(&format!("; already reading: {}", names(&already_running)));
    }
    Ok(Started { started, already_running, message })
}

/// A pass as the API and the console show it.
#[derive(Debug, Clone, Serialize)]
pub struct PassView {
    pub pass_id: String,
    pub vendor: VendorKind,
    /// True while it is still reading the vendor.
    pub running: bool,
    pub requested_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<i32>,
    /// Open findings after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Pass> for PassView {
    fn from(p: Pass) -> Self {
        let seconds = p.finished_at.map(|f| (f - p.started_at).num_milliseconds() as f64 / 1000.0);
        PassView {
            pass_id: p.id,
            vendor: p.vendor,
            running: p.finished_at.is_none(),
            requested_by: p.requested_by,
            slot: p.slot,
            started_at: p.started_at,
            finished_at: p.finished_at,
            seconds,
            accounts: p.accounts,
            findings: p.findings,
            error: p.error,
        }
    }
}

/// The latest passes, newest first.
pub async fn passes(s: &AdminState, vendor: Option<VendorKind>, limit: u64) -> Result<Vec<PassView>, OpsError> {
    let rows = lifecycle_store::reconcile::passes(&s.db, vendor, limit.clamp(1, 1000)).await?;
    Ok(rows.into_iter().map(PassView::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vendor_is_read_once_at_a_time_and_freed_when_its_task_ends() {
        let inflight = InFlight::default();
        assert!(inflight.claim(VendorKind::Pipedrive));
        let claimed = Claimed(inflight.clone(), VendorKind::Pipedrive);
        assert!(!inflight.claim(VendorKind::Pipedrive), "a second click while it reads");
        assert!(inflight.claim(VendorKind::Jira), "another vendor is not held back");
        drop(claimed);
        assert!(inflight.claim(VendorKind::Pipedrive));
    }
}
