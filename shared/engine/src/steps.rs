//! The API workflows are written in: named, journaled steps.

use crate::storage::{Claim, Journal, StepRecord as Step, StepWrite};
use crate::{Lease, StepError};
use lifecycle_domain::StepStatus;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What a step's closure learns about the attempt it is.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1 for the first attempt of this step.
    pub number: i32,
    /// An earlier attempt began and did not record success: its effect may
    /// or may not have happened at the vendor (the worker died, or the vendor
    /// applied the change and failed the response). Look before acting.
    pub in_doubt: bool,
}

/// A run's journal, as its workflow sees it.
///
/// `steps.run("create_user", |attempt| async { ... })` executes the closure
/// only if the step has not already succeeded in an earlier attempt of the
/// run; otherwise it returns the recorded output without calling the vendor.
/// Keys must be unique within a run and derived only from the run's input and
/// earlier steps' outputs (`reassign_deal:42`), so a retry meets the same keys.
pub struct Steps {
    journal: Arc<dyn Journal>,
    run_id: String,
    /// The worker executing the run: every journal write is refused once it
    /// no longer holds the run's lease.
    owner: String,
    lease: Lease,
    vendor: &'static str,
    run_attempt: i32,
    records: HashMap<String, Step>,
    /// The highest position in the journal: a new step goes after it, so a
    /// step keeps the position it first ran at, whatever a retry revisits.
    last_position: i32,
    shutdown: CancellationToken,
    executed: u32,
}

impl Steps {
    /// The journal of the claimed run, executed by the claim's owner under its lease.
    pub async fn load(journal: Arc<dyn Journal>, claim: Claim, shutdown: CancellationToken) -> Result<Self, StepError> {
        let records: HashMap<String, Step> =
            journal.load(&claim.run_id).await?.into_iter().map(|s| (s.key.clone(), s)).collect();
        let mut steps = Self::empty(journal, claim, shutdown);
        steps.last_position = records.values().map(|s| s.position).max().unwrap_or(0);
        steps.records = records;
        Ok(steps)
    }

    /// The journal of a run that has never been started: nothing to read.
    pub fn empty(journal: Arc<dyn Journal>, claim: Claim, shutdown: CancellationToken) -> Self {
        Self {
            journal,
            run_id: claim.run_id,
            owner: claim.owner,
            lease: claim.lease,
            vendor: claim.vendor.as_str(),
            run_attempt: claim.attempt,
            records: HashMap::new(),
            last_position: 0,
            shutdown,
            executed: 0,
        }
    }

    /// Runs (or replays) the step `key`.
    ///
    /// Once the worker's lease is lost (the heartbeat found another owner, or
    /// the deadline this worker knows passed) the step is not begun, a step in
    /// progress is abandoned where it is (a request already sent stays in
    /// doubt: the next owner looks at the vendor before acting), and nothing
    /// more is recorded: [`StepError::LeaseLost`].
    pub async fn run<T, F, Fut>(&mut self, key: impl Into<String>, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Attempt) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let key = key.into();
        if let Some(done) = self.replayed(&key) {
            return done;
        }
        self.ready()?;
        let previous = self.records.get(&key).map_or(0, |r| r.attempts);
        let position = self.position_of(&key);
        let begun = self.journal.begin(self.write(&key, position)).await?;
        let attempt = Attempt { number: begun.attempts, in_doubt: previous > 0 };
        let (result, ms) = self.execute(&key, attempt, f).await?;
        let kind = step_kind(&key).to_string();
        let finished = match &result {
            Ok(value) => {
                let out = output_of(&key, value)?;
                let done = self.journal.finish(&begun, &self.owner, Some(&out), None, ms).await?;
                metrics::counter!("lifecycle_steps_total", "vendor" => self.vendor, "step" => kind, "result" => "succeeded")
                    .increment(1);
                done
            }
            Err(e) => {
                let done = self.journal.finish(&begun, &self.owner, None, Some(&e.to_string()), ms).await?;
                metrics::counter!("lifecycle_steps_total", "vendor" => self.vendor, "step" => kind, "result" => e.kind())
                    .increment(1);
                done
            }
        };
        self.records.insert(key, finished);
        result
    }

    /// Runs (or replays) the step `key`, which only reads from the vendor
    /// (finds a user, lists roles). Unlike [`Steps::run`] nothing is recorded
    /// before it: a read changes nothing at the vendor, so a worker that dies
    /// during it leaves nothing in doubt. Its output is recorded, in one
    /// statement, once it succeeds, so that a retry replays it rather than
    /// asking again; a failure is not recorded (the run's error says it).
    pub async fn read<T, F, Fut>(&mut self, key: impl Into<String>, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Attempt) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let key = key.into();
        if let Some(done) = self.replayed(&key) {
            return done;
        }
        self.ready()?;
        let attempt = Attempt { number: self.records.get(&key).map_or(0, |p| p.attempts) + 1, in_doubt: false };
        let (result, ms) = self.execute(&key, attempt, f).await?;
        let kind = step_kind(&key).to_string();
        let value = match result {
            Ok(value) => value,
            Err(e) => {
                metrics::counter!("lifecycle_steps_total", "vendor" => self.vendor, "step" => kind, "result" => e.kind())
                    .increment(1);
                return Err(e);
            }
        };
        let out = output_of(&key, &value)?;
        let position = self.position_of(&key);
        let recorded = self.journal.record_read(self.write(&key, position), &out, ms).await?;
        metrics::counter!("lifecycle_steps_total", "vendor" => self.vendor, "step" => kind, "result" => "succeeded")
            .increment(1);
        self.records.insert(key, recorded);
        Ok(value)
    }

    /// A new attempt of step `key` at `position`, as this worker writes it.
    fn write<'a>(&'a self, key: &'a str, position: i32) -> StepWrite<'a> {
        StepWrite {
            run_id: &self.run_id,
            owner: &self.owner,
            key,
            position,
            previous: self.records.get(key),
            run_attempt: self.run_attempt,
        }
    }

    /// The recorded output of `key` if it already succeeded (a replay).
    fn replayed<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, StepError>> {
        let rec = self.records.get(key).filter(|r| r.status == StepStatus::Succeeded)?;
        let out = rec.output.as_deref().unwrap_or("null");
        Some(serde_json::from_str(out).map_err(|e| {
            StepError::permanent(format!("the journal entry of step {key} cannot be read by this version: {e}"))
        }))
    }

    /// A new attempt may start: the worker is not shutting down and holds the lease.
    fn ready(&self) -> Result<(), StepError> {
        if self.shutdown.is_cancelled() {
            return Err(StepError::Interrupted);
        }
        self.lease.check()
    }

    /// The step's journal position: the one it first ran at, or the next.
    fn position_of(&mut self, key: &str) -> i32 {
        match self.records.get(key) {
            Some(rec) => rec.position,
            None => {
                self.last_position += 1;
                self.last_position
            }
        }
    }

    /// Calls the step's closure under the lease, and returns what it
    /// returned with how long it took (ms). Once the lease is lost the
    /// closure's future is dropped, and [`StepError::LeaseLost`] is the answer
    /// whatever the closure made of it: nothing of the attempt is recorded then.
    async fn execute<T, F, Fut>(
        &mut self,
        key: &str,
        attempt: Attempt,
        f: F,
    ) -> Result<(Result<T, StepError>, i64), StepError>
    where
        F: FnOnce(Attempt) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let kind = step_kind(key).to_string();
        let span = tracing::info_span!("step", step = %key, attempt = attempt.number);
        let started = Instant::now();
        let lease = self.lease.clone();
        let result = tokio::select! {
            // Checked first: once the lease is lost the step's future is
            // dropped, even if it could finish in the same poll.
            biased;
            _ = lease.lost() => Err(StepError::LeaseLost),
            result = f(attempt).instrument(span) => result,
        };
        if matches!(result, Err(StepError::LeaseLost)) || (result.is_err() && lease.is_lost()) {
            // Not recorded: the journal belongs to the run's new owner. (A
            // vendor client refused to send; whatever the error became on its
            // way up, the lease is what stopped it.)
            metrics::counter!("lifecycle_steps_total", "vendor" => self.vendor, "step" => kind, "result" => "lease_lost")
                .increment(1);
            return Err(StepError::LeaseLost);
        }
        let elapsed = started.elapsed();
        self.executed += 1;
        metrics::histogram!("lifecycle_step_duration_seconds", "vendor" => self.vendor, "step" => kind)
            .record(elapsed.as_secs_f64());
        Ok((result, elapsed.as_millis() as i64))
    }

    /// The recorded output of a step that already succeeded, if any.
    pub fn recorded<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let rec = self.records.get(key)?;
        (rec.status == StepStatus::Succeeded)
            .then(|| rec.output.as_deref().and_then(|o| serde_json::from_str(o).ok()))?
    }

    /// Keys starting with `prefix` whose last attempt did not record success:
    /// their effect is in doubt. A workflow that re-lists its work from the
    /// vendor (and so may not meet them again) revisits them with these.
    pub fn in_doubt(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<&Step> =
            self.records.values().filter(|r| r.key.starts_with(prefix) && r.status != StepStatus::Succeeded).collect();
        keys.sort_by_key(|r| r.position);
        keys.into_iter().map(|r| r.key.clone()).collect()
    }

    /// Keys starting with `prefix` that succeeded, in this attempt or an earlier one.
    pub fn completed(&self, prefix: &str) -> Vec<String> {
        let mut done: Vec<&Step> =
            self.records.values().filter(|r| r.key.starts_with(prefix) && r.status == StepStatus::Succeeded).collect();
        done.sort_by_key(|r| r.position);
        done.into_iter().map(|r| r.key.clone()).collect()
    }

    /// Steps executed (not replayed) in this attempt.
    pub fn executed(&self) -> u32 {
        self.executed
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// A step's output as the journal keeps it (JSON text).
fn output_of<T: Serialize>(key: &str, value: &T) -> Result<String, StepError> {
    serde_json::to_string(value)
        .map_err(|e| StepError::permanent(format!("step {key} produced unserializable output: {e}")))
}

/// `reassign_deal:42` -> `reassign_deal`: the label metrics use, so ids do
/// not explode their cardinality.
fn step_kind(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryJournal;
    use std::time::Duration;
    use tokio::time::Instant;

    const LEASE: Duration = Duration::from_secs(60);

    /// A journal in memory whose run `run-1` is held by `w1`.
    fn claimed_run() -> (Arc<MemoryJournal>, &'static str) {
        let journal = Arc::new(MemoryJournal::new());
        journal.hold("run-1", "w1");
        (journal, "run-1")
    }

    async fn steps_of(journal: &Arc<MemoryJournal>, run: &str, lease: &Lease) -> Steps {
        let claim = Claim {
            run_id: run.to_string(),
            owner: "w1".into(),
            lease: lease.clone(),
            vendor: lifecycle_domain::VendorKind::Pipedrive,
            attempt: 1,
        };
        Steps::load(journal.clone(), claim, CancellationToken::new()).await.unwrap()
    }

    #[tokio::test]
    async fn the_lease_holder_records_its_steps() {
        let (store, run) = claimed_run();
        let lease = Lease::new(Instant::now() + LEASE);
        let mut steps = steps_of(&store, run, &lease).await;
        let id: u32 = steps.run("create_user", |_| async { Ok(55) }).await.unwrap();
        assert_eq!(id, 55);
        let journal = store.load(run).await.unwrap();
        assert_eq!((journal[0].status, journal[0].output.as_deref()), (StepStatus::Succeeded, Some("55")));
    }

    #[tokio::test]
    async fn no_step_begins_once_the_lease_is_lost() {
        let (store, run) = claimed_run();
        let lease = Lease::new(Instant::now() + LEASE);
        let mut steps = steps_of(&store, run, &lease).await;
        lease.lose();
        let called = std::sync::atomic::AtomicBool::new(false);
        let r: Result<u32, _> = steps
            .run("create_user", |_| async {
                called.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(55)
            })
            .await;
        assert!(matches!(r, Err(StepError::LeaseLost)), "{r:?}");
        assert!(!called.load(std::sync::atomic::Ordering::SeqCst), "the step's effect was not attempted");
        assert!(store.load(run).await.unwrap().is_empty(), "nothing journaled");
    }

    /// A read is recorded once, with its result, and replayed by a retry.
    #[tokio::test]
    async fn a_read_is_recorded_with_its_result_in_one_write_and_replayed() {
        let (store, run) = claimed_run();
        let lease = Lease::new(Instant::now() + LEASE);
        let mut steps = steps_of(&store, run, &lease).await;
        let id: u32 = steps
            .read("find_user", |a| async move {
                assert!(!a.in_doubt, "a read is never in doubt");
                Ok(7)
            })
            .await
            .unwrap();
        assert_eq!(id, 7);
        let journal = store.load(run).await.unwrap();
        assert_eq!((journal[0].status, journal[0].output.as_deref()), (StepStatus::Succeeded, Some("7")));
        assert_eq!(MemoryJournal::history(&journal[0]).len(), 1);

        let mut again = steps_of(&store, run, &lease).await;
        let replayed: u32 = again.read("find_user", |_| async { panic!("replayed, not read again") }).await.unwrap();
        assert_eq!(replayed, 7);
    }

    /// A failed read leaves no row: nothing is in doubt, the next attempt reads again.
    #[tokio::test]
    async fn a_failed_read_records_nothing() {
        let (store, run) = claimed_run();
        let lease = Lease::new(Instant::now() + LEASE);
        let mut steps = steps_of(&store, run, &lease).await;
        let r: Result<u32, _> = steps.read("find_user", |_| async { Err(StepError::transient("HTTP 503")) }).await;
        assert!(matches!(r, Err(StepError::Transient { .. })), "{r:?}");
        assert!(store.load(run).await.unwrap().is_empty());
        let mut again = steps_of(&store, run, &lease).await;
        let id: u32 = again.read("find_user", |a| async move { Ok(a.number as u32) }).await.unwrap();
        assert_eq!(id, 1);
    }

    /// A read that ends after another worker took the run over is not recorded.
    #[tokio::test]
    async fn a_read_that_ends_after_a_takeover_is_not_recorded() {
        let (store, run) = claimed_run();
        let lease = Lease::new(Instant::now() + LEASE);
        let mut steps = steps_of(&store, run, &lease).await;
        let r: Result<u32, _> = steps
            .read("find_user", |_| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                store.hold(run, "w2");
                Ok(7)
            })
            .await;
        assert!(matches!(r, Err(StepError::LeaseLost)), "{r:?}");
        assert!(store.load(run).await.unwrap().is_empty());
    }

    /// The heartbeat learns mid-step that the lease is lost: the step's future
    /// is dropped and its attempt stays begun (in doubt) for the next owner.
    #[tokio::test]
    async fn a_step_in_progress_is_abandoned_when_the_lease_is_lost() {
        let (store, run) = claimed_run();
        let lease = Lease::new(Instant::now() + LEASE);
        let mut steps = steps_of(&store, run, &lease).await;
        let heartbeat = lease.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            heartbeat.lose();
        });
        let started = Instant::now();
        let r: Result<u32, _> = steps
            .run("create_user", |_| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(55)
            })
            .await;
        assert!(matches!(r, Err(StepError::LeaseLost)), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "the step was not awaited to its end");
        let journal = store.load(run).await.unwrap();
        assert_eq!((journal[0].status, journal[0].attempts), (StepStatus::Running, 1), "begun, never finished");
    }

    /// The worker finished the step after another worker had claimed the run:
    /// its record is refused and the run stops.
    #[tokio::test]
    async fn a_step_that_ends_after_a_takeover_is_not_recorded() {
        // This worker's clock still believes it holds the lease.
        let (store, run) = claimed_run();
        let lease = Lease::new(Instant::now() + LEASE);
        let mut steps = steps_of(&store, run, &lease).await;
        let r: Result<u32, _> = steps
            .run("create_user", |_| async {
                // Meanwhile w1's lease lapsed (it was paused) and w2 claimed the run.
                tokio::time::sleep(Duration::from_millis(20)).await;
                store.hold(run, "w2");
                Ok(55)
            })
            .await;
        assert!(matches!(r, Err(StepError::LeaseLost)), "{r:?}");
        let journal = store.load(run).await.unwrap();
        assert_eq!(journal[0].status, StepStatus::Running, "w1's success was not recorded over w2's run");
        assert!(steps.recorded::<u32>("create_user").is_none());
    }

    /// A vendor client refused to send (the request could outlive the lease)
    /// and the workflow turned that into another error: still not recorded.
    #[tokio::test]
    async fn a_refused_request_stops_the_run_whatever_error_it_became() {
        let (store, run) = claimed_run();
        // Two seconds left: a ten-second request could outlive the lease.
        let lease = Lease::new(Instant::now() + Duration::from_secs(2));
        let mut steps = steps_of(&store, run, &lease).await;
        let r: Result<u32, _> = lease
            .clone()
            .scope(steps.run("create_user", |_| async {
                crate::check_before_send(Duration::from_secs(10))
                    .await
                    .map_err(|e| StepError::permanent(format!("create the user: {e}")))?;
                Ok(55)
            }))
            .await;
        assert!(matches!(r, Err(StepError::LeaseLost)), "{r:?}");
        let journal = store.load(run).await.unwrap();
        assert_eq!(journal[0].status, StepStatus::Running, "the refusal was not recorded as the step's failure");
    }
}
