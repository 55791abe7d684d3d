//! The step journal. A step is recorded as begun before its effect is
//! attempted and as succeeded, with its output, before the run moves on, so
//! a retry (or an operator's replay) knows what is done and what is in doubt.
//!
//! A step is one row; its attempts are a JSON history in that row. Beginning
//! and finishing an attempt are each one statement (one commit): the journal
//! is written for every step of every run, so its round trips are most of
//! the worker's database work.
//!
//! Every write is guarded, inside its own statement, by the run's lease: only
//! the worker that holds the run (`running`, `lease_owner` = that worker) can
//! begin or finish its steps. A worker that was paused past its lease while
//! another worker claimed the run is refused ([`StoreError::LeaseLost`]) and
//! writes nothing over the new owner's records.

use crate::entity::{run, step};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use lifecycle_domain::RunState;
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

pub use step::Model as Step;

pub use lifecycle_domain::StepStatus;

// The old names of the three statuses, for callers that compare with them.
pub const RUNNING: StepStatus = StepStatus::Running;
pub const SUCCEEDED: StepStatus = StepStatus::Succeeded;
pub const FAILED: StepStatus = StepStatus::Failed;

/// One attempt of a step, as kept in the step's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: i32,
    /// Which attempt of the whole run this step attempt belonged to.
    pub run_attempt: i32,
    /// `running` until it ends (or forever, if the worker died during it),
    /// then `succeeded` or `failed`.
    pub status: StepStatus,
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

/// True while `owner` holds the lease of run `run_id`: the guard inside every
/// journal write. On PostgreSQL the run's row is share-locked for the
/// statement, so a claim by another worker committing at the same moment
/// either waits for the write to commit (and the new owner then reads it) or
/// is seen by the write, which then refuses. SQLite writes one at a time.
fn lease_held(run_id: &str, owner: &str) -> SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(run::Entity)
            .and_where(Expr::col((run::Entity, run::Column::Id)).eq(run_id))
            .and_where(Expr::col((run::Entity, run::Column::State)).eq(RunState::Running))
            .and_where(Expr::col((run::Entity, run::Column::LeaseOwner)).eq(owner))
            .lock_shared()
            .to_owned(),
    )
}

/// No row written: the guard refused, `owner` no longer holds the run.
fn held(rows_affected: u64) -> Result<()> {
    if rows_affected == 0 {
        Err(StoreError::LeaseLost)
    } else {
        Ok(())
    }
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
/// Returns the step as it now stands, or [`StoreError::LeaseLost`] (nothing
/// written) when `owner` no longer holds the run.
pub async fn begin(
    db: &impl ConnectionTrait,
    run_id: &str,
    owner: &str,
    key: &str,
    position: i32,
    previous: Option<&Step>,
    run_attempt: i32,
) -> Result<Step> {
    let now = Utc::now();
    let attempt = AttemptRecord {
        attempt: previous.map_or(0, |p| p.attempts) + 1,
        run_attempt,
        status: RUNNING,
        started_at: now,
        finished_at: None,
        duration_ms: None,
        error: None,
        output: None,
    };
    write_attempt(db, run_id, owner, key, position, previous, attempt).await
}

/// Records a step that only read from the vendor, already succeeded with
/// `output`, in one statement: a read changes nothing at the vendor, so
/// nothing is in doubt if the worker dies before this record (the next
/// attempt reads again). A retry then replays the output instead of asking
/// again. [`StoreError::LeaseLost`] (nothing written) when `owner` no longer
/// holds the run.
#[allow(clippy::too_many_arguments)]
pub async fn record_read(
    db: &impl ConnectionTrait,
    run_id: &str,
    owner: &str,
    key: &str,
    position: i32,
    previous: Option<&Step>,
    run_attempt: i32,
    output: &str,
    duration_ms: i64,
) -> Result<Step> {
    let now = Utc::now();
    let attempt = AttemptRecord {
        attempt: previous.map_or(0, |p| p.attempts) + 1,
        run_attempt,
        status: SUCCEEDED,
        started_at: now - chrono::Duration::milliseconds(duration_ms),
        finished_at: Some(now),
        duration_ms: Some(duration_ms),
        error: None,
        output: Some(output.to_string()),
    };
    write_attempt(db, run_id, owner, key, position, previous, attempt).await
}

/// Appends `attempt` to the step's history and sets the step's status (and,
/// for a finished attempt, its output and end) from it: one guarded statement.
async fn write_attempt(
    db: &impl ConnectionTrait,
    run_id: &str,
    owner: &str,
    key: &str,
    position: i32,
    previous: Option<&Step>,
    attempt: AttemptRecord,
) -> Result<Step> {
    let mut attempts = previous.map(history).unwrap_or_default();
    let (number, status, started_at) = (attempt.attempt, attempt.status, attempt.started_at);
    let (output, finished_at) = (attempt.output.clone(), attempt.finished_at);
    attempts.push(attempt);
    let history = encode(&attempts);
    match previous {
        None => {
            // INSERT ... SELECT <values> WHERE EXISTS (<the lease is held>):
            // the guard and the write are one statement.
            let values = Query::select()
                .exprs([
                    Expr::val(run_id),
                    Expr::val(key),
                    Expr::val(position),
                    Expr::val(format!("{run_id}:{key}")),
                    Expr::val(status),
                    Expr::val(number),
                    Expr::val(started_at),
                    Expr::val(history.clone()),
                    Expr::val(output.clone()),
                    Expr::val(finished_at),
                ])
                .and_where(lease_held(run_id, owner))
                .to_owned();
            let insert = Query::insert()
                .into_table(step::Entity)
                .columns([
                    step::Column::RunId,
                    step::Column::Key,
                    step::Column::Position,
                    step::Column::IdempotencyKey,
                    step::Column::Status,
                    step::Column::Attempts,
                    step::Column::StartedAt,
                    step::Column::History,
                    step::Column::Output,
                    step::Column::FinishedAt,
                ])
                .select_from(values)
                .map_err(|e| DbErr::Custom(format!("building the journal insert: {e}")))?
                .to_owned();
            let res = db.execute(db.get_database_backend().build(&insert)).await?;
            held(res.rows_affected())?;
            Ok(Step {
                id: 0,
                run_id: run_id.to_string(),
                key: key.to_string(),
                position,
                idempotency_key: format!("{run_id}:{key}"),
                status,
                attempts: number,
                output,
                last_error: None,
                started_at,
                finished_at,
                history: Some(history),
            })
        }
        Some(prev) => {
            let mut upd = step::Entity::update_many()
                .col_expr(step::Column::Status, Expr::value(status))
                .col_expr(step::Column::Attempts, Expr::value(number))
                .col_expr(step::Column::History, Expr::value(history.clone()));
            if output.is_some() {
                upd = upd
                    .col_expr(step::Column::Output, Expr::value(output.clone()))
                    .col_expr(step::Column::FinishedAt, Expr::value(finished_at))
                    .col_expr(step::Column::LastError, Expr::value(Option::<String>::None));
            }
            let res = upd
                .filter(step::Column::RunId.eq(run_id))
                .filter(step::Column::Key.eq(key))
                .filter(lease_held(run_id, owner))
                .exec(db)
                .await?;
            held(res.rows_affected)?;
            let (output, finished_at, last_error) = if output.is_some() {
                (output, finished_at, None)
            } else {
                (prev.output.clone(), prev.finished_at, prev.last_error.clone())
            };
            Ok(Step {
                status,
                attempts: number,
                history: Some(history),
                output,
                finished_at,
                last_error,
                ..prev.clone()
            })
        }
    }
}

/// Records how the attempt begun last ended: `output` (the vendor ids it
/// produced) on success, `error` on failure. Returns the step as it now
/// stands, or [`StoreError::LeaseLost`] (nothing written) when `owner` no
/// longer holds the run.
pub async fn finish(
    db: &impl ConnectionTrait,
    step: &Step,
    owner: &str,
    output: Option<&str>,
    error: Option<&str>,
    duration_ms: i64,
) -> Result<Step> {
    let now = Utc::now();
    let status = if error.is_some() { FAILED } else { SUCCEEDED };
    let mut attempts = history(step);
    if let Some(last) = attempts.last_mut() {
        last.status = status;
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
    let res = upd
        .filter(step::Column::RunId.eq(&step.run_id))
        .filter(step::Column::Key.eq(&step.key))
        .filter(lease_held(&step.run_id, owner))
        .exec(db)
        .await?;
    held(res.rows_affected)?;
    Ok(Step {
        status,
        finished_at: Some(now),
        last_error: error.map(str::to_string),
        output: output.map(str::to_string).or_else(|| step.output.clone()),
        history: Some(history),
        ..step.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{self, NewEvent, NewRun};
    use crate::runs::{self, Run};
    use crate::Db;
    use std::time::Duration;

    const LEASE: Duration = Duration::from_secs(60);

    /// A fresh in-memory database (one connection: each has its own) with one queued run.
    async fn db_with_a_run() -> (Db, Run) {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        let ev = NewEvent {
            id: "ev-1".into(),
            source: "hr".into(),
            idempotency_key: "k-1".into(),
            payload_hash: "h-1".into(),
            event_type: "joiner".into(),
            employee_id: Some("E-1".into()),
            employee_email: Some("ada@example.com".into()),
            payload: "{}".into(),
            response_status: 202,
            response_body: "{}".into(),
            traceparent: None,
        };
        let run = NewRun {
            id: "run-1".into(),
            vendor: lifecycle_domain::VendorKind::Pipedrive,
            workflow: lifecycle_domain::Workflow::Joiner,
            person_key: "ada@example.com".into(),
            input: "{}".into(),
            occurred_at: None,
            effective_at: None,
            start_at: None,
        };
        assert!(matches!(
            events::accept(&db, ev, vec![run], None, |_| String::new()).await.unwrap(),
            events::Accepted::Created { .. }
        ));
        let run = runs::get(&db, "run-1").await.unwrap().unwrap();
        (db, run)
    }

    /// Lets `run`'s lease lapse (as if its worker had been paused past it).
    async fn expire_lease(db: &Db, run_id: &str) {
        use sea_orm::{sea_query::Expr, EntityTrait, QueryFilter};
        run::Entity::update_many()
            .col_expr(run::Column::LeaseUntil, Expr::value(Utc::now() - chrono::Duration::seconds(1)))
            .filter(run::Column::Id.eq(run_id))
            .exec(db)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_lease_holder_begins_and_finishes_its_steps() {
        let (db, run) = db_with_a_run().await;
        assert!(runs::claim(&db, &run, run.dispatch_seq, "w1", LEASE).await.unwrap());
        let begun = begin(&db, &run.id, "w1", "create_user", 1, None, 1).await.unwrap();
        let done = finish(&db, &begun, "w1", Some("{\"id\":5}"), None, 12).await.unwrap();
        assert_eq!(done.status, SUCCEEDED);
        let stored = load(&db, &run.id).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].status, stored[0].output.as_deref()), (SUCCEEDED, Some("{\"id\":5}")));
        // A second attempt of a step (an update) is allowed too.
        let again = begin(&db, &run.id, "w1", "create_user", 1, Some(&stored[0]), 1).await.unwrap();
        assert_eq!(again.attempts, 2);
    }

    #[tokio::test]
    async fn a_worker_that_does_not_hold_the_run_writes_nothing() {
        let (db, run) = db_with_a_run().await;
        // Not claimed at all: no one may write.
        assert!(matches!(begin(&db, &run.id, "w1", "create_user", 1, None, 1).await, Err(StoreError::LeaseLost)));
        assert!(load(&db, &run.id).await.unwrap().is_empty(), "the refused insert wrote no row");

        assert!(runs::claim(&db, &run, run.dispatch_seq, "w1", LEASE).await.unwrap());
        assert!(matches!(begin(&db, &run.id, "w2", "create_user", 1, None, 1).await, Err(StoreError::LeaseLost)));
        assert!(load(&db, &run.id).await.unwrap().is_empty(), "another worker's insert wrote no row");
    }

    /// w1 is paused mid-step past its lease; w2 claims the run and begins the
    /// same step. When w1 resumes, its record of the step and a new step are refused.
    #[tokio::test]
    async fn a_worker_whose_run_was_taken_over_cannot_record_over_the_new_owner() {
        let (db, run) = db_with_a_run().await;
        assert!(runs::claim(&db, &run, run.dispatch_seq, "w1", LEASE).await.unwrap());
        let w1_step = begin(&db, &run.id, "w1", "create_user", 1, None, 1).await.unwrap();

        expire_lease(&db, &run.id).await;
        let run = runs::get(&db, &run.id).await.unwrap().unwrap();
        assert!(runs::claim(&db, &run, run.dispatch_seq, "w2", LEASE).await.unwrap(), "the lease expired");
        let journal = load(&db, &run.id).await.unwrap();
        let w2_step = begin(&db, &run.id, "w2", "create_user", 1, journal.first(), 2).await.unwrap();
        assert_eq!(w2_step.attempts, 2);

        let refused = finish(&db, &w1_step, "w1", Some("{\"id\":5}"), None, 30_000).await;
        assert!(matches!(refused, Err(StoreError::LeaseLost)), "{refused:?}");
        let refused = begin(&db, &run.id, "w1", "assign_role", 2, None, 1).await;
        assert!(matches!(refused, Err(StoreError::LeaseLost)), "{refused:?}");
        let refused = begin(&db, &run.id, "w1", "create_user", 1, Some(&w2_step), 1).await;
        assert!(matches!(refused, Err(StoreError::LeaseLost)), "{refused:?}");

        let journal = load(&db, &run.id).await.unwrap();
        assert_eq!(journal.len(), 1, "w1's new step was not inserted");
        assert_eq!(journal[0].history, w2_step.history, "w2's record stands as w2 wrote it");
        assert_eq!((journal[0].status, journal[0].attempts), (RUNNING, 2));

        // The new owner records normally.
        let done = finish(&db, &w2_step, "w2", Some("{\"id\":5}"), None, 40).await.unwrap();
        assert_eq!(done.status, SUCCEEDED);
    }

    /// Once the run has ended (or was handed back), even its last owner cannot write.
    #[tokio::test]
    async fn no_step_is_recorded_once_the_run_is_not_running() {
        let (db, run) = db_with_a_run().await;
        assert!(runs::claim(&db, &run, run.dispatch_seq, "w1", LEASE).await.unwrap());
        let begun = begin(&db, &run.id, "w1", "create_user", 1, None, 1).await.unwrap();
        assert!(runs::release(&db, &run.id, "w1").await.unwrap());
        let refused = finish(&db, &begun, "w1", None, Some("HTTP 500"), 5).await;
        assert!(matches!(refused, Err(StoreError::LeaseLost)), "{refused:?}");
        assert_eq!(load(&db, &run.id).await.unwrap()[0].status, RUNNING);
    }
}
