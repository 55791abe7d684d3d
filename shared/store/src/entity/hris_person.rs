//! What lifecycle last derived for one person of one HR source and tenant (see `crate::hris`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hris_people")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub employee_id: String,
    pub email: String,
    /// `joiner`, `mover` or `leaver`.
    pub last_event_type: String,
    /// The apps lifecycle last asked for them, as JSON.
    #[sea_orm(column_type = "Text")]
    pub apps: String,
    pub apps_hash: String,
    pub version: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
