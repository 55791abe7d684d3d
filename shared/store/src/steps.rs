//! The step journal. A step is recorded as begun before its effect is
//! attempted and as succeeded, with its output, before the run moves on, so
//! a retry (or an operator's replay) knows what is done and what is in doubt.

use crate::entity::{step, step_attempt};
use crate::Result;
use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

pub use step::Model as Step;
pub use step_attempt::Model as StepAttempt;

pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

pub async fn load(db: &impl ConnectionTrait, run_id: &str) -> Result<Vec<Step>> {
    Ok(step::Entity::find()
        .filter(step::Column::RunId.eq(run_id))
        .order_by_asc(step::Column::Position)
        .order_by_asc(step::Column::Id)
        .all(db)
        .await?)
}

pub async fn attempts(db: &impl ConnectionTrait, run_id: &str) -> Result<Vec<StepAttempt>> {
    Ok(step_attempt::Entity::find()
        .filter(step_attempt::Column::RunId.eq(run_id))
        .order_by_asc(step_attempt::Column::Id)
        .all(db)
        .await?)
}

/// A step attempt that has begun: pass it back to `succeed` or `fail`.
#[derive(Debug, Clone, Copy)]
pub struct Begun {
    pub attempt: i32,
    pub attempt_row: i64,
}

/// Records that attempt `previous_attempts + 1` of a step starts now.
pub async fn begin<C>(
    db: &C,
    run_id: &str,
    key: &str,
    position: i32,
    previous_attempts: i32,
    run_attempt: i32,
) -> Result<Begun>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let attempt = previous_attempts + 1;
    let txn = db.begin().await?;
    if previous_attempts == 0 {
        step::Entity::insert(step::ActiveModel {
            run_id: Set(run_id.to_string()),
            key: Set(key.to_string()),
            position: Set(position),
            idempotency_key: Set(format!("{run_id}:{key}")),
            status: Set(RUNNING.into()),
            attempts: Set(attempt),
            output: Set(None),
            last_error: Set(None),
            started_at: Set(now),
            finished_at: Set(None),
            ..Default::default()
        })
        .exec_without_returning(&txn)
        .await?;
    } else {
        step::Entity::update_many()
            .col_expr(step::Column::Status, Expr::value(RUNNING))
            .col_expr(step::Column::Attempts, Expr::value(attempt))
            .filter(step::Column::RunId.eq(run_id))
            .filter(step::Column::Key.eq(key))
            .exec(&txn)
            .await?;
    }
    let row = step_attempt::Entity::insert(step_attempt::ActiveModel {
        run_id: Set(run_id.to_string()),
        step_key: Set(key.to_string()),
        attempt: Set(attempt),
        run_attempt: Set(run_attempt),
        status: Set(RUNNING.into()),
        started_at: Set(now),
        finished_at: Set(None),
        duration_ms: Set(None),
        error: Set(None),
        output: Set(None),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    Ok(Begun { attempt, attempt_row: row.last_insert_id })
}

/// Records a step's success and its output (the vendor ids it produced).
pub async fn succeed<C>(db: &C, run_id: &str, key: &str, begun: Begun, output: &str, duration_ms: i64) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    finish(db, run_id, key, begun, SUCCEEDED, Some(output), None, duration_ms).await
}

pub async fn fail<C>(db: &C, run_id: &str, key: &str, begun: Begun, error: &str, duration_ms: i64) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    finish(db, run_id, key, begun, FAILED, None, Some(error), duration_ms).await
}

#[allow(clippy::too_many_arguments)]
async fn finish<C>(
    db: &C,
    run_id: &str,
    key: &str,
    begun: Begun,
    status: &str,
    output: Option<&str>,
    error: Option<&str>,
    duration_ms: i64,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = Utc::now();
    let txn = db.begin().await?;
    let mut upd = step::Entity::update_many()
        .col_expr(step::Column::Status, Expr::value(status))
        .col_expr(step::Column::FinishedAt, Expr::value(now))
        .col_expr(step::Column::LastError, Expr::value(error.map(str::to_string)));
    if let Some(out) = output {
        upd = upd.col_expr(step::Column::Output, Expr::value(out));
    }
    upd.filter(step::Column::RunId.eq(run_id)).filter(step::Column::Key.eq(key)).exec(&txn).await?;
    step_attempt::Entity::update_many()
        .col_expr(step_attempt::Column::Status, Expr::value(status))
        .col_expr(step_attempt::Column::FinishedAt, Expr::value(now))
        .col_expr(step_attempt::Column::DurationMs, Expr::value(duration_ms))
        .col_expr(step_attempt::Column::Error, Expr::value(error.map(str::to_string)))
        .col_expr(step_attempt::Column::Output, Expr::value(output.map(str::to_string)))
        .filter(step_attempt::Column::Id.eq(begun.attempt_row))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}
