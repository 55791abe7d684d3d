//! A run that had to await an approver (see `crate::approvals`).

use lifecycle_domain::{VendorKind, Workflow};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "approvals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    /// What made it need approval ("pipedrive joiner, role = Admin").
    #[sea_orm(column_type = "Text")]
    pub rule: String,
    /// Operator names, as a JSON array.
    #[sea_orm(column_type = "Text")]
    pub approvers: String,
    /// The escalation group, as a JSON array (empty: no escalation).
    #[sea_orm(column_type = "Text")]
    pub escalate_to: String,
    pub requested_at: DateTimeUtc,
    pub escalate_at: Option<DateTimeUtc>,
    /// Set once, when it escalated: only `escalate_to` may decide from then on.
    pub escalated_at: Option<DateTimeUtc>,
    pub deadline_at: DateTimeUtc,
    /// `approved`, `rejected` or `expired`; None while undecided.
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
