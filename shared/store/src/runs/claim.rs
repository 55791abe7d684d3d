//! Claiming a run: one worker wins it, for a lease it keeps extending.

use super::*;

/// Which run a claim is for, and where it stands in its person's order at
/// its vendor: all a claim's guards read of it (none of these ever change).
#[derive(Debug, Clone, Copy)]
pub struct ClaimOf<'a> {
    pub id: &'a str,
    pub vendor: VendorKind,
    pub person_key: &'a str,
    pub seq: i64,
}

impl<'a> From<&'a Run> for ClaimOf<'a> {
    fn from(run: &'a Run) -> Self {
        ClaimOf { id: &run.id, vendor: run.vendor, person_key: &run.person_key, seq: run.seq }
    }
}

/// Takes the run for `owner` until `now + lease`. Wins only if the message's
/// dispatch sequence is current, the run is waiting or running under an
/// expired lease (its worker died), and no earlier run for the same person and
/// vendor is unfinished (one may have been replayed since the caller looked).
pub async fn claim<'a, C: ConnectionTrait + TransactionTrait>(
    db: &C,
    run: impl Into<ClaimOf<'a>>,
    dispatch_seq: i64,
    owner: &str,
    lease: Duration,
) -> Result<bool> {
    let run = run.into();
    if db.get_database_backend() != DbBackend::Postgres {
        return claim_unlocked(db, run, dispatch_seq, owner, lease).await;
    }
    let txn = db.begin().await?;
    lock_person(&txn, run.vendor, run.person_key).await?;
    let won = claim_unlocked(&txn, run, dispatch_seq, owner, lease).await?;
    txn.commit().await?;
    Ok(won)
}

async fn claim_unlocked(
    db: &impl ConnectionTrait,
    run: ClaimOf<'_>,
    dispatch_seq: i64,
    owner: &str,
    lease: Duration,
) -> Result<bool> {
    let now = Utc::now();
    let res = take_lease(run::Entity::update_many(), owner, lease, now)
        .filter(run::Column::Id.eq(run.id))
        .filter(run::Column::DispatchSeq.eq(dispatch_seq))
        .filter(none_match(earlier_unfinished_of(run.vendor, run.person_key, run.seq)))
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
