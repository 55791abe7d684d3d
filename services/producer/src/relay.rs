//! The outbox relay: publishes what the intake stored, and nothing else.
//!
//! Woken by each accepted event (and every `relay_interval` regardless), it
//! reads unsent outbox rows oldest first, publishes them with confirms, and
//! marks the confirmed ones sent. When RabbitMQ is down it backs off
//! (exponentially, up to 10 s, so it catches up soon after the broker
//! returns) and tries again; rows wait in the database.
//! A crash between publishing and marking sends a row twice: harmless, the
//! worker drops the second message.

use backon::{BackoffBuilder, ExponentialBuilder};
use lifecycle_broker::{Dispatch, Publisher};
use lifecycle_store::{outbox, Db};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub struct Relay {
    db: Db,
    publisher: Arc<Publisher>,
    wake: Arc<Notify>,
    interval: Duration,
    batch: u64,
}

impl Relay {
    pub fn new(db: Db, publisher: Arc<Publisher>, wake: Arc<Notify>, interval: Duration, batch: u64) -> Self {
        Self { db, publisher, wake, interval, batch: batch.max(1) }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let backoff = || {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(10))
                .with_jitter()
                .without_max_times()
                .build()
        };
        let mut delays = backoff();
        let mut failing = false;
        loop {
            match self.drain().await {
                Ok(sent) => {
                    if failing {
                        info!("RabbitMQ is back; the outbox is flowing again");
                        failing = false;
                        delays = backoff();
                    }
                    if sent > 0 {
                        debug!(sent, "outbox rows published");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.wake.notified() => {},
                        _ = tokio::time::sleep(self.interval) => {},
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(error = %e, "cannot publish the outbox; events are kept and will be published when RabbitMQ returns");
                        failing = true;
                    }
                    let wait = delays.next().unwrap_or(Duration::from_secs(10));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {},
                    }
                }
            }
        }
    }

    /// Publishes until no unsent row is left; returns how many were sent.
    async fn drain(&self) -> Result<usize, String> {
        let mut total = 0;
        loop {
            let rows = outbox::pending(&self.db, self.batch).await.map_err(|e| e.to_string())?;
            if rows.is_empty() {
                return Ok(total);
            }
            let ids: Vec<String> = rows.iter().map(|r| r.run_id.clone()).collect();
            let vendors = outbox::vendors_of(&self.db, &ids).await.map_err(|e| e.to_string())?;
            // Every row names a run written in the same transaction; one that
            // does not is a bug: say so, keep it.
            let (rows, orphans): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| vendors.contains_key(&r.run_id));
            if !orphans.is_empty() {
                let ids: Vec<i64> = orphans.iter().map(|r| r.id).collect();
                warn!(rows = ?ids, "outbox rows whose run does not exist; left unsent");
                let _ = outbox::mark_failed(&self.db, &ids, "the run does not exist").await;
                if rows.is_empty() {
                    return Err("outbox rows whose run does not exist".into());
                }
            }
            let dispatches: Vec<Dispatch> = rows
                .iter()
                .map(|r| Dispatch {
                    run_id: r.run_id.clone(),
                    dispatch_seq: r.dispatch_seq,
                    vendor: vendors[&r.run_id],
                })
                .collect();
            let results = self.publisher.dispatch_many(&dispatches).await;
            let mut sent = Vec::new();
            let mut failed = Vec::new();
            let mut first_error = None;
            for (row, result) in rows.iter().zip(results) {
                match result {
                    Ok(()) => sent.push(row.id),
                    Err(e) => {
                        failed.push(row.id);
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            outbox::mark_sent(&self.db, &sent).await.map_err(|e| e.to_string())?;
            metrics::counter!("lifecycle_outbox_published_total").increment(sent.len() as u64);
            total += sent.len();
            if let Some(err) = first_error {
                let _ = outbox::mark_failed(&self.db, &failed, &err).await;
                return Err(err);
            }
        }
    }
}
