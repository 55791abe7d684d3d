//! Asking for reconcile passes from the admin listener, and how passes are
//! shown. A pass reads a vendor's whole directory within its rate budget (a
//! 5,000-person tenant takes about a minute), longer than a request may
//! last: the request asks a worker for it (a row the workers take, see
//! `lifecycle_ops::reconcile::serve_request`), so the pass spends the budget
//! the worker's runs share, and answers at once; the pass's row says when it
//! ends.

use crate::AdminState;
use chrono::{DateTime, Utc};
use lifecycle_domain::VendorKind;
use lifecycle_ops::OpsError;
use lifecycle_store::reconcile::Pass;
use serde::Serialize;

/// What a request to reconcile started.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// A worker was asked for a pass over each of these.
    pub started: Vec<VendorKind>,
    /// A pass over each of these was already asked for and not done; none was added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub already_running: Vec<VendorKind>,
    pub message: String,
}

/// Asks a worker for a pass over `vendor` (or every configured vendor). An
/// unknown vendor name is the caller's to refuse; one that is not configured
/// here is [`OpsError::NotFound`].
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
        // One open request is enough: a second click must not read the directory twice.
        if !lifecycle_store::reconcile::open_requests(&s.db, v).await?.is_empty() {
            already_running.push(v);
            continue;
        }
        lifecycle_store::reconcile::request_pass(&s.db, v, &s.actor()).await?;
        started.push(v);
    }
    let names = |vs: &[VendorKind]| vs.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ");
    let mut message = if started.is_empty() {
        "no pass asked for".to_string()
    } else {
        format!(
            "a worker will reconcile {}; GET /api/v1/reconcile/passes shows the pass once it runs and when it ends",
            names(&started)
        )
    };
    if !already_running.is_empty() {
        message.push_str(&format!("; already asked for: {}", names(&already_running)));
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
