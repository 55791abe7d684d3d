//! One run a webhook is (to be) told about, for one kind and occurrence.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub webhook: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// The run's `replays` when it entered the state.
    #[sea_orm(primary_key, auto_increment = false)]
    pub occurrence: i32,
    /// The message it goes in; the same on a redelivery.
    pub batch_id: String,
    pub claimed_at: DateTimeUtc,
    pub attempts: i32,
    /// Null until its message is delivered (or dropped).
    pub sent_at: Option<DateTimeUtc>,
    /// `delivered` or `dropped`.
    pub result: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
