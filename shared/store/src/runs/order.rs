//! One person's runs at one vendor, in arrival order: waiting, waking, redispatching, replaying.

use super::*;

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
