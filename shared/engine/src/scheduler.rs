//! Starts scheduled runs when their time comes.
//!
//! A run whose event takes effect later (`effective_at`, less the vendor's
//! lead) is stored `scheduled`, with no message anywhere: the database is the
//! only record, so nothing waits in the broker for days, a restart of the
//! worker or of RabbitMQ loses nothing, and a date moved or withdrawn by HR
//! needs no message to be chased. Every interval (a second by default) each
//! worker asks the database which scheduled runs are due, moves each to
//! `queued` with a conditional update (one worker wins) and publishes it to
//! its vendor's lane; should that publish fail, the sweeper republishes it.

use crate::storage::{DueRun, Schedule, Started, StorageError};
use lifecycle_broker::{Dispatch, Publisher};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct Scheduler {
    /// Also decides, as it starts a due run, whether the blast-radius guard
    /// holds it or an approver must see it first.
    schedule: Arc<dyn Schedule>,
    publisher: Arc<Publisher>,
    interval: Duration,
}

impl Scheduler {
    pub fn new(schedule: Arc<dyn Schedule>, publisher: Arc<Publisher>, interval: Duration) -> Self {
        Self { schedule, publisher, interval }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.start_due().await {
                        warn!(error = %e, "could not start the scheduled runs that are due; trying again next interval");
                    }
                }
            }
        }
    }

    /// One pass; returns how many runs it started.
    ///
    /// A batch of due runs is moved to `queued` in one transaction, then
    /// published at once, the confirms awaited together. Run by run (an
    /// update, a publish and its confirm each), 10,000 runs due at the same
    /// moment took 51 s to release, so lateness grew with their number.
    pub async fn start_due(&self) -> Result<usize, StorageError> {
        let mut started = 0;
        loop {
            let now = chrono::Utc::now();
            let due = self.schedule.due(now, BATCH).await?;
            if due.is_empty() {
                return Ok(started);
            }
            let full = due.len() as u64 == BATCH;
            let ids: Vec<DueRun> = due
                .iter()
                .map(|r| DueRun {
                    id: r.id.clone(),
                    dispatch_seq: r.dispatch_seq,
                    vendor: r.vendor,
                    workflow: r.workflow,
                })
                .collect();
            let won = self.schedule.start_due(&ids).await?;
            let mut batch = Vec::with_capacity(due.len());
            for (run, started) in due.into_iter().zip(won) {
                let seq = match started {
                    Started::Queued(seq) => seq,
                    Started::Held => {
                        metrics::counter!("lifecycle_safety_held_total", "vendor" => run.vendor.as_str()).increment(1);
                        warn!(run_id = %run.id, vendor = %run.vendor, "scheduled run is due but past a [safety] threshold: held");
                        continue;
                    }
                    Started::AwaitingApproval => {
                        info!(run_id = %run.id, vendor = %run.vendor, "scheduled run is due and awaits an approver ([approval])");
                        continue;
                    }
                    // Another worker's scheduler won it (or HR withdrew it meanwhile).
                    Started::Lost => continue,
                };
                let d = Dispatch { run_id: run.id, dispatch_seq: seq, vendor: run.vendor };
                batch.push((run.next_attempt_at, d, run.traceparent));
            }
            let released = chrono::Utc::now();
            for (due_at, d, _) in &batch {
                let late = (released - *due_at).to_std().unwrap_or_default();
                metrics::histogram!("lifecycle_schedule_lateness_seconds", "vendor" => d.vendor.as_str())
                    .record(late.as_secs_f64());
                info!(run_id = %d.run_id, vendor = %d.vendor, late_ms = late.as_millis() as u64, "scheduled run is due: started");
            }
            started += batch.len();
            // Each carries the trace its run was stored in (see `Publisher::dispatch_with`).
            let publishes = batch.iter().map(|(_, d, tp)| self.publisher.dispatch_with(d, tp.as_deref()));
            let results = futures::future::join_all(publishes).await;
            for ((_, d, _), published) in batch.iter().zip(results) {
                if let Err(e) = published {
                    warn!(run_id = %d.run_id, error = %e, "could not publish a due run; the sweeper will");
                }
            }
            if !full {
                return Ok(started);
            }
        }
    }
}

/// Due runs read, moved to `queued` and published together, at most.
const BATCH: u64 = 500;
