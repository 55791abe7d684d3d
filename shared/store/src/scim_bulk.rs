//! SCIM bulk requests (Entra's API-driven inbound provisioning,
//! docs/integrators/scim-entra.md): a request is stored with one row per
//! operation in the transaction that precedes its 202, then worked through
//! by a producer holding the request's lease. Each operation's result is
//! written once it is known; a producer that stops half-way leaves the rest
//! `pending`, and whoever takes the lease next goes on from there.
//!
//! A request's id is the hash of its body, so the same request sent again is
//! [`Stored::Existing`] and nothing is stored or done twice.

use crate::entity::{scim_bulk_operation as operation, scim_bulk_request as request};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use std::str::FromStr;
use std::time::Duration;

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Some operations have no result yet.
    Pending,
    /// Every operation has its result.
    Done,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Done => "done",
        }
    }
}

impl FromStr for RequestState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(RequestState::Pending),
            "done" => Ok(RequestState::Done),
            other => Err(StoreError::Corrupt(format!("scim_bulk_requests.state {other:?}"))),
        }
    }
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationState {
    Pending,
    Succeeded,
    Failed,
}

impl OperationState {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Pending => "pending",
            OperationState::Succeeded => "succeeded",
            OperationState::Failed => "failed",
        }
    }
}

impl FromStr for OperationState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(OperationState::Pending),
            "succeeded" => Ok(OperationState::Succeeded),
            "failed" => Ok(OperationState::Failed),
            other => Err(StoreError::Corrupt(format!("scim_bulk_operations.state {other:?}"))),
        }
    }
}

/// A request to store: its id (the body's hash), the body, and each
/// operation's `bulkId` in order.
pub struct NewRequest<'a> {
    pub id: &'a str,
    pub body: &'a str,
    pub bulk_ids: &'a [String],
}

/// What [`insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    /// The same request was stored before: nothing new.
    Existing,
}

/// Stores the request and its operations (`pending`) in one transaction.
pub async fn insert<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    new: NewRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Stored> {
    let txn = crate::begin_write(db).await?;
    let inserted = request::Entity::insert(request::ActiveModel {
        id: Set(new.id.to_string()),
        body: Set(new.body.to_string()),
        operations: Set(i32::try_from(new.bulk_ids.len()).unwrap_or(i32::MAX)),
        state: Set(RequestState::Pending.as_str().to_string()),
        lease_owner: Set(None),
        lease_until: Set(None),
        attempts: Set(0),
        received_at: Set(now),
        finished_at: Set(None),
    })
    .on_conflict(OnConflict::column(request::Column::Id).do_nothing().to_owned())
    .exec_without_returning(&txn)
    .await?;
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(Stored::Existing);
    }
    if !new.bulk_ids.is_empty() {
        let rows = new.bulk_ids.iter().enumerate().map(|(i, bulk_id)| operation::ActiveModel {
            request_id: Set(new.id.to_string()),
            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            bulk_id: Set(bulk_id.clone()),
            state: Set(OperationState::Pending.as_str().to_string()),
            status: Set(None),
            scim_type: Set(None),
            detail: Set(None),
            user_id: Set(None),
            events: Set(0),
            done_at: Set(None),
        });
        operation::Entity::insert_many(rows).exec_without_returning(&txn).await?;
    }
    txn.commit().await?;
    Ok(Stored::Created)
}

/// Takes the oldest pending request whose lease is free or lapsed, for
/// `owner` until `now + ttl`; None when there is none to take.
pub async fn claim(
    db: &impl ConnectionTrait,
    owner: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Option<request::Model>> {
    let free = || Condition::any().add(request::Column::LeaseUntil.is_null()).add(request::Column::LeaseUntil.lt(now));
    let candidates: Vec<String> = request::Entity::find()
        .select_only()
        .column(request::Column::Id)
        .filter(request::Column::State.eq(RequestState::Pending.as_str()))
        .filter(free())
        .order_by_asc(request::Column::ReceivedAt)
        .order_by_asc(request::Column::Id)
        .limit(8)
        .into_tuple()
        .all(db)
        .await?;
    let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5));
    for id in candidates {
        // Conditional: another producer taking it first leaves this one nothing.
        let taken = request::Entity::update_many()
            .col_expr(request::Column::LeaseOwner, Expr::value(owner))
            .col_expr(request::Column::LeaseUntil, Expr::value(until))
            .col_expr(request::Column::Attempts, Expr::col(request::Column::Attempts).add(1))
            .filter(request::Column::Id.eq(id.as_str()))
            .filter(request::Column::State.eq(RequestState::Pending.as_str()))
            .filter(free())
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            return get_request(db, &id).await;
        }
    }
    Ok(None)
}

/// Extends `owner`'s lease; false when it is no longer theirs (it lapsed
/// and another producer took the request).
pub async fn renew(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<bool> {
    let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5));
    let done = request::Entity::update_many()
        .col_expr(request::Column::LeaseUntil, Expr::value(until))
        .filter(request::Column::Id.eq(id))
        .filter(request::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// The request's operations that have no result yet, in order.
pub async fn pending_operations(db: &impl ConnectionTrait, id: &str) -> Result<Vec<operation::Model>> {
    Ok(operation::Entity::find()
        .filter(operation::Column::RequestId.eq(id))
        .filter(operation::Column::State.eq(OperationState::Pending.as_str()))
        .order_by_asc(operation::Column::Position)
        .all(db)
        .await?)
}

/// An operation's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: OperationState,
    pub status: u16,
    pub scim_type: Option<String>,
    pub detail: Option<String>,
    pub user_id: Option<String>,
    pub events: usize,
}

/// Records an operation's result, once: an operation that has one keeps it.
pub async fn record(
    db: &impl ConnectionTrait,
    id: &str,
    position: i32,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<()> {
    operation::Entity::update_many()
        .col_expr(operation::Column::State, Expr::value(outcome.state.as_str()))
        .col_expr(operation::Column::Status, Expr::value(i32::from(outcome.status)))
        .col_expr(operation::Column::ScimType, Expr::value(outcome.scim_type))
        .col_expr(operation::Column::Detail, Expr::value(outcome.detail))
        .col_expr(operation::Column::UserId, Expr::value(outcome.user_id))
        .col_expr(operation::Column::Events, Expr::value(i32::try_from(outcome.events).unwrap_or(i32::MAX)))
        .col_expr(operation::Column::DoneAt, Expr::value(now))
        .filter(operation::Column::RequestId.eq(id))
        .filter(operation::Column::Position.eq(position))
        .filter(operation::Column::State.eq(OperationState::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Marks the request done and gives its lease up, when every operation has
/// its result; false when some are still pending (left for the next claim).
pub async fn finish(db: &impl ConnectionTrait, id: &str, owner: &str, now: DateTime<Utc>) -> Result<bool> {
    let open = operation::Entity::find()
        .filter(operation::Column::RequestId.eq(id))
        .filter(operation::Column::State.eq(OperationState::Pending.as_str()))
        .limit(1)
        .all(db)
        .await?;
    let mut q = request::Entity::update_many()
        .col_expr(request::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(request::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None));
    if open.is_empty() {
        q = q
            .col_expr(request::Column::State, Expr::value(RequestState::Done.as_str()))
            .col_expr(request::Column::FinishedAt, Expr::value(now));
    }
    q.filter(request::Column::Id.eq(id)).filter(request::Column::LeaseOwner.eq(owner)).exec(db).await?;
    Ok(open.is_empty())
}

pub async fn get_request(db: &impl ConnectionTrait, id: &str) -> Result<Option<request::Model>> {
    Ok(request::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// Every operation of the request, in order.
pub async fn operations(db: &impl ConnectionTrait, id: &str) -> Result<Vec<operation::Model>> {
    Ok(operation::Entity::find()
        .filter(operation::Column::RequestId.eq(id))
        .order_by_asc(operation::Column::Position)
        .all(db)
        .await?)
}

/// The most recent requests, newest first (without their bodies' operations).
pub async fn recent(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<request::Model>> {
    Ok(request::Entity::find()
        .order_by_desc(request::Column::ReceivedAt)
        .order_by_asc(request::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> crate::Db {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        db
    }

    fn outcome(status: u16) -> Outcome {
        Outcome {
            state: OperationState::Succeeded,
            status,
            scim_type: None,
            detail: None,
            user_id: Some("u".into()),
            events: 1,
        }
    }

    #[tokio::test]
    async fn a_request_is_stored_once_and_worked_through_under_one_lease() {
        let db = db().await;
        let now = Utc::now();
        let ids = vec!["a".to_string(), "b".to_string()];
        let new = || NewRequest { id: "r1", body: "{}", bulk_ids: &ids };
        assert_eq!(insert(&db, new(), now).await.unwrap(), Stored::Created);
        assert_eq!(insert(&db, new(), now).await.unwrap(), Stored::Existing);
        assert_eq!(operations(&db, "r1").await.unwrap().len(), 2, "the same request again adds no operation");

        let ttl = Duration::from_secs(60);
        let taken = claim(&db, "p1", ttl, now).await.unwrap().expect("p1 takes it");
        assert_eq!((taken.id.as_str(), taken.attempts), ("r1", 1));
        assert!(claim(&db, "p2", ttl, now).await.unwrap().is_none(), "p1 holds the lease");

        record(&db, "r1", 0, outcome(201), now).await.unwrap();
        // A result is written once: a late second write does not replace it.
        record(&db, "r1", 0, outcome(409), now).await.unwrap();
        assert!(!finish(&db, "r1", "p1", now).await.unwrap(), "one operation is still pending");

        // Released with work left: the next claim goes on from the pending operation.
        let again = claim(&db, "p2", ttl, now).await.unwrap().expect("released, so p2 takes it");
        assert_eq!(again.attempts, 2);
        let left = pending_operations(&db, "r1").await.unwrap();
        assert_eq!(left.iter().map(|o| o.position).collect::<Vec<_>>(), [1]);
        assert!(!renew(&db, "r1", "p1", ttl, now).await.unwrap(), "p1 lost it");
        record(&db, "r1", 1, outcome(200), now).await.unwrap();
        assert!(finish(&db, "r1", "p2", now).await.unwrap());

        let ops = operations(&db, "r1").await.unwrap();
        assert_eq!(ops.iter().map(|o| o.status).collect::<Vec<_>>(), [Some(201), Some(200)]);
        let r = get_request(&db, "r1").await.unwrap().unwrap();
        assert_eq!(r.state.parse::<RequestState>().unwrap(), RequestState::Done);
        assert!(claim(&db, "p3", ttl, now).await.unwrap().is_none(), "done: nothing to take");
    }

    #[tokio::test]
    async fn a_lapsed_lease_is_taken_over() {
        let db = db().await;
        let now = Utc::now();
        let ids = vec!["a".to_string()];
        insert(&db, NewRequest { id: "r1", body: "{}", bulk_ids: &ids }, now).await.unwrap();
        claim(&db, "p1", Duration::from_secs(1), now).await.unwrap().unwrap();
        let later = now + chrono::Duration::seconds(2);
        assert!(claim(&db, "p2", Duration::from_secs(60), later).await.unwrap().is_some());
    }
}
