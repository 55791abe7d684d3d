//! The backstop that makes the database, not the broker, the source of truth.
//!
//! Every interval it looks for unfinished runs whose message seems lost (a
//! retry overdue by more than the grace period and not published within it,
//! or a run whose worker's lease expired long ago) and republishes them with a
//! new dispatch sequence, so the old message, should it reappear, is stale.
//! Several workers can sweep at once: the conditional update picks one winner.

use lifecycle_broker::{Dispatch, Publisher};
use lifecycle_store::{runs, Db};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct Sweeper {
    db: Db,
    publisher: Arc<Publisher>,
    interval: Duration,
    grace: Duration,
}

impl Sweeper {
    pub fn new(db: Db, publisher: Arc<Publisher>, interval: Duration, grace: Duration) -> Self {
        Self { db, publisher, interval, grace }
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
    pub async fn sweep_once(&self) -> Result<usize, lifecycle_store::StoreError> {
        let mut republished = 0;
        for run in runs::overdue(&self.db, self.grace, 500).await? {
            let vendor = run.vendor_kind()?;
            let Some(seq) = runs::redispatch(&self.db, &run.id, run.dispatch_seq, false).await? else { continue };
            match self.publisher.dispatch(&Dispatch { run_id: run.id.clone(), dispatch_seq: seq, vendor }).await {
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
