//! A received event, kept under its idempotency key with the response we gave.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Where it came from: `intake` or `pipedrive_webhook`. Keys are unique per source.
    pub source: String,
    pub idempotency_key: String,
    pub payload_hash: String,
    pub event_type: String,
    pub employee_id: Option<String>,
    pub employee_email: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// The first response, replayed verbatim for a repeated key.
    pub response_status: i32,
    #[sea_orm(column_type = "Text")]
    pub response_body: String,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
