//! The backstop that makes the database, not the broker, the source of truth.
//!
//! Every interval it looks for unfinished runs whose message seems lost (a
//! retry overdue by more than the grace period and not published within it,
//! or a run whose worker's lease expired long ago) and republishes them with a
//! new dispatch sequence, so the old message, should it reappear, is stale.
//! A waiting run whose vendor's lane still holds messages is left alone until
//! the lane drains: it is most likely waiting its turn, not lost.
//! Several workers can sweep at once: the conditional update picks one winner.

use crate::storage::{RunStore, StorageError};
use lifecycle_broker::{Dispatch, Publisher};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct Sweeper {
    runs: Arc<dyn RunStore>,
    publisher: Arc<Publisher>,
    interval: Duration,
    grace: Duration,
}

impl Sweeper {
    pub fn new(runs: Arc<dyn RunStore>, publisher: Arc<Publisher>, interval: Duration, grace: Duration) -> Self {
        Self { runs, publisher, interval, grace }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.sweep_once().await {
                        warn!(error = %e, "sweep failed; trying again next interval");
                    }
                }
            }
        }
    }

    /// One pass; returns how many runs were republished.
    pub async fn sweep_once(&self) -> Result<usize, StorageError> {
        let mut republished = 0;
        let overdue = self.runs.overdue(self.grace, 500).await?;
        if overdue.is_empty() {
            return Ok(0);
        }
        // A waiting run in a lane that still holds messages is most likely
        // queued behind them (a backlog under a vendor's budget can last an
        // hour), not lost: republishing it would send it to the back and leave a
        // stale copy, over and over. Its lane is swept once it has drained.
        let backlog = match self.publisher.queue_depths().await {
            Ok(depths) => depths,
            Err(e) => {
                warn!(error = %e, "cannot read the lanes' depths (RabbitMQ unreachable?); sweeping next interval");
                return Ok(0);
            }
        };
        let topology = self.publisher.topology();
        let busy = |vendor: lifecycle_domain::VendorKind| {
            let lane = topology.lane_queue(vendor);
            backlog.iter().any(|(q, messages, _)| *q == lane && *messages > 0)
        };
        for run in overdue {
            let vendor = run.vendor;
            if run.state != lifecycle_domain::RunState::Running && busy(vendor) {
                continue;
            }
            let Some(seq) = self.runs.redispatch(&run.id, run.dispatch_seq, false).await? else { continue };
            let d = Dispatch { run_id: run.id.clone(), dispatch_seq: seq, vendor };
            // The run's own trace goes with it (see `Publisher::dispatch_with`).
            match self.publisher.dispatch_with(&d, run.traceparent.as_deref()).await {
                Ok(()) => {
                    republished += 1;
                    info!(run_id = %run.id, state = %run.state, "republished a run whose dispatch was overdue");
                }
                Err(e) => {
                    warn!(run_id = %run.id, error = %e, "could not republish; will try again");
                    break;
                }
            }
        }
        if republished > 0 {
            metrics::counter!("lifecycle_sweeper_republished_total").increment(republished as u64);
        }
        Ok(republished)
    }
}
