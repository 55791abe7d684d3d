//! The periodic reconcile (`[reconcile] interval`): each window of that
//! length, one pass per configured vendor, through this worker's connectors
//! (so within the budget its runs share). Of a fleet, the first worker to
//! claim a window's slot in the database runs that vendor's pass; the others
//! skip it.

use chrono::{DateTime, Utc};
use lifecycle_engine::Registry;
use lifecycle_ops::reconcile::reconcile;
use lifecycle_store::Db;
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

impl Reconciler {
    pub async fn run(self, stop: CancellationToken) {
        let interval = self.settings.interval;
        if interval.is_zero() {
            info!("[reconcile] interval is 0: no periodic reconcile");
            return;
        }
        // Look often enough to start a window's pass soon after it opens,
        // without asking the database more than once a minute.
        let tick = interval.min(Duration::from_secs(60));
        let requested_by = format!("worker:{}", self.worker_id);
        loop {
            let window = window_start(Utc::now(), interval);
            for vendor in self.registry.vendors() {
                if stop.is_cancelled() {
                    return;
                }
                let connector = self.registry.get(vendor).expect("listed by the registry");
                let slot = format!("{vendor}@{}", window.to_rfc3339());
                // A trace of its own: the runs its fixes store join it.
                let span = tracing::info_span!("reconcile", vendor = vendor.as_str());
                let pass = reconcile(&self.db, &*connector, &self.settings, &requested_by, Some(&slot), &|_: usize| {})
                    .instrument(span);
                let result = tokio::select! {
                    _ = stop.cancelled() => return,
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
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
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
