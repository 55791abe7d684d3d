//! The step journal: one row per step of a run, with what it produced.

use lifecycle_domain::StepStatus;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "steps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub key: String,
    pub position: i32,
    /// `<run id>:<step key>`: the step's own idempotency key.
    #[sea_orm(unique)]
    pub idempotency_key: String,
    /// `running`, `succeeded` or `failed`.
    pub status: StepStatus,
    pub attempts: i32,
    /// The step's result as JSON: the vendor ids it produced.
    #[sea_orm(column_type = "Text", nullable)]
    pub output: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// Every attempt, as a JSON array of [`crate::steps::AttemptRecord`]: the
    /// operator's timeline.
    #[sea_orm(column_type = "Text", nullable)]
    pub history: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
