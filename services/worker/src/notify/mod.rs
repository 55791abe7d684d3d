//! Notifications (`[notifications]`): outgoing webhooks telling people that
//! runs need them: a run needs manual action, is dead, is held by the
//! blast-radius guard, or awaits approval.
//!
//! In the worker, beside the reconciler and the scheduler: a periodic task
//! over the database, which every worker runs and which needs no broker. Of a
//! fleet, one worker sends to each webhook: the one holding its lease in the
//! database (`notification_hooks`), renewed each pass and before each
//! delivery, given up when the worker stops.
//!
//! Per webhook and kind, a pass: a message claimed and not yet delivered is
//! sent again (same id); else, once `batch_every` has passed since the last
//! message and the oldest run not yet announced has waited `batch_every`
//! (so that runs entering the state together go in one message), those runs
//! are claimed into a message and sent. Delivery is at-least-once and never
//! repeated once the receiver accepted it (see `lifecycle_ops::notifications`).
//! Within a delivery, backon retries 5xx, 429, timeouts and connection
//! errors; a message still failing is sent again on a later pass, forever
//! for those, while any other 4xx is given up after [`MAX_REFUSALS`] passes.

pub mod render;

use lifecycle_config::notifications::{NotificationSettings, NotifyKind, WebhookSettings};
use lifecycle_domain::VendorKind;
use lifecycle_ops::db::Db;
use lifecycle_ops::notifications::{self as store, Batch};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Runs at most in one message (the rest go in the next).
pub const MAX_BATCH: u64 = 1000;
/// Passes on which a receiver refused a message (4xx other than 429) before it is dropped.
pub const MAX_REFUSALS: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] lifecycle_ops::db::StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why one delivery failed. Never holds the URL (reqwest's errors would).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// 5xx, 429, a timeout, a connection that failed: tried again.
    #[error("{0}")]
    Transient(String),
    /// Any other 4xx: the receiver will not take it as it is.
    #[error("refused with HTTP {0}")]
    Refused(u16),
}

struct Hook {
    settings: WebhookSettings,
    vendors: Vec<VendorKind>,
    /// Its URL as logs show it.
    shown: String,
}

pub struct Notifier {
    db: Db,
    settings: NotificationSettings,
    hooks: Vec<Hook>,
    owner: String,
    http: reqwest::Client,
    /// (webhook, kind) → when a failed message may be tried again.
    not_before: Mutex<HashMap<(String, NotifyKind), Instant>>,
    /// The delays between tries within one delivery.
    backoff: backon::ExponentialBuilder,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub delivered: usize,
    pub failed: usize,
    pub dropped: usize,
}

impl Notifier {
    pub fn new(db: Db, settings: NotificationSettings, owner: impl Into<String>) -> Result<Self, NotifyError> {
        let hooks = settings
            .webhooks
            .iter()
            .map(|w| Hook {
                vendors: w.vendors.clone(),
                shown: render::redact_url(w.url.expose()),
                settings: w.clone(),
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("lifecycle-notifier/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the signed body elsewhere; receivers answer where they are.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        // Short steps within one delivery: a receiver's blip passes in a
        // second or two; a longer outage is the next pass's business.
        let step = (settings.batch_every / 2).clamp(Duration::from_millis(100), Duration::from_secs(2));
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(step)
            .with_max_delay(step * 8)
            .with_max_times(3)
            .with_jitter();
        Ok(Self { db, settings, hooks, owner: owner.into(), http, not_before: Mutex::new(HashMap::new()), backoff })
    }

    /// How long a lease lasts: more than the longest delivery (four tries
    /// of `timeout` and the waits between), so no other worker takes the
    /// webhook over while one is sending.
    fn lease_ttl(&self) -> Duration {
        self.settings.timeout * 4 + Duration::from_secs(30) + self.settings.batch_every
    }

    /// Passes until `stop`; then gives the leases up.
    pub async fn run(self, stop: CancellationToken) {
        if self.hooks.is_empty() {
            return;
        }
        let every = (self.settings.batch_every / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let pass = tokio::select! {
                        _ = stop.cancelled() => break,
                        p = self.pass() => p,
                    };
                    if let Err(e) = pass {
                        warn!(error = %e, "notifications: a pass failed; trying again shortly");
                    }
                }
            }
        }
        self.release().await;
    }

    /// Gives up every lease this notifier holds (a stopping worker), so
    /// another worker sends at once rather than after the lease lapses.
    pub async fn release(&self) {
        for hook in &self.hooks {
            if let Err(e) = store::release(&self.db, &hook.settings.name, &self.owner).await {
                warn!(webhook = %hook.settings.name, error = %e, "notifications: could not give the lease up");
            }
        }
    }

    /// One pass over every webhook this worker holds the lease of.
    pub async fn pass(&self) -> Result<Pass, NotifyError> {
        let mut done = Pass::default();
        for hook in &self.hooks {
            let name = &hook.settings.name;
            let Some(since) = store::lease(&self.db, name, &self.owner, self.lease_ttl()).await? else {
                continue; // another worker sends to it
            };
            for &kind in &hook.settings.kinds {
                let key = (name.clone(), kind);
                if self.not_before.lock().expect("not poisoned").get(&key).is_some_and(|t| Instant::now() < *t) {
                    continue;
                }
                let batch = match store::unsent(&self.db, name, kind.as_str()).await? {
                    Some(batch) => batch,
                    None => match self.claim(hook, kind, since).await? {
                        Some(batch) => batch,
                        None => continue,
                    },
                };
                // Renewed before each delivery: it must outlast this one.
                if store::lease(&self.db, name, &self.owner, self.lease_ttl()).await?.is_none() {
                    break;
                }
                self.deliver(hook, kind, &batch, &mut done).await?;
            }
        }
        Ok(done)
    }

    /// The runs to announce now, claimed into a message; None when there
    /// are none, or it is too soon.
    async fn claim(
        &self,
        hook: &Hook,
        kind: NotifyKind,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Batch>, NotifyError> {
        let name = &hook.settings.name;
        let now = chrono::Utc::now();
        let every = chrono::Duration::from_std(self.settings.batch_every).unwrap_or(chrono::Duration::MAX);
        if store::last_sent(&self.db, name, kind.as_str()).await?.is_some_and(|last| now - last < every) {
            return Ok(None);
        }
        let runs = store::candidates(&self.db, name, kind.as_str(), since, &hook.vendors, MAX_BATCH).await?;
        // The oldest waits `batch_every`, so that those close behind it join it.
        match runs.first() {
            Some(oldest) if now - oldest.entered_at >= every => {}
            _ => return Ok(None),
        }
        Ok(store::claim(&self.db, name, kind.as_str(), &runs).await?)
    }

    async fn deliver(&self, hook: &Hook, kind: NotifyKind, batch: &Batch, done: &mut Pass) -> Result<(), NotifyError> {
        let name = &hook.settings.name;
        let runs = store::runs_of(&self.db, batch).await?;
        let console = hook.settings.console_url.as_deref().map(|c| c.trim_end_matches('/'));
        let message = render::Message {
            id: &batch.id,
            kind,
            runs: &runs,
            list_runs: self.settings.list_runs,
            console_url: console,
        };
        let body = serde_json::to_vec(&render::body(hook.settings.format, &message)).expect("JSON values serialize");
        // Counted before sending: a worker that dies mid-delivery still counts it.
        let attempts = store::count_attempt(&self.db, name, &batch.id).await?;
        let send = || self.send_once(hook, kind, &batch.id, &body);
        let result = backon::Retryable::retry(send, self.backoff)
            .when(|e| matches!(e, DeliveryError::Transient(_)))
            .notify(|e, after| {
                metrics::counter!("lifecycle_notifications_sent_total", "kind" => kind.as_str(), "result" => "retried")
                    .increment(1);
                warn!(webhook = %name, url = %hook.shown, kind = kind.as_str(), error = %e, retry_in = ?after,
                      "notifications: delivery failed; trying again");
            })
            .await;
        let key = (name.clone(), kind);
        match result {
            Ok(()) => {
                let runs = store::mark_sent(&self.db, name, &batch.id, "delivered").await?;
                metrics::counter!("lifecycle_notifications_sent_total", "kind" => kind.as_str(), "result" => "delivered")
                    .increment(1);
                info!(webhook = %name, kind = kind.as_str(), runs, message_id = %batch.id, "notification delivered");
                self.not_before.lock().expect("not poisoned").remove(&key);
                done.delivered += 1;
            }
            Err(DeliveryError::Refused(status)) if attempts >= MAX_REFUSALS => {
                let runs = store::mark_sent(&self.db, name, &batch.id, "dropped").await?;
                metrics::counter!("lifecycle_notifications_sent_total", "kind" => kind.as_str(), "result" => "dropped")
                    .increment(1);
                warn!(webhook = %name, url = %hook.shown, kind = kind.as_str(), status, attempts, runs,
                      "notifications: the receiver refused the message {MAX_REFUSALS} times; dropped (check the webhook's URL)");
                done.dropped += 1;
            }
            Err(e) => {
                metrics::counter!("lifecycle_notifications_sent_total", "kind" => kind.as_str(), "result" => "retried")
                    .increment(1);
                // Later passes try again, further apart the longer it fails (at most 10 minutes).
                let wait = self
                    .settings
                    .batch_every
                    .saturating_mul(attempts.clamp(1, 10) as u32)
                    .min(Duration::from_secs(600));
                warn!(webhook = %name, url = %hook.shown, kind = kind.as_str(), error = %e, attempts, retry_in = ?wait,
                      "notifications: delivery failed; the message is kept and sent again");
                self.not_before.lock().expect("not poisoned").insert(key, Instant::now() + wait);
                done.failed += 1;
            }
        }
        Ok(())
    }

    async fn send_once(&self, hook: &Hook, kind: NotifyKind, id: &str, body: &[u8]) -> Result<(), DeliveryError> {
        let mut req = self
            .http
            .post(hook.settings.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(render::DELIVERY_HEADER, id)
            .header("x-lifecycle-kind", kind.as_str())
            .body(body.to_vec());
        if let Some(secret) = &hook.settings.secret {
            req = req.header(render::SIGNATURE_HEADER, render::signature(secret.expose().as_bytes(), body));
        }
        // reqwest's errors print the URL: only their kind is kept.
        let res = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            DeliveryError::Transient(what.to_string())
        })?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(DeliveryError::Transient(format!("HTTP {}", status.as_u16())))
        } else {
            Err(DeliveryError::Refused(status.as_u16()))
        }
    }
}
