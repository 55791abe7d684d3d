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
use lifecycle_broker::Publisher;
use lifecycle_ops::db::Db;
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
        lifecycle_ops::outbox::drain(&self.db, &self.publisher, self.batch).await
    }
}
