//! What travels on the queues.

use lifecycle_domain::{VendorKind, Workflow};
use serde::{Deserialize, Serialize};

/// "Run `run_id` now": the only message on the lanes. `dispatch_seq` must
/// equal the run's current value, otherwise the message is stale. `vendor`
/// routes it to its lane (the run's own vendor; the database stays the truth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    pub run_id: String,
    pub dispatch_seq: i64,
    pub vendor: VendorKind,
}

impl Dispatch {
    pub fn message_id(&self) -> String {
        format!("{}:{}", self.run_id, self.dispatch_seq)
    }
}

/// A run that gave up, as published to the dead-letter queue for alerting and
/// inspection. The database row is the record operators act on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub run_id: String,
    pub event_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub reason: String,
    pub attempts: i32,
    pub at: chrono::DateTime<chrono::Utc>,
}
