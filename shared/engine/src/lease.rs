//! The worker's own clock of a run's lease.
//!
//! The database decides who owns a run (its lease is extended by the
//! heartbeat; every journal write is guarded by it). But a worker must also
//! stop on its own, without a round trip, once it can no longer be sure it
//! holds the run: a process paused with SIGSTOP (or stalled in a long GC-like
//! pause, or cut off from the database) wakes with its monotonic clock far past
//! the deadline, and must not send the request that was waiting in the rate
//! limiter. So each run being executed carries a [`Lease`]:
//!
//! - its deadline as this process knows it, on the monotonic clock: the
//!   instant just before the statement that claimed or extended the lease,
//!   plus the lease's length. The database's own deadline is at least that
//!   late, so the local one never claims more than the database granted;
//! - a token cancelled once the lease is lost: the heartbeat found another
//!   owner, the deadline passed, or a request was refused for lack of time.
//!
//! The executor puts the lease in a task-local around the workflow, so that
//! [`check_before_send`], called by the vendor clients right before a request
//! goes out, needs no plumbing through the vendor modules.

use crate::StepError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

tokio::task_local! {
    static CURRENT: Lease;
}

/// A run's lease as this worker knows it; clones share it.
#[derive(Clone, Debug)]
pub struct Lease {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    deadline: Mutex<Instant>,
    lost: CancellationToken,
    /// Woken by every extension, for requests waiting for enough lease.
    extended: Notify,
}

impl Lease {
    /// A lease held until `deadline` (the instant before the claim + the lease).
    pub fn new(deadline: Instant) -> Self {
        Self {
            inner: Arc::new(Inner {
                deadline: Mutex::new(deadline),
                lost: CancellationToken::new(),
                extended: Notify::new(),
            }),
        }
    }

    /// Until when the lease is surely held, as far as this worker knows.
    pub fn deadline(&self) -> Instant {
        *self.inner.deadline.lock().expect("not poisoned")
    }

    /// The lease was extended: it is held until `deadline` (the instant before
    /// the extending statement + the lease). A deadline never moves back.
    pub fn extend_to(&self, deadline: Instant) {
        {
            let mut d = self.inner.deadline.lock().expect("not poisoned");
            if deadline > *d {
                *d = deadline;
            }
        }
        self.inner.extended.notify_waiters();
    }

    /// The lease is lost (or cannot be relied on any more): everything this
    /// worker does for the run stops.
    pub fn lose(&self) {
        self.inner.lost.cancel();
    }

    /// Lost, or past its deadline.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.is_cancelled() || Instant::now() >= self.deadline()
    }

    /// `Err(LeaseLost)` once the lease is lost or past its deadline.
    pub fn check(&self) -> Result<(), StepError> {
        if self.is_lost() {
            Err(StepError::LeaseLost)
        } else {
            Ok(())
        }
    }

    /// Resolves when the deadline passes (following its extensions).
    pub async fn expired(&self) {
        loop {
            let deadline = self.deadline();
            tokio::time::sleep_until(deadline).await;
            if Instant::now() >= self.deadline() {
                return;
            }
        }
    }

    /// Resolves when the lease is lost or its deadline passes.
    pub async fn lost(&self) {
        tokio::select! {
            _ = self.inner.lost.cancelled() => {}
            _ = self.expired() => {}
        }
    }

    /// Runs `f` with this lease in scope for [`check_before_send`].
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }
}

/// Lets a request go once it cannot outlive the run's lease: once at least
/// `request_timeout` of the lease remains, as this worker knows it. When less
/// remains (the next heartbeat is due, or late because the database is slow) it
/// waits for the heartbeat to extend the lease; it refuses once the lease is
/// lost or its deadline passes first, and a refusal marks the lease lost, so
/// the run stops at once whatever the caller makes of the error. Outside a run
/// (no lease in scope, as in a vendor client's own tests) it allows all.
pub async fn check_before_send(request_timeout: Duration) -> Result<(), StepError> {
    let Ok(lease) = CURRENT.try_with(Lease::clone) else { return Ok(()) };
    loop {
        // Register for the next extension before looking, so none is missed.
        let extended = lease.inner.extended.notified();
        if lease.inner.lost.is_cancelled() {
            return Err(StepError::LeaseLost);
        }
        let deadline = lease.deadline();
        let now = Instant::now();
        if now >= deadline {
            lease.lose();
            return Err(StepError::LeaseLost);
        }
        if now + request_timeout <= deadline {
            return Ok(());
        }
        tokio::select! {
            _ = extended => {}
            _ = lease.inner.lost.cancelled() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);
    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn without_a_lease_in_scope_every_request_is_allowed() {
        assert!(check_before_send(TIMEOUT).await.is_ok());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(check_before_send(Duration::from_secs(3600)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_ends_before_the_deadline_is_allowed() {
        let lease = Lease::new(Instant::now() + LEASE);
        lease.clone().scope(async { assert!(check_before_send(TIMEOUT).await.is_ok()) }).await;
        assert!(!lease.is_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_could_outlive_the_lease_waits_for_the_heartbeat() {
        let start = Instant::now();
        let lease = Lease::new(start + LEASE);
        tokio::time::advance(Duration::from_secs(6)).await;
        let heartbeat = {
            let lease = lease.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                lease.extend_to(Instant::now() + LEASE);
            }
        };
        let (sent, ()) = tokio::join!(lease.clone().scope(check_before_send(TIMEOUT)), heartbeat);
        assert!(sent.is_ok(), "{sent:?}");
        assert_eq!(Instant::now(), start + Duration::from_secs(8), "it went as soon as the lease was extended");
        assert!(!lease.is_lost());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_could_outlive_the_lease_is_refused_when_no_heartbeat_comes() {
        let start = Instant::now();
        let lease = Lease::new(start + LEASE);
        tokio::time::advance(Duration::from_secs(6)).await;
        let refused = lease.clone().scope(check_before_send(TIMEOUT)).await;
        assert!(matches!(refused, Err(StepError::LeaseLost)), "{refused:?}");
        assert_eq!(Instant::now(), start + LEASE, "it waited until the deadline");
        assert!(lease.is_lost(), "a refusal stops the run");
        // Even a short request is refused from now on.
        let refused = lease.clone().scope(check_before_send(Duration::from_millis(1))).await;
        assert!(matches!(refused, Err(StepError::LeaseLost)));
    }

    /// A worker paused (SIGSTOP) while its request waited in the rate limiter
    /// wakes past the deadline: the request is not sent.
    #[tokio::test(start_paused = true)]
    async fn a_worker_that_wakes_past_its_deadline_sends_nothing() {
        let lease = Lease::new(Instant::now() + LEASE);
        let inner = lease.clone();
        let sent = lease
            .clone()
            .scope(async move {
                assert!(check_before_send(TIMEOUT).await.is_ok());
                // The pause: the monotonic clock jumps past the deadline.
                tokio::time::advance(LEASE * 4).await;
                assert!(inner.is_lost());
                check_before_send(TIMEOUT).await
            })
            .await;
        assert!(matches!(sent, Err(StepError::LeaseLost)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_extension_moves_the_deadline_forward_only() {
        let start = Instant::now();
        let lease = Lease::new(start + LEASE);
        tokio::time::advance(Duration::from_secs(4)).await;
        lease.extend_to(Instant::now() + LEASE);
        assert_eq!(lease.deadline(), start + Duration::from_secs(19));
        lease.extend_to(start + LEASE);
        assert_eq!(lease.deadline(), start + Duration::from_secs(19), "never back");
        tokio::time::advance(Duration::from_secs(8)).await;
        // 12 s in: 7 s left, a 10-second request would outlive it.
        assert!(lease.clone().scope(check_before_send(Duration::from_secs(5))).await.is_ok());
        // A 10-second request waits for an extension that never comes.
        assert!(lease.clone().scope(check_before_send(TIMEOUT)).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn lost_resolves_at_the_deadline_as_extended_or_when_lost() {
        let start = Instant::now();
        let lease = Lease::new(start + LEASE);
        let waiter = tokio::spawn({
            let lease = lease.clone();
            async move {
                lease.lost().await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        lease.extend_to(Instant::now() + LEASE);
        assert_eq!(waiter.await.unwrap(), start + Duration::from_secs(25), "the extended deadline counts");
        assert!(lease.check().is_err());

        let lease = Lease::new(Instant::now() + LEASE);
        let waiter = tokio::spawn({
            let lease = lease.clone();
            async move { lease.lost().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(lease.check().is_ok());
        lease.lose();
        tokio::time::timeout(Duration::from_millis(1), waiter).await.expect("resolves at once").unwrap();
        assert!(matches!(lease.check(), Err(StepError::LeaseLost)));
    }
}
