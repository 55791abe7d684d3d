//! A verified delivery from an HR system (see `crate::hris`).

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::StringLen;
use serde::Serialize;

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, EnumIter, DeriveActiveEnum)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DeliveryState {
    /// Stored, not processed yet (or waiting out a transient HRIS API failure).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Mapped: its events (if any) are stored.
    #[sea_orm(string_value = "processed")]
    Processed,
    /// Lifecycle cannot act on it: `outcome` says why; an operator retries it once fixed.
    #[sea_orm(string_value = "needs_person")]
    NeedsPerson,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [DeliveryState::Pending, DeliveryState::Processed, DeliveryState::NeedsPerson];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Processed => "processed",
            DeliveryState::NeedsPerson => "needs_person",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DeliveryState::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown delivery state {s:?} (pending, processed, needs_person)"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "hris_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `bamboohr`, `hibob`, `personio`.
    pub source: String,
    /// The configured tenant whose secret verified it.
    pub tenant: String,
    pub delivery_key: String,
    /// The source's type as sent (`employee.created`).
    pub type_name: String,
    /// `joined`, `changed`, `left`.
    pub kind: String,
    pub employee_id: Option<String>,
    pub occurred_at: Option<DateTimeUtc>,
    pub received_at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome: Option<String>,
    /// A JSON array of event ids.
    #[sea_orm(column_type = "Text", nullable)]
    pub event_ids: Option<String>,
    pub processed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
