//! The shared state of the simulator: one [`World`] behind one mutex.
//!
//! A single lock keeps every request's effect atomic and the log order total, and is plenty fast
//! for the throughput benchmark. It is never held across an `.await`: take it, do the work, drop it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::calls::Journal;
use crate::exchanges::Exchange;
use crate::faults::Faults;
use crate::registry::Tenants;
use crate::{Config, Fixture};

/// Cheap-to-clone handle to the simulator, used as the axum state.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    world: Mutex<World>,
    /// Whole exchanges for the contract tests (see [`crate::exchanges`]); kept apart from the
    /// world so that a reset between a test's steps keeps them.
    recording: AtomicBool,
    exchanges: Mutex<Vec<Exchange>>,
}

/// Everything that changes while the simulator runs.
pub struct World {
    /// Every vendor's tenant data.
    pub tenants: Tenants,
    /// Call log, counters and the log of successful mutations.
    pub journal: Journal,
    /// Injected faults still waiting to fire.
    pub faults: Faults,
}

impl World {
    fn new(config: &Config, fixture: Fixture) -> Self {
        World { tenants: Tenants::new(config, fixture), journal: Journal::default(), faults: Faults::default() }
    }
}

impl Sim {
    pub fn new(config: Config) -> Self {
        let world = World::new(&config, config.fixture);
        let inner = Inner {
            config,
            world: Mutex::new(world),
            recording: AtomicBool::new(false),
            exchanges: Mutex::new(Vec::new()),
        };
        Sim { inner: Arc::new(inner) }
    }

    /// From now on, keep every exchange whole (bodies included) for [`Sim::take_exchanges`].
    pub fn record_exchanges(&self, on: bool) {
        self.inner.recording.store(on, Ordering::Relaxed);
    }

    pub(crate) fn recording_exchanges(&self) -> bool {
        self.inner.recording.load(Ordering::Relaxed)
    }

    pub(crate) fn keep_exchange(&self, exchange: Exchange) {
        self.inner.exchanges.lock().unwrap_or_else(|p| p.into_inner()).push(exchange);
    }

    /// The exchanges recorded so far, oldest first; the record starts empty again.
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.inner.exchanges.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The start-up settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Lock the world. Handlers never panic while holding it, but a poisoned lock is still
    /// recovered rather than taking the whole simulator down.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.inner.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Back to start-up conditions with `fixture`: tenants, knobs, journal and faults.
    pub fn reset(&self, fixture: Fixture) {
        let fresh = World::new(self.config(), fixture);
        *self.lock() = fresh;
    }
}

/// Milliseconds since the Unix epoch, from the wall clock.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// RFC 3339 with milliseconds, e.g. `2026-11-22T09:00:00.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// RFC 3339 to the second, e.g. `2026-11-22T09:00:00Z`.
pub fn rfc3339_s(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}
