//! One run per (event, vendor): the unit of work, retry and operator action.

use lifecycle_domain::{Access, RunState, VendorKind, Workflow};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    /// Arrival order; effects for one person in one vendor apply in this order.
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: String,
    pub event_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    /// Who the run is about, for ordering: the lower-cased e-mail address.
    pub person_key: String,
    pub state: RunState,
    /// The `RunInput` as JSON.
    #[sea_orm(column_type = "Text")]
    pub input: String,
    pub attempts: i32,
    /// Bumped whenever the run is (re)published; a message carrying an older
    /// value is stale and dropped, so a run never has two live messages.
    pub dispatch_seq: i64,
    pub next_attempt_at: DateTimeUtc,
    pub dispatched_at: Option<DateTimeUtc>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// The earlier run for the same person and vendor this one waits for.
    pub blocked_by: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// What a person reads: the summary of what was done, what a person must
    /// do (needs_manual_action), or why it gave up (dead).
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome: Option<String>,
    /// The person's access at the vendor after this run: active, invited, removed, ...
    pub access: Option<Access>,
    pub replays: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// When an operator last replayed it; its age (`retry.max_age`) counts from here.
    pub replayed_at: Option<DateTimeUtc>,
    /// A discarded run stays `dead`, marked, and leaves the dead-letter listing.
    pub discarded_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub discard_reason: Option<String>,
    /// When its event happened at the source (absent: not given).
    pub occurred_at: Option<DateTimeUtc>,
    /// When its event should take effect (absent: at once).
    pub effective_at: Option<DateTimeUtc>,
    /// The newer event that superseded it.
    pub superseded_by: Option<String>,
    /// Who asked, last, for this run to be re-checked (run again to see
    /// whether a person has done what it needed): its outcome says so.
    pub rechecked_by: Option<String>,
    /// The W3C `traceparent` of the span that stored the run (traces on
    /// only): whoever publishes the run carries it, a replay links to it.
    pub traceparent: Option<String>,
}

impl Model {
    /// Where the run's age is measured from: its creation, or its last
    /// replay, or when its event takes effect if that is later (a run
    /// scheduled for next month is not old when it starts).
    pub fn age_baseline(&self) -> DateTimeUtc {
        let base = self.replayed_at.unwrap_or(self.created_at);
        self.effective_at.filter(|e| *e > base).unwrap_or(base)
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
