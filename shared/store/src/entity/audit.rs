//! One operator action: who, what, when, on what, and why.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// Who: `ctl:<os user>`, `admin:<username>`, ...
    pub actor: String,
    /// What: `run.replay`, `run.discard`, ...
    pub action: String,
    /// On what: `run`, `event`, ...
    pub target_kind: String,
    pub target_id: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// Anything else worth keeping, as JSON (the outcome before a replay, ...).
    #[sea_orm(column_type = "Text", nullable)]
    pub details: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
