//! What the notification sender keeps (`[notifications]`, the worker's
//! `notify` module): per webhook, since when it counts runs and which worker
//! sends to it (a lease); per run, kind and occurrence, the message it went in
//! and whether that was delivered.
//!
//! The order that makes delivery at-least-once and never repeated once
//! delivered: runs are *claimed* into a message (rows with a batch id and no
//! `sent_at`, one transaction), the message is sent, and the transaction that
//! records the receiver's answer marks every row of it sent. A sender that
//! dies between sending and marking leaves the rows unsent: the next sender
//! sends that message again, under the same id (receivers can deduplicate on
//! it). A marked row is never sent again, and a run already claimed is never
//! claimed again for that webhook, kind and occurrence (the primary key).

use crate::entity::{notification, notification_hook, run};
use crate::Result;
use chrono::{DateTime, Utc};
use lifecycle_domain::{VendorKind, Workflow};
use sea_orm::sea_query::{Expr, Func, OnConflict, Order, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use std::time::Duration;

/// A run as a notification lists it.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Listed {
    pub id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub person_key: String,
    /// What a person reads: what to do, or why it died, or why it waits.
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    /// Which occurrence of the state (a replayed run ending the same way again is another).
    pub replays: i32,
    /// When it entered its state: `finished_at` for a finished run, else its last update.
    pub entered_at: DateTime<Utc>,
}

/// A message: the runs claimed together for one webhook and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: String,
    pub kind: String,
    pub claimed_at: DateTime<Utc>,
    /// Deliveries tried so far.
    pub attempts: i32,
    /// (run id, occurrence)
    pub runs: Vec<(String, i32)>,
}

fn until(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Takes (or keeps) the right to send to `hook` for `ttl`; registers the
/// webhook the first time any worker sees it, counting runs from then on.
/// Returns since when it counts runs when `owner` holds the lease, None when
/// another worker does.
pub async fn lease(db: &impl ConnectionTrait, hook: &str, owner: &str, ttl: Duration) -> Result<Option<DateTime<Utc>>> {
    let now = Utc::now();
    let first = notification_hook::ActiveModel {
        name: Set(hook.to_string()),
        since: Set(now),
        lease_owner: Set(None),
        lease_until: Set(None),
    };
    notification_hook::Entity::insert(first)
        .on_conflict(OnConflict::column(notification_hook::Column::Name).do_nothing().to_owned())
        .do_nothing()
        .exec(db)
        .await?;
    let won = notification_hook::Entity::update_many()
        .col_expr(notification_hook::Column::LeaseOwner, Expr::value(owner))
        .col_expr(notification_hook::Column::LeaseUntil, Expr::value(until(now, ttl)))
        .filter(notification_hook::Column::Name.eq(hook))
        .filter(
            Condition::any()
                .add(notification_hook::Column::LeaseOwner.is_null())
                .add(notification_hook::Column::LeaseOwner.eq(owner))
                .add(notification_hook::Column::LeaseUntil.lt(now)),
        )
        .exec(db)
        .await?;
    if won.rows_affected != 1 {
        return Ok(None);
    }
    Ok(notification_hook::Entity::find_by_id(hook).one(db).await?.map(|h| h.since))
}

/// Gives the lease up (a worker stopping), so another takes over at once.
pub async fn release(db: &impl ConnectionTrait, hook: &str, owner: &str) -> Result<()> {
    notification_hook::Entity::update_many()
        .col_expr(notification_hook::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(notification_hook::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(notification_hook::Column::Name.eq(hook))
        .filter(notification_hook::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

/// The oldest message claimed for `hook` and `kind` and not yet delivered.
pub async fn unsent(db: &impl ConnectionTrait, hook: &str, kind: &str) -> Result<Option<Batch>> {
    let rows = notification::Entity::find()
        .filter(notification::Column::Webhook.eq(hook))
        .filter(notification::Column::Kind.eq(kind))
        .filter(notification::Column::SentAt.is_null())
        .order_by_asc(notification::Column::ClaimedAt)
        .order_by_asc(notification::Column::BatchId)
        .all(db)
        .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let id = first.batch_id.clone();
    let (claimed_at, attempts) = (first.claimed_at, first.attempts);
    let runs = rows.into_iter().filter(|r| r.batch_id == id).map(|r| (r.run_id, r.occurrence)).collect();
    Ok(Some(Batch { id, kind: kind.to_string(), claimed_at, attempts, runs }))
}

/// When a message of `kind` was last delivered (or dropped) to `hook`.
pub async fn last_sent(db: &impl ConnectionTrait, hook: &str, kind: &str) -> Result<Option<DateTime<Utc>>> {
    let last: Option<Option<DateTime<Utc>>> = notification::Entity::find()
        .select_only()
        .column_as(notification::Column::SentAt.max(), "last")
        .filter(notification::Column::Webhook.eq(hook))
        .filter(notification::Column::Kind.eq(kind))
        .into_tuple()
        .one(db)
        .await?;
    Ok(last.flatten())
}

fn entered_at() -> sea_orm::sea_query::SimpleExpr {
    Func::coalesce([
        Expr::col((run::Entity, run::Column::FinishedAt)).into(),
        Expr::col((run::Entity, run::Column::UpdatedAt)).into(),
    ])
    .into()
}

/// Runs in state `kind` (a `runs.state` value) that entered it at or after
/// `since`, at one of `vendors` (empty: any), not discarded, and not yet
/// claimed for `hook` in that occurrence; oldest first, at most `limit`.
pub async fn candidates(
    db: &impl ConnectionTrait,
    hook: &str,
    kind: &str,
    since: DateTime<Utc>,
    vendors: &[VendorKind],
    limit: u64,
) -> Result<Vec<Listed>> {
    let claimed = Query::select()
        .expr(Expr::val(1))
        .from(notification::Entity)
        .and_where(Expr::col((notification::Entity, notification::Column::Webhook)).eq(hook))
        .and_where(Expr::col((notification::Entity, notification::Column::Kind)).eq(kind))
        .and_where(
            Expr::col((notification::Entity, notification::Column::RunId)).equals((run::Entity, run::Column::Id)),
        )
        .and_where(
            Expr::col((notification::Entity, notification::Column::Occurrence))
                .equals((run::Entity, run::Column::Replays)),
        )
        .to_owned();
    let mut q = run::Entity::find()
        .select_only()
        .columns([
            run::Column::Id,
            run::Column::Vendor,
            run::Column::Workflow,
            run::Column::PersonKey,
            run::Column::Outcome,
            run::Column::LastError,
            run::Column::Replays,
        ])
        .column_as(entered_at(), "entered_at")
        // The state as a string: `held` and `awaiting_approval` are states of
        // the guard and of approvals, named here by the value they store.
        .filter(Expr::col((run::Entity, run::Column::State)).eq(kind))
        .filter(run::Column::DiscardedAt.is_null())
        .filter(Expr::expr(entered_at()).gte(since))
        .filter(Expr::exists(claimed).not());
    if !vendors.is_empty() {
        q = q.filter(run::Column::Vendor.is_in(vendors.iter().copied()));
    }
    Ok(q.order_by(Expr::expr(entered_at()), Order::Asc)
        .order_by_asc(run::Column::Seq)
        .limit(limit)
        .into_model::<Listed>()
        .all(db)
        .await?)
}

/// Claims `runs` into a new message for `hook` and `kind`, in one
/// transaction. A run another sender claimed meanwhile is left out.
pub async fn claim<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    hook: &str,
    kind: &str,
    runs: &[Listed],
) -> Result<Option<Batch>> {
    if runs.is_empty() {
        return Ok(None);
    }
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let txn = crate::begin_write(db).await?;
    let mut taken = Vec::with_capacity(runs.len());
    // In chunks: a statement's bound parameters are limited (SQLite: 32,766).
    for chunk in runs.chunks(500) {
        let rows = chunk.iter().map(|r| notification::ActiveModel {
            webhook: Set(hook.to_string()),
            run_id: Set(r.id.clone()),
            kind: Set(kind.to_string()),
            occurrence: Set(r.replays),
            batch_id: Set(id.clone()),
            claimed_at: Set(now),
            attempts: Set(0),
            sent_at: Set(None),
            result: Set(None),
        });
        notification::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    notification::Column::Webhook,
                    notification::Column::RunId,
                    notification::Column::Kind,
                    notification::Column::Occurrence,
                ])
                .do_nothing()
                .to_owned(),
            )
            .do_nothing()
            .exec(&txn)
            .await?;
    }
    // What this transaction inserted (a conflicting row keeps its own batch id).
    for r in notification::Entity::find()
        .filter(notification::Column::Webhook.eq(hook))
        .filter(notification::Column::BatchId.eq(&id))
        .all(&txn)
        .await?
    {
        taken.push((r.run_id, r.occurrence));
    }
    txn.commit().await?;
    if taken.is_empty() {
        return Ok(None);
    }
    Ok(Some(Batch { id, kind: kind.to_string(), claimed_at: now, attempts: 0, runs: taken }))
}

/// The runs of a message as they are now, in the order they were claimed (oldest first).
pub async fn runs_of(db: &impl ConnectionTrait, batch: &Batch) -> Result<Vec<Listed>> {
    let mut out = Vec::with_capacity(batch.runs.len());
    for chunk in batch.runs.chunks(500) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let rows = run::Entity::find()
            .select_only()
            .columns([
                run::Column::Id,
                run::Column::Vendor,
                run::Column::Workflow,
                run::Column::PersonKey,
                run::Column::Outcome,
                run::Column::LastError,
                run::Column::Replays,
            ])
            .column_as(entered_at(), "entered_at")
            .filter(run::Column::Id.is_in(ids))
            .into_model::<Listed>()
            .all(db)
            .await?;
        out.extend(rows);
    }
    out.sort_by(|a, b| (a.entered_at, &a.id).cmp(&(b.entered_at, &b.id)));
    Ok(out)
}

/// Counts one more delivery tried for a message; returns the count.
pub async fn count_attempt(db: &impl ConnectionTrait, hook: &str, batch_id: &str) -> Result<i32> {
    notification::Entity::update_many()
        .col_expr(notification::Column::Attempts, Expr::col(notification::Column::Attempts).add(1))
        .filter(notification::Column::Webhook.eq(hook))
        .filter(notification::Column::BatchId.eq(batch_id))
        .exec(db)
        .await?;
    let attempts: Option<i32> = notification::Entity::find()
        .select_only()
        .column_as(notification::Column::Attempts.max(), "attempts")
        .filter(notification::Column::Webhook.eq(hook))
        .filter(notification::Column::BatchId.eq(batch_id))
        .into_tuple::<Option<i32>>()
        .one(db)
        .await?
        .flatten();
    Ok(attempts.unwrap_or(0))
}

/// Records a message's end, `delivered` or `dropped`, on every run in it, in
/// one statement (so one transaction): from then on it is never sent again.
/// Returns how many runs it covered.
pub async fn mark_sent(db: &impl ConnectionTrait, hook: &str, batch_id: &str, result: &str) -> Result<u64> {
    let res = notification::Entity::update_many()
        .col_expr(notification::Column::SentAt, Expr::value(Utc::now()))
        .col_expr(notification::Column::Result, Expr::value(result))
        .filter(notification::Column::Webhook.eq(hook))
        .filter(notification::Column::BatchId.eq(batch_id))
        .filter(notification::Column::SentAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_sender_per_webhook_until_its_lease_lapses_or_is_released() {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        let minute = Duration::from_secs(60);
        let since = lease(&db, "ops", "a", minute).await.unwrap().expect("a takes it");
        assert!(lease(&db, "ops", "b", minute).await.unwrap().is_none(), "a holds it");
        assert_eq!(lease(&db, "ops", "a", minute).await.unwrap(), Some(since), "a renews it; since stays");
        assert!(lease(&db, "other", "b", minute).await.unwrap().is_some(), "each webhook has its own");
        release(&db, "ops", "a").await.unwrap();
        assert_eq!(lease(&db, "ops", "b", minute).await.unwrap(), Some(since), "released: b takes it at once");
        assert!(lease(&db, "ops", "a", Duration::ZERO).await.unwrap().is_none());
    }
}
