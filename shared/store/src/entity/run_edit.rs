//! One operator's edit of a dead run's input: before, after, who and when.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_edits")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub at: DateTimeUtc,
    pub actor: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// The run's input (`RunInput` JSON) before the edit.
    #[sea_orm(column_type = "Text")]
    pub before: String,
    /// The run's input after it.
    #[sea_orm(column_type = "Text")]
    pub after: String,
    /// What the operator set, as JSON (`{"role": "Sales Rep"}`).
    #[sea_orm(column_type = "Text")]
    pub changes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
