//! The executor's decisions, one message at a time, over an in-memory SQLite
//! journal and a connector written here: what it does with a message that is
//! stale, early, for an ended or scheduled run, or behind an earlier run of the
//! same person, and how each way a workflow ends is recorded. No broker: the
//! publisher points at a port nobody listens on, so every publish fails as it
//! would with RabbitMQ down, and the database alone must say what happens next
//! (the sweeper republishes from it).

use async_trait::async_trait;
use lifecycle_broker::{Dispatch, Publisher, Topology};
use lifecycle_config::RetrySettings;
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_engine::{
    Access, Connector, Disposition, Executor, ExecutorConfig, Outcome, Registry, RunSpec, StepError, Steps,
};
use lifecycle_store::engine::Storage;
use lifecycle_store::harness::Harness;
use lifecycle_store::runs;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the test connector ends every run it is given.
#[derive(Clone, Copy)]
enum Ending {
    Done,
    NeedsPerson,
    Transient,
    Permanent,
    Panic,
}

struct TestConnector {
    ending: Ending,
    calls: AtomicU32,
}

#[async_trait]
impl Connector for TestConnector {
    fn vendor(&self) -> VendorKind {
        VendorKind::Pipedrive
    }

    fn workflows(&self) -> &'static [Workflow] {
        &[Workflow::Joiner, Workflow::Mover, Workflow::Leaver]
    }

    async fn run_workflow(&self, _run: &RunSpec, _steps: &mut Steps) -> Result<Outcome, StepError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.ending {
            Ending::Done => Ok(Outcome::done("did it", Access::Active)),
            Ending::NeedsPerson => Ok(Outcome::needs_person("a person must do it", None)),
            Ending::Transient => Err(StepError::transient("the vendor is busy")),
            Ending::Permanent => Err(StepError::permanent("the vendor refuses")),
            Ending::Panic => panic!("a bug in the connector"),
        }
    }
}

struct World {
    harness: Harness,
    executor: Executor,
    connector: Arc<TestConnector>,
}

async fn world(ending: Ending) -> World {
    let harness = Harness::new().await;
    let connector = Arc::new(TestConnector { ending, calls: AtomicU32::new(0) });
    let mut registry = Registry::new();
    registry.insert(connector.clone());
    // Nothing listens on port 1: every publish fails at once.
    let publisher =
        Arc::new(Publisher::new("amqp://127.0.0.1:1/%2f", "test", Topology::new("t"), Duration::from_millis(200)));
    let config = ExecutorConfig {
        worker_id: "worker-test".into(),
        lease: Duration::from_secs(30),
        blocked_recheck: Duration::from_secs(60),
        retry: RetrySettings { max_attempts: 3, ..RetrySettings::default() },
    };
    let storage = Arc::new(Storage::new(harness.db().clone()));
    let executor = Executor::new(storage.clone(), storage, publisher, registry, config, CancellationToken::new());
    World { harness, executor, connector }
}

fn event(kind: &str, email: &str) -> Value {
    json!({
        "type": kind,
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": {"id": "E-1", "email": email, "given_name": "Ada", "family_name": "Lovelace"},
        "apps": {"pipedrive": {"role": "Sales Rep"}}
    })
}

impl World {
    async fn record(&self, kind: &str, email: &str) -> String {
        self.harness.record(&event(kind, email), VendorKind::Pipedrive).await
    }

    async fn run(&self, id: &str) -> runs::Run {
        runs::get(self.harness.db(), id).await.unwrap().unwrap()
    }

    /// Hands the executor the run's current message.
    async fn deliver(&self, id: &str) -> Disposition {
        let run = self.run(id).await;
        self.deliver_seq(id, run.dispatch_seq).await
    }

    async fn deliver_seq(&self, id: &str, dispatch_seq: i64) -> Disposition {
        let d = Dispatch { run_id: id.into(), dispatch_seq, vendor: VendorKind::Pipedrive };
        self.executor.handle(&serde_json::to_vec(&d).unwrap()).await
    }

    fn calls(&self) -> u32 {
        self.connector.calls.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_message_that_is_not_a_dispatch_is_dead_lettered() {
    let w = world(Ending::Done).await;
    assert_eq!(w.executor.handle(b"{not json").await, Disposition::DeadLetter);
    assert_eq!(w.executor.handle(br#"{"run_id": 7}"#).await, Disposition::DeadLetter);
}

#[tokio::test]
async fn a_message_for_an_unknown_run_is_dead_lettered() {
    let w = world(Ending::Done).await;
    assert_eq!(w.deliver_seq("no-such-run", 1).await, Disposition::DeadLetter);
    assert_eq!(w.calls(), 0);
}

#[tokio::test]
async fn a_run_that_succeeds_ends_succeeded_with_its_outcome() {
    let w = world(Ending::Done).await;
    let id = w.record("joiner", "ada@example.com").await;
    assert_eq!(w.deliver(&id).await, Disposition::Ack);
    let run = w.run(&id).await;
    assert_eq!(
        (run.state, run.outcome.as_deref(), run.access),
        (RunState::Succeeded, Some("did it"), Some(lifecycle_engine::Access::Active))
    );
    assert_eq!((run.attempts, w.calls()), (1, 1));
    assert!(run.lease_owner.is_none(), "the lease is released at the end");
}

#[tokio::test]
async fn a_stale_message_is_dropped_and_changes_nothing() {
    let w = world(Ending::Done).await;
    let id = w.record("joiner", "ada@example.com").await;
    let before = w.run(&id).await;
    assert_eq!(w.deliver_seq(&id, before.dispatch_seq - 1).await, Disposition::Ack);
    assert_eq!(w.run(&id).await, before, "a message of an older dispatch does nothing");
    assert_eq!(w.calls(), 0);
}

#[tokio::test]
async fn a_message_for_an_ended_run_is_dropped() {
    let w = world(Ending::Done).await;
    let id = w.record("joiner", "ada@example.com").await;
    w.deliver(&id).await;
    let ended = w.run(&id).await;
    // A redelivery of the same message (the ack was lost).
    assert_eq!(w.deliver_seq(&id, ended.dispatch_seq).await, Disposition::Ack);
    assert_eq!(w.run(&id).await, ended);
    assert_eq!(w.calls(), 1, "executed once");
}

#[tokio::test]
async fn a_later_run_for_the_same_person_waits_for_the_earlier_one() {
    let w = world(Ending::Done).await;
    let first = w.record("joiner", "ada@example.com").await;
    let second = w.record("leaver", "ada@example.com").await;
    let other = w.record("joiner", "bob@example.com").await;
    assert_eq!(w.deliver(&second).await, Disposition::Ack);
    let parked = w.run(&second).await;
    assert_eq!(parked.blocked_by.as_deref(), Some(first.as_str()), "parked behind the earlier run");
    assert!(!parked.state.is_terminal());
    assert_eq!(w.calls(), 0, "the leaver did not run before the joiner");
    // Someone else is not held up.
    w.deliver(&other).await;
    assert_eq!(w.run(&other).await.state, RunState::Succeeded);
    // The earlier one ends; the later one then runs.
    w.deliver(&first).await;
    assert_eq!(w.run(&first).await.state, RunState::Succeeded);
    w.deliver(&second).await;
    assert_eq!(w.run(&second).await.state, RunState::Succeeded);
}

#[tokio::test]
async fn a_transient_failure_schedules_a_retry_in_the_database_even_when_the_broker_is_down() {
    let w = world(Ending::Transient).await;
    let id = w.record("joiner", "ada@example.com").await;
    let sent = w.run(&id).await;
    assert_eq!(w.deliver(&id).await, Disposition::Ack, "the database holds the retry; the sweeper republishes it");
    let run = w.run(&id).await;
    assert_eq!(run.state, RunState::RetryScheduled);
    assert_eq!(run.attempts, 1);
    assert!(run.next_attempt_at > chrono::Utc::now(), "due later, after the backoff");
    assert!(run.dispatch_seq > sent.dispatch_seq, "the retry is a new dispatch; the old message is stale");
    assert_eq!(run.last_error.as_deref(), Some("the vendor is busy"));
    // A message that arrives before the run is due is sent round again, not run.
    assert_eq!(w.deliver(&id).await, Disposition::Requeue, "early, and the delay queue is unreachable: handed back");
    assert_eq!(w.calls(), 1);
}

#[tokio::test]
async fn transient_failures_end_dead_after_max_attempts() {
    let w = world(Ending::Transient).await;
    let id = w.record("joiner", "ada@example.com").await;
    for _ in 0..3 {
        // Due now, as if the delay had passed.
        let run = w.run(&id).await;
        runs::redispatch(w.harness.db(), &id, run.dispatch_seq, true).await.unwrap();
        w.deliver(&id).await;
    }
    let run = w.run(&id).await;
    assert_eq!(run.state, RunState::Dead);
    assert!(run.outcome.as_deref().unwrap().starts_with("gave up after 3 attempts"), "{:?}", run.outcome);
    assert_eq!(w.calls(), 3);
}

#[tokio::test]
async fn a_permanent_failure_ends_dead_at_once_saying_why() {
    let w = world(Ending::Permanent).await;
    let id = w.record("joiner", "ada@example.com").await;
    assert_eq!(w.deliver(&id).await, Disposition::Ack);
    let run = w.run(&id).await;
    assert_eq!((run.state, run.outcome.as_deref(), run.attempts), (RunState::Dead, Some("the vendor refuses"), 1));
}

#[tokio::test]
async fn an_outcome_that_needs_a_person_ends_needs_manual_action() {
    let w = world(Ending::NeedsPerson).await;
    let id = w.record("joiner", "ada@example.com").await;
    w.deliver(&id).await;
    let run = w.run(&id).await;
    assert_eq!((run.state, run.outcome.as_deref()), (RunState::NeedsManualAction, Some("a person must do it")));
}

#[tokio::test]
async fn a_panicking_workflow_ends_the_run_dead_and_the_worker_goes_on() {
    let w = world(Ending::Panic).await;
    let id = w.record("joiner", "ada@example.com").await;
    assert_eq!(w.deliver(&id).await, Disposition::Ack);
    let run = w.run(&id).await;
    assert_eq!(run.state, RunState::Dead);
    assert!(run.outcome.as_deref().unwrap().contains("a bug in the connector"), "{:?}", run.outcome);
}

#[tokio::test]
async fn a_workflow_the_vendor_does_not_have_ends_dead_without_running() {
    let w = world(Ending::Done).await;
    let id = w
        .harness
        .record_workflow(&event("leaver", "ada@example.com"), VendorKind::Pipedrive, Workflow::ReassignDeals)
        .await;
    w.deliver(&id).await;
    let run = w.run(&id).await;
    assert_eq!(run.state, RunState::Dead);
    assert!(run.outcome.as_deref().unwrap().contains("has no reassign_deals workflow"), "{:?}", run.outcome);
    assert_eq!(w.calls(), 0);
}

#[tokio::test]
async fn a_vendor_this_worker_does_not_have_ends_dead_saying_what_to_configure() {
    let w = world(Ending::Done).await;
    let mut ev = event("joiner", "ada@example.com");
    ev["apps"] = json!({"calendly": {}});
    let id = w.harness.record(&ev, VendorKind::Calendly).await;
    let run = w.run(&id).await;
    let d = Dispatch { run_id: id.clone(), dispatch_seq: run.dispatch_seq, vendor: VendorKind::Calendly };
    assert_eq!(w.executor.handle(&serde_json::to_vec(&d).unwrap()).await, Disposition::Ack);
    let run = w.run(&id).await;
    assert_eq!(run.state, RunState::Dead);
    assert!(run.outcome.as_deref().unwrap().contains("[vendors.calendly]"), "{:?}", run.outcome);
}
