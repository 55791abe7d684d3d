//! What a vendor webhook delivery writes, in one transaction: the delivery
//! (an `events` row under its delivery key), the runs it starts with their
//! outbox rows, the drift it reveals, and the waiting runs it ends.

use crate::drift::{self, NewDrift};
use crate::entity::run;
use crate::events::{find_by_key, insert_all, Accepted, NewEvent, NewRun};
use crate::{Result, StoreError};
use chrono::Utc;
use lifecycle_domain::RunState;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, SqlErr, TransactionTrait};

/// A waiting run (queued or retry_scheduled, held by no worker) to end.
#[derive(Debug, Clone)]
pub struct RunEnding {
    pub run_id: String,
    /// The dispatch sequence it was read with: if it moved on, it is left alone.
    pub dispatch_seq: i64,
    pub state: RunState,
    pub outcome: String,
    pub access: Option<lifecycle_domain::Access>,
}

pub struct Recorded {
    pub accepted: Accepted,
    /// The runs that were ended (a run a worker claimed meanwhile is not).
    pub ended: Vec<String>,
}

pub async fn record<C>(
    db: &C,
    ev: NewEvent,
    runs: Vec<NewRun>,
    drift_rows: Vec<NewDrift>,
    endings: Vec<RunEnding>,
) -> Result<Recorded>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let (source, key, event_id) = (ev.source.clone(), ev.idempotency_key.clone(), ev.id.clone());
    let body = ev.response_body.clone();
    let txn = crate::begin_write(db).await?;
    let result: Result<Vec<String>> = async {
        // A webhook reacts to what already happened at Pipedrive: its runs
        // neither supersede HR's scheduled runs nor are superseded by them.
        // Its runs reassign deals, which is not destructive: no threshold applies.
        insert_all(&txn, ev, runs, now, false, &Default::default()).await?;
        for d in drift_rows {
            drift::record(&txn, d, Some(&event_id), now).await?;
        }
        let mut ended = Vec::new();
        for e in endings {
            if end_unheld(&txn, &e).await? {
                ended.push(e.run_id);
            }
        }
        Ok(ended)
    }
    .await;
    match result {
        Ok(ended) => {
            txn.commit().await?;
            Ok(Recorded { accepted: Accepted::Created { intake: Default::default(), body }, ended })
        }
        Err(StoreError::Db(e)) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            txn.rollback().await?;
            let existing = find_by_key(db, &source, &key)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("delivery key {key} conflicted but no event holds it")))?;
            Ok(Recorded { accepted: Accepted::Existing(Box::new(existing)), ended: Vec::new() })
        }
        Err(e) => Err(e),
    }
}

async fn end_unheld(db: &impl ConnectionTrait, e: &RunEnding) -> Result<bool> {
    let now = Utc::now();
    let res = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(e.state))
        .col_expr(run::Column::Outcome, Expr::value(e.outcome.as_str()))
        .col_expr(run::Column::Access, Expr::value(e.access))
        .col_expr(run::Column::BlockedBy, Expr::value(Option::<String>::None))
        .col_expr(run::Column::FinishedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        // A message still on its way for it becomes stale.
        .col_expr(run::Column::DispatchSeq, Expr::col(run::Column::DispatchSeq).add(1))
        .filter(run::Column::Id.eq(e.run_id.as_str()))
        .filter(run::Column::DispatchSeq.eq(e.dispatch_seq))
        .filter(run::Column::State.is_in(RunState::WAITING))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
