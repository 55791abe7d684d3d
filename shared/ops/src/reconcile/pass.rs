//! One pass over one vendor's directory: read it, judge it, record the
//! findings; and the passes operators ask the workers for.

use super::{classify, FindingKind, FindingView, Known};
use crate::OpsError;
use chrono::Utc;
use lifecycle_config::ReconcileSettings;
use lifecycle_domain::VendorKind;
use lifecycle_engine::{Connector, Progress};
use lifecycle_store::reconcile::{self as store, FindingFilter};
use lifecycle_store::Db;
use serde::Serialize;
use std::time::Instant;
use tracing::Instrument;

/// What one pass over one vendor found.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub pass_id: String,
    pub vendor: VendorKind,
    pub accounts: usize,
    pub seconds: f64,
    /// The vendor's open findings after the pass.
    pub findings: Vec<FindingView>,
}

impl PassReport {
    pub fn count(&self, kind: FindingKind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind).count()
    }

    /// "pipedrive: 412 accounts, 1 orphaned, 0 missing, 2 drifted, 3 unmanaged".
    pub fn line(&self) -> String {
        let counts: Vec<String> =
            FindingKind::ALL.iter().map(|k| format!("{} {}", self.count(*k), k.as_str())).collect();
        format!("{}: {} accounts, {}", self.vendor, self.accounts, counts.join(", "))
    }
}

/// Reads `connector`'s directory and records what differs. `slot` names a
/// scheduled pass's window: when another worker took it, nothing is read and
/// the answer is None. The vendor's failure ends the pass with its error
/// recorded ([`OpsError::Vendor`]); a vendor that cannot list its accounts at
/// all ([`Connector::not_reconcilable`]) is refused before any pass
/// ([`OpsError::Refused`]).
pub async fn reconcile(
    db: &Db,
    connector: &dyn Connector,
    settings: &ReconcileSettings,
    requested_by: &str,
    slot: Option<&str>,
    progress: &dyn Progress,
) -> Result<Option<PassReport>, OpsError> {
    let vendor = connector.vendor();
    if let Some(why) = connector.not_reconcilable() {
        // No pass: there is nothing it could read, and a pass that always fails would only alert.
        return Err(OpsError::Refused(format!("{vendor} is not reconcilable: {why}")));
    }
    let Some(pass) = store::begin_pass(db, vendor, slot, requested_by).await? else {
        return Ok(None);
    };
    let started = Instant::now();
    let accounts = match connector.directory(progress).await {
        Ok(a) => a,
        Err(e) => {
            let message = format!("could not read {vendor}'s accounts: {e}");
            store::finish_pass(db, &pass.id, None, None, Some(&message)).await?;
            metrics::counter!("lifecycle_reconcile_passes_total", "vendor" => vendor.as_str(), "result" => "failed")
                .increment(1);
            return Err(OpsError::Vendor(message));
        }
    };
    // The pass's time, taken before what lifecycle knows is read: a finding's
    // `last_seen_at`. Any event received after it is one the pass did not
    // judge from, and a fix of the finding is refused (see [`fix`]).
    let judged_at = Utc::now();
    let known = Known::load(db, vendor).await?;
    let seen = classify(vendor, &accounts, &known, settings, |app| connector.desired_access(app));
    let open = store::record(db, vendor, seen, judged_at).await?;
    store::finish_pass(db, &pass.id, Some(accounts.len()), Some(open.len()), None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let report = PassReport {
        pass_id: pass.id,
        vendor,
        accounts: accounts.len(),
        seconds,
        findings: open.into_iter().map(FindingView::from).collect(),
    };
    for kind in FindingKind::ALL {
        metrics::gauge!("lifecycle_reconcile_findings", "vendor" => vendor.as_str(), "kind" => kind.as_str())
            .set(report.count(kind) as f64);
    }
    metrics::counter!("lifecycle_reconcile_passes_total", "vendor" => vendor.as_str(), "result" => "succeeded")
        .increment(1);
    metrics::histogram!("lifecycle_reconcile_duration_seconds", "vendor" => vendor.as_str()).record(seconds);
    metrics::gauge!("lifecycle_reconcile_last_success_timestamp_seconds", "vendor" => vendor.as_str())
        .set(Utc::now().timestamp() as f64);
    tracing::info!(
        vendor = vendor.as_str(),
        accounts = report.accounts,
        findings = report.findings.len(),
        seconds,
        "reconciled"
    );
    Ok(Some(report))
}

/// A claimed request that outlives this is taken again by another worker:
/// its worker died mid-read (a 5,000-person Calendly read takes a minute).
pub const REQUEST_STALE_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// Carries out the oldest open request for a vendor of `registry` (an
/// operator's "reconcile now"), through this process's connectors: for a
/// worker, the same clients and rate limiters as its runs. None when there
/// is no request to take.
pub async fn serve_request(
    db: &Db,
    registry: &lifecycle_engine::Registry,
    settings: &ReconcileSettings,
    owner: &str,
) -> Result<Option<(store::Request, Result<PassReport, OpsError>)>, OpsError> {
    let Some(request) = store::claim_request(db, &registry.vendors(), owner, REQUEST_STALE_AFTER).await? else {
        return Ok(None);
    };
    let connector = registry.get(request.vendor).expect("claimed for a vendor of the registry");
    // A trace of its own (made here, after the claim: an empty look makes none).
    let span = tracing::info_span!("reconcile", vendor = request.vendor.as_str(), requested_by = %request.requested_by);
    let result =
        reconcile(db, &*connector, settings, &request.requested_by, None, &|_: usize| {}).instrument(span).await;
    let result = match result {
        Ok(Some(report)) => {
            store::finish_request(db, &request.id, Some(&report.pass_id), None).await?;
            Ok(report)
        }
        Ok(None) => unreachable!("a pass without a slot always starts"),
        Err(e) => {
            store::finish_request(db, &request.id, None, Some(&e.to_string())).await?;
            Err(e)
        }
    };
    Ok(Some((request, result)))
}

/// A finished pass as [`reconcile`] reported it, read back: for whoever asked a
/// worker for it.
pub async fn report_of(db: &Db, pass_id: &str) -> Result<PassReport, OpsError> {
    let pass = store::get_pass(db, pass_id).await?.ok_or_else(|| OpsError::NotFound(format!("no pass {pass_id}")))?;
    let seconds = pass.finished_at.map_or(0.0, |f| (f - pass.started_at).num_milliseconds() as f64 / 1000.0);
    let open = store::findings(db, &FindingFilter { vendor: Some(pass.vendor), ..Default::default() }).await?;
    Ok(PassReport {
        pass_id: pass.id,
        vendor: pass.vendor,
        accounts: pass.accounts.unwrap_or(0).max(0) as usize,
        seconds,
        findings: open.into_iter().map(FindingView::from).collect(),
    })
}
