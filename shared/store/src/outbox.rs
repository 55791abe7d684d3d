//! The transactional outbox: dispatches waiting to be published.

use crate::entity::{outbox, run};
use crate::Result;
use chrono::{DateTime, Utc};
use lifecycle_domain::VendorKind;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;

/// Gives a run that was just made `queued` (released, approved) its outbox
/// row at its current dispatch sequence, in the caller's transaction; the
/// relay publishes it. Returns that sequence. `what` names the change for the
/// error when the run is gone.
pub(crate) async fn enqueue(db: &impl ConnectionTrait, run_id: &str, now: DateTime<Utc>, what: &str) -> Result<i64> {
    let r = run::Entity::find()
        .filter(run::Column::Id.eq(run_id))
        .one(db)
        .await?
        .ok_or_else(|| crate::StoreError::Corrupt(format!("run {run_id} vanished while it was {what}")))?;
    outbox::Entity::insert(outbox::ActiveModel {
        run_id: sea_orm::Set(run_id.to_string()),
        dispatch_seq: sea_orm::Set(r.dispatch_seq),
        created_at: sea_orm::Set(now),
        sent_at: sea_orm::Set(None),
        attempts: sea_orm::Set(0),
        last_error: sea_orm::Set(None),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(r.dispatch_seq)
}

/// The oldest unsent rows first.
pub async fn pending(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<outbox::Model>> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::SentAt.is_null())
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Where each of `run_ids` goes and the trace it carries: its vendor (the
/// lane) and its stored `traceparent` (see `entity::run`).
pub async fn routes_of(
    db: &impl ConnectionTrait,
    run_ids: &[String],
) -> Result<HashMap<String, (VendorKind, Option<String>)>> {
    if run_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, VendorKind, Option<String>)> = run::Entity::find()
        .select_only()
        .column(run::Column::Id)
        .column(run::Column::Vendor)
        .column(run::Column::Traceparent)
        .filter(run::Column::Id.is_in(run_ids.iter().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(id, vendor, tp)| (id, (vendor, tp))).collect())
}

pub async fn mark_sent(db: &impl ConnectionTrait, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::SentAt, Expr::value(Utc::now()))
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn mark_failed(db: &impl ConnectionTrait, ids: &[i64], error: &str) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// Unsent rows and the age of the oldest: the relay's lag.
pub async fn lag(db: &impl ConnectionTrait) -> Result<(u64, Option<DateTime<Utc>>)> {
    let count = outbox::Entity::find().filter(outbox::Column::SentAt.is_null()).count(db).await?;
    let oldest = outbox::Entity::find()
        .filter(outbox::Column::SentAt.is_null())
        .order_by_asc(outbox::Column::Id)
        .one(db)
        .await?
        .map(|r| r.created_at);
    Ok((count, oldest))
}
