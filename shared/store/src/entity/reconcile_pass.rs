//! One reconcile pass over one vendor's directory.

use lifecycle_domain::VendorKind;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconcile_passes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub vendor: VendorKind,
    /// A scheduled pass's window (`vendor@start`): unique, so one worker of a
    /// fleet runs it. None for a pass an operator asked for.
    pub slot: Option<String>,
    /// The operator, or `worker:<id>` for a scheduled pass.
    pub requested_by: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// Accounts read at the vendor.
    pub accounts: Option<i32>,
    /// Open findings after the pass.
    pub findings: Option<i32>,
    /// Why the pass did not finish (the vendor down, ...).
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
