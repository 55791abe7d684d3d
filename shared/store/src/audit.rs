//! The audit log of operator actions.

use crate::entity::audit;
use crate::Result;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

pub use audit::Model as Entry;

pub struct NewEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target_kind: &'a str,
    pub target_id: &'a str,
    pub reason: Option<&'a str>,
    pub details: Option<serde_json::Value>,
}

pub async fn record(db: &impl ConnectionTrait, e: NewEntry<'_>) -> Result<()> {
    audit::Entity::insert(audit::ActiveModel {
        at: Set(Utc::now()),
        actor: Set(e.actor.to_string()),
        action: Set(e.action.to_string()),
        target_kind: Set(e.target_kind.to_string()),
        target_id: Set(e.target_id.to_string()),
        reason: Set(e.reason.map(str::to_string)),
        details: Set(e.details.map(|d| d.to_string())),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub target_id: Option<String>,
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
}

/// Newest first.
pub async fn list(db: &impl ConnectionTrait, f: &AuditFilter) -> Result<Vec<Entry>> {
    let mut q = audit::Entity::find();
    if let Some(t) = &f.target_id {
        q = q.filter(audit::Column::TargetId.eq(t.as_str()));
    }
    if let Some(a) = &f.actor {
        q = q.filter(audit::Column::Actor.eq(a.as_str()));
    }
    if let Some(s) = f.since {
        q = q.filter(audit::Column::At.gte(s));
    }
    Ok(q.order_by_desc(audit::Column::Id).limit(f.limit).all(db).await?)
}
