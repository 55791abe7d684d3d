//! Accepting and keeping connections: what `axum::serve` leaves open.
//!
//! HTTP/1.1 only, on every listener. HTTP/2 buys these listeners nothing:
//! without TLS it needs prior knowledge, which browsers never use (they speak
//! HTTP/2 only over TLS, and TLS ends at the proxy in front of us, which
//! talks HTTP/1.1 to its upstream by default); the intake's callers post one
//! small event at a time and Prometheus scrapes over HTTP/1.1. What HTTP/2
//! would bring is its own attack surface (stream floods, rapid resets, a
//! preface followed by silence) for connections that each look idle to a
//! request counter. An HTTP/2 preface is answered as the HTTP/1.1 parse
//! error it is, and the connection closed.
//!
//! Each connection is bounded in time three ways:
//! - a request head must be complete within `header_read_timeout` of the
//!   accept (a silent connection is closed; hyper's own timer only starts
//!   when it first reads), and of the end of the previous answer (idle
//!   keep-alive);
//! - a connection older than `max_connection_age` is closed after the answer
//!   in progress;
//! - whatever is left after a graceful close is dropped `request_timeout`
//!   later.
//!
//! And when `max_connections` are open, a newcomer does not wait behind them:
//! the connection idle longest is closed to make room (clients that connect
//! and say nothing are always the idlest), so silent sockets cannot lock a
//! real client out. Only when every connection has a request in progress is
//! the newcomer closed.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::Limits;

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, lets connections finish the request in progress (up to
/// `request_timeout`) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let timing = Timing {
        head: limits.header_read_timeout.max(Duration::from_millis(100)),
        max_age: limits.max_connection_age.max(Duration::from_secs(1)),
        grace: limits.request_timeout.max(Duration::from_secs(1)),
    };
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Each connection task holds a sender; `recv` ends when all are gone.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match registry.evict_idlest() {
                Some(permit) => permit,
                None => {
                    metrics::counter!("lifecycle_http_connections_refused_total").increment(1);
                    tracing::debug!(%peer, "every connection is busy; refused a new one");
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = registry.register(permit);
        let connection = Connection { app: app.clone(), peer, timing, state, registry: registry.clone() };
        let (stop, alive) = (stop_rx.clone(), alive_tx.clone());
        tokio::spawn(async move {
            connection.run(stream, stop).await;
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
}

#[derive(Clone, Copy)]
struct Timing {
    /// For a request head, from the accept or from the previous answer.
    head: Duration,
    max_age: Duration,
    /// From a graceful close to dropping the connection.
    grace: Duration,
}

/// The open connections, so that a newcomer can take the place of the idlest.
#[derive(Default)]
struct Registry {
    next_id: std::sync::atomic::AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn register(&self, permit: OwnedSemaphorePermit) -> Arc<ConnState> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let state = Arc::new(ConnState {
            id,
            accepted: now,
            activity: Mutex::new(Activity { in_progress: 0, idle_since: now, served: 0, permit: Some(permit) }),
            evicted: tokio::sync::Notify::new(),
        });
        lock(&self.open).insert(id, state.clone());
        state
    }

    fn forget(&self, id: u64) {
        lock(&self.open).remove(&id);
    }

    /// Closes the connection that has been idle longest and hands over its
    /// place. None when every connection has a request in progress.
    fn evict_idlest(&self) -> Option<OwnedSemaphorePermit> {
        let mut open = lock(&self.open);
        let (id, permit) = open
            .values()
            .filter_map(|c| {
                let a = lock(&c.activity);
                (a.in_progress == 0 && a.permit.is_some()).then_some((a.idle_since, c.id))
            })
            .min()
            .and_then(|(_, id)| {
                let victim = open.get(&id)?;
                let permit = lock(&victim.activity).permit.take()?;
                victim.evicted.notify_one();
                Some((id, permit))
            })?;
        open.remove(&id);
        metrics::counter!("lifecycle_http_connections_closed_total", "reason" => "evicted").increment(1);
        Some(permit)
    }
}

struct ConnState {
    id: u64,
    accepted: Instant,
    activity: Mutex<Activity>,
    /// Another connection took this one's place: close it.
    evicted: tokio::sync::Notify,
}

struct Activity {
    /// Requests whose head has been read and whose answer is not yet made.
    in_progress: u32,
    /// Since the accept, or since the last answer was made.
    idle_since: Instant,
    /// Requests answered so far.
    served: u64,
    /// This connection's place under `max_connections`; taken by eviction.
    permit: Option<OwnedSemaphorePermit>,
}

impl ConnState {
    /// When the connection has been idle too long: `None` while a request is
    /// in progress (the request timeout bounds it).
    fn idle_deadline(&self, head: Duration) -> Option<Instant> {
        let a = lock(&self.activity);
        (a.in_progress == 0).then(|| a.idle_since + head)
    }

    fn is_idle(&self) -> bool {
        lock(&self.activity).in_progress == 0
    }

    fn served(&self) -> u64 {
        lock(&self.activity).served
    }
}

/// Counts a request as in progress from its head to its answer.
struct InProgress(Arc<ConnState>);

impl InProgress {
    fn start(state: Arc<ConnState>) -> Self {
        lock(&state.activity).in_progress += 1;
        InProgress(state)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut a = lock(&self.0.activity);
        a.in_progress -= 1;
        a.served += 1;
        a.idle_since = Instant::now();
    }
}

/// A poisoned lock only means a panic elsewhere; the bookkeeping is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Connection {
    app: Router,
    peer: SocketAddr,
    timing: Timing,
    state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl Connection {
    async fn run(self, stream: tokio::net::TcpStream, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Connection { app, peer, timing, state, registry } = self;
        let service = {
            let state = state.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let in_progress = InProgress::start(state.clone());
                let app = app.clone();
                async move {
                    let response = app.oneshot(req.map(Body::new)).await;
                    drop(in_progress);
                    response
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(timing.head).keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let too_old = state.accepted + timing.max_age;
        // Set once a graceful close has begun: when to drop the connection.
        let mut closing: Option<Instant> = None;
        let close_reason = loop {
            let next = match closing {
                Some(drop_at) => drop_at,
                None => state.idle_deadline(timing.head).map_or(too_old, |idle| idle.min(too_old)),
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break None;
                }
                _ = tokio::time::sleep_until(next) => {
                    let now = Instant::now();
                    if closing.is_some() {
                        break Some("grace-expired");
                    }
                    if now >= too_old {
                        conn.as_mut().graceful_shutdown();
                        closing = Some(now + timing.grace);
                        metrics::counter!("lifecycle_http_connections_closed_total", "reason" => "age").increment(1);
                    } else if state.idle_deadline(timing.head).is_some_and(|idle| now >= idle) {
                        if state.served() == 0 {
                            // Not a byte of a request yet (or not a whole head): nothing to finish.
                            tracing::debug!(%peer, "closing a connection that sent no request in time");
                            break Some("silent");
                        }
                        // An answer may still be on its way out: let hyper finish it.
                        conn.as_mut().graceful_shutdown();
                        closing = Some(now + timing.grace);
                        metrics::counter!("lifecycle_http_connections_closed_total", "reason" => "idle").increment(1);
                    }
                }
                _ = state.evicted.notified(), if closing.is_none() => {
                    if state.is_idle() && state.served() == 0 {
                        break None;
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + timing.grace);
                }
                _ = stop.changed(), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + timing.grace);
                }
            }
        };
        if let Some(reason) = close_reason {
            metrics::counter!("lifecycle_http_connections_closed_total", "reason" => reason).increment(1);
        }
        registry.forget(state.id);
    }
}
