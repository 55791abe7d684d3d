//! One operation of a SCIM `BulkRequest`, and its result (see `crate::scim_bulk`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_bulk_operations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// Its index in the request's `Operations`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub bulk_id: String,
    /// `pending`, `succeeded` or `failed` (`crate::scim_bulk::OperationState`).
    pub state: String,
    /// The HTTP status the write answered (201 created, 200 changed or unchanged, 4xx refused).
    pub status: Option<i32>,
    pub scim_type: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub detail: Option<String>,
    /// The SCIM user it created or changed.
    pub user_id: Option<String>,
    /// How many events the write stored.
    pub events: i32,
    pub done_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
