//! A SCIM group as the identity provider last set it; its members are
//! [`super::scim_member`] rows.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub display_name: String,
    /// `display_name` lower-cased: unique, and what the mapping compares.
    pub display_name_key: String,
    pub external_id: Option<String>,
    pub version: i64,
    /// The resource JSON, without `id`, `meta` and `members`.
    #[sea_orm(column_type = "Text")]
    pub resource: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
