//! Runs a vendor's workflow in process, for fast tests: the journal in an
//! in-memory SQLite database (the engine's storage traits over it, as the
//! worker has them), no broker, no worker process. The connector is
//! called the way the executor calls it (a claimed run, its journal, the
//! lease in scope), so a workflow's steps, their replay on a retry and their
//! in-doubt handling behave as in production.
//!
//! ```ignore
//! let h = Harness::new().await;
//! let first = h.start(&*connector, &event_json, VendorKind::Pipedrive).await;
//! assert!(first.result.is_ok());
//! let again = h.retry(&*connector, &first.run_id).await; // the same run's next attempt
//! ```

use crate::engine::Storage;
use crate::events::{self, NewEvent, NewRun};
use crate::runs;
use crate::steps::{self as journal, Step};
use crate::Db;
use lifecycle_domain::{Event, RunInput, RunState, VendorKind, Workflow};
use lifecycle_engine::{Claim, Connector, Lease, Outcome, StepError, Steps};
use sea_orm::TransactionTrait;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const OWNER: &str = "harness";
const LEASE: Duration = Duration::from_secs(300);

/// An in-memory journal and the runs in it.
pub struct Harness {
    db: Db,
    next: AtomicU32,
}

/// One attempt of one run.
#[derive(Debug)]
pub struct Attempted {
    pub run_id: String,
    pub result: Result<Outcome, StepError>,
    /// Steps executed (not replayed from the journal) in this attempt.
    pub executed: u32,
}

impl Attempted {
    /// The outcome, or a panic naming the error.
    #[track_caller]
    pub fn outcome(&self) -> &Outcome {
        match &self.result {
            Ok(o) => o,
            Err(e) => panic!("run {} failed: {e}", self.run_id),
        }
    }

    /// The error, or a panic naming the outcome.
    #[track_caller]
    pub fn error(&self) -> &StepError {
        match &self.result {
            Err(e) => e,
            Ok(o) => panic!("run {} did not fail: {o:?}", self.run_id),
        }
    }
}

impl Harness {
    /// Records the attempt's end as the executor would: an outcome ends the
    /// run, a failure that may pass schedules it again (due now), any other
    /// ends it dead.
    async fn end(&self, run_id: &str, result: &Result<Outcome, StepError>) {
        let (state, text) = match result {
            Ok(o) if o.needs_person => (RunState::NeedsManualAction, o.summary.clone()),
            Ok(o) => (RunState::Succeeded, o.summary.clone()),
            Err(StepError::NeedsPerson { message }) => (RunState::NeedsManualAction, message.clone()),
            Err(StepError::Permanent { message }) => (RunState::Dead, message.clone()),
            Err(e) => {
                let current = runs::get(&self.db, run_id).await.expect("the run reads").expect("the run exists");
                runs::schedule_retry(&self.db, run_id, OWNER, current.dispatch_seq, chrono::Utc::now(), &e.to_string())
                    .await
                    .expect("the retry is recorded")
                    .unwrap_or_else(|| panic!("the harness still holds {run_id}"));
                return;
            }
        };
        let finish = runs::Finish { state, outcome: &text, access: None, last_error: None };
        assert!(runs::finish(&self.db, run_id, OWNER, finish).await.expect("the end is recorded"), "held {run_id}");
    }

    pub async fn new() -> Self {
        // One connection: an in-memory SQLite database lives and dies with its connection.
        let db = crate::connect("sqlite::memory:", 1).await.expect("an in-memory database opens");
        crate::migrate(&db).await.expect("the migrations apply");
        Self { db, next: AtomicU32::new(1) }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Records `event` (the intake's JSON) with one run for `vendor`, and
    /// executes the run's first attempt.
    pub async fn start(&self, connector: &dyn Connector, event: &serde_json::Value, vendor: VendorKind) -> Attempted {
        let run_id = self.record(event, vendor).await;
        self.attempt(connector, &run_id).await
    }

    /// Records `event` as [`Harness::record_workflow`] does and executes the
    /// run's first attempt.
    pub async fn start_workflow(
        &self,
        connector: &dyn Connector,
        event: &serde_json::Value,
        vendor: VendorKind,
        workflow: Workflow,
    ) -> Attempted {
        let run_id = self.record_workflow(event, vendor, workflow).await;
        self.attempt(connector, &run_id).await
    }

    /// Executes the next attempt of `run_id`, its journal as the last attempt left it.
    pub async fn retry(&self, connector: &dyn Connector, run_id: &str) -> Attempted {
        self.attempt(connector, run_id).await
    }

    /// The run's journal, in step order.
    pub async fn journal(&self, run_id: &str) -> Vec<Step> {
        journal::load(&self.db, run_id).await.expect("the journal reads")
    }

    /// The keys of the run's journal, in step order.
    pub async fn keys(&self, run_id: &str) -> Vec<String> {
        self.journal(run_id).await.into_iter().map(|s| s.key).collect()
    }

    /// Records `event` with one run for `vendor` (its workflow the event
    /// type's) without executing it; returns the run's id.
    pub async fn record(&self, event: &serde_json::Value, vendor: VendorKind) -> String {
        self.record_as(event, vendor, None).await
    }

    /// As [`Harness::record`], the run's workflow `workflow` whatever the
    /// event type: for a workflow that no event type starts (`reassign_deals`).
    pub async fn record_workflow(&self, event: &serde_json::Value, vendor: VendorKind, workflow: Workflow) -> String {
        self.record_as(event, vendor, Some(workflow)).await
    }

    async fn record_as(&self, event: &serde_json::Value, vendor: VendorKind, workflow: Option<Workflow>) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let parsed = Event::parse(event).unwrap_or_else(|e| panic!("the test's event is valid: {e:?}"));
        let input: RunInput = parsed
            .run_inputs()
            .into_iter()
            .find(|i| i.app.vendor() == vendor)
            .unwrap_or_else(|| panic!("the test's event names {vendor}"));
        let workflow = workflow.unwrap_or_else(|| parsed.event_type.workflow().expect("the event type has a workflow"));
        let (event_id, run_id) = (format!("ev-{n}"), format!("run-{n}"));
        let ev = NewEvent {
            id: event_id,
            source: "test".into(),
            idempotency_key: format!("key-{n}"),
            payload_hash: format!("hash-{n}"),
            event_type: parsed.event_type.as_str().into(),
            employee_id: Some(parsed.employee.id.clone()),
            employee_email: Some(parsed.employee.email.to_string()),
            payload: event.to_string(),
            response_status: 202,
            response_body: "{}".into(),
            traceparent: None,
        };
        let run = NewRun {
            id: run_id.clone(),
            vendor,
            workflow,
            person_key: parsed.employee.email.to_string(),
            input: serde_json::to_string(&input).expect("a run input serializes"),
            occurred_at: None,
            effective_at: None,
            start_at: None,
        };
        events::accept(&self.db, ev, vec![run], None, |_| String::new()).await.expect("the event is recorded");
        run_id
    }

    async fn attempt(&self, connector: &dyn Connector, run_id: &str) -> Attempted {
        let mut run = runs::get(&self.db, run_id).await.expect("the run reads").expect("the run exists");
        if matches!(run.state, RunState::Dead | RunState::NeedsManualAction) {
            // As an operator's replay: the journal kept, the run queued again.
            let txn = self.db.begin().await.expect("a transaction");
            runs::reset_for_replay(&txn, &run, None).await.expect("the replay runs").expect("the run can be replayed");
            txn.commit().await.expect("the replay commits");
            run = runs::get(&self.db, run_id).await.expect("the run reads").expect("the run exists");
        }
        let claimed_from = Instant::now();
        assert!(
            runs::claim(&self.db, &run, run.dispatch_seq, OWNER, LEASE).await.expect("the claim runs"),
            "the harness claims run {run_id}"
        );
        let attempt = run.attempts + 1;
        let spec = lifecycle_engine::spec(&crate::engine::record(run), attempt).expect("the stored input reads");
        let lease = Lease::new(claimed_from + LEASE);
        let claim = Claim {
            run_id: run_id.to_string(),
            owner: OWNER.into(),
            lease: lease.clone(),
            vendor: spec.vendor,
            attempt,
        };
        let journal = Arc::new(Storage::new(self.db.clone()));
        let mut steps = Steps::load(journal, claim, CancellationToken::new()).await.expect("the journal loads");
        let result = lease.scope(connector.execute(&spec, &mut steps)).await;
        self.end(run_id, &result).await;
        Attempted { run_id: run_id.to_string(), result, executed: steps.executed() }
    }
}
