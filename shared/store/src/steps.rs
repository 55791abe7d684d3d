//! The step journal. A step is recorded as begun before its effect is
//! attempted and as succeeded, with its output, before the run moves on, so
//! a retry (or an operator's replay) knows what is done and what is in doubt.
//!
//! A step is one row; its attempts are a JSON history in that row. Beginning
//! and finishing an attempt are each one statement (one commit): the journal
//! is written for every step of every run, so its round trips are most of
//! the worker's database work.

use crate::entity::step;
use crate::Result;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

pub use step::Model as Step;

pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

/// One attempt of a step, as kept in the step's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: i32,
    /// Which attempt of the whole run this step attempt belonged to.
    pub run_attempt: i32,
    /// `running` until it ends (or forever, if the worker died during it),
    /// then `succeeded` or `failed`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The output, as the JSON text the step recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A step's attempts, oldest first.
pub fn history(step: &Step) -> Vec<AttemptRecord> {
    step.history.as_deref().and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default()
}

fn encode(history: &[AttemptRecord]) -> String {
    serde_json::to_string(history).expect("attempt records always serialize")
}

pub async fn load(db: &impl ConnectionTrait, run_id: &str) -> Result<Vec<Step>> {
    Ok(step::Entity::find()
        .filter(step::Column::RunId.eq(run_id))
        .order_by_asc(step::Column::Position)
        .order_by_asc(step::Column::Id)
        .all(db)
        .await?)
}

/// Records that a new attempt of a step starts now: inserts the step (its
/// first attempt) or updates it (`previous` is the step as last recorded).
/// Returns the step as it now stands.
pub async fn begin(
    db: &impl ConnectionTrait,
    run_id: &str,
    key: &str,
    position: i32,
    previous: Option<&Step>,
    run_attempt: i32,
) -> Result<Step> {
    let now = Utc::now();
    let mut attempts = previous.map(history).unwrap_or_default();
    let attempt = previous.map_or(0, |p| p.attempts) + 1;
    attempts.push(AttemptRecord {
        attempt,
        run_attempt,
        status: RUNNING.into(),
        started_at: now,
        finished_at: None,
        duration_ms: None,
        error: None,
        output: None,
    });
    let history = encode(&attempts);
    match previous {
        None => {
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
                history: Set(Some(history.clone())),
                ..Default::default()
            })
            .exec_without_returning(db)
            .await?;
            Ok(Step {
                id: 0,
                run_id: run_id.to_string(),
                key: key.to_string(),
                position,
                idempotency_key: format!("{run_id}:{key}"),
                status: RUNNING.into(),
                attempts: attempt,
                output: None,
                last_error: None,
                started_at: now,
                finished_at: None,
                history: Some(history),
            })
        }
        Some(prev) => {
            step::Entity::update_many()
                .col_expr(step::Column::Status, Expr::value(RUNNING))
                .col_expr(step::Column::Attempts, Expr::value(attempt))
                .col_expr(step::Column::History, Expr::value(history.clone()))
                .filter(step::Column::RunId.eq(run_id))
                .filter(step::Column::Key.eq(key))
                .exec(db)
                .await?;
            Ok(Step { status: RUNNING.into(), attempts: attempt, history: Some(history), ..prev.clone() })
        }
    }
}

/// Records how the attempt begun last ended: `output` (the vendor ids it
/// produced) on success, `error` on failure. Returns the step as it now stands.
pub async fn finish(
    db: &impl ConnectionTrait,
    step: &Step,
    output: Option<&str>,
    error: Option<&str>,
    duration_ms: i64,
) -> Result<Step> {
    let now = Utc::now();
    let status = if error.is_some() { FAILED } else { SUCCEEDED };
    let mut attempts = history(step);
    if let Some(last) = attempts.last_mut() {
        last.status = status.into();
        last.finished_at = Some(now);
        last.duration_ms = Some(duration_ms);
        last.error = error.map(str::to_string);
        last.output = output.map(str::to_string);
    }
    let history = encode(&attempts);
    let mut upd = step::Entity::update_many()
        .col_expr(step::Column::Status, Expr::value(status))
        .col_expr(step::Column::FinishedAt, Expr::value(now))
        .col_expr(step::Column::LastError, Expr::value(error.map(str::to_string)))
        .col_expr(step::Column::History, Expr::value(history.clone()));
    if let Some(out) = output {
        upd = upd.col_expr(step::Column::Output, Expr::value(out));
    }
    upd.filter(step::Column::RunId.eq(&step.run_id)).filter(step::Column::Key.eq(&step.key)).exec(db).await?;
    Ok(Step {
        status: status.into(),
        finished_at: Some(now),
        last_error: error.map(str::to_string),
        output: output.map(str::to_string).or_else(|| step.output.clone()),
        history: Some(history),
        ..step.clone()
    })
}
