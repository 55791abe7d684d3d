//! HR systems' deliveries, from verified to events (issue 27).
//!
//! The receiver ([`accept`]) keeps a verified delivery and answers; nothing
//! else happens before the 2xx. A [`Processor`] (one per producer, several
//! producers may run) then claims due deliveries under a lease and, for each:
//! reads the employee from the HRIS API through the tenant's own budget
//! ([`lifecycle_hris::Source::fetch`]); maps the record against what
//! lifecycle last derived for the person ([`lifecycle_hris::mapping`]); and
//! submits the events through the one intake path ([`crate::intake::submit`])
//! in the transaction that stores the person's new state and marks the
//! delivery processed — so a crash leaves either all of it or none.
//!
//! - A transient API failure (429, 5xx, a timeout) keeps the delivery: due
//!   again after a backoff that doubles per attempt (or the source's
//!   `Retry-After`, when longer), until `[hris] retry_max_age` after it arrived.
//! - What lifecycle cannot act on (the employee unknown to the API, the read
//!   refused, no work e-mail, an unknown status) *needs a person*: kept with
//!   the reason and the raw delivery for the console and `lifecycle-ctl hr
//!   deliveries`, retried by an operator once fixed at the source.

use crate::intake::{self, Submission, Submitted};
use crate::OpsError;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use lifecycle_config::{HrisSettings, ScheduleSettings};
use lifecycle_domain::event::payload_hash;
use lifecycle_domain::EventType;
use lifecycle_hris::mapping::{self, Apps, Context, Decision, Known};
use lifecycle_hris::{Delivery, DeliveryKind, FetchError, Record, SourceKind, Sources};
use lifecycle_store::entity::hris_delivery::DeliveryState;
/// What keeping a delivery did (the producer answers by it).
pub use lifecycle_store::hris::Inserted;
use lifecycle_store::hris::{self as store, NewDelivery};
use lifecycle_store::safety::Guard;
use lifecycle_store::{Db, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// `events.source` of the events a source's deliveries make.
pub fn event_source(source: SourceKind) -> String {
    format!("hris:{source}")
}

/// Keeps a verified delivery (call before answering the source). A repeat of
/// one kept before stores nothing: [`Inserted::Existing`].
pub async fn accept(
    db: &Db,
    source: SourceKind,
    tenant: &str,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Inserted, StoreError> {
    // The columns' widths: a longer identity is kept as its digest (still the
    // same for a retry), a longer type name (shown to operators) cut.
    let key = if delivery.key.len() > 255 {
        format!("sha256:{}", payload_hash(&serde_json::Value::String(delivery.key.clone())))
    } else {
        delivery.key.clone()
    };
    let new = NewDelivery {
        source: source.as_str().to_string(),
        tenant: tenant.to_string(),
        key,
        type_name: delivery.type_name.chars().take(64).collect(),
        kind: delivery.kind.as_str().to_string(),
        employee_id: delivery.employee_id.clone(),
        occurred_at: delivery.occurred_at,
        // Verified bytes; kept as text for operators (a lossy replacement
        // only where a source sent something other than UTF-8).
        body: String::from_utf8_lossy(body).into_owned(),
    };
    let inserted = store::insert(db, new).await?;
    let outcome = match inserted {
        Inserted::Stored(_) => "stored",
        Inserted::Existing(_) => "duplicate",
    };
    metrics::counter!("lifecycle_hris_deliveries_total", "source" => source.as_str(), "outcome" => outcome)
        .increment(1);
    Ok(inserted)
}

/// What processing one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its events are stored (none: nothing lifecycle acts on changed);
    /// `created` of them new (the rest another delivery made first).
    Processed { event_ids: Vec<String>, created: usize, note: String },
    /// Shown to an operator with the reason.
    NeedsPerson(String),
    /// The HRIS API failed transiently: due again at `at`.
    RetryLater { at: DateTime<Utc>, error: String },
    /// Another producer holds it now: nothing was written.
    LeaseLost,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Processed { .. } => "processed",
            Outcome::NeedsPerson(_) => "needs_person",
            Outcome::RetryLater { .. } => "retry",
            Outcome::LeaseLost => "lease_lost",
        }
    }
}

/// Works through due deliveries.
#[derive(Clone)]
pub struct Processor {
    pub db: Db,
    pub sources: Sources,
    pub settings: Arc<HrisSettings>,
    pub schedule: Arc<ScheduleSettings>,
    pub guard: Arc<Guard>,
    /// Who holds the leases (a producer's own id).
    pub owner: String,
}

/// How many deliveries are claimed at once: few, so that those claimed are
/// processed well within their lease even when a tenant's read budget is
/// small (HiBob's 50 a minute), and other producers take the rest.
const BATCH: u64 = 10;

impl Processor {
    /// Claims the due deliveries and processes each; returns how many events
    /// were stored (the caller wakes the outbox relay when any were).
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let mut created = 0;
        loop {
            let claimed = store::claim_due(&self.db, &self.owner, self.settings.lease, BATCH).await?;
            let full = claimed.len() as u64 == BATCH;
            for (i, d) in claimed.iter().enumerate() {
                match self.process(d).await {
                    Ok(Outcome::Processed { created: n, .. }) => created += n,
                    Ok(_) => {}
                    Err(e) => {
                        // A database error mid-pass (SQLite busy, a dropped connection): give
                        // this claim and the rest back for a try soon, rather than leave them
                        // to their lease (a minute). If even that fails, the lease still ends.
                        let at =
                            Utc::now() + chrono::Duration::from_std(self.settings.retry_min_delay).unwrap_or_default();
                        for rest in &claimed[i..] {
                            let _ = store::retry_later(&self.db, &rest.id, &self.owner, at, &e.to_string()).await;
                        }
                        return Err(e);
                    }
                }
            }
            if !full {
                return Ok(created);
            }
        }
    }

    /// Processes one claimed delivery and records what happened.
    pub async fn process(&self, row: &store::Delivery) -> Result<Outcome, StoreError> {
        let outcome = self.decide_and_store(row).await?;
        let source = row.source.as_str();
        match &outcome {
            Outcome::Processed { event_ids, note, .. } => {
                info!(delivery = %row.id, source, tenant = %row.tenant, events = event_ids.len(), %note, "hr delivery processed")
            }
            Outcome::NeedsPerson(why) => {
                if !store::mark_needs_person(&self.db, &row.id, &self.owner, why, row.last_error.as_deref()).await? {
                    return Ok(Outcome::LeaseLost);
                }
                warn!(delivery = %row.id, source, tenant = %row.tenant, reason = %why, "hr delivery needs a person")
            }
            Outcome::RetryLater { at, error } => {
                if !store::retry_later(&self.db, &row.id, &self.owner, *at, error).await? {
                    return Ok(Outcome::LeaseLost);
                }
                info!(delivery = %row.id, source, tenant = %row.tenant, attempts = row.attempts, retry_at = %at, %error, "hr delivery kept for a later try")
            }
            Outcome::LeaseLost => {
                warn!(delivery = %row.id, source, "another producer took the hr delivery over; nothing written")
            }
        }
        let source_label = row.source.parse::<SourceKind>().map_or("unknown", SourceKind::as_str);
        metrics::counter!("lifecycle_hris_deliveries_total", "source" => source_label, "outcome" => outcome.label())
            .increment(1);
        Ok(outcome)
    }

    async fn decide_and_store(&self, row: &store::Delivery) -> Result<Outcome, StoreError> {
        let needs = |why: String| Ok(Outcome::NeedsPerson(why));
        let Ok(kind) = row.source.parse::<SourceKind>() else {
            return needs(format!("unknown HR source {:?}", row.source));
        };
        let Some(source) = self.sources.get(kind) else {
            return needs(format!("{kind} is no longer configured ([hris.{kind}]): configure it, then retry"));
        };
        let Ok(delivery_kind) = row.kind.parse::<DeliveryKind>() else {
            return needs(format!("unknown delivery kind {:?}", row.kind));
        };
        let Some(employee) = row.employee_id.as_deref() else {
            return needs(format!("the {kind} delivery ({}) names no employee", row.type_name));
        };
        let record: Option<Record> = match source.fetch(&row.tenant, employee).await {
            Ok(r) => Some(r),
            // Gone from the HRIS: a leaver of someone lifecycle knows can still be made.
            Err(FetchError::NotFound(_)) if delivery_kind == DeliveryKind::Left => None,
            Err(e @ (FetchError::NotFound(_) | FetchError::Refused(_))) => {
                return needs(format!("reading employee {employee} from {kind} ({}): {e}", row.tenant));
            }
            Err(e) => return Ok(self.later(row, &e)),
        };
        let delivery = Delivery {
            company_id: String::new(),
            key: row.delivery_key.clone(),
            kind: delivery_kind,
            type_name: row.type_name.clone(),
            employee_id: Some(employee.to_string()),
            occurred_at: row.occurred_at,
        };
        let txn = lifecycle_store::begin_write(&self.db).await?;
        let person = store::person(&txn, kind.as_str(), &row.tenant, employee).await?;
        let known = person.as_ref().map(known_of).transpose()?;
        let ctx = Context { source: kind, tenant: &row.tenant, settings: &self.settings, now: Utc::now() };
        let (events, after, note) = match mapping::decide(&ctx, &delivery, record.as_ref(), known.as_ref()) {
            Decision::NeedsPerson(why) => {
                txn.rollback().await?;
                return needs(why);
            }
            Decision::Events { events, after, note } => (events, after, note),
        };
        let (source_name, actor) = (event_source(kind), format!("hris:{kind}:{}", row.tenant));
        let mut event_ids = Vec::with_capacity(events.len());
        let mut created = 0;
        for m in &events {
            let hash = payload_hash(&m.payload);
            let submission = Submission {
                source: &source_name,
                idempotency_key: &m.idempotency_key,
                payload: &m.payload,
                payload_hash: &hash,
                event: &m.event,
                actor: &actor,
            };
            match intake::submit(&txn, &self.schedule, &self.guard, submission).await? {
                Submitted::Created { event_id, .. } => {
                    created += 1;
                    metrics::counter!("lifecycle_events_accepted_total", "type" => m.event_type.as_str()).increment(1);
                    event_ids.push(event_id);
                }
                // Another delivery of the same change made it first (BambooHR's created + updated).
                Submitted::Existing(existing) => event_ids.push(existing.id),
            }
        }
        if let Some(after) = after {
            let next = store::Person {
                source: kind.as_str().to_string(),
                tenant: row.tenant.clone(),
                employee_id: employee.to_string(),
                email: after.email,
                last_event_type: after.last_event_type.as_str().to_string(),
                apps: serde_json::to_string(&after.apps).expect("apps serialize"),
                apps_hash: mapping::apps_hash(&after.apps),
                version: after.version,
                updated_at: Utc::now(),
            };
            if !store::save_person(&txn, next, known.as_ref().map(|k| k.version)).await? {
                // Another producer mapped a delivery of the same person meanwhile: map again on its result.
                txn.rollback().await?;
                let error = "another delivery of the same person was processed meanwhile".to_string();
                return Ok(Outcome::RetryLater { at: Utc::now() + chrono::Duration::seconds(1), error });
            }
        }
        if !store::mark_processed(&txn, &row.id, &self.owner, &event_ids, &note).await? {
            txn.rollback().await?;
            return Ok(Outcome::LeaseLost);
        }
        txn.commit().await?;
        Ok(Outcome::Processed { event_ids, created, note })
    }

    /// A transient failure: due again after the backoff of this attempt, or
    /// the source's `Retry-After` when longer; a person looks once it has
    /// failed for `retry_max_age`.
    fn later(&self, row: &store::Delivery, e: &FetchError) -> Outcome {
        let now = Utc::now();
        let age = (now - row.received_at).to_std().unwrap_or_default();
        if age >= self.settings.retry_max_age {
            return Outcome::NeedsPerson(format!(
                "the {} API has failed for {} since the delivery arrived: {e}; retry it once the API answers",
                row.source,
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ));
        }
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_min_delay)
            .with_max_delay(self.settings.retry_max_delay)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(row.attempts.max(1) as usize - 1)
            .unwrap_or(self.settings.retry_max_delay);
        let wait = match e {
            FetchError::Throttled { retry_after: Some(after) } => backoff.max(*after),
            _ => backoff,
        };
        let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        Outcome::RetryLater { at, error: e.to_string() }
    }

    /// Runs passes until `shutdown`: every `[hris] poll_interval`, or at
    /// once when `wake` is notified (a delivery was stored); `on_events` is
    /// called after a pass that stored events.
    pub async fn run(
        self,
        wake: Arc<tokio::sync::Notify>,
        on_events: impl Fn() + Send,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        let mut failing = false;
        loop {
            match self.pass().await {
                Ok(n) => {
                    failing = false;
                    if n > 0 {
                        on_events();
                    }
                }
                Err(e) if !failing => {
                    warn!(error = %e, "cannot process hr deliveries; they are kept and tried again");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = wake.notified() => {},
                _ = tokio::time::sleep(self.settings.poll_interval) => {},
            }
        }
    }
}

fn known_of(p: &store::Person) -> Result<Known, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("hris_people {}/{}: {what}", p.source, p.employee_id));
    let last_event_type = match p.last_event_type.as_str() {
        "joiner" => EventType::Joiner,
        "mover" => EventType::Mover,
        "leaver" => EventType::Leaver,
        _ => return Err(corrupt("last_event_type")),
    };
    let apps: Apps = serde_json::from_str(&p.apps).map_err(|_| corrupt("apps"))?;
    Ok(Known { email: p.email.clone(), last_event_type, apps, version: p.version })
}

/// A delivery as operators see it (the console, `lifecycle-ctl hr deliveries`).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub source: String,
    pub tenant: String,
    pub type_name: String,
    pub employee_id: Option<String>,
    pub state: DeliveryState,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What processing did, or why a person must look.
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub event_ids: Vec<String>,
    /// The body as the source sent it.
    pub body: String,
}

impl From<store::Delivery> for DeliveryView {
    fn from(d: store::Delivery) -> Self {
        let pending = d.state == DeliveryState::Pending;
        DeliveryView {
            event_ids: d.event_ids.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default(),
            id: d.id,
            source: d.source,
            tenant: d.tenant,
            type_name: d.type_name,
            employee_id: d.employee_id,
            state: d.state,
            attempts: d.attempts,
            received_at: d.received_at,
            occurred_at: d.occurred_at,
            next_attempt_at: pending.then_some(d.next_attempt_at),
            outcome: d.outcome,
            last_error: d.last_error,
            body: d.body,
        }
    }
}

/// Deliveries, newest first.
pub async fn list_deliveries(db: &Db, filter: &store::DeliveryFilter) -> Result<Vec<DeliveryView>, OpsError> {
    Ok(store::list(db, filter).await?.into_iter().map(DeliveryView::from).collect())
}

pub async fn delivery(db: &Db, id: &str) -> Result<DeliveryView, OpsError> {
    store::get(db, id).await?.map(DeliveryView::from).ok_or_else(|| OpsError::NotFound(format!("no HR delivery {id}")))
}

/// An operator's retry of a delivery that needs a person: due at once, audited.
pub async fn retry_delivery(db: &Db, id: &str, actor: &str, reason: Option<&str>) -> Result<DeliveryView, OpsError> {
    let d = store::get(db, id).await?.ok_or_else(|| OpsError::NotFound(format!("no HR delivery {id}")))?;
    if d.state != DeliveryState::NeedsPerson {
        return Err(OpsError::Refused(format!(
            "HR delivery {id} is {}: only one that needs a person is retried by hand",
            d.state.as_str()
        )));
    }
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    if !store::retry_now(&txn, id).await? {
        return Err(OpsError::Refused(format!("HR delivery {id} changed meanwhile; look again")));
    }
    lifecycle_store::audit::record(
        &txn,
        lifecycle_store::audit::NewEntry {
            actor,
            action: "hris.delivery.retry",
            target_kind: "hris_delivery",
            target_id: id,
            reason,
            details: Some(serde_json::json!({"source": d.source, "tenant": d.tenant, "outcome": d.outcome})),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    delivery(db, id).await
}
