//! Runs and their state machine.
//!
//! ```text
//! queued ──claim──▶ running ──▶ succeeded | needs_manual_action | dead
//!    ▲                 │
//!    │                 └──transient failure──▶ retry_scheduled ──claim──▶ running
//!    └──────── operator replay of a dead run ─────────────────────────────┘
//! ```
//!
//! Every transition is a conditional update; the caller learns from the
//! affected row count whether it won.

use crate::entity::run;
use crate::Result;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use sea_orm::sea_query::{Alias, Expr, Func, LikeExpr, Order, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, Iterable, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait, UpdateMany,
};
use std::time::Duration;

pub use run::Model as Run;

fn chrono(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

fn unfinished() -> SimpleExpr {
    run::Column::State.is_in(RunState::UNFINISHED)
}

/// The runs for the same person and vendor that arrived before `seq` and are
/// unfinished. A `scheduled` run holds nothing back until it is due: an HR
/// run never waits behind one (a newer event replaces what is scheduled, an
/// older one is superseded), and a Pipedrive webhook's follow-up reacts to
/// what already happened there, not on the scheduled run's day.
fn earlier_unfinished_of(vendor: VendorKind, person_key: &str, seq: i64) -> Condition {
    Condition::all()
        .add(run::Column::Vendor.eq(vendor))
        .add(run::Column::PersonKey.eq(person_key))
        .add(run::Column::Seq.lt(seq))
        .add(unfinished())
        .add(run::Column::State.ne(RunState::Scheduled))
}

/// The runs for the same person and vendor that arrived after `seq` and have started or ended.
fn later_started_of(vendor: VendorKind, person_key: &str, seq: i64) -> Condition {
    Condition::all()
        .add(run::Column::Vendor.eq(vendor))
        .add(run::Column::PersonKey.eq(person_key))
        .add(run::Column::Seq.gt(seq))
        .add(Condition::any().add(run::Column::Attempts.gt(0)).add(run::Column::State.is_in(APPLIED)))
}

/// Terminal states that reached the vendor (or tried): not superseded or
/// cancelled runs, which never ran.
const APPLIED: [RunState; 3] = [RunState::Succeeded, RunState::NeedsManualAction, RunState::Dead];

/// True when no run matches `cond`: a guard inside a transition's own update,
/// so that a check made just before cannot be overtaken by another writer.
fn none_match(cond: Condition) -> SimpleExpr {
    Expr::exists(Query::select().expr(Expr::val(1)).from(run::Entity).cond_where(cond).to_owned()).not()
}

/// Serializes, until the end of the caller's transaction, the transitions whose
/// guards look at other runs of one person at one vendor (a claim, a replay).
/// PostgreSQL needs it: two READ COMMITTED transactions would each pass the
/// other's not-yet-committed guard. SQLite already has one writer at a time.
pub async fn lock_person(txn: &impl ConnectionTrait, vendor: VendorKind, person_key: &str) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        let key = format!("lifecycle-run-order\u{1f}{vendor}\u{1f}{person_key}");
        txn.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<Run>> {
    Ok(run::Entity::find().filter(run::Column::Id.eq(id)).one(db).await?)
}

pub async fn for_event(db: &impl ConnectionTrait, event_id: &str) -> Result<Vec<Run>> {
    Ok(run::Entity::find().filter(run::Column::EventId.eq(event_id)).order_by_asc(run::Column::Seq).all(db).await?)
}

/// Takes the run for `owner` until `now + lease`. Wins only if the message's
/// dispatch sequence is current, the run is waiting or running under an
/// expired lease (its worker died), and no earlier run for the same person and
/// vendor is unfinished (one may have been replayed since the caller looked).
pub async fn claim<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    run: &Run,
    dispatch_seq: i64,
    owner: &str,
    lease: Duration,
) -> Result<bool> {
    if db.get_database_backend() != DbBackend::Postgres {
        return claim_unlocked(db, run, dispatch_seq, owner, lease).await;
    }
    let txn = db.begin().await?;
    lock_person(&txn, run.vendor, &run.person_key).await?;
    let won = claim_unlocked(&txn, run, dispatch_seq, owner, lease).await?;
    txn.commit().await?;
    Ok(won)
}

async fn claim_unlocked(
    db: &impl ConnectionTrait,
    run: &Run,
    dispatch_seq: i64,
    owner: &str,
    lease: Duration,
) -> Result<bool> {
    let now = Utc::now();
    let res = take_lease(run::Entity::update_many(), owner, lease, now)
        .filter(run::Column::Id.eq(&run.id))
        .filter(run::Column::DispatchSeq.eq(dispatch_seq))
        .filter(none_match(earlier_unfinished_of(run.vendor, &run.person_key, run.seq)))
        .filter(claimable(now))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// A run claimed by [`claim_as_sent`]: as it stood just before the claim
/// (its `attempts` not yet counting this one), and whether it has a journal.
#[derive(Debug)]
pub struct Claimed {
    pub run: Run,
    pub has_journal: bool,
}

/// SQLite only: claims the run a message names in one statement, when it is
/// ready as sent (the message's dispatch sequence is current, it is due
/// within `early`, it is waiting or its worker's lease expired, and no earlier
/// run for the same person and vendor is unfinished), returning the run
/// (`UPDATE … RETURNING`) instead of reading it first. None: it was not, and
/// the caller reads it to find out why. (PostgreSQL claims inside a short
/// transaction holding the person's lock: see [`claim`].)
pub async fn claim_as_sent(
    db: &impl ConnectionTrait,
    run_id: &str,
    dispatch_seq: i64,
    owner: &str,
    lease: Duration,
    early: Duration,
) -> Result<Option<Claimed>> {
    debug_assert_eq!(db.get_database_backend(), DbBackend::Sqlite);
    let now = Utc::now();
    let earlier = Alias::new("earlier");
    let earlier_unfinished = Query::select()
        .expr(Expr::val(1))
        .from_as(run::Entity, earlier.clone())
        .and_where(Expr::col((earlier.clone(), run::Column::Vendor)).equals((run::Entity, run::Column::Vendor)))
        .and_where(Expr::col((earlier.clone(), run::Column::PersonKey)).equals((run::Entity, run::Column::PersonKey)))
        .and_where(Expr::col((earlier.clone(), run::Column::Seq)).lt(Expr::col((run::Entity, run::Column::Seq))))
        .and_where(Expr::col((earlier.clone(), run::Column::State)).is_in(RunState::UNFINISHED))
        // As in `earlier_unfinished_of`: a scheduled run holds nothing back.
        .and_where(Expr::col((earlier, run::Column::State)).ne(RunState::Scheduled))
        .to_owned();
    let journal = Query::select()
        .expr(Expr::val(1))
        .from(crate::entity::step::Entity)
        .and_where(
            Expr::col((crate::entity::step::Entity, crate::entity::step::Column::RunId))
                .equals((run::Entity, run::Column::Id)),
        )
        .to_owned();
    let update = take_lease(run::Entity::update_many(), owner, lease, now)
        .filter(run::Column::Id.eq(run_id))
        .filter(run::Column::DispatchSeq.eq(dispatch_seq))
        .filter(run::Column::NextAttemptAt.lte(now + chrono(early)))
        .filter(Expr::exists(earlier_unfinished).not())
        .filter(claimable(now));
    let mut stmt = update.into_query();
    let mut returned: Vec<SimpleExpr> = run::Column::iter().map(|c| Expr::col((run::Entity, c)).into()).collect();
    returned.push(Expr::exists(journal));
    stmt.returning(Query::returning().exprs(returned));
    let Some(row) = db.query_one(db.get_database_backend().build(&stmt)).await? else {
        return Ok(None);
    };
    let mut run = Run::from_query_result(&row, "")?;
    let has_journal = row.try_get_by_index::<bool>(run::Column::iter().count())?;
    // As it stood before this claim, which the caller counts the attempt from.
    run.attempts -= 1;
    Ok(Some(Claimed { run, has_journal }))
}

/// The claim's changes: the run is `owner`'s until `now + lease`, one more
/// attempt, started (if it was not already), no longer waiting for anyone.
fn take_lease(
    update: UpdateMany<run::Entity>,
    owner: &str,
    lease: Duration,
    now: DateTime<Utc>,
) -> UpdateMany<run::Entity> {
    update
        .col_expr(run::Column::State, Expr::value(RunState::Running))
        .col_expr(run::Column::LeaseOwner, Expr::value(owner))
        .col_expr(run::Column::LeaseUntil, Expr::value(now + chrono(lease)))
        .col_expr(run::Column::Attempts, Expr::col(run::Column::Attempts).add(1))
        .col_expr(run::Column::BlockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            run::Column::StartedAt,
            Func::coalesce([Expr::col(run::Column::StartedAt).into(), Expr::value(now)]).into(),
        )
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
}

/// A run that can be claimed: waiting, or running under a lease that ran out (its worker died).
fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(run::Column::State.is_in(RunState::WAITING))
        .add(Condition::all().add(run::Column::State.eq(RunState::Running)).add(run::Column::LeaseUntil.lt(now)))
}

/// Keeps the lease alive while the worker is still working. False means the
/// lease was lost (another worker took the run over).
pub async fn extend_lease(db: &impl ConnectionTrait, id: &str, owner: &str, lease: Duration) -> Result<bool> {
    let now = Utc::now();
    let res = run::Entity::update_many()
        .col_expr(run::Column::LeaseUntil, Expr::value(now + chrono(lease)))
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::State.eq(RunState::Running))
        .filter(run::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Gives up the lease, and applies only while `owner` still holds the run:
/// a worker whose lease was taken over can no longer change it.
fn while_held(update: UpdateMany<run::Entity>, id: &str, owner: &str) -> UpdateMany<run::Entity> {
    update
        .col_expr(run::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(run::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::State.eq(RunState::Running))
        .filter(run::Column::LeaseOwner.eq(owner))
}

/// How a run ended.
pub struct Finish<'a> {
    pub state: RunState,
    pub outcome: &'a str,
    pub access: Option<lifecycle_domain::Access>,
    pub last_error: Option<&'a str>,
}

/// Records a terminal state, if `owner` still holds the run.
pub async fn finish(db: &impl ConnectionTrait, id: &str, owner: &str, f: Finish<'_>) -> Result<bool> {
    Ok(finish_then_next(db, id, owner, f).await?.is_some())
}

/// How [`finish_then_next`] went: the run ended, and this is the id of the
/// earliest unfinished run after it for the same person and vendor, if any
/// (the one that may be waiting for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub next: Option<String>,
}

/// Records a terminal state, if `owner` still holds the run (None if not),
/// and in the same statement finds whether a later run for the same person
/// and vendor is unfinished: the common answer, no, costs no second query.
pub async fn finish_then_next(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    f: Finish<'_>,
) -> Result<Option<Ended>> {
    debug_assert!(f.state.is_terminal());
    let now = Utc::now();
    let mut update = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(f.state))
        .col_expr(run::Column::Outcome, Expr::value(f.outcome))
        .col_expr(run::Column::FinishedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now));
    if let Some(access) = f.access {
        update = update.col_expr(run::Column::Access, Expr::value(access));
    }
    if let Some(err) = f.last_error {
        update = update.col_expr(run::Column::LastError, Expr::value(err));
    }
    let later = Alias::new("later");
    let next = Query::select()
        .column((later.clone(), run::Column::Id))
        .from_as(run::Entity, later.clone())
        .and_where(Expr::col((later.clone(), run::Column::Vendor)).equals((run::Entity, run::Column::Vendor)))
        .and_where(Expr::col((later.clone(), run::Column::PersonKey)).equals((run::Entity, run::Column::PersonKey)))
        .and_where(Expr::col((later.clone(), run::Column::Seq)).gt(Expr::col((run::Entity, run::Column::Seq))))
        .and_where(Expr::col((later.clone(), run::Column::State)).is_in(RunState::UNFINISHED))
        .order_by((later, run::Column::Seq), Order::Asc)
        .limit(1)
        .to_owned();
    let mut stmt = while_held(update, id, owner).into_query();
    stmt.returning(Query::returning().expr(SimpleExpr::SubQuery(None, Box::new(next.into_sub_query_statement()))));
    let Some(row) = db.query_one(db.get_database_backend().build(&stmt)).await? else {
        return Ok(None);
    };
    Ok(Some(Ended { next: row.try_get_by_index::<Option<String>>(0)? }))
}

/// Ends a run that is not currently held by a worker (it was never started,
/// or it is waiting to retry): gave up at once, or ended by an outside fact.
pub async fn finish_unheld(
    db: &impl ConnectionTrait,
    id: &str,
    dispatch_seq: i64,
    state: RunState,
    outcome: &str,
) -> Result<bool> {
    let now = Utc::now();
    let res = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(state))
        .col_expr(run::Column::Outcome, Expr::value(outcome))
        .col_expr(run::Column::BlockedBy, Expr::value(Option::<String>::None))
        .col_expr(run::Column::FinishedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .col_expr(run::Column::DispatchSeq, Expr::col(run::Column::DispatchSeq).add(1))
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::DispatchSeq.eq(dispatch_seq))
        .filter(run::Column::State.is_in(RunState::WAITING))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Moves a running run to `retry_scheduled` at `at`, with a new dispatch
/// sequence for the delayed message. Returns that sequence, or None if the
/// lease was lost.
pub async fn schedule_retry(
    db: &impl ConnectionTrait,
    id: &str,
    owner: &str,
    current_seq: i64,
    at: DateTime<Utc>,
    error: &str,
) -> Result<Option<i64>> {
    let now = Utc::now();
    let update = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::RetryScheduled))
        .col_expr(run::Column::DispatchSeq, Expr::value(current_seq + 1))
        .col_expr(run::Column::NextAttemptAt, Expr::value(at))
        .col_expr(run::Column::DispatchedAt, Expr::value(now))
        .col_expr(run::Column::LastError, Expr::value(error))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::DispatchSeq.eq(current_seq));
    let res = while_held(update, id, owner).exec(db).await?;
    Ok((res.rows_affected == 1).then_some(current_seq + 1))
}

/// Gives a run back untouched (the worker is shutting down between steps):
/// the attempt does not count, and the same message stays valid.
pub async fn release(db: &impl ConnectionTrait, id: &str, owner: &str) -> Result<bool> {
    let now = Utc::now();
    let update = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::RetryScheduled))
        .col_expr(run::Column::NextAttemptAt, Expr::value(now))
        .col_expr(run::Column::Attempts, Expr::col(run::Column::Attempts).sub(1))
        .col_expr(run::Column::UpdatedAt, Expr::value(now));
    let res = while_held(update, id, owner).exec(db).await?;
    Ok(res.rows_affected == 1)
}

/// The earliest unfinished run for the same person and vendor that arrived
/// before `seq`: while one exists, the run at `seq` must wait.
pub async fn earlier_unfinished(
    db: &impl ConnectionTrait,
    vendor: VendorKind,
    person_key: &str,
    seq: i64,
) -> Result<Option<Run>> {
    Ok(run::Entity::find()
        .filter(earlier_unfinished_of(vendor, person_key, seq))
        .order_by_asc(run::Column::Seq)
        .one(db)
        .await?)
}

/// The earliest unfinished run for the same person and vendor after `seq`:
/// the one to wake when the run at `seq` ends.
pub async fn next_unfinished(
    db: &impl ConnectionTrait,
    vendor: VendorKind,
    person_key: &str,
    seq: i64,
) -> Result<Option<Run>> {
    Ok(run::Entity::find()
        .filter(run::Column::Vendor.eq(vendor))
        .filter(run::Column::PersonKey.eq(person_key))
        .filter(run::Column::Seq.gt(seq))
        .filter(unfinished())
        .order_by_asc(run::Column::Seq)
        .one(db)
        .await?)
}

/// A later run for the same person and vendor that has already started or
/// ended: replaying the run at `seq` would apply its effects out of order.
pub async fn later_started(
    db: &impl ConnectionTrait,
    vendor: VendorKind,
    person_key: &str,
    seq: i64,
) -> Result<Option<Run>> {
    Ok(run::Entity::find()
        .filter(later_started_of(vendor, person_key, seq))
        .order_by_asc(run::Column::Seq)
        .one(db)
        .await?)
}

/// Parks a run behind an earlier one; it is woken when that one ends, and
/// re-checked at `recheck_at` in any case.
pub async fn block(
    db: &impl ConnectionTrait,
    id: &str,
    dispatch_seq: i64,
    blocked_by: &str,
    recheck_at: DateTime<Utc>,
) -> Result<bool> {
    let res = run::Entity::update_many()
        .col_expr(run::Column::BlockedBy, Expr::value(blocked_by))
        .col_expr(run::Column::NextAttemptAt, Expr::value(recheck_at))
        .col_expr(run::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::DispatchSeq.eq(dispatch_seq))
        .filter(run::Column::State.is_in(RunState::WAITING))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Gives an unfinished run a new dispatch (sweeper, wake-up): bumps its
/// dispatch sequence so any older message for it becomes stale. With `due_now`
/// its next attempt time becomes now. Returns the new sequence if it won.
pub async fn redispatch(db: &impl ConnectionTrait, id: &str, expected_seq: i64, due_now: bool) -> Result<Option<i64>> {
    let now = Utc::now();
    let mut update = run::Entity::update_many()
        .col_expr(run::Column::DispatchSeq, Expr::value(expected_seq + 1))
        .col_expr(run::Column::DispatchedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now));
    if due_now {
        update = update.col_expr(run::Column::NextAttemptAt, Expr::value(now));
    }
    let res = update
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::DispatchSeq.eq(expected_seq))
        .filter(unfinished())
        .exec(db)
        .await?;
    Ok((res.rows_affected == 1).then_some(expected_seq + 1))
}

/// Runs whose dispatch seems lost: waiting runs overdue by more than `grace`
/// and not published within `grace`, and running runs whose lease expired
/// more than `grace` ago (their worker died and no redelivery came).
pub async fn overdue(db: &impl ConnectionTrait, grace: Duration, limit: u64) -> Result<Vec<Run>> {
    let cutoff = Utc::now() - chrono(grace);
    let last_publish: SimpleExpr =
        Func::coalesce([Expr::col(run::Column::DispatchedAt).into(), Expr::col(run::Column::CreatedAt).into()]).into();
    Ok(run::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(run::Column::State.is_in(RunState::WAITING))
                        .add(run::Column::NextAttemptAt.lt(cutoff))
                        .add(Expr::expr(last_publish).lt(cutoff)),
                )
                .add(
                    Condition::all()
                        .add(run::Column::State.eq(RunState::Running))
                        .add(run::Column::LeaseUntil.lt(cutoff)),
                ),
        )
        .order_by_asc(run::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

/// Puts a `dead` (not discarded) or `needs_manual_action` run back to work:
/// `queued`, attempts from zero, age from now, a new dispatch sequence. The
/// journal is untouched, so completed steps are not repeated and the failed
/// step is retried (in doubt). Returns the new dispatch sequence, or None if
/// the run was not in a replayable state (it changed meanwhile) or a later run
/// for the same person and vendor has started since the caller looked.
/// Call it inside a transaction: it holds [`lock_person`] until the commit.
/// `rechecked_by`: the operator who asked for a re-check (a replay of a
/// `needs_manual_action` run to see whether a person has acted), else None.
pub async fn reset_for_replay(db: &impl ConnectionTrait, run: &Run, rechecked_by: Option<&str>) -> Result<Option<i64>> {
    lock_person(db, run.vendor, &run.person_key).await?;
    let now = Utc::now();
    let expected_seq = run.dispatch_seq;
    let res = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::Queued))
        .col_expr(run::Column::Attempts, Expr::value(0))
        .col_expr(run::Column::Replays, Expr::col(run::Column::Replays).add(1))
        .col_expr(run::Column::ReplayedAt, Expr::value(now))
        .col_expr(run::Column::NextAttemptAt, Expr::value(now))
        .col_expr(run::Column::DispatchSeq, Expr::value(expected_seq + 1))
        .col_expr(run::Column::DispatchedAt, Expr::value(now))
        .col_expr(run::Column::Outcome, Expr::value(Option::<String>::None))
        .col_expr(run::Column::FinishedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(run::Column::BlockedBy, Expr::value(Option::<String>::None))
        .col_expr(run::Column::RecheckedBy, Expr::value(rechecked_by.map(str::to_string)))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(&run.id))
        .filter(run::Column::DispatchSeq.eq(expected_seq))
        .filter(run::Column::DiscardedAt.is_null())
        .filter(none_match(later_started_of(run.vendor, &run.person_key, run.seq)))
        .filter(run::Column::State.is_in([RunState::Dead, RunState::NeedsManualAction]))
        .exec(db)
        .await?;
    Ok((res.rows_affected == 1).then_some(expected_seq + 1))
}

/// Marks a dead run discarded (it stays `dead`). False if it was not a
/// dead, undiscarded run.
pub async fn discard(db: &impl ConnectionTrait, id: &str, reason: &str) -> Result<bool> {
    let now = Utc::now();
    let res = run::Entity::update_many()
        .col_expr(run::Column::DiscardedAt, Expr::value(now))
        .col_expr(run::Column::DiscardReason, Expr::value(reason))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::State.eq(RunState::Dead))
        .filter(run::Column::DiscardedAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Filters for listing runs (ctl, admin API, console).
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub states: Vec<RunState>,
    pub vendor: Option<VendorKind>,
    pub workflow: Option<Workflow>,
    /// Matches the person's e-mail (case-insensitive) or the event's employee id.
    pub employee: Option<String>,
    pub event_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// None: all; Some(false): only runs not discarded; Some(true): only discarded ones.
    pub discarded: Option<bool>,
    pub limit: Option<u64>,
}

pub async fn list(db: &impl ConnectionTrait, f: &RunFilter) -> Result<Vec<Run>> {
    let mut q = run::Entity::find();
    if !f.states.is_empty() {
        q = q.filter(run::Column::State.is_in(f.states.clone()));
    }
    if let Some(v) = f.vendor {
        q = q.filter(run::Column::Vendor.eq(v));
    }
    if let Some(w) = f.workflow {
        q = q.filter(run::Column::Workflow.eq(w));
    }
    if let Some(e) = &f.employee {
        let needle = e.to_lowercase();
        // Runs keep the person's e-mail; the employee id is in the input JSON,
        // matched literally: `%` and `_` in an id are not wildcards.
        let id = like_literal(&format!("\"id\":{}", serde_json::Value::String(e.clone())));
        q = q.filter(
            Condition::any()
                .add(run::Column::PersonKey.eq(needle))
                .add(run::Column::Input.like(LikeExpr::new(format!("%{id}%")).escape(LIKE_ESCAPE))),
        );
    }
    if let Some(id) = &f.event_id {
        q = q.filter(run::Column::EventId.eq(id.as_str()));
    }
    if let Some(t) = f.since {
        q = q.filter(run::Column::CreatedAt.gte(t));
    }
    if let Some(t) = f.until {
        q = q.filter(run::Column::CreatedAt.lt(t));
    }
    match f.discarded {
        Some(true) => q = q.filter(run::Column::DiscardedAt.is_not_null()),
        Some(false) => q = q.filter(run::Column::DiscardedAt.is_null()),
        None => {}
    }
    Ok(q.order_by_desc(run::Column::Seq).limit(f.limit).all(db).await?)
}

/// The escape character of [`like_literal`]'s patterns. Not the backslash,
/// which JSON strings use for their own escapes (and which PostgreSQL's LIKE
/// takes as its default escape, SQLite's as an ordinary character).
const LIKE_ESCAPE: char = '!';

/// `text` as a LIKE pattern that matches exactly it, with `ESCAPE '!'`.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

/// How many runs are not finished yet (cheap: no rows are loaded).
pub async fn count_unfinished(db: &impl ConnectionTrait) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(run::Entity::find().filter(unfinished()).count(db).await?)
}

/// (state, vendor) -> count, for dashboards and metrics.
pub async fn counts(db: &impl ConnectionTrait) -> Result<Vec<(RunState, VendorKind, i64)>> {
    let rows: Vec<(RunState, VendorKind, i64)> = run::Entity::find()
        .select_only()
        .column(run::Column::State)
        .column(run::Column::Vendor)
        .column_as(run::Column::Seq.count(), "n")
        .group_by(run::Column::State)
        .group_by(run::Column::Vendor)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{self, NewEvent, NewRun};

    #[test]
    fn like_literals_escape_the_wildcards_and_the_escape() {
        assert_eq!(like_literal(r#""id":"E_1%!""#), r#""id":"E!_1!%!!""#);
        assert_eq!(like_literal("plain"), "plain");
    }

    /// An in-memory database with one queued Pipedrive joiner per entry of
    /// `people` (the person's address), `run-0`, `run-1`, ... in that order.
    async fn db_with_runs(people: &[&str]) -> crate::Db {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        for (i, person) in people.iter().enumerate() {
            let ev = NewEvent {
                id: format!("ev-{i}"),
                source: "intake".into(),
                idempotency_key: format!("k-{i}"),
                payload_hash: format!("h-{i}"),
                event_type: "joiner".into(),
                employee_id: Some(format!("E-{i}")),
                employee_email: Some(person.to_string()),
                payload: "{}".into(),
                response_status: 202,
                response_body: "{}".into(),
                traceparent: None,
            };
            let run = NewRun {
                id: format!("run-{i}"),
                vendor: VendorKind::Pipedrive,
                workflow: Workflow::Joiner,
                person_key: person.to_string(),
                input: "{}".into(),
                occurred_at: None,
                effective_at: None,
                start_at: None,
            };
            events::accept(&db, ev, vec![run], None, |_| String::new()).await.unwrap();
        }
        db
    }

    /// Ending a run says, in the same statement, whether a later run for the
    /// same person and vendor is unfinished (and so may be waiting for it).
    #[tokio::test]
    async fn ending_a_run_names_the_next_unfinished_run_of_the_person() {
        let db = db_with_runs(&["ada@example.com", "ada@example.com", "alan@example.com"]).await;
        let lease = Duration::from_secs(60);
        let end = |id: &'static str| {
            let db = db.clone();
            async move {
                let run = get(&db, id).await.unwrap().unwrap();
                assert!(claim(&db, &run, run.dispatch_seq, "w1", lease).await.unwrap(), "{id} is claimed");
                let done = Finish { state: RunState::Succeeded, outcome: "done", access: None, last_error: None };
                finish_then_next(&db, id, "w1", done).await.unwrap()
            }
        };
        assert_eq!(end("run-0").await, Some(Ended { next: Some("run-1".into()) }), "ada's second run waits");
        assert_eq!(end("run-1").await, Some(Ended { next: None }), "nothing after it");
        assert_eq!(end("run-2").await, Some(Ended { next: None }), "alan's runs are his own");
        let held_by_nobody = Finish { state: RunState::Dead, outcome: "x", access: None, last_error: None };
        assert_eq!(finish_then_next(&db, "run-2", "w1", held_by_nobody).await.unwrap(), None, "not held: no write");
    }

    /// The one-statement claim of SQLite: the run as it stood, whether it has
    /// a journal, and a refusal for every message that is not ready as sent.
    #[tokio::test]
    async fn a_run_is_claimed_as_sent_in_one_statement_or_not_at_all() {
        let db = db_with_runs(&["ada@example.com", "ada@example.com"]).await;
        let (lease, early) = (Duration::from_secs(60), Duration::from_millis(250));
        assert!(claim_as_sent(&db, "run-0", 7, "w1", lease, early).await.unwrap().is_none(), "a stale sequence");
        assert!(
            claim_as_sent(&db, "run-1", 0, "w1", lease, early).await.unwrap().is_none(),
            "ada's earlier run is unfinished"
        );
        let c = claim_as_sent(&db, "run-0", 0, "w1", lease, early).await.unwrap().expect("claimed");
        assert_eq!((c.run.id.as_str(), c.run.attempts, c.has_journal), ("run-0", 0, false));
        let stored = get(&db, "run-0").await.unwrap().unwrap();
        assert_eq!((stored.state, stored.attempts, stored.lease_owner.as_deref()), (RunState::Running, 1, Some("w1")));
        assert!(claim_as_sent(&db, "run-0", 0, "w2", lease, early).await.unwrap().is_none(), "held by w1");

        // A step recorded, the run handed back: the next claim knows it has a journal.
        crate::steps::begin(&db, "run-0", "w1", "create_user", 1, None, 1).await.unwrap();
        assert!(release(&db, "run-0", "w1").await.unwrap());
        let again = claim_as_sent(&db, "run-0", 0, "w2", lease, early).await.unwrap().expect("claimed again");
        assert_eq!((again.run.attempts, again.has_journal), (0, true));
    }

    /// Every transition of a held run is guarded by its lease: a worker that
    /// lost the run (another claimed it) can neither extend, finish, retry nor
    /// hand it back; and a message's dispatch sequence guards the claim, the
    /// parking and a new dispatch.
    #[tokio::test]
    async fn transitions_of_a_held_run_belong_to_its_owner_and_its_dispatch() {
        let db = db_with_runs(&["ada@example.com", "ada@example.com"]).await;
        let lease = Duration::from_secs(60);
        let run = get(&db, "run-0").await.unwrap().unwrap();
        assert!(!claim(&db, &run, run.dispatch_seq + 1, "w1", lease).await.unwrap(), "a stale message claims nothing");
        assert!(claim(&db, &run, run.dispatch_seq, "w1", lease).await.unwrap());
        assert!(!claim(&db, &run, run.dispatch_seq, "w2", lease).await.unwrap(), "held: one worker wins");

        // Not the owner: no write of any kind.
        let done = || Finish { state: RunState::Succeeded, outcome: "done", access: None, last_error: None };
        assert!(!extend_lease(&db, "run-0", "w2", lease).await.unwrap());
        assert!(!finish(&db, "run-0", "w2", done()).await.unwrap());
        assert_eq!(schedule_retry(&db, "run-0", "w2", run.dispatch_seq, Utc::now(), "x").await.unwrap(), None);
        assert!(!release(&db, "run-0", "w2").await.unwrap());
        let held = get(&db, "run-0").await.unwrap().unwrap();
        assert_eq!((held.state, held.lease_owner.as_deref()), (RunState::Running, Some("w1")), "untouched by w2");

        // The owner: a retry with a new dispatch; the old message is now stale.
        assert!(extend_lease(&db, "run-0", "w1", lease).await.unwrap());
        let seq = schedule_retry(&db, "run-0", "w1", run.dispatch_seq, Utc::now(), "busy").await.unwrap();
        assert_eq!(seq, Some(run.dispatch_seq + 1));
        let waiting = get(&db, "run-0").await.unwrap().unwrap();
        assert_eq!(waiting.state, RunState::RetryScheduled);
        assert!(!claim(&db, &waiting, run.dispatch_seq, "w1", lease).await.unwrap(), "the old message is stale");
        assert!(!finish(&db, "run-0", "w1", done()).await.unwrap(), "a run waiting to retry is held by nobody");

        // Parking and a new dispatch are guarded by the sequence too.
        let later = get(&db, "run-1").await.unwrap().unwrap();
        let recheck = Utc::now() + chrono::Duration::seconds(60);
        assert!(!block(&db, "run-1", later.dispatch_seq + 1, "run-0", recheck).await.unwrap());
        assert!(block(&db, "run-1", later.dispatch_seq, "run-0", recheck).await.unwrap());
        assert_eq!(redispatch(&db, "run-1", later.dispatch_seq + 5, true).await.unwrap(), None, "lost the race");
        assert_eq!(redispatch(&db, "run-1", later.dispatch_seq, true).await.unwrap(), Some(later.dispatch_seq + 1));

        // Replay takes a dead run only, once.
        let dead = Finish { state: RunState::Dead, outcome: "gave up", access: None, last_error: None };
        let again = get(&db, "run-0").await.unwrap().unwrap();
        assert!(claim(&db, &again, again.dispatch_seq, "w1", lease).await.unwrap());
        assert!(finish(&db, "run-0", "w1", dead).await.unwrap());
        let ended = get(&db, "run-0").await.unwrap().unwrap();
        assert_eq!(reset_for_replay(&db, &ended, None).await.unwrap(), Some(ended.dispatch_seq + 1));
        assert_eq!(reset_for_replay(&db, &ended, None).await.unwrap(), None, "the same replay twice is one replay");
    }

    /// `%` and `_` in an employee id match themselves only; so does a backslash.
    #[tokio::test]
    async fn the_employee_filter_matches_an_id_literally() {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        let ids = ["E_1", "EX1", "E%1", "E-100", "E\\1", "E!1"];
        for (i, id) in ids.iter().enumerate() {
            let ev = NewEvent {
                id: format!("ev-{i}"),
                source: "intake".into(),
                idempotency_key: format!("k-{i}"),
                payload_hash: format!("h-{i}"),
                event_type: "joiner".into(),
                employee_id: Some(id.to_string()),
                employee_email: Some(format!("p{i}@example.com")),
                payload: "{}".into(),
                response_status: 202,
                response_body: "{}".into(),
                traceparent: None,
            };
            let input = serde_json::json!({"employee": {"id": id, "email": format!("p{i}@example.com")}});
            let run = NewRun {
                id: format!("run-{i}"),
                vendor: VendorKind::Pipedrive,
                workflow: Workflow::Joiner,
                person_key: format!("p{i}@example.com"),
                input: input.to_string(),
                occurred_at: None,
                effective_at: None,
                start_at: None,
            };
            events::accept(&db, ev, vec![run], None, |_| String::new()).await.unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            let f = RunFilter { employee: Some(id.to_string()), ..Default::default() };
            let found: Vec<String> = list(&db, &f).await.unwrap().into_iter().map(|r| r.id).collect();
            assert_eq!(found, [format!("run-{i}")], "filter {id:?}");
        }
        for wildcard in ["E%", "E_", "%", "_1"] {
            let f = RunFilter { employee: Some(wildcard.into()), ..Default::default() };
            assert!(list(&db, &f).await.unwrap().is_empty(), "{wildcard:?} matched as a wildcard");
        }
    }
}
