//! A SCIM user as the identity provider last set it (docs/contract.md §6).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_name: String,
    /// `user_name` lower-cased: unique, so two users cannot differ by case only.
    pub user_name_key: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// Bumped by every change; `meta.version` is its weak ETag.
    pub version: i64,
    /// The resource JSON, without `id`, `meta`, `groups` and `password`.
    #[sea_orm(column_type = "Text")]
    pub resource: String,
    /// What lifecycle last asked for the person (JSON of `lifecycle_scim::mapping::Applied`).
    #[sea_orm(column_type = "Text", nullable)]
    pub applied: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
