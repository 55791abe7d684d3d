//! One batch of a push's members (see `crate::push`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_push_batches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub push_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i32,
    /// The SCIM user ids, a JSON array.
    #[sea_orm(column_type = "Text")]
    pub member_ids: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
