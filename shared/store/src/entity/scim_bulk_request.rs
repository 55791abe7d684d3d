//! A SCIM `BulkRequest` from Entra's API-driven inbound provisioning (see `crate::scim_bulk`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_bulk_requests")]
pub struct Model {
    /// The hex SHA-256 of the canonical body: the same request has the same id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The request as received (JSON).
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub operations: i32,
    /// `pending` or `done` (`crate::scim_bulk::RequestState`).
    pub state: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// How many times a processor took it.
    pub attempts: i32,
    pub received_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
