//! A push: the fan-out of one SCIM group write to its members' events (see `crate::push`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_pushes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub group_id: String,
    /// The group's displayName when the push was made.
    pub group_name: String,
    /// add, remove, replace, members, rename or delete.
    pub change: String,
    pub source: String,
    /// The start of each member's event's idempotency key.
    pub key: String,
    pub members: i32,
    pub members_done: i32,
    pub events: i32,
    pub batches: i32,
    pub next_batch: i32,
    /// `pending` or `done` (`crate::push::PushState`).
    pub state: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
