//! Time: runs that wait for their event's `effective_at` (`scheduled`), runs
//! that a newer event supersedes, and runs withdrawn before they start.
//!
//! Effects for one person at one vendor follow when the change happened
//! (`occurred_at`, or the arrival time when the event gave none), not the
//! order events arrive in. This is decided when an event is stored, inside
//! its transaction (see [`arrange`]), so a run that lost never reaches a
//! worker: an event older than one already applied, running or scheduled for
//! that person and vendor is stored `superseded`; a newer one replaces what is
//! still scheduled. Equal times fall back to arrival order (the newcomer wins).

use crate::entity::run;
use crate::new_run::NewRun;
use crate::runs::lock_person;
use crate::Result;
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use sea_orm::sea_query::{Expr, Func, SimpleExpr};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// What storing one new run did to the order of its person's runs.
pub struct Order {
    /// The newer event that wins over the new run (it is stored `superseded`).
    pub superseded_by: Option<String>,
    /// Scheduled runs of the same person and vendor that the new run replaced.
    pub replaced: Vec<String>,
}

/// When a run's change happened, for ordering: `occurred_at`, else its arrival.
fn happened() -> SimpleExpr {
    Func::coalesce([Expr::col(run::Column::OccurredAt).into(), Expr::col(run::Column::CreatedAt).into()]).into()
}

pub(crate) fn superseded_outcome(newer_event: &str) -> String {
    format!(
        "superseded by event {newer_event}, which happened later for the same person at this vendor; nothing was done"
    )
}

/// Decides the new run's place among its person's runs at its vendor, and
/// supersedes the scheduled runs it replaces. Call inside the transaction that
/// stores the run (on PostgreSQL it takes the person's lock until the commit).
pub(crate) async fn arrange(
    txn: &impl ConnectionTrait,
    event_id: &str,
    new: &NewRun,
    now: DateTime<Utc>,
) -> Result<Order> {
    lock_person(txn, new.vendor, &new.person_key).await?;
    let when = new.occurred_at.unwrap_or(now);
    let person = || {
        run::Entity::find()
            .filter(run::Column::Vendor.eq(new.vendor))
            .filter(run::Column::PersonKey.eq(&new.person_key))
    };
    // One query for both questions (is a newer event there? what is still
    // scheduled?): for a new person, the usual case, it finds nothing.
    let is_newer = |r: &run::Model| {
        !RunState::NEVER_RAN.contains(&r.state)
            // A Pipedrive webhook's follow-up (deal reassignment) is no HR event:
            // dated by its arrival, it must not supersede an HR event that happened earlier.
            && r.workflow != Workflow::ReassignDeals
            && r.occurred_at.unwrap_or(r.created_at) > when
    };
    // A run awaiting an approver is replaced as a scheduled one is: a later
    // event (a leaver) never waits behind an unapproved joiner.
    let replaceable = [RunState::Scheduled, RunState::AwaitingApproval];
    let candidates = person()
        .filter(Condition::any().add(Expr::expr(happened()).gt(when)).add(run::Column::State.is_in(replaceable)))
        .all(txn)
        .await?;
    if let Some(newer) = candidates.iter().filter(|r| is_newer(r)).max_by_key(|r| r.occurred_at.unwrap_or(r.created_at))
    {
        return Ok(Order { superseded_by: Some(newer.event_id.clone()), replaced: Vec::new() });
    }
    let scheduled: Vec<String> =
        candidates.into_iter().filter(|r| replaceable.contains(&r.state)).map(|r| r.id).collect();
    if !scheduled.is_empty() {
        run::Entity::update_many()
            .col_expr(run::Column::State, Expr::value(RunState::Superseded))
            .col_expr(run::Column::SupersededBy, Expr::value(event_id))
            .col_expr(
                run::Column::Outcome,
                Expr::value(format!(
                    "replaced by event {event_id}, a later event for the same person at this vendor, before it was due"
                )),
            )
            .col_expr(run::Column::FinishedAt, Expr::value(now))
            .col_expr(run::Column::UpdatedAt, Expr::value(now))
            .col_expr(run::Column::DispatchSeq, Expr::col(run::Column::DispatchSeq).add(1))
            .filter(run::Column::Id.is_in(scheduled.iter().cloned()))
            .filter(run::Column::State.is_in(replaceable))
            .exec(txn)
            .await?;
    }
    Ok(Order { superseded_by: None, replaced: scheduled })
}

/// Which runs a cancellation withdrew, and which it found already started.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cancelled {
    pub cancelled: Vec<String>,
    pub started: Vec<String>,
}

/// Runs that have not started: scheduled, held (by the blast-radius guard),
/// or queued and never claimed.
fn not_started() -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(run::Column::State.is_in([RunState::Scheduled, RunState::Held, RunState::AwaitingApproval]))
        .add(
            sea_orm::Condition::all()
                .add(run::Column::State.eq(RunState::Queued))
                .add(run::Column::StartedAt.is_null()),
        )
}

/// Cancels `candidates` that have not started, each with one guarded update
/// (a worker's claim and this cannot both win). The rest are reported started.
async fn cancel_each(db: &impl ConnectionTrait, candidates: Vec<run::Model>, why: &str) -> Result<Cancelled> {
    let now = Utc::now();
    let mut out = Cancelled::default();
    for r in candidates {
        let res = run::Entity::update_many()
            .col_expr(run::Column::State, Expr::value(RunState::Cancelled))
            .col_expr(run::Column::Outcome, Expr::value(why))
            .col_expr(run::Column::BlockedBy, Expr::value(Option::<String>::None))
            .col_expr(run::Column::FinishedAt, Expr::value(now))
            .col_expr(run::Column::UpdatedAt, Expr::value(now))
            .col_expr(run::Column::DispatchSeq, Expr::col(run::Column::DispatchSeq).add(1))
            .filter(run::Column::Id.eq(&r.id))
            .filter(not_started())
            .exec(db)
            .await?;
        if res.rows_affected == 1 {
            out.cancelled.push(r.id);
        } else {
            out.started.push(r.id);
        }
    }
    Ok(out)
}

/// One run, if it has not started (an operator's cancel).
pub async fn cancel_run(db: &impl ConnectionTrait, run_id: &str, by: &str) -> Result<Cancelled> {
    let runs = run::Entity::find().filter(run::Column::Id.eq(run_id)).all(db).await?;
    cancel_each(db, runs, &format!("cancelled by {by} before it started")).await
}

/// Scheduled runs due before `until`, soonest first (the upcoming view).
pub async fn scheduled_until(db: &impl ConnectionTrait, until: DateTime<Utc>, limit: u64) -> Result<Vec<run::Model>> {
    scheduled_where(db, run::Column::NextAttemptAt.lt(until), limit).await
}

/// Scheduled runs whose start matches `when`, soonest first.
async fn scheduled_where(db: &impl ConnectionTrait, when: SimpleExpr, limit: u64) -> Result<Vec<run::Model>> {
    Ok(run::Entity::find()
        .filter(run::Column::State.eq(RunState::Scheduled))
        .filter(when)
        .order_by_asc(run::Column::NextAttemptAt)
        .order_by_asc(run::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

/// `POST /v1/events/{id}/cancel`: the event's runs that have not started are
/// cancelled; the others (started, or ended) are reported as started.
pub async fn cancel_event(db: &impl ConnectionTrait, event_id: &str, by: &str) -> Result<Cancelled> {
    // Superseded and cancelled runs never ran: neither cancelled nor started.
    let runs = run::Entity::find()
        .filter(run::Column::EventId.eq(event_id))
        .filter(run::Column::State.is_not_in(RunState::NEVER_RAN))
        .order_by_asc(run::Column::Seq)
        .all(db)
        .await?;
    cancel_each(db, runs, &format!("cancelled by {by} before it started")).await
}

/// A `cancel` event from `source`: the person's runs at `vendors`, of events
/// from that same source, that have not started are cancelled; their
/// unfinished runs that have started are reported. Runs of other sources'
/// events (SCIM, webhooks, reconcile fixes) are neither touched nor named.
pub async fn cancel_person(
    db: &impl ConnectionTrait,
    person_key: &str,
    vendors: &[VendorKind],
    source: &str,
    by_event: &str,
) -> Result<Cancelled> {
    let same_source = sea_orm::sea_query::Query::select()
        .column(crate::entity::event::Column::Id)
        .from(crate::entity::event::Entity)
        .and_where(crate::entity::event::Column::Source.eq(source))
        .to_owned();
    let runs = run::Entity::find()
        .filter(run::Column::PersonKey.eq(person_key))
        .filter(run::Column::EventId.in_subquery(same_source))
        .filter(run::Column::Vendor.is_in(vendors.iter().copied()))
        .filter(run::Column::State.is_in(RunState::UNFINISHED))
        .order_by_asc(run::Column::Seq)
        .all(db)
        .await?;
    cancel_each(db, runs, &format!("cancelled by event {by_event} (HR withdrew it) before it started")).await
}

/// Scheduled runs whose time has come, earliest first.
pub async fn due(db: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<run::Model>> {
    scheduled_where(db, run::Column::NextAttemptAt.lte(now), limit).await
}

/// Moves a due scheduled run to `queued` with a new dispatch sequence (one
/// scheduler wins when several race). Returns the sequence to publish.
pub async fn start_due(db: &impl ConnectionTrait, id: &str, expected_seq: i64) -> Result<Option<i64>> {
    let now = Utc::now();
    let res = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::Queued))
        .col_expr(run::Column::DispatchSeq, Expr::value(expected_seq + 1))
        .col_expr(run::Column::DispatchedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::DispatchSeq.eq(expected_seq))
        .filter(run::Column::State.eq(RunState::Scheduled))
        .exec(db)
        .await?;
    Ok((res.rows_affected == 1).then_some(expected_seq + 1))
}

/// What became of a due run in [`start_due_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Now `queued` with this dispatch sequence: publish it.
    Queued(i64),
    /// Past a blast-radius threshold: `held`, not to be published.
    Held,
    /// Its vendor × workflow needs an approver (`[approval]`): `awaiting_approval`, not to be published.
    AwaitingApproval,
    /// Another scheduler won it (or HR withdrew it meanwhile).
    Lost,
}

/// [`start_due`] for a batch of due runs, in one transaction: one commit
/// (and on SQLite one take of the write lock) for the batch rather than one
/// per run, so many runs due at the same moment are released together.
/// Destructive runs past one of `guard`'s thresholds are `held` instead, in
/// the same transaction (see [`crate::safety`]). Publish only after it
/// returns: a worker must not see the message before the run is `queued`.
pub async fn start_due_many<C>(db: &C, guard: &crate::safety::Guard, runs: &[Due]) -> Result<Vec<Started>>
where
    C: ConnectionTrait + sea_orm::TransactionTrait,
{
    let txn = crate::begin_write(db).await?;
    let mut out = Vec::with_capacity(runs.len());
    // The updates come first: on SQLite the transaction must write before it
    // reads (see `events::insert_all`); the guard then judges the winners.
    for r in runs {
        out.push(match start_due(&txn, &r.id, r.dispatch_seq).await? {
            Some(seq) => Started::Queued(seq),
            None => Started::Lost,
        });
    }
    let won: Vec<usize> = (0..runs.len()).filter(|&i| matches!(out[i], Started::Queued(_))).collect();
    let candidates: Vec<crate::safety::Candidate> = won
        .iter()
        .map(|&i| crate::safety::Candidate {
            run_id: runs[i].id.clone(),
            vendor: runs[i].vendor,
            workflow: runs[i].workflow,
        })
        .collect();
    let held = crate::safety::admit(&txn, guard, &candidates, Utc::now()).await?;
    let held_ids: Vec<String> = won.iter().zip(&held).filter(|(_, h)| **h).map(|(&i, _)| runs[i].id.clone()).collect();
    if !held_ids.is_empty() {
        run::Entity::update_many()
            .col_expr(run::Column::State, Expr::value(RunState::Held))
            .filter(run::Column::Id.is_in(held_ids))
            .filter(run::Column::State.eq(RunState::Queued))
            .exec(&txn)
            .await?;
        for (&i, h) in won.iter().zip(&held) {
            if *h {
                out[i] = Started::Held;
            }
        }
    }
    // Approvals (`[approval]`): a due run that matches awaits an approver.
    if !guard.approvals.is_off() {
        let queued: Vec<usize> = (0..runs.len()).filter(|&i| matches!(out[i], Started::Queued(_))).collect();
        let ids: Vec<String> = queued.iter().map(|&i| runs[i].id.clone()).collect();
        let inputs: std::collections::HashMap<String, String> = run::Entity::find()
            .filter(run::Column::Id.is_in(ids))
            .all(&txn)
            .await?
            .into_iter()
            .map(|r| (r.id, r.input))
            .collect();
        let asked: Vec<crate::approvals::Candidate> = queued
            .iter()
            .map(|&i| crate::approvals::Candidate {
                run_id: &runs[i].id,
                vendor: runs[i].vendor,
                workflow: runs[i].workflow,
                input: inputs.get(&runs[i].id).map(String::as_str).unwrap_or(""),
            })
            .collect();
        let awaiting = crate::approvals::request(&txn, &guard.approvals, &asked, Utc::now()).await?;
        let awaiting_ids: Vec<String> =
            queued.iter().zip(&awaiting).filter(|(_, a)| **a).map(|(&i, _)| runs[i].id.clone()).collect();
        if !awaiting_ids.is_empty() {
            run::Entity::update_many()
                .col_expr(run::Column::State, Expr::value(RunState::AwaitingApproval))
                .filter(run::Column::Id.is_in(awaiting_ids))
                .filter(run::Column::State.eq(RunState::Queued))
                .exec(&txn)
                .await?;
            for (&i, a) in queued.iter().zip(&awaiting) {
                if *a {
                    out[i] = Started::AwaitingApproval;
                }
            }
        }
    }
    txn.commit().await?;
    Ok(out)
}

/// A due scheduled run, as [`start_due_many`] takes it.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub dispatch_seq: i64,
    pub vendor: VendorKind,
    pub workflow: Workflow,
}
