//! Storing an event with its runs: the one path every source takes (the HR
//! intake, SCIM, reconcile's fixes), so that scheduling, supersession and the
//! outbox mean the same whoever sent the event.

use lifecycle_broker::Publisher;
use lifecycle_config::ScheduleSettings;
use lifecycle_domain::{Event, EventType, RunState, VendorKind, Workflow};
use lifecycle_store::entity::{event, run};
use lifecycle_store::events::{self, Accepted, CancelAt, Intake, NewEvent, NewRun};
use lifecycle_store::group::GroupCommit;
use lifecycle_store::safety::Guard;
use lifecycle_store::{Db, StoreError};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::Serialize;
use std::sync::Arc;

/// The answer stored with an event (and given again to a repeated request):
/// the event's id and each run's fate.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptedBody {
    pub event_id: String,
    pub runs: Vec<RunRef>,
    /// Scheduled runs of the same person that this event replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<String>,
    /// A cancel's answer: the runs it withdrew, and those already started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub run_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    /// `queued`, `scheduled` (with `starts_at`), `superseded` (with `superseded_by`)
    /// or `held` (past a `[safety]` threshold: an operator releases or cancels it).
    pub state: RunState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

/// `events.source` of the HR intake's events (`POST /v1/events`).
pub use lifecycle_store::events::INTAKE_SOURCE;

/// An event as stored, with the answer it was given.
pub type StoredEvent = event::Model;

/// An event to store, as its source received it.
pub struct Submission<'a> {
    /// `events.source`: idempotency keys are unique per source.
    pub source: &'a str,
    pub idempotency_key: &'a str,
    /// The payload as received (kept with the event) and its hash (a repeated
    /// key with another hash is a conflict).
    pub payload: &'a serde_json::Value,
    pub payload_hash: &'a str,
    pub event: &'a Event,
    /// Who sent it, as the audit log names actors (`intake:<token label>`,
    /// `scim`, `reconcile`): a cancel event is audited under it.
    pub actor: &'a str,
}

/// What storing did.
// One per request, moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Submitted {
    /// Stored now with its runs and their outbox rows.
    Created { event_id: String, intake: Intake, body: AcceptedBody },
    /// The key was already used by this source: what was stored under it.
    Existing(Box<event::Model>),
}

/// An event made ready to store: its id, its runs (ids chosen), a cancel's
/// reach and the stored payload. Everything [`store`] needs, owned, so that a
/// grouped commit can keep it until its turn (and store it again alone if its
/// batch was rolled back).
#[derive(Clone)]
pub struct Prepared {
    pub event_id: String,
    event: NewEvent,
    runs: Vec<NewRun>,
    cancel: Option<CancelAt>,
    refs: Vec<(String, VendorKind, Workflow, Option<chrono::DateTime<chrono::Utc>>)>,
}

/// Makes `s.event` ready to store: one run per vendor it names (none for a
/// cancel, which withdraws instead), each starting at `effective_at` less the
/// vendor's lead (`schedule`).
pub fn prepare(schedule: &ScheduleSettings, s: Submission<'_>) -> Prepared {
    let event = s.event;
    let event_id = uuid::Uuid::now_v7().to_string();
    let person_key = event.employee.email.normalized();
    let runs: Vec<NewRun> = match event.event_type.workflow() {
        None => Vec::new(),
        Some(workflow) => event
            .run_inputs()
            .into_iter()
            .map(|input| {
                let vendor = input.app.vendor();
                let lead = schedule.lead(vendor, workflow);
                let start_at =
                    event.effective_at.map(|at| at - chrono::Duration::from_std(lead).unwrap_or(chrono::Duration::MAX));
                NewRun {
                    id: uuid::Uuid::now_v7().to_string(),
                    vendor,
                    workflow,
                    person_key: person_key.clone(),
                    input: serde_json::to_string(&input).expect("a run input always serializes"),
                    occurred_at: event.occurred_at,
                    effective_at: event.effective_at,
                    start_at,
                }
            })
            .collect(),
    };
    let cancel = (event.event_type == EventType::Cancel).then(|| CancelAt {
        person_key: person_key.clone(),
        vendors: event.cancel_at.iter().copied().collect(),
        actor: s.actor.to_owned(),
    });
    let refs = runs.iter().map(|r| (r.id.clone(), r.vendor, r.workflow, r.start_at)).collect();
    let new_event = NewEvent {
        id: event_id.clone(),
        source: s.source.to_string(),
        idempotency_key: s.idempotency_key.to_string(),
        payload_hash: s.payload_hash.to_string(),
        event_type: event.event_type.as_str().into(),
        employee_id: Some(event.employee.id.clone()),
        employee_email: Some(person_key),
        payload: s.payload.to_string(),
        response_status: 202,
        // Replaced by the answer in the same transaction.
        response_body: String::new(),
        // The trace of the span storing it (the intake's, SCIM's, a reconcile fix's): its runs carry it.
        traceparent: lifecycle_telemetry::current_traceparent(),
    };
    Prepared { event_id, event: new_event, runs, cancel, refs }
}

/// The answer to a stored event: its id and each run's fate.
fn answer(p: &Prepared, intake: &Intake) -> AcceptedBody {
    AcceptedBody {
        event_id: p.event_id.clone(),
        runs: p
            .refs
            .iter()
            .zip(&intake.runs)
            .map(|((run_id, vendor, workflow, start_at), stored)| RunRef {
                run_id: run_id.clone(),
                vendor: *vendor,
                workflow: *workflow,
                state: stored.state,
                starts_at: start_at.filter(|_| stored.state == RunState::Scheduled),
                superseded_by: stored.superseded_by.clone(),
            })
            .collect(),
        replaced: intake.replaced.clone(),
        cancelled: intake.cancelled.as_ref().map(|c| c.cancelled.clone()),
        started: intake.cancelled.as_ref().map(|c| c.started.clone()),
    }
}

/// Stores `s.event` with one run per vendor it names (none for a cancel,
/// which withdraws instead), each `queued`, `scheduled` (its start is
/// `effective_at` less the vendor's lead) or `superseded`, in one
/// transaction. The caller wakes the outbox relay.
///
/// `db` may be a transaction of the caller's (SCIM stores its resource and
/// the events it means together): the event is then a savepoint within it.
///
/// `guard` is the blast-radius guard (`[safety]`): a leaver past a threshold
/// is stored `held` (see `lifecycle_store::safety`).
pub async fn submit<C>(
    db: &C,
    schedule: &ScheduleSettings,
    guard: &Guard,
    s: Submission<'_>,
) -> Result<Submitted, StoreError>
where
    C: ConnectionTrait + TransactionTrait,
{
    store(db, guard, &prepare(schedule, s)).await
}

/// Stores a [`prepare`]d event (see [`submit`]), in a transaction of its own
/// or a savepoint of `db`'s.
pub async fn store<C>(db: &C, guard: &Guard, p: &Prepared) -> Result<Submitted, StoreError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let respond = |intake: &Intake| serde_json::to_string(&answer(p, intake)).expect("the answer always serializes");
    match events::accept_guarded(db, p.event.clone(), p.runs.clone(), p.cancel.clone(), guard, respond).await? {
        Accepted::Created { intake, body: _ } => {
            let body = answer(p, &intake);
            for r in body.runs.iter().filter(|r| r.state == RunState::Held) {
                metrics::counter!("lifecycle_safety_held_total", "vendor" => r.vendor.as_str()).increment(1);
                tracing::warn!(run_id = %r.run_id, vendor = %r.vendor, "past a [safety] threshold: the run is held");
            }
            Ok(Submitted::Created { event_id: p.event_id.clone(), intake, body })
        }
        Accepted::Existing(existing) => Ok(Submitted::Existing(existing)),
    }
}

/// Where the HR intake stores events: with group commit, the events of
/// concurrent requests share one transaction (each its own savepoint, so one
/// request's failure or lost key race is its own) and one commit, and each
/// request is answered only after the commit that holds its rows.
#[derive(Clone)]
pub struct Writer {
    db: Db,
    group: Option<GroupCommit>,
}

impl Writer {
    /// `grouped`: through a group commit (see `lifecycle_store::group`); else
    /// each event commits alone.
    pub fn new(db: Db, grouped: bool) -> Self {
        let group = grouped.then(|| GroupCommit::for_db(db.clone()));
        Self { db, group }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// [`submit`] for a request that answers at once (the HR intake); a
/// cancel's withdrawn runs release the runs that waited behind them. Without
/// group commit an event already stored under the key is found first, without
/// a transaction; with it that read is left out (a statement for every
/// request, to spare the rare repeat a savepoint): the repeated key's insert
/// fails in its savepoint and the stored event is read there.
pub async fn accept(
    writer: &Writer,
    publisher: &Publisher,
    schedule: &ScheduleSettings,
    guard: &Arc<Guard>,
    s: Submission<'_>,
) -> Result<Submitted, StoreError> {
    let db = &writer.db;
    if writer.group.is_none() {
        if let Some(existing) = events::find_by_key(db, s.source, s.idempotency_key).await? {
            return Ok(Submitted::Existing(Box::new(existing)));
        }
    }
    let prepared = prepare(schedule, s);
    let submitted = match &writer.group {
        Some(group) => {
            let input = (prepared, guard.clone());
            group.write(input, |c, (p, guard)| Box::pin(async move { store(&c, guard, p).await })).await?
        }
        None => store(db, guard, &prepared).await?,
    };
    if let Submitted::Created { event_id, intake: Intake { cancelled: Some(c), .. }, .. } = &submitted {
        tracing::info!(event_id = %event_id, cancelled = c.cancelled.len(), started = c.started.len(), "cancel applied");
        lifecycle_engine::wake_after(&lifecycle_store::engine::Storage::new(db.clone()), publisher, &c.cancelled).await;
    }
    Ok(submitted)
}

/// The event `id` from `source` and its runs; None when there is none (or
/// it is another source's: a caller sees only its own).
pub async fn event_runs(db: &Db, source: &str, id: &str) -> Result<Option<(StoredEvent, Vec<run::Model>)>, StoreError> {
    match events::get(db, id).await? {
        Some(event) if event.source == source => Ok(Some((event, lifecycle_store::runs::for_event(db, id).await?))),
        _ => Ok(None),
    }
}
