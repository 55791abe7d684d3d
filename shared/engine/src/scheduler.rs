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

use lifecycle_broker::{Dispatch, Publisher};
use lifecycle_store::{time, Db};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct Scheduler {
    db: Db,
    publisher: Arc<Publisher>,
    interval: Duration,
}

impl Scheduler {
    pub fn new(db: Db, publisher: Arc<Publisher>, interval: Duration) -> Self {
        Self { db, publisher, interval }
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
    pub async fn start_due(&self) -> Result<usize, lifecycle_store::StoreError> {
        let mut started = 0;
        loop {
            let now = chrono::Utc::now();
            let due = time::due(&self.db, now, 500).await?;
            let full = due.len() == 500;
            for run in due {
                let vendor = run.vendor_kind()?;
                let Some(seq) = time::start_due(&self.db, &run.id, run.dispatch_seq).await? else { continue };
                let late = (chrono::Utc::now() - run.next_attempt_at).to_std().unwrap_or_default();
                metrics::histogram!("lifecycle_schedule_lateness_seconds", "vendor" => vendor.as_str())
                    .record(late.as_secs_f64());
                info!(run_id = %run.id, vendor = %vendor, late_ms = late.as_millis() as u64, "scheduled run is due: started");
                started += 1;
                if let Err(e) =
                    self.publisher.dispatch(&Dispatch { run_id: run.id.clone(), dispatch_seq: seq, vendor }).await
                {
                    warn!(run_id = %run.id, error = %e, "could not publish a due run; the sweeper will");
                }
            }
            if !full {
                return Ok(started);
            }
        }
    }
}
