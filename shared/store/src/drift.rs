//! Drift records: what a vendor reported that lifecycle did not do.

use crate::entity::drift;
use crate::Result;
use chrono::{DateTime, Utc};
use lifecycle_domain::{DriftKind, VendorKind};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

pub use drift::Model as Drift;

#[derive(Debug, Clone)]
pub struct NewDrift {
    pub vendor: VendorKind,
    pub kind: DriftKind,
    pub vendor_user_id: Option<String>,
    pub email: Option<String>,
    pub details: String,
}

pub async fn record(db: &impl ConnectionTrait, d: NewDrift, event_id: Option<&str>, at: DateTime<Utc>) -> Result<()> {
    drift::Entity::insert(drift::ActiveModel {
        vendor: Set(d.vendor),
        kind: Set(d.kind),
        vendor_user_id: Set(d.vendor_user_id),
        email: Set(d.email),
        details: Set(d.details),
        event_id: Set(event_id.map(str::to_string)),
        detected_at: Set(at),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct DriftFilter {
    pub vendor: Option<VendorKind>,
    pub kind: Option<DriftKind>,
    /// Lower-cased e-mail address.
    pub email: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
}

/// Newest first.
pub async fn list(db: &impl ConnectionTrait, f: &DriftFilter) -> Result<Vec<Drift>> {
    let mut q = drift::Entity::find();
    if let Some(v) = f.vendor {
        q = q.filter(drift::Column::Vendor.eq(v));
    }
    if let Some(k) = f.kind {
        q = q.filter(drift::Column::Kind.eq(k));
    }
    if let Some(e) = &f.email {
        q = q.filter(drift::Column::Email.eq(e.to_lowercase()));
    }
    if let Some(s) = f.since {
        q = q.filter(drift::Column::DetectedAt.gte(s));
    }
    Ok(q.order_by_desc(drift::Column::Id).limit(f.limit).all(db).await?)
}
