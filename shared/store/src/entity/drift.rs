//! One piece of drift: something a vendor did that lifecycle did not ask for.

use lifecycle_domain::{DriftKind, VendorKind};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "drift")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub vendor: VendorKind,
    pub kind: DriftKind,
    pub vendor_user_id: Option<String>,
    /// Lower-cased, when the vendor told us.
    pub email: Option<String>,
    /// What a person reads: what happened and what lifecycle did about it.
    #[sea_orm(column_type = "Text")]
    pub details: String,
    /// The webhook delivery (an `events` row) that revealed it.
    pub event_id: Option<String>,
    pub detected_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
