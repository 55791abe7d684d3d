//! Operators' edits of a dead run's input (edit and replay): the run's input
//! becomes the edited one, and each edit is kept with the input before and
//! after it, so the original input (the first edit's `before`) and every
//! change stay visible.

use crate::entity::{run, run_edit, step};
use crate::Result;
use chrono::Utc;
use lifecycle_domain::RunState;
use lifecycle_domain::StepStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

pub use run_edit::Model as Edit;

/// The journal status of a step that succeeded before its run's input was
/// edited ([`StepStatus::Edited`]).
pub const EDITED: StepStatus = StepStatus::Edited;

/// One edit to record.
pub struct NewEdit<'a> {
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    /// The input after the edit (`RunInput` JSON).
    pub after: &'a str,
    /// What the operator set (JSON).
    pub changes: &'a str,
}

/// Replaces the input of `run` (as the caller read it: `dead`, not discarded,
/// this dispatch sequence and this input) with `e.after`, records the edit,
/// and marks the steps that succeeded [`EDITED`]. False, and nothing written,
/// when the run changed since the caller read it. Call it inside a
/// transaction with the audit entry.
pub async fn record(db: &impl ConnectionTrait, run: &run::Model, e: NewEdit<'_>) -> Result<bool> {
    let now = Utc::now();
    let res = run::Entity::update_many()
        .col_expr(run::Column::Input, Expr::value(e.after))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(&run.id))
        .filter(run::Column::State.eq(RunState::Dead))
        .filter(run::Column::DiscardedAt.is_null())
        .filter(run::Column::DispatchSeq.eq(run.dispatch_seq))
        .filter(run::Column::Input.eq(run.input.as_str()))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    run_edit::Entity::insert(run_edit::ActiveModel {
        run_id: Set(run.id.clone()),
        at: Set(now),
        actor: Set(e.actor.to_string()),
        reason: Set(e.reason.map(str::to_string)),
        before: Set(run.input.clone()),
        after: Set(e.after.to_string()),
        changes: Set(e.changes.to_string()),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    // A step's recorded output may come from the old input (the roles a
    // plan computed, the successor it resolved), and its key need not name
    // that input: answering it from the journal would carry the old input on.
    step::Entity::update_many()
        .col_expr(step::Column::Status, Expr::value(EDITED))
        .filter(step::Column::RunId.eq(&run.id))
        .filter(step::Column::Status.eq(crate::steps::SUCCEEDED))
        .exec(db)
        .await?;
    Ok(true)
}

/// The edits of `run_id`, oldest first.
pub async fn list(db: &impl ConnectionTrait, run_id: &str) -> Result<Vec<Edit>> {
    Ok(run_edit::Entity::find()
        .filter(run_edit::Column::RunId.eq(run_id))
        .order_by_asc(run_edit::Column::Id)
        .all(db)
        .await?)
}
