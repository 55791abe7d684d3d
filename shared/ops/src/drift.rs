//! Drift: what vendors reported that lifecycle did not do (users added
//! outside an HR joiner, deactivated or deleted by hand), for operators to
//! review. Shared by `lifecycle-ctl drift list` and the admin API.

use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::{DriftKind, VendorKind};
use lifecycle_store::drift::{self, DriftFilter};
use lifecycle_store::Db;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DriftView {
    pub id: i64,
    pub vendor: VendorKind,
    pub kind: DriftKind,
    pub vendor_user_id: Option<String>,
    pub email: Option<String>,
    pub details: String,
    /// The webhook delivery that revealed it (`lifecycle-ctl events show`).
    pub event_id: Option<String>,
    pub detected_at: DateTime<Utc>,
}

/// Newest first.
pub async fn list_drift(db: &Db, filter: &DriftFilter) -> Result<Vec<DriftView>, OpsError> {
    Ok(drift::list(db, filter)
        .await?
        .into_iter()
        .map(|d| DriftView {
            id: d.id,
            vendor: d.vendor,
            kind: d.kind,
            vendor_user_id: d.vendor_user_id,
            email: d.email,
            details: d.details,
            event_id: d.event_id,
            detected_at: d.detected_at,
        })
        .collect())
}
