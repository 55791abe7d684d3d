//! Reconcile passes in the worker, through its own connectors (so within the
//! budget its runs spend): the periodic one (`[reconcile] interval`: each
//! window of that length, one pass per configured vendor; of a fleet, the
//! first worker to claim a window's slot in the database runs it, the others
//! skip it), and those operators ask for (`lifecycle-ctl reconcile`, the
//! console's "Reconcile now"), taken from the database as they come.

use chrono::{DateTime, Utc};
use lifecycle_engine::Registry;
use lifecycle_ops::db::Db;
use lifecycle_ops::reconcile::{reconcile, serve_request};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

pub struct Reconciler {
    pub db: Db,
    pub registry: Registry,
    pub settings: Arc<lifecycle_config::ReconcileSettings>,
    pub worker_id: String,
}

/// The window `at` falls in, as its start: the same for every worker.
pub fn window_start(at: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let secs = interval.as_secs().max(1) as i64;
    let start = at.timestamp().div_euclid(secs) * secs;
    DateTime::from_timestamp(start, 0).unwrap_or(at)
}

/// How often a worker looks for passes operators asked for.
const REQUESTS_EVERY: Duration = Duration::from_secs(1);

impl Reconciler {
    pub async fn run(self, stop: CancellationToken) {
        let interval = self.settings.interval;
        if interval.is_zero() {
            info!("[reconcile] interval is 0: no periodic reconcile (passes operators ask for still run)");
        }
        // Look for a new window often enough to start its pass soon after it
        // opens, without asking the database more than once a minute.
        let window_tick = interval.min(Duration::from_secs(60));
        let mut next_window_check = tokio::time::Instant::now();
        loop {
            if !interval.is_zero() && tokio::time::Instant::now() >= next_window_check {
                if !self.periodic(interval, &stop).await {
                    return;
                }
                next_window_check = tokio::time::Instant::now() + window_tick;
            }
            if !self.requested(&stop).await {
                return;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REQUESTS_EVERY) => {}
            }
        }
    }

    /// This window's pass per vendor, where no other worker took it. False
    /// when stopped.
    async fn periodic(&self, interval: Duration, stop: &CancellationToken) -> bool {
        let window = window_start(Utc::now(), interval);
        let requested_by = format!("worker:{}", self.worker_id);
        for vendor in self.registry.vendors() {
            let connector = self.registry.get(vendor).expect("listed by the registry");
            if connector.not_reconcilable().is_some() {
                // Its API cannot list accounts (CircleCI): nothing to read, every window.
                continue;
            }
            let slot = format!("{vendor}@{}", window.to_rfc3339());
            // A trace of its own.
            let span = tracing::info_span!("reconcile", vendor = vendor.as_str());
            let pass = reconcile(&self.db, &*connector, &self.settings, &requested_by, Some(&slot), &|_: usize| {})
                .instrument(span);
            let result = tokio::select! {
                _ = stop.cancelled() => return false,
                r = pass => r,
            };
            match result {
                Ok(Some(report)) => info!(vendor = vendor.as_str(), summary = %report.line(), "periodic reconcile"),
                Ok(None) => {}
                Err(e) => {
                    warn!(vendor = vendor.as_str(), error = %e, "periodic reconcile failed; the next window tries again")
                }
            }
        }
        true
    }

    /// Every pass operators asked for that this worker can take. False when stopped.
    async fn requested(&self, stop: &CancellationToken) -> bool {
        loop {
            let served = serve_request(&self.db, &self.registry, &self.settings, &self.worker_id);
            let served = tokio::select! {
                _ = stop.cancelled() => return false,
                r = served => r,
            };
            match served {
                Ok(Some((request, Ok(report)))) => {
                    info!(requested_by = %request.requested_by, summary = %report.line(), "reconciled on request")
                }
                Ok(Some((request, Err(e)))) => {
                    warn!(vendor = request.vendor.as_str(), requested_by = %request.requested_by, error = %e, "a requested reconcile failed")
                }
                Ok(None) => return true,
                Err(e) => {
                    warn!(error = %e, "could not look for reconcile requests; trying again shortly");
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_names_the_same_window() {
        let day = Duration::from_secs(24 * 3600);
        let a = DateTime::parse_from_rfc3339("2026-11-30T09:13:00Z").unwrap().with_timezone(&Utc);
        let b = DateTime::parse_from_rfc3339("2026-11-30T23:59:59Z").unwrap().with_timezone(&Utc);
        let next = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(window_start(a, day), window_start(b, day));
        assert_eq!(window_start(a, day).to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(window_start(next, day), next, "a window opens at its own start");
    }
}
