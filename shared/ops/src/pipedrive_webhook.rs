//! What a Pipedrive user webhook reads and writes (`POST /v1/webhooks/pipedrive`):
//! the person's runs and HR events before the delivery is judged (by
//! `lifecycle_vendors::pipedrive::webhook::decide`, which reads no store),
//! and, in one transaction, the delivery, the runs it starts, the drift it
//! reveals and the waiting runs it ends after.

use lifecycle_broker::Publisher;
use lifecycle_domain::{EmployeeEmail, EventType, RunInput, RunState, VendorKind, Workflow};
use lifecycle_store::drift::NewDrift;
use lifecycle_store::entity::{event, run};
use lifecycle_store::events::{self, Accepted, NewEvent, NewRun};
use lifecycle_store::runs::{self, RunFilter};
use lifecycle_store::webhooks::{self, RunEnding};
use lifecycle_store::{Db, StoreError};
use serde_json::Value;
use std::sync::Arc;

/// A delivery stored before, as it was answered.
pub type StoredDelivery = event::Model;

/// The delivery stored under `key` from `source`, if one is.
pub async fn find(db: &Db, source: &str, key: &str) -> Result<Option<StoredDelivery>, StoreError> {
    events::find_by_key(db, source, key).await
}

/// What lifecycle knows of a person at a vendor.
#[derive(Debug, Clone, Default)]
pub struct Person {
    /// Every run for the person at the vendor, newest first.
    pub runs: Vec<run::Model>,
    /// The id of the person's latest HR joiner event.
    pub joiner: Option<String>,
    /// The successor named by the person's latest HR leaver event.
    pub successor: Option<EmployeeEmail>,
}

/// [`Person`] for `email` at `vendor`.
pub async fn person(db: &Db, vendor: VendorKind, email: &EmployeeEmail) -> Result<Person, StoreError> {
    let key = email.normalized();
    let filter =
        RunFilter { vendor: Some(vendor), employee: Some(key.clone()), limit: Some(500), ..Default::default() };
    let runs = runs::list(db, &filter).await?.into_iter().filter(|r| r.person_key == key).collect();
    let latest = |t: EventType| events::latest_for_person(db, events::INTAKE_SOURCE, t.as_str(), &key);
    let joiner = latest(EventType::Joiner).await?.map(|e| e.id);
    let successor = latest(EventType::Leaver)
        .await?
        .and_then(|e| serde_json::from_str::<Value>(&e.payload).ok())
        .and_then(|v| v.get("successor_email").and_then(Value::as_str).map(str::to_string))
        .and_then(|s| EmployeeEmail::parse(&s).ok());
    Ok(Person { runs, joiner, successor })
}

/// A delivery to store under its delivery key, with its answer.
pub struct Delivery {
    pub event_id: String,
    pub source: String,
    pub key: String,
    pub payload_hash: String,
    pub event_type: String,
    /// Normalized.
    pub email: Option<String>,
    pub payload: String,
    pub response_status: u16,
    pub response_body: String,
}

/// A run the delivery starts.
pub struct Start {
    pub id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub person_key: String,
    pub input: RunInput,
}

/// Drift the delivery reveals.
pub struct Drift {
    pub vendor: VendorKind,
    pub kind: lifecycle_domain::DriftKind,
    pub vendor_user_id: Option<String>,
    pub email: Option<String>,
    pub details: String,
}

/// A waiting run the delivery ends, read at `dispatch_seq`.
pub struct End {
    pub run_id: String,
    pub dispatch_seq: i64,
    pub state: RunState,
    pub outcome: String,
    pub access: Option<lifecycle_domain::Access>,
}

/// What [`record`] did.
pub enum Recorded {
    /// Stored now; `ended`: the runs it ended (one a worker claimed meanwhile is not).
    Created { ended: Vec<String> },
    /// The same delivery was stored first (a race with Pipedrive's retry).
    Existing(Box<StoredDelivery>),
}

/// Stores the delivery and what it leads to in one transaction; runs that
/// waited behind the ended ones are woken (in the background: the answer
/// does not wait for the broker).
pub async fn record(
    db: &Db,
    publisher: &Arc<Publisher>,
    delivery: Delivery,
    starts: Vec<Start>,
    drift: Vec<Drift>,
    ends: Vec<End>,
) -> Result<Recorded, StoreError> {
    let new_event = NewEvent {
        id: delivery.event_id,
        source: delivery.source,
        idempotency_key: delivery.key,
        payload_hash: delivery.payload_hash,
        event_type: delivery.event_type,
        employee_id: None,
        employee_email: delivery.email,
        payload: delivery.payload,
        response_status: i32::from(delivery.response_status),
        response_body: delivery.response_body,
        // The webhook span's trace: the runs it stores carry it.
        traceparent: lifecycle_telemetry::current_traceparent(),
    };
    let runs = starts
        .into_iter()
        .map(|s| NewRun {
            id: s.id,
            vendor: s.vendor,
            workflow: s.workflow,
            person_key: s.person_key,
            input: serde_json::to_string(&s.input).expect("a run input serializes"),
            occurred_at: None,
            effective_at: None,
            start_at: None,
        })
        .collect();
    let drift = drift
        .into_iter()
        .map(|d| NewDrift {
            vendor: d.vendor,
            kind: d.kind,
            vendor_user_id: d.vendor_user_id,
            email: d.email,
            details: d.details,
        })
        .collect();
    let endings = ends
        .into_iter()
        .map(|e| RunEnding {
            run_id: e.run_id,
            dispatch_seq: e.dispatch_seq,
            state: e.state,
            outcome: e.outcome,
            access: e.access,
        })
        .collect();
    let recorded = webhooks::record(db, new_event, runs, drift, endings).await?;
    match recorded.accepted {
        Accepted::Created { .. } => {
            if !recorded.ended.is_empty() {
                // Runs that waited behind the ended ones go now, not at their next re-check.
                let runs = lifecycle_store::engine::Storage::new(db.clone());
                let (publisher, ended) = (publisher.clone(), recorded.ended.clone());
                tokio::spawn(async move { lifecycle_engine::wake_after(&runs, &publisher, &ended).await });
            }
            Ok(Recorded::Created { ended: recorded.ended })
        }
        Accepted::Existing(existing) => Ok(Recorded::Existing(existing)),
    }
}
