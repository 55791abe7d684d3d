//! What the HR-system intake keeps (issue 27, `lifecycle_ops::hris`).
//!
//! A verified delivery is inserted in the transaction whose commit precedes
//! the receiver's 2xx ([`insert`]); the same delivery again (the source's
//! retry) is the same row, unique on (source, tenant, key). Processing comes
//! afterwards, in any producer: a delivery is *claimed* for a lease
//! ([`claim_due`]), and every later write names the claimant, so a producer
//! whose lease lapsed (it stalled, another took over) changes nothing.
//!
//! A delivery ends `processed` (in the transaction that stores its events and
//! the person's new [`hris_person`] row, [`mark_processed`]) or
//! `needs_person` with the reason; a transient HRIS API failure only moves
//! `next_attempt_at` ([`retry_later`]).

use crate::entity::hris_delivery::{self, DeliveryState};
use crate::entity::hris_person;
use crate::Result;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TryInsertResult,
};
use std::time::Duration;

pub use hris_delivery::Model as Delivery;
pub use hris_person::Model as Person;

/// A verified delivery to keep.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub source: String,
    pub tenant: String,
    pub key: String,
    pub type_name: String,
    pub kind: String,
    pub employee_id: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub body: String,
}

/// What [`insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Kept now, under this id.
    Stored(String),
    /// The source sent it before: the row kept then.
    Existing(String),
}

fn until(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Keeps a delivery, due at once; a repeat of one kept before stores nothing.
pub async fn insert(db: &impl ConnectionTrait, new: NewDelivery) -> Result<Inserted> {
    let now = Utc::now();
    let id = uuid::Uuid::now_v7().to_string();
    let row = hris_delivery::ActiveModel {
        id: Set(id.clone()),
        source: Set(new.source.clone()),
        tenant: Set(new.tenant.clone()),
        delivery_key: Set(new.key.clone()),
        type_name: Set(new.type_name),
        kind: Set(new.kind),
        employee_id: Set(new.employee_id),
        occurred_at: Set(new.occurred_at),
        received_at: Set(now),
        body: Set(new.body),
        state: Set(DeliveryState::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        outcome: Set(None),
        event_ids: Set(None),
        processed_at: Set(None),
    };
    let inserted = hris_delivery::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                hris_delivery::Column::Source,
                hris_delivery::Column::Tenant,
                hris_delivery::Column::DeliveryKey,
            ])
            .do_nothing()
            .to_owned(),
        )
        .do_nothing()
        .exec_without_returning(db)
        .await?;
    if matches!(inserted, TryInsertResult::Inserted(1)) {
        return Ok(Inserted::Stored(id));
    }
    let existing = hris_delivery::Entity::find()
        .filter(hris_delivery::Column::Source.eq(&new.source))
        .filter(hris_delivery::Column::Tenant.eq(&new.tenant))
        .filter(hris_delivery::Column::DeliveryKey.eq(&new.key))
        .one(db)
        .await?
        .ok_or_else(|| crate::StoreError::Corrupt("a conflicting hris delivery vanished".into()))?;
    Ok(Inserted::Existing(existing.id))
}

fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(hris_delivery::Column::State.eq(DeliveryState::Pending))
        .add(hris_delivery::Column::NextAttemptAt.lte(now))
        .add(
            Condition::any()
                .add(hris_delivery::Column::LeaseUntil.is_null())
                .add(hris_delivery::Column::LeaseUntil.lt(now)),
        )
}

/// Claims up to `limit` due deliveries for `owner`, oldest first: each is
/// taken by one conditional update, so two producers never both hold one.
/// Each claim counts an attempt.
pub async fn claim_due(db: &impl ConnectionTrait, owner: &str, lease: Duration, limit: u64) -> Result<Vec<Delivery>> {
    let now = Utc::now();
    let candidates: Vec<String> = hris_delivery::Entity::find()
        .select_only()
        .column(hris_delivery::Column::Id)
        .filter(claimable(now))
        .order_by_asc(hris_delivery::Column::NextAttemptAt)
        .order_by_asc(hris_delivery::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    let mut claimed = Vec::new();
    for id in candidates {
        let won = hris_delivery::Entity::update_many()
            .col_expr(hris_delivery::Column::LeaseOwner, Expr::value(owner))
            .col_expr(hris_delivery::Column::LeaseUntil, Expr::value(until(now, lease)))
            .col_expr(hris_delivery::Column::Attempts, Expr::col(hris_delivery::Column::Attempts).add(1))
            .filter(hris_delivery::Column::Id.eq(&id))
            .filter(claimable(now))
            .exec(db)
            .await?;
        if won.rows_affected == 1 {
            if let Some(row) = hris_delivery::Entity::find_by_id(&id).one(db).await? {
                claimed.push(row);
            }
        }
    }
    Ok(claimed)
}

/// The update of a delivery `owner` still holds.
fn held(id: &str, owner: &str) -> Condition {
    Condition::all()
        .add(hris_delivery::Column::Id.eq(id))
        .add(hris_delivery::Column::State.eq(DeliveryState::Pending))
        .add(hris_delivery::Column::LeaseOwner.eq(owner))
}

/// Applies `update` to a delivery `owner` still holds and ends the lease.
/// False: the lease was lost (another producer has the delivery now).
async fn finish(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    update: sea_orm::UpdateMany<hris_delivery::Entity>,
) -> Result<bool> {
    let r = update
        .col_expr(hris_delivery::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(hris_delivery::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(held(id, owner))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// A transient failure: due again at `at`, the delivery kept. False: the
/// lease was lost (another producer has it now).
pub async fn retry_later(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    at: DateTime<Utc>,
    error: &str,
) -> Result<bool> {
    let update = hris_delivery::Entity::update_many()
        .col_expr(hris_delivery::Column::NextAttemptAt, Expr::value(at))
        .col_expr(hris_delivery::Column::LastError, Expr::value(error));
    finish(db, id, owner, update).await
}

/// Lifecycle cannot act on it: shown to operators with `reason`.
pub async fn mark_needs_person(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    reason: &str,
    error: Option<&str>,
) -> Result<bool> {
    let now = Utc::now();
    let update = hris_delivery::Entity::update_many()
        .col_expr(hris_delivery::Column::State, Expr::value(DeliveryState::NeedsPerson))
        .col_expr(hris_delivery::Column::Outcome, Expr::value(reason))
        .col_expr(hris_delivery::Column::LastError, Expr::value(error))
        .col_expr(hris_delivery::Column::ProcessedAt, Expr::value(now));
    finish(db, id, owner, update).await
}

/// Processed, with the events it made: call in the transaction that stored
/// them (false: the lease was lost, roll back).
pub async fn mark_processed(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    event_ids: &[String],
    outcome: &str,
) -> Result<bool> {
    let now = Utc::now();
    let ids = serde_json::to_string(event_ids).expect("strings serialize");
    let update = hris_delivery::Entity::update_many()
        .col_expr(hris_delivery::Column::State, Expr::value(DeliveryState::Processed))
        .col_expr(hris_delivery::Column::Outcome, Expr::value(outcome))
        .col_expr(hris_delivery::Column::EventIds, Expr::value(ids))
        .col_expr(hris_delivery::Column::LastError, Expr::value(Option::<String>::None))
        .col_expr(hris_delivery::Column::ProcessedAt, Expr::value(now));
    finish(db, id, owner, update).await
}

/// An operator's retry of a delivery that needs a person (its cause fixed at
/// the source): due at once. False: it is not in that state.
pub async fn retry_now(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    let r = hris_delivery::Entity::update_many()
        .col_expr(hris_delivery::Column::State, Expr::value(DeliveryState::Pending))
        .col_expr(hris_delivery::Column::NextAttemptAt, Expr::value(Utc::now()))
        .col_expr(hris_delivery::Column::ProcessedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(hris_delivery::Column::Id.eq(id))
        .filter(hris_delivery::Column::State.eq(DeliveryState::NeedsPerson))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<Delivery>> {
    Ok(hris_delivery::Entity::find_by_id(id).one(db).await?)
}

/// Which deliveries a list shows.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub source: Option<String>,
    pub employee_id: Option<String>,
    pub limit: Option<u64>,
}

/// Newest first.
pub async fn list(db: &impl ConnectionTrait, f: &DeliveryFilter) -> Result<Vec<Delivery>> {
    let mut q = hris_delivery::Entity::find();
    if let Some(s) = f.state {
        q = q.filter(hris_delivery::Column::State.eq(s));
    }
    if let Some(s) = &f.source {
        q = q.filter(hris_delivery::Column::Source.eq(s.as_str()));
    }
    if let Some(e) = &f.employee_id {
        q = q.filter(hris_delivery::Column::EmployeeId.eq(e.as_str()));
    }
    Ok(q.order_by_desc(hris_delivery::Column::ReceivedAt)
        .order_by_desc(hris_delivery::Column::Id)
        .limit(f.limit.or(Some(200)))
        .all(db)
        .await?)
}

/// How many deliveries are in `state`.
pub async fn count(db: &impl ConnectionTrait, state: DeliveryState) -> Result<u64> {
    Ok(hris_delivery::Entity::find().filter(hris_delivery::Column::State.eq(state)).count(db).await?)
}

pub async fn person(
    db: &impl ConnectionTrait,
    source: &str,
    tenant: &str,
    employee_id: &str,
) -> Result<Option<Person>> {
    Ok(hris_person::Entity::find_by_id((source.to_string(), tenant.to_string(), employee_id.to_string()))
        .one(db)
        .await?)
}

/// A person's new state, written only over the version it was derived from
/// (`None`: they were unknown). False: another producer wrote them
/// meanwhile; roll back and map again.
pub async fn save_person(db: &impl ConnectionTrait, next: Person, derived_from: Option<i32>) -> Result<bool> {
    let Some(version) = derived_from else {
        let row = hris_person::ActiveModel {
            source: Set(next.source),
            tenant: Set(next.tenant),
            employee_id: Set(next.employee_id),
            email: Set(next.email),
            last_event_type: Set(next.last_event_type),
            apps: Set(next.apps),
            apps_hash: Set(next.apps_hash),
            version: Set(next.version),
            updated_at: Set(next.updated_at),
        };
        let n = hris_person::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    hris_person::Column::Source,
                    hris_person::Column::Tenant,
                    hris_person::Column::EmployeeId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .do_nothing()
            .exec_without_returning(db)
            .await?;
        return Ok(matches!(n, TryInsertResult::Inserted(1)));
    };
    let r = hris_person::Entity::update_many()
        .col_expr(hris_person::Column::Email, Expr::value(next.email))
        .col_expr(hris_person::Column::LastEventType, Expr::value(next.last_event_type))
        .col_expr(hris_person::Column::Apps, Expr::value(next.apps))
        .col_expr(hris_person::Column::AppsHash, Expr::value(next.apps_hash))
        .col_expr(hris_person::Column::Version, Expr::value(next.version))
        .col_expr(hris_person::Column::UpdatedAt, Expr::value(next.updated_at))
        .filter(hris_person::Column::Source.eq(next.source))
        .filter(hris_person::Column::Tenant.eq(next.tenant))
        .filter(hris_person::Column::EmployeeId.eq(next.employee_id))
        .filter(hris_person::Column::Version.eq(version))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}
