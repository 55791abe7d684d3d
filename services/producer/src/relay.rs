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
use tracing::{debug, info, info_span, warn, Instrument};

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
            let routes = outbox::routes_of(&self.db, &ids).await.map_err(|e| e.to_string())?;
            // Every row names a run written in the same transaction; one that
            // does not is a bug: say so, keep it.
            let (rows, orphans): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| routes.contains_key(&r.run_id));
            if !orphans.is_empty() {
                let ids: Vec<i64> = orphans.iter().map(|r| r.id).collect();
                warn!(rows = ?ids, "outbox rows whose run does not exist; left unsent");
                let _ = outbox::mark_failed(&self.db, &ids, "the run does not exist").await;
                if rows.is_empty() {
                    return Err("outbox rows whose run does not exist".into());
                }
            }
            // One `outbox.publish` span per message, in the trace its run was
            // stored in; the message carries this span's context, so the
            // worker's run is its child. All confirms are awaited together.
            let publishes = rows.iter().map(|r| {
                let (vendor, stored) = &routes[&r.run_id];
                let d = Dispatch { run_id: r.run_id.clone(), dispatch_seq: r.dispatch_seq, vendor: *vendor };
                let span = info_span!("outbox.publish", run_id = %r.run_id, vendor = %vendor, messaging.system = "rabbitmq", messaging.operation.type = "publish");
                lifecycle_telemetry::continue_from(&span, stored.as_deref());
                let header = lifecycle_telemetry::traceparent_of(&span).or_else(|| stored.clone());
                let publisher = &self.publisher;
                async move { publisher.dispatch_with(&d, header.as_deref()).await }.instrument(span)
            });
            let results = futures::future::join_all(publishes).await;
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
