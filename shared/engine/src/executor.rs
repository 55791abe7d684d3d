//! Executes one dispatch: the heart of the worker.
//!
//! For each message: drop it if stale (its dispatch sequence is old) or the
//! run has ended; send it round again if it arrived early; park the run if an
//! earlier run for the same person and vendor is unfinished; otherwise claim
//! the run (a conditional update: one worker wins), execute its workflow with
//! the journal, and record the outcome: succeeded, needs_manual_action, dead
//! (also published to the dead-letter queue), or retry_scheduled (published
//! to the delay tier). The message is acknowledged only after the database
//! says what happens next.

use crate::connector::{Outcome, Registry, RunSpec};
use crate::storage::{Claim, Finish, Journal, RunRecord as Run, RunStore, StorageError};
use crate::{retry, Lease, StepError, Steps};
use chrono::Utc;
use futures::FutureExt;
use lifecycle_broker::{DeadLetter, Dispatch, Publisher};
use lifecycle_config::RetrySettings;
use lifecycle_domain::{RunInput, RunState, VendorKind};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// How early a message may arrive before its run's `next_attempt_at` and
/// still be executed (rather than sent round the delay queue again).
const EARLY: Duration = Duration::from_millis(250);

/// What to do with the delivery once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Reject without requeue: the work queue dead-letters it (poison).
    DeadLetter,
    /// Hand it back to the queue (shutdown, or the database is unreachable).
    Requeue,
}

#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub worker_id: String,
    pub lease: Duration,
    pub blocked_recheck: Duration,
    pub retry: RetrySettings,
}

#[derive(Clone)]
pub struct Executor {
    runs: Arc<dyn RunStore>,
    journal: Arc<dyn Journal>,
    publisher: Arc<Publisher>,
    registry: Registry,
    config: Arc<ExecutorConfig>,
    shutdown: CancellationToken,
}

/// An infrastructure failure while handling a message (database or broker):
/// the message is handed back and the database decides later.
#[derive(Debug, thiserror::Error)]
enum InfraError {
    #[error(transparent)]
    Store(#[from] StorageError),
    #[error(transparent)]
    Broker(#[from] lifecycle_broker::BrokerError),
}

impl Executor {
    pub fn new(
        runs: Arc<dyn RunStore>,
        journal: Arc<dyn Journal>,
        publisher: Arc<Publisher>,
        registry: Registry,
        config: ExecutorConfig,
        shutdown: CancellationToken,
    ) -> Self {
        Self { runs, journal, publisher, registry, config: Arc::new(config), shutdown }
    }

    pub async fn handle(&self, payload: &[u8]) -> Disposition {
        self.handle_traced(payload, None).await
    }

    /// [`Executor::handle`] for a message that carried a `traceparent`
    /// header: the run's span continues that trace.
    pub async fn handle_traced(&self, payload: &[u8], traceparent: Option<&str>) -> Disposition {
        let dispatch: Dispatch = match serde_json::from_slice(payload) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, bytes = payload.len(), "unparseable message: dead-lettered without retrying");
                metrics::counter!("lifecycle_poison_messages_total").increment(1);
                return Disposition::DeadLetter;
            }
        };
        match self.handle_dispatch(&dispatch, traceparent).await {
            Ok(d) => d,
            Err(e) => {
                warn!(run_id = %dispatch.run_id, error = %e, "could not handle the message; handing it back");
                // Do not spin on a database that is down.
                tokio::time::sleep(Duration::from_secs(1)).await;
                Disposition::Requeue
            }
        }
    }

    async fn handle_dispatch(&self, d: &Dispatch, traceparent: Option<&str>) -> Result<Disposition, InfraError> {
        // The usual case, a run ready as sent, claimed in one step where the
        // storage can (SQLite); anything else is looked at below.
        let claimed_from = tokio::time::Instant::now();
        let (owner, lease) = (&self.config.worker_id, self.config.lease);
        if let Some(c) = self.runs.claim_as_sent(&d.run_id, d.dispatch_seq, owner, lease, EARLY).await? {
            let attempt = c.run.attempts + 1;
            let span = run_span(&c.run, attempt, traceparent);
            return self.execute(c.run, attempt, claimed_from, c.has_journal).instrument(span).await;
        }
        let Some(run) = self.runs.get(&d.run_id).await? else {
            warn!(run_id = %d.run_id, "message for a run this database does not know: dead-lettered");
            return Ok(Disposition::DeadLetter);
        };
        if run.dispatch_seq != d.dispatch_seq {
            debug!(run_id = %run.id, have = d.dispatch_seq, current = run.dispatch_seq, "stale message dropped");
            return Ok(Disposition::Ack);
        }
        let state = run.state;
        if state.is_terminal() {
            return Ok(Disposition::Ack);
        }
        if state == RunState::Scheduled {
            // Not due: the scheduler publishes it when it is, from the database.
            debug!(run_id = %run.id, "message for a scheduled run dropped");
            return Ok(Disposition::Ack);
        }
        if state == RunState::AwaitingApproval {
            // Awaiting an approver: approving publishes it anew.
            debug!(run_id = %run.id, "message for a run awaiting approval dropped");
            return Ok(Disposition::Ack);
        }
        if state == RunState::Held {
            // Held by the blast-radius guard: a release publishes it anew.
            debug!(run_id = %run.id, "message for a held run dropped");
            return Ok(Disposition::Ack);
        }
        let now = Utc::now();
        if state == RunState::Running {
            if let Some(until) = run.lease_until.filter(|u| *u > now) {
                // Another worker holds the run (or held it and died): look
                // again when its lease ends, instead of waiting for the sweeper.
                let wait = (until - now).to_std().unwrap_or_default() + Duration::from_millis(200);
                self.publisher.dispatch_after_with(d, wait, run.traceparent.as_deref()).await?;
                return Ok(Disposition::Ack);
            }
        }
        if run.next_attempt_at > now + chrono::Duration::from_std(EARLY).unwrap_or_default() {
            let wait = (run.next_attempt_at - now).to_std().unwrap_or_default();
            self.publisher.dispatch_after_with(d, wait, run.traceparent.as_deref()).await?;
            return Ok(Disposition::Ack);
        }
        // The claim refuses while an earlier run for the same person and
        // vendor is unfinished (a guard in its statement); only then is it
        // worth a query to find which one, and park behind it.
        let claimed_from = tokio::time::Instant::now();
        if !self.runs.claim(&run, d.dispatch_seq, &self.config.worker_id, self.config.lease).await? {
            // An earlier run is unfinished, or another worker claimed it.
            if !self.wait_for_earlier(&run).await? {
                debug!(run_id = %run.id, "another worker claimed the run");
            }
            return Ok(Disposition::Ack);
        }
        let attempt = run.attempts + 1;
        // `started_at` is set by a run's first claim: a run never started has no journal.
        let has_journal = run.started_at.is_some();
        let span = run_span(&run, attempt, traceparent);
        self.execute(run, attempt, claimed_from, has_journal).instrument(span).await
    }

    /// Parks `run` behind the earliest unfinished run for the same person and
    /// vendor that arrived before it, if there is one (true then).
    async fn wait_for_earlier(&self, run: &Run) -> Result<bool, InfraError> {
        let Some(earlier) = self.runs.earlier_unfinished(run.vendor, &run.person_key, run.seq).await? else {
            return Ok(false);
        };
        let recheck = Utc::now() + chrono::Duration::from_std(self.config.blocked_recheck).unwrap_or_default();
        if self.runs.block(&run.id, run.dispatch_seq, &earlier.id, recheck).await? {
            info!(run_id = %run.id, waits_for = %earlier.id, earlier_state = %earlier.state, "waits for the earlier run for the same person");
        }
        Ok(true)
    }

    /// `claimed_from`: the instant just before the statement that claimed the
    /// run; the lease is surely held until then + the lease's length.
    async fn execute(
        &self,
        run: Run,
        attempt: i32,
        claimed_from: Instant,
        has_journal: bool,
    ) -> Result<Disposition, InfraError> {
        let owner = self.config.worker_id.as_str();
        let policy = self.config.retry.for_vendor(run.vendor);
        // A run whose worker dies during every attempt never reaches the
        // failure path below; count those attempts here.
        if attempt > policy.max_attempts as i32 {
            let reason = format!(
                "gave up after {} attempts that did not finish (the worker stopped during each); the last error was: {}",
                attempt - 1,
                run.last_error.as_deref().unwrap_or("none recorded")
            );
            return self.end(&run, owner, RunState::Dead, &reason, None, Some(&reason)).await;
        }
        let age = (Utc::now() - run.age_baseline()).to_std().unwrap_or_default();
        if age > policy.max_age {
            let reason = format!(
                "gave up: the run is older than the maximum age of {} for {}",
                humanize(policy.max_age),
                run.vendor
            );
            return self.end(&run, owner, RunState::Dead, &reason, None, None).await;
        }
        let spec = match spec(&run, attempt) {
            Ok(s) => s,
            Err(reason) => return self.end(&run, owner, RunState::Dead, &reason, None, None).await,
        };
        let Some(connector) = self.registry.get(spec.vendor) else {
            let reason = format!(
                "vendor {} is not configured in this worker; add a [vendors.{}] section and replay the run",
                run.vendor, run.vendor
            );
            return self.end(&run, owner, RunState::Dead, &reason, None, None).await;
        };

        let lease = Lease::new(claimed_from + self.config.lease);
        let steps_token = self.shutdown.child_token();
        // A run never started before has no journal to read.
        let claim = Claim {
            run_id: run.id.clone(),
            owner: owner.to_string(),
            lease: lease.clone(),
            vendor: spec.vendor,
            attempt,
        };
        let loaded = if !has_journal {
            Ok(Steps::empty(self.journal.clone(), claim, steps_token))
        } else {
            Steps::load(self.journal.clone(), claim, steps_token).await
        };
        let mut steps = match loaded {
            Ok(s) => s,
            Err(e) => return self.failed(&run, owner, attempt, &policy, e).await,
        };
        let heartbeat = self.heartbeat(&run.id, lease.clone());
        metrics::counter!("lifecycle_run_attempts_total", "vendor" => spec.vendor.as_str(), "workflow" => spec.workflow.as_str()).increment(1);
        // The lease in scope: the vendor clients check it before each request.
        let result = lease.clone().scope(AssertUnwindSafe(connector.execute(&spec, &mut steps)).catch_unwind()).await;
        heartbeat.cancel();
        match result {
            Ok(Ok(outcome)) => self.succeeded(&run, owner, outcome).await,
            // Whatever the workflow made of a refused request, the lease stopped it.
            Ok(Err(_)) if lease.is_lost() => self.failed(&run, owner, attempt, &policy, StepError::LeaseLost).await,
            Ok(Err(e)) => self.failed(&run, owner, attempt, &policy, e).await,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let reason = format!("internal error (a bug in lifecycle, please report it): {what}");
                self.end(&run, owner, RunState::Dead, &reason, None, Some(&reason)).await
            }
        }
    }

    /// Extends the lease every quarter of its length while the run executes,
    /// and moves `lease`'s local deadline to the instant before each extending
    /// statement + the lease. Marks `lease` lost when the database says another
    /// worker holds the run, or when its deadline passes first (the database
    /// is slow or unreachable, or this process was paused): the run stops.
    fn heartbeat(&self, run_id: &str, lease: Lease) -> CancellationToken {
        let token = CancellationToken::new();
        let (runs, id, owner, length) =
            (self.runs.clone(), run_id.to_string(), self.config.worker_id.clone(), self.config.lease);
        let stop = token.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(length / 4);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let extended = tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = lease.expired() => {
                        warn!(run_id = %id, "lease ran out before it could be extended; stopping the run here");
                        lease.lose();
                        break;
                    }
                    extended = async {
                        tick.tick().await;
                        let from = Instant::now();
                        runs.extend_lease(&id, &owner, length).await.map(|held| held.then_some(from))
                    } => extended,
                };
                match extended {
                    Ok(Some(from)) => lease.extend_to(from + length),
                    Ok(None) => {
                        warn!(run_id = %id, "lease lost: another worker took the run over; stopping it here");
                        lease.lose();
                        break;
                    }
                    Err(e) => warn!(run_id = %id, error = %e, "could not extend the lease"),
                }
            }
        });
        token
    }

    async fn succeeded(&self, run: &Run, owner: &str, outcome: Outcome) -> Result<Disposition, InfraError> {
        let state = if outcome.needs_person { RunState::NeedsManualAction } else { RunState::Succeeded };
        let summary = rechecked(run, state, outcome.summary);
        self.end(run, owner, state, &summary, outcome.access, None).await
    }

    async fn failed(
        &self,
        run: &Run,
        owner: &str,
        attempt: i32,
        policy: &lifecycle_config::RetryPolicy,
        e: StepError,
    ) -> Result<Disposition, InfraError> {
        match e {
            StepError::LeaseLost => {
                metrics::counter!("lifecycle_leases_lost_total", "vendor" => run.vendor.as_str()).increment(1);
                // Nothing of this attempt is recorded. If the run is still ours
                // in the database (the heartbeat was only late: a slow database),
                // give it back at once; the release is guarded by the lease
                // like every write, so it does nothing once another worker owns it.
                if self.runs.release(&run.id, owner).await? {
                    warn!(run_id = %run.id, "could not keep the lease in time; handed the run back");
                    Ok(Disposition::Requeue)
                } else {
                    warn!(run_id = %run.id, "lease lost: another worker owns the run now; stopping it here");
                    Ok(Disposition::Ack)
                }
            }
            StepError::Interrupted => {
                self.runs.release(&run.id, owner).await?;
                info!(run_id = %run.id, "handed back at a step boundary (shutting down)");
                Ok(Disposition::Requeue)
            }
            StepError::NeedsPerson { message } => {
                let message = rechecked(run, RunState::NeedsManualAction, message);
                self.end(run, owner, RunState::NeedsManualAction, &message, None, None).await
            }
            StepError::Permanent { message } => {
                self.end(run, owner, RunState::Dead, &message, None, Some(&message)).await
            }
            StepError::Transient { message, retry_after } => {
                self.retry_later(run, owner, attempt, policy, &message, retry_after).await
            }
            StepError::Journal(err) => {
                self.retry_later(run, owner, attempt, policy, &format!("journal unavailable: {err}"), None).await
            }
        }
    }

    async fn retry_later(
        &self,
        run: &Run,
        owner: &str,
        attempt: i32,
        policy: &lifecycle_config::RetryPolicy,
        message: &str,
        retry_after: Option<Duration>,
    ) -> Result<Disposition, InfraError> {
        if attempt >= policy.max_attempts as i32 {
            let reason = format!("gave up after {attempt} attempts; the last error was: {message}");
            return self.end(run, owner, RunState::Dead, &reason, None, Some(message)).await;
        }
        let wait = retry::delay(policy, attempt, retry_after);
        let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        if (at - run.age_baseline()).to_std().unwrap_or_default() > policy.max_age {
            let reason = format!(
                "gave up: the next attempt would come after the maximum age of {} for {}; the last error was: {message}",
                humanize(policy.max_age),
                run.vendor
            );
            return self.end(run, owner, RunState::Dead, &reason, None, Some(message)).await;
        }
        let Some(seq) = self.runs.schedule_retry(&run.id, owner, run.dispatch_seq, at, message).await? else {
            warn!(run_id = %run.id, "lease lost before the retry could be scheduled");
            return Ok(Disposition::Ack);
        };
        metrics::counter!("lifecycle_retries_total", "vendor" => run.vendor.as_str()).increment(1);
        info!(run_id = %run.id, attempt, wait_ms = wait.as_millis() as u64, error = %message, "retry scheduled");
        let dispatch = Dispatch { run_id: run.id.clone(), dispatch_seq: seq, vendor: run.vendor };
        if let Err(e) = self.publisher.dispatch_after_with(&dispatch, wait, run.traceparent.as_deref()).await {
            // The database already says when; the sweeper republishes it.
            warn!(run_id = %run.id, error = %e, "could not publish the retry; the sweeper will");
        }
        Ok(Disposition::Ack)
    }

    async fn end(
        &self,
        run: &Run,
        owner: &str,
        state: RunState,
        outcome: &str,
        access: Option<crate::Access>,
        error: Option<&str>,
    ) -> Result<Disposition, InfraError> {
        let finish = Finish { state, outcome, access, last_error: error };
        let Some(ended) = self.runs.finish_then_next(&run.id, owner, finish).await? else {
            warn!(run_id = %run.id, "lease lost before the outcome could be recorded; another worker owns the run now");
            return Ok(Disposition::Ack);
        };
        metrics::counter!("lifecycle_runs_finished_total", "vendor" => run.vendor.as_str(), "workflow" => run.workflow.as_str(), "state" => state.as_str()).increment(1);
        // From the producer's acceptance (or the last replay) to the end.
        let took = (Utc::now() - run.age_baseline()).to_std().unwrap_or_default();
        metrics::histogram!("lifecycle_run_duration_seconds", "vendor" => run.vendor.as_str(), "workflow" => run.workflow.as_str(), "state" => state.as_str())
            .record(took.as_secs_f64());
        match state {
            RunState::Dead => {
                warn!(run_id = %run.id, reason = %outcome, "run is dead");
                let letter = DeadLetter {
                    run_id: run.id.clone(),
                    event_id: run.event_id.clone(),
                    vendor: run.vendor,
                    workflow: run.workflow,
                    reason: outcome.to_string(),
                    attempts: run.attempts + 1,
                    at: Utc::now(),
                };
                if let Err(e) = self.publisher.dead_letter(&letter).await {
                    warn!(run_id = %run.id, error = %e, "could not publish to the dead-letter queue (the run is recorded dead in the database)");
                }
            }
            RunState::NeedsManualAction => info!(run_id = %run.id, what_to_do = %outcome, "run needs a person"),
            _ => info!(run_id = %run.id, outcome = %outcome, "run succeeded"),
        }
        if ended.next.is_some() {
            // A later run for the person may be waiting for this one.
            self.wake_next(run).await;
        }
        Ok(Disposition::Ack)
    }

    /// The run for the same person and vendor that waited for this one goes now.
    async fn wake_next(&self, run: &Run) {
        wake_next(&*self.runs, &self.publisher, run.vendor, &run.person_key, run.seq).await;
    }
}

/// Wakes what waited behind each of `ended` (runs ended from outside the
/// executor: by a Pipedrive webhook, an operator's cancel).
pub async fn wake_after(runs: &dyn RunStore, publisher: &Publisher, ended: &[String]) {
    for id in ended {
        match runs.get(id).await {
            Ok(Some(run)) => wake_next(runs, publisher, run.vendor, &run.person_key, run.seq).await,
            Ok(None) => {}
            Err(e) => warn!(run_id = %id, error = %e, "could not read an ended run to wake what waits behind it"),
        }
    }
}

/// Dispatches the next unfinished run after `seq` for this person and vendor
/// if it is parked, or queued and perhaps about to park (its message may be in
/// flight, racing this wake-up: the new dispatch makes that message stale).
/// A run waiting to retry after its own failure is left alone. Failures are
/// logged: the sweeper is the backstop.
pub async fn wake_next(runs: &dyn RunStore, publisher: &Publisher, vendor: VendorKind, person_key: &str, seq: i64) {
    let next = match runs.next_unfinished(vendor, person_key, seq).await {
        Ok(Some(next)) if next.blocked_by.is_some() || next.state == RunState::Queued => next,
        Ok(_) => return,
        Err(e) => {
            warn!(error = %e, "could not look for a waiting run");
            return;
        }
    };
    match runs.redispatch(&next.id, next.dispatch_seq, true).await {
        Ok(Some(seq)) => {
            let dispatch = Dispatch { run_id: next.id.clone(), dispatch_seq: seq, vendor: next.vendor };
            if let Err(e) = publisher.dispatch_with(&dispatch, next.traceparent.as_deref()).await {
                warn!(run_id = %next.id, error = %e, "could not publish the waiting run; the sweeper will");
            } else {
                debug!(run_id = %next.id, "woke the waiting run");
            }
        }
        Ok(None) => {}
        Err(e) => warn!(run_id = %next.id, error = %e, "could not wake the waiting run"),
    }
}

/// The `run` span of one attempt. It continues the trace the message carried
/// (`traceparent`, the relay's `outbox.publish` span), else the one stored with
/// the run. A replayed run starts a trace of its own that links to the stored
/// one: an operator's replay is a new story about an old event.
fn run_span(run: &Run, attempt: i32, traceparent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!("run", run_id = %run.id, event_id = %run.event_id, vendor = %run.vendor, workflow = %run.workflow, attempt);
    if run.replays > 0 {
        lifecycle_telemetry::link_to(&span, run.traceparent.as_deref());
    } else {
        lifecycle_telemetry::continue_from(&span, traceparent.or(run.traceparent.as_deref()));
    }
    span
}

/// What the connector is given: the run, with its stored input read back
/// (an unreadable input ends the run: there is nothing to do it with).
pub fn spec(run: &Run, attempt: i32) -> Result<RunSpec, String> {
    let input: RunInput =
        serde_json::from_str(&run.input).map_err(|e| format!("cannot run: the stored input is unreadable: {e}"))?;
    Ok(RunSpec {
        run_id: run.id.clone(),
        event_id: run.event_id.clone(),
        vendor: run.vendor,
        workflow: run.workflow,
        input,
        attempt,
    })
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The outcome of a run an operator asked to re-check says who asked and
/// what the re-check found: done now, or still waiting for a person.
fn rechecked(run: &Run, state: RunState, summary: String) -> String {
    match (&run.rechecked_by, state) {
        (Some(who), RunState::Succeeded) => format!("{summary} (confirmed by a re-check {who} asked for)"),
        (Some(who), RunState::NeedsManualAction) => format!("still needed after a re-check {who} asked for: {summary}"),
        _ => summary,
    }
}
