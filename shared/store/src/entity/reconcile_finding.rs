//! One difference between a vendor's directory and what lifecycle knows.

use lifecycle_domain::{FindingKind, VendorKind};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconcile_findings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub vendor: VendorKind,
    pub kind: FindingKind,
    /// The address (or login) of the account: with `kind`, what makes a
    /// finding the same one pass after pass.
    pub account_key: String,
    pub vendor_account_id: Option<String>,
    /// The person (lower-cased address) whose events it is held against.
    pub person_key: Option<String>,
    /// What a person reads: what differs, against which event.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    /// When a later pass no longer saw it.
    pub resolved_at: Option<DateTimeUtc>,
    /// The event a fix made for it, who asked, when.
    pub fix_event_id: Option<String>,
    pub fixed_by: Option<String>,
    pub fixed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
