//! Pushes: the fan-out of a big SCIM group write to its members' events.
//!
//! The write stores the membership change and, in the same transaction, the
//! push ([`insert`]): what changed, for which group, and its members in
//! batches. A producer then takes the push's lease ([`claim`]) and works
//! through the batches in order, each in one transaction that begins by
//! taking the batch ([`take_batch`]: a conditional update on the push's row,
//! guarded by the lease and the batch's number) and ends by recording it
//! done ([`finish_batch`]) together with the events it stored. So two
//! producers never both make a batch, and a producer that dies mid-batch
//! leaves nothing of it: the next owner makes the batch again.

use crate::entity::{scim_push as push, scim_push_batch as batch};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use std::str::FromStr;
use std::time::Duration;

/// Batch rows per `INSERT` (each row holds a batch's ids, some 20 KB).
const ROWS_PER_INSERT: usize = 50;

/// Where a push is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    /// Some batches are not done yet.
    Pending,
    /// Every member's events are made.
    Done,
}

impl PushState {
    pub fn as_str(self) -> &'static str {
        match self {
            PushState::Pending => "pending",
            PushState::Done => "done",
        }
    }
}

impl FromStr for PushState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(PushState::Pending),
            "done" => Ok(PushState::Done),
            other => Err(StoreError::Corrupt(format!("scim_pushes.state {other:?}"))),
        }
    }
}

/// A push to store.
pub struct NewPush<'a> {
    pub id: &'a str,
    pub group_id: &'a str,
    pub group_name: &'a str,
    /// add, remove, replace, members, rename or delete.
    pub change: &'a str,
    pub source: &'a str,
    /// The start of each member's event's idempotency key.
    pub key: &'a str,
    pub member_ids: &'a [String],
    /// Members per batch (at least 1).
    pub batch_size: usize,
}

/// Stores the push and its batches, in the caller's transaction.
pub async fn insert(c: &impl ConnectionTrait, new: NewPush<'_>, now: DateTime<Utc>) -> Result<()> {
    let chunks: Vec<&[String]> = new.member_ids.chunks(new.batch_size.max(1)).collect();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    push::Entity::insert(push::ActiveModel {
        id: Set(new.id.to_string()),
        group_id: Set(new.group_id.to_string()),
        group_name: Set(new.group_name.to_string()),
        change: Set(new.change.to_string()),
        source: Set(new.source.to_string()),
        key: Set(new.key.to_string()),
        members: Set(count(new.member_ids.len())),
        members_done: Set(0),
        events: Set(0),
        batches: Set(count(chunks.len())),
        next_batch: Set(0),
        state: Set(if chunks.is_empty() { PushState::Done } else { PushState::Pending }.as_str().to_string()),
        lease_owner: Set(None),
        lease_until: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(chunks.is_empty().then_some(now)),
    })
    .exec_without_returning(c)
    .await?;
    let rows: Vec<batch::ActiveModel> = chunks
        .iter()
        .enumerate()
        .map(|(seq, ids)| batch::ActiveModel {
            push_id: Set(new.id.to_string()),
            seq: Set(count(seq)),
            member_ids: Set(serde_json::to_string(ids).expect("strings serialize")),
        })
        .collect();
    for rows in rows.chunks(ROWS_PER_INSERT) {
        batch::Entity::insert_many(rows.to_vec()).exec_without_returning(c).await?;
    }
    Ok(())
}

fn until(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(1))
}

fn free(now: DateTime<Utc>) -> Condition {
    Condition::any().add(push::Column::LeaseUntil.is_null()).add(push::Column::LeaseUntil.lt(now))
}

/// Takes the oldest pending push whose lease is free or lapsed, for `owner`
/// until `now + ttl`; None when there is none to take.
pub async fn claim(
    db: &impl ConnectionTrait,
    owner: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Option<push::Model>> {
    let candidates: Vec<String> = push::Entity::find()
        .select_only()
        .column(push::Column::Id)
        .filter(push::Column::State.eq(PushState::Pending.as_str()))
        .filter(free(now))
        .order_by_asc(push::Column::CreatedAt)
        .order_by_asc(push::Column::Id)
        .limit(8)
        .into_tuple()
        .all(db)
        .await?;
    for id in candidates {
        // Conditional: another producer taking it first leaves this one nothing.
        let taken = push::Entity::update_many()
            .col_expr(push::Column::LeaseOwner, Expr::value(owner))
            .col_expr(push::Column::LeaseUntil, Expr::value(until(now, ttl)))
            .col_expr(push::Column::Attempts, Expr::col(push::Column::Attempts).add(1))
            .filter(push::Column::Id.eq(id.as_str()))
            .filter(push::Column::State.eq(PushState::Pending.as_str()))
            .filter(free(now))
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            return get(db, &id).await;
        }
    }
    Ok(None)
}

/// The first statement of a batch's transaction: takes batch `seq` of the
/// push for `owner` (and extends the lease). False when the lease is
/// another's or the batch is done already: the caller then rolls back.
/// On PostgreSQL the row stays locked until the transaction ends, so a
/// second producer's take waits and then finds the batch done.
pub async fn take_batch(
    c: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    seq: i32,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<bool> {
    let taken = push::Entity::update_many()
        .col_expr(push::Column::LeaseUntil, Expr::value(until(now, ttl)))
        .col_expr(push::Column::StartedAt, Expr::col(push::Column::StartedAt).if_null(now))
        .filter(push::Column::Id.eq(id))
        .filter(push::Column::LeaseOwner.eq(owner))
        .filter(push::Column::NextBatch.eq(seq))
        .filter(push::Column::State.eq(PushState::Pending.as_str()))
        .exec(c)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// The member ids of batch `seq`.
pub async fn batch_members(c: &impl ConnectionTrait, id: &str, seq: i32) -> Result<Vec<String>> {
    let Some(row) = batch::Entity::find_by_id((id.to_string(), seq)).one(c).await? else {
        return Err(StoreError::Corrupt(format!("push {id} has no batch {seq}")));
    };
    serde_json::from_str(&row.member_ids).map_err(|e| StoreError::Corrupt(format!("push {id} batch {seq}: {e}")))
}

/// The last statement of a batch's transaction (after [`take_batch`]):
/// the batch is done, with `members` worked out and `events` stored; the
/// push is done too when it was its last batch (its lease then given up).
pub async fn finish_batch(
    c: &impl ConnectionTrait,
    p: &push::Model,
    owner: &str,
    seq: i32,
    (members, events): (usize, usize),
    now: DateTime<Utc>,
) -> Result<bool> {
    let n = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    let mut q = push::Entity::update_many()
        .col_expr(push::Column::NextBatch, Expr::value(seq + 1))
        .col_expr(push::Column::MembersDone, Expr::col(push::Column::MembersDone).add(n(members)))
        .col_expr(push::Column::Events, Expr::col(push::Column::Events).add(n(events)))
        .col_expr(push::Column::LastError, Expr::value(Option::<String>::None));
    let last = seq + 1 >= p.batches;
    if last {
        q = q
            .col_expr(push::Column::State, Expr::value(PushState::Done.as_str()))
            .col_expr(push::Column::FinishedAt, Expr::value(now))
            .col_expr(push::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(push::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None));
    }
    let done = q
        .filter(push::Column::Id.eq(p.id.as_str()))
        .filter(push::Column::LeaseOwner.eq(owner))
        .filter(push::Column::NextBatch.eq(seq))
        .exec(c)
        .await?;
    if done.rows_affected != 1 {
        return Err(StoreError::Corrupt(format!("push {}: batch {seq} was taken but could not be recorded", p.id)));
    }
    Ok(last)
}

/// Gives `owner`'s lease up (a producer stopping, or a batch that failed:
/// `error` says why, for operators; another producer may go on at once).
pub async fn release(db: &impl ConnectionTrait, id: &str, owner: &str, error: Option<&str>) -> Result<()> {
    let mut q = push::Entity::update_many()
        .col_expr(push::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(push::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None));
    if let Some(e) = error {
        q = q.col_expr(push::Column::LastError, Expr::value(e));
    }
    q.filter(push::Column::Id.eq(id)).filter(push::Column::LeaseOwner.eq(owner)).exec(db).await?;
    Ok(())
}

/// Holds the push back from every producer until `until` (a batch failed:
/// it is tried again later, not at once).
pub async fn rest_until(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    at: DateTime<Utc>,
    error: &str,
) -> Result<()> {
    push::Entity::update_many()
        .col_expr(push::Column::LeaseUntil, Expr::value(at))
        .col_expr(push::Column::LastError, Expr::value(error))
        .filter(push::Column::Id.eq(id))
        .filter(push::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<push::Model>> {
    Ok(push::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// The most recent pushes, newest first; only pending ones when `pending`.
pub async fn recent(db: &impl ConnectionTrait, pending: bool, limit: u64) -> Result<Vec<push::Model>> {
    let mut q = push::Entity::find();
    if pending {
        q = q.filter(push::Column::State.eq(PushState::Pending.as_str()));
    }
    Ok(q.order_by_desc(push::Column::CreatedAt).order_by_desc(push::Column::Id).limit(limit).all(db).await?)
}

/// How many pushes are pending.
pub async fn pending_count(db: &impl ConnectionTrait) -> Result<u64> {
    Ok(push::Entity::find().filter(push::Column::State.eq(PushState::Pending.as_str())).count(db).await?)
}
