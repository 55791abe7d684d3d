//! Received events: written with their runs and outbox rows in one transaction.

use crate::entity::{event, outbox, run};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr, TransactionTrait,
};

/// The `events.source` of the HR intake (`POST /v1/events`); keys are unique per source.
pub const INTAKE_SOURCE: &str = "intake";

#[derive(Clone)]
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
    /// The W3C `traceparent` of the span that stored it (the intake's, SCIM's,
    /// a webhook's, a reconcile pass's): each of its runs keeps it, so every
    /// later publish of a run carries the same trace. None when traces are off.
    pub traceparent: Option<String>,
}

pub use crate::new_run::NewRun;

/// What became of a new run as it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub run_id: String,
    pub state: RunState,
    /// The newer event that superseded it at once.
    pub superseded_by: Option<String>,
}

/// What storing an event did.
#[derive(Debug, Clone, Default)]
pub struct Intake {
    /// Each new run and the state it was stored in.
    pub runs: Vec<Stored>,
    /// Scheduled runs of the same person this event replaced (superseded).
    pub replaced: Vec<String>,
    /// What a `cancel` event withdrew.
    pub cancelled: Option<crate::time::Cancelled>,
}

/// A `cancel` event's reach: the person, at these vendors, in runs of
/// events that came from the cancel's own source (an HR cancel never
/// withdraws what SCIM, a webhook or an operator's fix asked for).
#[derive(Clone)]
pub struct CancelAt {
    pub person_key: String,
    pub vendors: Vec<VendorKind>,
    /// Who sent the cancel: audited with what it withdrew, in the same transaction.
    pub actor: String,
}

pub enum Accepted {
    /// Stored now, with its runs and their outbox rows; `body` is the answer
    /// stored for idempotent replays.
    Created { intake: Intake, body: String },
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

/// Stores an event, its runs (`queued`, `scheduled` or `superseded`, see
/// [`crate::time`]) and one outbox row per queued run, atomically; a cancel
/// withdraws in the same transaction. `respond` makes the answer from what
/// happened; it is stored with the event for idempotent replays. A concurrent
/// request with the same key loses the unique index race and gets
/// [`Accepted::Existing`].
pub async fn accept<C>(
    db: &C,
    ev: NewEvent,
    runs: Vec<NewRun>,
    cancel: Option<CancelAt>,
    respond: impl FnOnce(&Intake) -> String,
) -> Result<Accepted>
where
    C: ConnectionTrait + TransactionTrait,
{
    accept_guarded(db, ev, runs, cancel, &crate::safety::Guard::default(), respond).await
}

/// [`accept`] under the blast-radius guard: a destructive run that would be
/// stored `queued` past one of `guard`'s thresholds is stored `held` (no
/// outbox row), decided in the same transaction (see [`crate::safety`]).
pub async fn accept_guarded<C>(
    db: &C,
    ev: NewEvent,
    runs: Vec<NewRun>,
    cancel: Option<CancelAt>,
    guard: &crate::safety::Guard,
    respond: impl FnOnce(&Intake) -> String,
) -> Result<Accepted>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let (source, key, event_id) = (ev.source.clone(), ev.idempotency_key.clone(), ev.id.clone());
    let txn = crate::begin_write(db).await?;
    let inserted = async {
        let (runs, replaced) = insert_all(&txn, ev, runs, now, true, guard).await?;
        let cancelled = match cancel {
            Some(c) => {
                let done = crate::time::cancel_person(&txn, &c.person_key, &c.vendors, &source, &event_id).await?;
                crate::audit::record(
                    &txn,
                    crate::audit::NewEntry {
                        actor: &c.actor,
                        action: "event.cancel",
                        target_kind: "event",
                        target_id: &event_id,
                        reason: Some("a cancel event"),
                        details: Some(serde_json::json!({
                            "person": c.person_key, "cancelled": done.cancelled, "started": done.started,
                        })),
                    },
                )
                .await?;
                Some(done)
            }
            None => None,
        };
        let intake = Intake { runs, replaced, cancelled };
        let body = respond(&intake);
        event::Entity::update_many()
            .col_expr(event::Column::ResponseBody, sea_orm::sea_query::Expr::value(body.clone()))
            .filter(event::Column::Id.eq(&event_id))
            .exec(&txn)
            .await?;
        Ok::<_, StoreError>((intake, body))
    }
    .await;
    match inserted {
        Ok((intake, body)) => {
            txn.commit().await?;
            Ok(Accepted::Created { intake, body })
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

/// Records `ev` and its runs, arranged in time among the person's other
/// runs when `ordered` (see [`arrange_all`]).
///
/// The event's insert comes first on purpose: on SQLite a transaction takes
/// the write lock at its first write, and one that reads first and writes
/// later fails at once (`SQLITE_BUSY_SNAPSHOT`, which no busy timeout waits
/// out) when another process wrote in between, as the worker constantly does.
pub(crate) async fn insert_all(
    txn: &impl ConnectionTrait,
    ev: NewEvent,
    runs: Vec<NewRun>,
    now: DateTime<Utc>,
    ordered: bool,
    guard: &crate::safety::Guard,
) -> Result<(Vec<Stored>, Vec<String>)> {
    let event_id = ev.id.clone();
    let traceparent = ev.traceparent.clone();
    insert_event(txn, ev, now).await?;
    let (mut stored, replaced) = arrange_all(txn, &event_id, &runs, now, ordered).await?;
    // Only runs about to be worked on now are counted (a scheduled run is
    // judged when its time comes); after `arrange_all`'s person locks.
    let queued: Vec<usize> = (0..runs.len()).filter(|&i| stored[i].state == RunState::Queued).collect();
    let candidates: Vec<crate::safety::Candidate> = queued
        .iter()
        .map(|&i| crate::safety::Candidate {
            run_id: runs[i].id.clone(),
            vendor: runs[i].vendor,
            workflow: runs[i].workflow,
        })
        .collect();
    for (i, held) in queued.into_iter().zip(crate::safety::admit(txn, guard, &candidates, now).await?) {
        if held {
            stored[i].state = RunState::Held;
        }
    }
    // Approvals (`[approval]`): a matching run still queued awaits an approver.
    let open: Vec<usize> = (0..runs.len()).filter(|&i| stored[i].state == RunState::Queued).collect();
    let asked: Vec<crate::approvals::Candidate> = open
        .iter()
        .map(|&i| crate::approvals::Candidate {
            run_id: &runs[i].id,
            vendor: runs[i].vendor,
            workflow: runs[i].workflow,
            input: &runs[i].input,
        })
        .collect();
    let awaiting = crate::approvals::request(txn, &guard.approvals, &asked, now).await?;
    for (i, awaits) in open.into_iter().zip(awaiting) {
        if awaits {
            stored[i].state = RunState::AwaitingApproval;
        }
    }
    insert_runs(txn, &event_id, runs, &stored, traceparent, now).await?;
    Ok((stored, replaced))
}

/// Where each new run stands among the person's runs at its vendor: effects
/// follow occurred_at, so a run is superseded by a newer event already there,
/// or replaces what is still scheduled for the person (HR's events; a
/// webhook's follow-up runs are `ordered: false`).
async fn arrange_all(
    txn: &impl ConnectionTrait,
    event_id: &str,
    runs: &[NewRun],
    now: DateTime<Utc>,
    ordered: bool,
) -> Result<(Vec<Stored>, Vec<String>)> {
    let mut stored = Vec::with_capacity(runs.len());
    let mut replaced = Vec::new();
    for r in runs {
        let order = if ordered {
            crate::time::arrange(txn, event_id, r, now).await?
        } else {
            crate::time::Order { superseded_by: None, replaced: Vec::new() }
        };
        let state = match (&order.superseded_by, r.start_at) {
            (Some(_), _) => RunState::Superseded,
            (None, Some(at)) if at > now => RunState::Scheduled,
            (None, _) => RunState::Queued,
        };
        replaced.extend(order.replaced);
        stored.push(Stored { run_id: r.id.clone(), state, superseded_by: order.superseded_by });
    }
    Ok((stored, replaced))
}

async fn insert_event(txn: &impl ConnectionTrait, ev: NewEvent, now: DateTime<Utc>) -> Result<()> {
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
    Ok(())
}

/// Inserts the runs as `stored` arranged them, and an outbox row for each
/// run to publish now.
async fn insert_runs(
    txn: &impl ConnectionTrait,
    event_id: &str,
    runs: Vec<NewRun>,
    stored: &[Stored],
    traceparent: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let queued: Vec<String> = stored.iter().filter(|s| s.state == RunState::Queued).map(|s| s.run_id.clone()).collect();
    run::Entity::insert_many(runs.into_iter().zip(stored).map(|(r, s)| run::ActiveModel {
        id: Set(r.id),
        event_id: Set(event_id.to_string()),
        vendor: Set(r.vendor),
        workflow: Set(r.workflow),
        person_key: Set(r.person_key),
        state: Set(s.state),
        input: Set(r.input),
        attempts: Set(0),
        dispatch_seq: Set(0),
        next_attempt_at: Set(r.start_at.filter(|_| s.state == RunState::Scheduled).unwrap_or(now)),
        occurred_at: Set(r.occurred_at),
        effective_at: Set(r.effective_at),
        superseded_by: Set(s.superseded_by.clone()),
        outcome: Set(s.superseded_by.as_ref().map(|newer| crate::time::superseded_outcome(newer))),
        dispatched_at: Set(None),
        lease_owner: Set(None),
        lease_until: Set(None),
        blocked_by: Set(None),
        last_error: Set(None),
        access: Set(None),
        replays: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        started_at: Set(None),
        finished_at: Set((s.state == RunState::Superseded).then_some(now)),
        traceparent: Set(traceparent.clone()),
        ..Default::default()
    }))
    .exec_without_returning(txn)
    .await?;
    // Scheduled runs are published by the scheduler when they are due.
    if queued.is_empty() {
        return Ok(());
    }
    outbox::Entity::insert_many(queued.into_iter().map(|run_id| outbox::ActiveModel {
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
