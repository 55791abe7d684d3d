//! Received events: written with their runs and outbox rows in one transaction.

use crate::entity::{event, outbox, run};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr, TransactionTrait,
};

pub struct NewEvent {
    pub id: String,
    pub source: String,
    pub idempotency_key: String,
    pub payload_hash: String,
    pub event_type: String,
    pub employee_id: Option<String>,
    pub employee_email: Option<String>,
    pub payload: String,
    pub response_status: i32,
    pub response_body: String,
}

pub struct NewRun {
    pub id: String,
    pub vendor: String,
    pub workflow: String,
    pub person_key: String,
    pub input: String,
}

pub enum Accepted {
    /// Stored now, with its runs and their outbox rows.
    Created,
    /// The key was already used: here is what was stored under it.
    Existing(Box<event::Model>),
}

pub async fn find_by_key(db: &impl ConnectionTrait, source: &str, key: &str) -> Result<Option<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::Source.eq(source))
        .filter(event::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<event::Model>> {
    Ok(event::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// Stores an event, its runs (state `queued`) and one outbox row per run,
/// atomically. A concurrent request with the same key loses the unique
/// index race and gets [`Accepted::Existing`].
pub async fn accept<C>(db: &C, ev: NewEvent, runs: Vec<NewRun>) -> Result<Accepted>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let (source, key) = (ev.source.clone(), ev.idempotency_key.clone());
    let txn = db.begin().await?;
    let inserted = insert_all(&txn, ev, runs, now).await;
    match inserted {
        Ok(()) => {
            txn.commit().await?;
            Ok(Accepted::Created)
        }
        Err(StoreError::Db(e)) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            txn.rollback().await?;
            let existing = find_by_key(db, &source, &key).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("idempotency key {key} conflicted but no event holds it"))
            })?;
            Ok(Accepted::Existing(Box::new(existing)))
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn insert_all(
    txn: &impl ConnectionTrait,
    ev: NewEvent,
    runs: Vec<NewRun>,
    now: DateTime<Utc>,
) -> Result<()> {
    let event_id = ev.id.clone();
    event::Entity::insert(event::ActiveModel {
        id: Set(ev.id),
        source: Set(ev.source),
        idempotency_key: Set(ev.idempotency_key),
        payload_hash: Set(ev.payload_hash),
        event_type: Set(ev.event_type),
        employee_id: Set(ev.employee_id),
        employee_email: Set(ev.employee_email),
        payload: Set(ev.payload),
        response_status: Set(ev.response_status),
        response_body: Set(ev.response_body),
        received_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    if runs.is_empty() {
        return Ok(());
    }
    let run_ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    run::Entity::insert_many(runs.into_iter().map(|r| run::ActiveModel {
        id: Set(r.id),
        event_id: Set(event_id.clone()),
        vendor: Set(r.vendor),
        workflow: Set(r.workflow),
        person_key: Set(r.person_key),
        state: Set("queued".into()),
        input: Set(r.input),
        attempts: Set(0),
        dispatch_seq: Set(0),
        next_attempt_at: Set(now),
        dispatched_at: Set(None),
        lease_owner: Set(None),
        lease_until: Set(None),
        blocked_by: Set(None),
        last_error: Set(None),
        outcome: Set(None),
        access: Set(None),
        replays: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        ..Default::default()
    }))
    .exec_without_returning(txn)
    .await?;
    outbox::Entity::insert_many(run_ids.into_iter().map(|run_id| outbox::ActiveModel {
        run_id: Set(run_id),
        dispatch_seq: Set(0),
        created_at: Set(now),
        sent_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        ..Default::default()
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// How many events exist (used by tests and the console's overview).
pub async fn count(db: &impl ConnectionTrait) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(event::Entity::find().count(db).await?)
}

/// The most recent event of `event_type` from `source` about the person with
/// this (lower-cased) address, if any.
pub async fn latest_for_person(
    db: &impl ConnectionTrait,
    source: &str,
    event_type: &str,
    email: &str,
) -> Result<Option<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::Source.eq(source))
        .filter(event::Column::EventType.eq(event_type))
        .filter(event::Column::EmployeeEmail.eq(email.to_lowercase()))
        .order_by_desc(event::Column::ReceivedAt)
        .one(db)
        .await?)
}
