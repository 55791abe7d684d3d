//! A reconcile pass an operator asked for, carried out by a worker.

use lifecycle_domain::VendorKind;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconcile_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub vendor: VendorKind,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    /// The worker carrying it out, and since when.
    pub claimed_by: Option<String>,
    pub claimed_at: Option<DateTimeUtc>,
    /// The pass it ran (none when the vendor could not be read at all).
    pub pass_id: Option<String>,
    pub finished_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
