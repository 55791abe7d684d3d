//! Ending an attempt while holding the run: finished, retried later, or handed back.

use super::*;

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
