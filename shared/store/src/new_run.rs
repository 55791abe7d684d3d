//! A run to be stored with its event: what the intake decided, before the
//! store arranges it in time (`crate::time`) and records it (`crate::events`).

use chrono::{DateTime, Utc};
use lifecycle_domain::{VendorKind, Workflow};

#[derive(Clone)]
pub struct NewRun {
    pub id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub person_key: String,
    pub input: String,
    /// When its event happened (absent: the moment it arrives).
    pub occurred_at: Option<DateTime<Utc>>,
    /// When its event should take effect.
    pub effective_at: Option<DateTime<Utc>>,
    /// When it should start (`effective_at` less the vendor's lead): a time
    /// still to come makes it `scheduled` until then.
    pub start_at: Option<DateTime<Utc>>,
}
