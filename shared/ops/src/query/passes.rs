//! Asking the workers for reconcile passes, and how passes are shown. A pass
//! reads a vendor's whole directory within its rate budget (a 5,000-person
//! tenant takes about a minute), longer than a request may last: a front end
//! asks a worker for it (a row the workers take, see
//! [`crate::reconcile::serve_request`]), so the pass spends the budget the
//! worker's runs share, and answers at once; the pass's row says when it ends.

use crate::db::Db;
use crate::{OpsError, Vendors};
use chrono::{DateTime, Utc};
use lifecycle_domain::VendorKind;
use lifecycle_store::reconcile::{self as store, Pass};
use serde::Serialize;

/// A request for a pass: who asked, which worker took it, how it ended.
pub use lifecycle_store::reconcile::Request;

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

/// Asks a worker for a pass over `vendor` (or every vendor configured in
/// `vendors`), unless one is already asked for. An unknown vendor name is the
/// caller's to refuse; one that is not configured here is [`OpsError::NotFound`].
pub async fn start(db: &Db, vendors: &Vendors, vendor: Option<VendorKind>, actor: &str) -> Result<Started, OpsError> {
    let configured = vendors.registry.vendors();
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
        if !store::open_requests(db, v).await?.is_empty() {
            already_running.push(v);
            continue;
        }
        store::request_pass(db, v, actor).await?;
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

/// Asks a worker for a pass over `vendor`, whether or not one is already
/// asked for (the ctl waits for its own request).
pub async fn ask(db: &Db, vendor: VendorKind, actor: &str) -> Result<Request, OpsError> {
    Ok(store::request_pass(db, vendor, actor).await?)
}

/// A request as it stands now.
pub async fn request(db: &Db, id: &str) -> Result<Option<Request>, OpsError> {
    Ok(store::get_request(db, id).await?)
}

/// A pass over `vendor` was asked for and no worker has taken it yet.
pub async fn waiting(db: &Db, vendor: VendorKind) -> Result<bool, OpsError> {
    Ok(store::open_requests(db, vendor).await?.iter().any(|r| r.claimed_by.is_none()))
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

/// The latest passes, newest first (`limit` between 1 and 1,000).
pub async fn passes(db: &Db, vendor: Option<VendorKind>, limit: u64) -> Result<Vec<PassView>, OpsError> {
    let rows = store::passes(db, vendor, limit.clamp(1, 1000)).await?;
    Ok(rows.into_iter().map(PassView::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_store::testing::{Backend, TestDb};

    /// Asking twice leaves one open request; `waiting` sees it until a worker
    /// claims it; a vendor that is not configured is refused, naming it.
    async fn one_open_request_per_vendor(backend: Backend) {
        let t = TestDb::new(backend).await;
        let db = t.connect().await;
        let none = Vendors::default();
        let refused = start(&db, &none, Some(VendorKind::Calendly), "op").await.unwrap_err();
        assert!(matches!(&refused, OpsError::NotFound(m) if m.contains("calendly")), "{refused:?}");
        assert!(matches!(start(&db, &none, None, "op").await, Err(OpsError::NotFound(_))));

        assert!(!waiting(&db, VendorKind::Calendly).await.unwrap());
        let asked = ask(&db, VendorKind::Calendly, "op").await.unwrap();
        assert!(waiting(&db, VendorKind::Calendly).await.unwrap());
        assert!(!waiting(&db, VendorKind::Pipedrive).await.unwrap());
        let now = request(&db, &asked.id).await.unwrap().expect("stored");
        assert_eq!((now.vendor, now.requested_by.as_str()), (VendorKind::Calendly, "op"));
        assert!(passes(&db, None, 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_open_request_per_vendor_sqlite() {
        one_open_request_per_vendor(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn one_open_request_per_vendor_postgres() {
        one_open_request_per_vendor(Backend::Postgres).await;
    }
}
