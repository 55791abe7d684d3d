//! The sections that say how each binary runs: where it listens, what it
//! connects to, how much it does at once, how it logs and traces.

use crate::Secret;
use serde::Deserialize;
use std::time::Duration;

/// `[telemetry]`: where traces go (see `lifecycle_telemetry`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`/v1/traces` is added). Absent:
    /// the standard `OTEL_EXPORTER_OTLP_*` variables decide; none set: off.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://lifecycle.db?mode=rwc` (default) or `postgres://user:pass@host/db`.
    /// A secret because a PostgreSQL URL usually carries a password.
    pub url: Secret,
    /// Pool size. Unset: 1 on SQLite, 16 on PostgreSQL. SQLite writes one
    /// statement at a time whatever the pool, and each extra connection is
    /// another thread to hand statements to and wake: one connection was
    /// measured faster (BENCHMARKS.md, issue 12).
    pub max_connections: Option<u32>,
    /// Group commit: the worker's run writes and the intake's events from
    /// concurrent runs and requests share transactions and commits (each
    /// answered after its own commit). Off: each commits alone.
    pub group_commit: bool,
    /// Apply pending migrations when a binary starts (`lifecycle-ctl migrate` does it explicitly).
    pub migrate_on_start: bool,
}

impl DatabaseSettings {
    /// `max_connections`, or the default for the database `url` names.
    pub fn pool_size(&self) -> u32 {
        self.max_connections.unwrap_or(if self.url.expose().starts_with("sqlite:") { 1 } else { 16 })
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://lifecycle.db?mode=rwc"),
            max_connections: None,
            group_commit: true,
            migrate_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    /// AMQP URL; a secret because it carries the password.
    pub url: Secret,
    /// Prefix of every exchange and queue name, so several deployments (or
    /// test runs) can share one broker.
    pub namespace: String,
    /// Unacknowledged deliveries a worker holds at once (`basic.qos`).
    pub prefetch: u16,
    #[serde(with = "humantime_serde")]
    pub confirm_timeout: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            namespace: "lifecycle".into(),
            prefetch: 32,
            confirm_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerSettings {
    pub listen: String,
    /// Bearer tokens accepted on `POST /v1/events`. At least one is required.
    /// A list, a comma-separated string, or `{ file = "..." }` with one per line;
    /// a list's entries may be tables with a `label` and the `plans` scope
    /// (see [`crate::IntakeToken`]).
    #[serde(deserialize_with = "crate::intake::intake_tokens")]
    pub intake_tokens: Vec<crate::IntakeToken>,
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// From a request's head to the last byte of its body: a body still
    /// trickling in then is cut off with 408, and its place is freed.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// Reverse proxies in front of the intake (addresses or CIDR ranges):
    /// from them, the client is read from `X-Forwarded-For`, so that failed
    /// authentications are counted per client rather than for the proxy.
    pub trusted_proxies: Vec<String>,
    /// Where the producer's `/metrics` (and `/healthz`) are served instead of
    /// the intake listener: set it wherever the intake is published, so the
    /// metrics are not. Empty (the default): `/metrics` is on the intake.
    pub metrics_listen: String,
    /// How often the outbox relay looks for unsent rows when nothing woke it.
    #[serde(with = "humantime_serde")]
    pub relay_interval: Duration,
    pub relay_batch: u64,
    pub pipedrive_webhook: PipedriveWebhookSettings,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            intake_tokens: Vec::new(),
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(5),
            max_concurrent_requests: 512,
            trusted_proxies: Vec::new(),
            metrics_listen: String::new(),
            relay_interval: Duration::from_secs(1),
            relay_batch: 200,
            pipedrive_webhook: PipedriveWebhookSettings::default(),
        }
    }
}

/// HTTP Basic credentials Pipedrive is configured to send with its webhooks
/// (`http_auth_user` / `http_auth_password` of the webhook). Without both,
/// `POST /v1/webhooks/pipedrive` is not served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipedriveWebhookSettings {
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Larger deliveries get 413. Pipedrive's v1 payloads carry the whole
    /// object with its custom fields, so this is roomier than the intake's.
    pub max_body_bytes: usize,
}

impl Default for PipedriveWebhookSettings {
    fn default() -> Self {
        Self { username: None, password: None, max_body_bytes: 256 * 1024 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Where the admin API and console listen; never the intake listener.
    /// Empty string disables them.
    pub listen: String,
    pub username: String,
    /// Required for the admin listener to start.
    pub password: Option<Secret>,
    /// Keys the console's CSRF tokens (at least 32 characters, random).
    /// Unset: a random key is made at each start, so a form rendered before
    /// a restart must be reloaded, and producers behind one load balancer
    /// need the same value here to accept each other's forms.
    pub csrf_secret: Option<Secret>,
    /// Proxies in front of the admin listener, as `producer.trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_body_bytes: usize,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            username: "admin".into(),
            password: None,
            csrf_secret: None,
            trusted_proxies: Vec::new(),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 32,
            max_body_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Runs executed at once by one worker process.
    pub concurrency: usize,
    /// How long a claimed run is reserved for its worker; extended every
    /// quarter of it while it works. A worker killed mid-run has its runs
    /// taken over by another worker once this lapses.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often the sweeper looks for runs whose dispatch was lost.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How overdue a run must be before the sweeper republishes it.
    #[serde(with = "humantime_serde")]
    pub sweep_grace: Duration,
    /// On SIGTERM, how long in-flight runs may take to reach a step boundary.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A run waiting behind an earlier run for the same person is re-checked this often
    /// (it is also woken as soon as the earlier run ends).
    #[serde(with = "humantime_serde")]
    pub blocked_recheck: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served. Empty disables.
    pub metrics_listen: String,
    /// Timeout of each vendor HTTP request. At most two thirds of `lease`: a
    /// request is sent only while the worker's lease outlasts it.
    #[serde(with = "humantime_serde")]
    pub http_timeout: Duration,
    /// How often the scheduler looks for scheduled runs whose time has come.
    #[serde(with = "humantime_serde")]
    pub schedule_interval: Duration,
    /// Vendor base URLs must be `https://` unless this is set: vendor
    /// credentials must not cross a network in clear text. For the simulator
    /// and tests on one machine.
    pub allow_plain_http: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 32,
            lease: Duration::from_secs(15),
            sweep_interval: Duration::from_secs(10),
            sweep_grace: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            blocked_recheck: Duration::from_secs(60),
            metrics_listen: "127.0.0.1:9464".into(),
            http_timeout: Duration::from_secs(10),
            allow_plain_http: false,
            schedule_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` (default) or `json` (one object per line, for log shippers).
    pub format: LogFormat,
}
