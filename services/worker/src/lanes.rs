//! The lane keeper: every `worker.lane_interval` it holds this worker's part
//! of the lanes in the database (`lifecycle_ops::lanes`) and tells the
//! consumer which lanes to consume.
//!
//! - It takes part only while the consumer is connected to RabbitMQ: a worker
//!   that cannot consume must not hold lanes, so its leases lapse and the
//!   others take them.
//! - A lane above its share is given up in order: the consumer cancels it and
//!   lets its runs finish and settle, and only then is the lease released,
//!   so that two workers never run one lane's runs (and spend its vendor's
//!   budget) at once.
//! - It keeps its own clock of each lease (the deadline on the monotonic
//!   clock, from just before the statement that took or renewed it): when
//!   the database cannot be reached and a deadline passes, it stops
//!   consuming that lane, since another worker may hold it by then, and
//!   takes it again when it can.

use lifecycle_domain::VendorKind;
use lifecycle_ops::lanes::Fleet;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub type Lanes = BTreeSet<VendorKind>;

pub struct Keeper {
    pub fleet: Fleet,
    pub interval: Duration,
    pub ttl: Duration,
    /// The lanes to consume: what the keeper holds and is not giving up.
    pub wanted: watch::Sender<Lanes>,
    /// The lanes the consumer consumes or is still draining.
    pub consuming: watch::Receiver<Lanes>,
    pub connected: Arc<AtomicBool>,
}

impl Keeper {
    /// Until `stop`; then, once `drained` (the consumer has settled its runs),
    /// gives every lane up so that the others need not wait for its leases.
    pub async fn run(mut self, stop: CancellationToken, drained: CancellationToken) {
        let mut held: BTreeMap<VendorKind, Instant> = BTreeMap::new();
        let mut giving_up: Lanes = BTreeSet::new();
        let mut next_round = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_round {
                if self.connected.load(Ordering::Relaxed) {
                    next_round = now + self.interval;
                    self.round(&mut held, &mut giving_up).await;
                } else {
                    // Look again soon: a worker that has just connected takes its lanes at once.
                    next_round = now + self.interval.min(Duration::from_millis(200));
                }
            }
            self.release_drained(&mut held, &mut giving_up).await;
            let now = Instant::now();
            let lapsed: Vec<VendorKind> = held.iter().filter(|(_, d)| **d <= now).map(|(l, _)| *l).collect();
            for lane in lapsed {
                held.remove(&lane);
                warn!(lane = %lane, "lane lease lapsed without a renewal (the database did not answer): stopping its consumer");
                giving_up.remove(&lane);
            }
            let wanted: Lanes = held.keys().copied().filter(|l| !giving_up.contains(l)).collect();
            self.wanted.send_if_modified(|w| {
                let changed = *w != wanted;
                *w = wanted;
                changed
            });
            metrics::gauge!("lifecycle_lanes_held").set(held.len() as f64);
            let earliest = held.values().min().copied().unwrap_or(next_round).min(next_round);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(earliest) => {}
                // A lane given up has drained: release it now, not a round later.
                changed = self.consuming.changed() => if changed.is_err() {
                    // The consumer is gone (it stops only with the worker): no spinning.
                    tokio::time::sleep_until(earliest).await;
                }
            }
        }
        let _ = self.wanted.send(BTreeSet::new());
        drained.cancelled().await;
        match tokio::time::timeout(self.interval.max(Duration::from_secs(2)), self.fleet.leave()).await {
            Ok(Ok(())) => info!(lanes = ?held.keys().collect::<Vec<_>>(), "gave every lane up"),
            Ok(Err(e)) => warn!(error = %e, "could not give the lanes up; they pass to the others once they lapse"),
            Err(_) => warn!("giving the lanes up timed out; they pass to the others once they lapse"),
        }
        metrics::gauge!("lifecycle_lanes_held").set(0.0);
    }

    async fn round(&self, held: &mut BTreeMap<VendorKind, Instant>, giving_up: &mut Lanes) {
        // The lease is surely held until `from + ttl`: taken from before the statements.
        let from = Instant::now();
        // Bounded: a database that does not answer must not keep lapsed lanes consumed.
        let limit = held.values().min().map(|d| d.saturating_duration_since(from)).unwrap_or(self.interval);
        let limit = limit.min(self.interval).max(Duration::from_millis(100));
        let round = match tokio::time::timeout(limit, self.fleet.round(chrono::Utc::now(), giving_up)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return warn!(error = %e, "could not renew the lane leases; trying again next round"),
            Err(_) => return warn!(waited_ms = limit.as_millis() as u64, "renewing the lane leases timed out"),
        };
        let deadline = from + self.ttl;
        for lane in held.keys().copied().collect::<Vec<_>>() {
            if !round.held.contains(&lane) {
                warn!(lane = %lane, "lane lease lost to another worker: stopping its consumer");
                held.remove(&lane);
                giving_up.remove(&lane);
            }
        }
        for lane in &round.held {
            held.insert(*lane, deadline);
        }
        for lane in &round.taken {
            info!(lane = %lane, live_workers = round.live_workers, share = round.share, "took lane");
        }
        for lane in &round.give_up {
            info!(lane = %lane, live_workers = round.live_workers, share = round.share, "giving lane up: above this worker's share");
            giving_up.insert(*lane);
        }
    }

    /// Releases the lanes being given up that the consumer no longer consumes.
    async fn release_drained(&self, held: &mut BTreeMap<VendorKind, Instant>, giving_up: &mut Lanes) {
        let consuming = self.consuming.borrow().clone();
        for lane in giving_up.iter().copied().filter(|l| !consuming.contains(l)).collect::<Vec<_>>() {
            match tokio::time::timeout(self.interval, self.fleet.release(lane)).await {
                Ok(Ok(_)) => {
                    info!(lane = %lane, "gave lane up");
                    giving_up.remove(&lane);
                    held.remove(&lane);
                }
                Ok(Err(e)) => warn!(lane = %lane, error = %e, "could not release a lane; trying again"),
                Err(_) => warn!(lane = %lane, "releasing a lane timed out; trying again"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_store::testing::{Backend, TestDb};

    struct Running {
        wanted: watch::Receiver<Lanes>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    /// A keeper whose consumer consumes at once what it is told (nothing runs).
    fn keeper(db: &lifecycle_store::Db, id: &str, interval: Duration, ttl: Duration) -> Running {
        let (wanted_tx, wanted) = watch::channel(Lanes::new());
        let (consuming_tx, consuming) = watch::channel(Lanes::new());
        let mut echo = wanted.clone();
        tokio::spawn(async move {
            while echo.changed().await.is_ok() {
                let now = echo.borrow().clone();
                consuming_tx.send_replace(now);
            }
        });
        let k = Keeper {
            fleet: Fleet::new(db.clone(), id, ttl),
            interval,
            ttl,
            wanted: wanted_tx,
            consuming,
            connected: Arc::new(AtomicBool::new(true)),
        };
        let (stop, drained) = (CancellationToken::new(), CancellationToken::new());
        drained.cancel();
        let task = tokio::spawn(k.run(stop.clone(), drained));
        Running { wanted, stop, task }
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Two keepers split the lanes three and three, disjoint; one stops and the
    /// other has them all; a keeper cut off from the database stops consuming
    /// once its leases lapse by its own clock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keepers_split_the_lanes_hand_them_over_and_let_go_without_the_database() {
        let test_db = TestDb::new(Backend::Sqlite).await;
        let db = lifecycle_store::connect(&test_db.url, 1).await.unwrap();
        lifecycle_store::migrate(&db).await.unwrap();
        let (interval, ttl) = (Duration::from_millis(100), Duration::from_millis(600));
        let a = keeper(&db, "a", interval, ttl);
        eventually("a to hold every lane", || a.wanted.borrow().len() == 6).await;
        let b = keeper(&db, "b", interval, ttl);
        eventually("three lanes each", || a.wanted.borrow().len() == 3 && b.wanted.borrow().len() == 3).await;
        assert!(a.wanted.borrow().is_disjoint(&b.wanted.borrow()));

        // a stops: it gives its lanes up, and b takes them without waiting for a lapse.
        let stopped = Instant::now();
        a.stop.cancel();
        a.task.await.unwrap();
        eventually("b to hold every lane", || b.wanted.borrow().len() == 6).await;
        assert!(stopped.elapsed() < ttl, "taken after {:?}: not a lapse", stopped.elapsed());

        // The database goes away: b stops consuming by its own clock of the leases.
        let cut = Instant::now();
        db.clone().close().await.unwrap();
        eventually("b to let its lanes go", || b.wanted.borrow().is_empty()).await;
        let after = cut.elapsed();
        assert!(after <= ttl + interval * 2, "let go after {after:?} (lease {ttl:?})");
        b.stop.cancel();
        b.task.await.unwrap();
    }
}
