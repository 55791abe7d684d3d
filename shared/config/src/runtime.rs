//! The sections that say how each binary runs: where it listens, what it
//! connects to, how much it does at once, how it logs and traces.

use crate::reference::types::HumanDuration;
use crate::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[telemetry]`: where traces go (see `lifecycle_telemetry`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`/v1/traces` is added). Absent:
    /// the standard `OTEL_EXPORTER_OTLP_*` variables decide; none set: off.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
    /// How long a statement waits for a connection: for a free one, and for
    /// the pool's attempts to open one (retried while the server refuses or is
    /// starting up). Unset: 5 s on PostgreSQL, so that a request meeting a
    /// database that is gone answers 503 with `Retry-After` well within
    /// `producer.request_timeout`; 30 s on SQLite, where there is no server to
    /// lose and a wait is only for the one connection.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<HumanDuration>")]
    pub acquire_timeout: Option<Duration>,
}

impl DatabaseSettings {
    /// `max_connections`, or the default for the database `url` names.
    pub fn pool_size(&self) -> u32 {
        self.max_connections.unwrap_or(if self.is_sqlite() { 1 } else { 16 })
    }

    /// `acquire_timeout`, or the default for the database `url` names.
    pub fn acquire_wait(&self) -> Duration {
        self.acquire_timeout.unwrap_or(Duration::from_secs(if self.is_sqlite() { 30 } else { 5 }))
    }

    fn is_sqlite(&self) -> bool {
        self.url.expose().starts_with("sqlite:")
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://lifecycle.db?mode=rwc"),
            max_connections: None,
            group_commit: true,
            migrate_on_start: true,
            acquire_timeout: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    /// AMQP URL; a secret because it carries the password.
    pub url: Secret,
    /// The nodes of a RabbitMQ cluster, `host:port` each (a list, or one
    /// comma-separated string as `LIFECYCLE_BROKER__ADDRESSES` gives it), used
    /// with `url`'s user, password, virtual host and options, whose own host is
    /// then not used. Every connection tries them in turn from a rotating
    /// start and moves to the next when one fails. Empty (the default): `url` alone.
    #[serde(deserialize_with = "addresses")]
    pub addresses: Vec<String>,
    /// Prefix of every exchange and queue name, so several deployments (or
    /// test runs) can share one broker.
    pub namespace: String,
    /// Unacknowledged deliveries a worker holds at once (`basic.qos`).
    pub prefetch: u16,
    /// How long a publish waits for the broker's confirm before it counts as
    /// failed (the outbox row stays, and is sent again).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub confirm_timeout: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            addresses: Vec::new(),
            namespace: "lifecycle".into(),
            prefetch: 32,
            confirm_timeout: Duration::from_secs(10),
        }
    }
}

impl BrokerSettings {
    /// Every address is `host:port`, `host` or `[v6]:port` (the broker crate
    /// combines them with `url`; a typo should stop the binary at start, not
    /// show up as a node that never answers).
    pub fn check_addresses(&self) -> Result<(), String> {
        for a in &self.addresses {
            let (host, port) = match a.strip_prefix('[') {
                Some(rest) => match rest.split_once(']') {
                    Some((h, "")) => (h, None),
                    Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or("x"))),
                    None => ("", None),
                },
                None => match a.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (a.as_str(), None),
                },
            };
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
            if host.is_empty() || host.contains(['/', '@', ' ', ':']) && !a.starts_with('[') || !port_ok {
                return Err(format!("broker.addresses: {a:?} is not host:port"));
            }
        }
        Ok(())
    }
}

/// `broker.addresses`: a list, or a comma-separated string (from the environment).
fn addresses<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let list = match Raw::deserialize(deserializer)? {
        Raw::List(l) => l,
        Raw::Text(t) => t.split(',').map(str::to_string).collect(),
    };
    Ok(list.into_iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerSettings {
    /// Where the intake listens (`host:port`): `POST /v1/events`, `/scim/v2`, the webhooks.
    pub listen: String,
    /// Bearer tokens accepted on `POST /v1/events` (at least 16 characters
    /// each). The producer needs at least one. A table entry's `label` names
    /// the token in audit rows (default `token-N`, its place in the list);
    /// `plans = true` also lets it ask for plans (`POST /v1/plans`).
    #[serde(deserialize_with = "crate::intake::intake_tokens")]
    #[schemars(with = "crate::reference::types::IntakeTokens")]
    pub intake_tokens: Vec<crate::IntakeToken>,
    /// Larger `POST /v1/events` bodies get 413.
    pub max_body_bytes: usize,
    /// From a request's head to the last byte of its answer, the wait for a
    /// place under `max_concurrent_requests` included; past it, 408.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub request_timeout: Duration,
    /// From a request's head to the last byte of its body: a body still
    /// trickling in then is cut off with 408, and its place is freed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub body_read_timeout: Duration,
    /// Requests the intake listener handles at once; more wait, within their `request_timeout`.
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
    #[schemars(with = "HumanDuration")]
    pub relay_interval: Duration,
    /// Outbox rows the relay publishes per round.
    pub relay_batch: u64,
    /// The Basic credentials Pipedrive sends with its webhooks
    /// (`POST /v1/webhooks/pipedrive`).
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PipedriveWebhookSettings {
    /// The webhook's `http_auth_user`. With `password`: the route is served.
    pub username: Option<String>,
    /// The webhook's `http_auth_password` (at least 16 characters).
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Where the admin API and console listen; never the intake listener.
    /// Empty string disables them.
    pub listen: String,
    /// The admin API's and console's Basic user name.
    pub username: String,
    /// Its password (at least 16 characters). Unset or empty: the admin
    /// listener does not start, and says so.
    pub password: Option<Secret>,
    /// Keys the console's CSRF tokens (at least 32 characters, random).
    /// Unset: a random key is made at each start, so a form rendered before
    /// a restart must be reloaded, and producers behind one load balancer
    /// need the same value here to accept each other's forms.
    pub csrf_secret: Option<Secret>,
    /// Proxies in front of the admin listener, as `producer.trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// As `producer.request_timeout`, for the admin listener.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub request_timeout: Duration,
    /// Requests the admin listener handles at once; more wait.
    pub max_concurrent_requests: usize,
    /// Larger admin request bodies (console forms, API calls) get 413.
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Runs executed at once by one worker process.
    pub concurrency: usize,
    /// How long a claimed run is reserved for its worker; extended every
    /// quarter of it while it works. A worker killed mid-run has its runs
    /// taken over by another worker once this lapses.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub lease: Duration,
    /// How often the sweeper looks for runs whose dispatch was lost.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub sweep_interval: Duration,
    /// How overdue a run must be before the sweeper republishes it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub sweep_grace: Duration,
    /// On SIGTERM, how long in-flight runs may take to reach a step boundary.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub shutdown_grace: Duration,
    /// A run waiting behind an earlier run for the same person is re-checked this often
    /// (it is also woken as soon as the earlier run ends).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub blocked_recheck: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served. Empty disables.
    pub metrics_listen: String,
    /// Timeout of each vendor HTTP request. At most two thirds of `lease`: a
    /// request is sent only while the worker's lease outlasts it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub http_timeout: Duration,
    /// How often the scheduler looks for scheduled runs whose time has come.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub schedule_interval: Duration,
    /// Vendor base URLs must be `https://` unless this is set: vendor
    /// credentials must not cross a network in clear text. For the simulator
    /// and tests on one machine.
    pub allow_plain_http: bool,
    /// How often a worker renews its lane leases and takes or gives up lanes
    /// to hold its share (⌈lanes / live workers⌉) of the fleet's lanes.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub lane_interval: Duration,
    /// A lane lease's length: a worker that died, or cannot reach the
    /// database, loses its lanes to the others this long after its last
    /// renewal (it stops consuming them by then too). At least twice
    /// `lane_interval`, so that one late round loses nothing.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub lane_lease: Duration,
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
            lane_interval: Duration::from_secs(2),
            lane_lease: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// The format of every log line on standard output.
    pub format: LogFormat,
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return its own large error
mod broker_tests {
    use crate::Settings;

    #[test]
    fn addresses_from_a_file_list_or_a_comma_separated_variable() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "lifecycle.toml",
                r#"
                [broker]
                addresses = ["mq1:5672", "mq2:5672"]
                [producer]
                intake_tokens = ["intake-token-one-1"]
                "#,
            )?;
            assert_eq!(Settings::load(None).unwrap().broker.addresses, ["mq1:5672", "mq2:5672"]);
            jail.set_env("LIFECYCLE_BROKER__ADDRESSES", "127.0.0.1:5681, 127.0.0.1:5682,[::1]:5683,");
            assert_eq!(
                Settings::load(None).unwrap().broker.addresses,
                ["127.0.0.1:5681", "127.0.0.1:5682", "[::1]:5683"]
            );
            Ok(())
        });
    }

    #[test]
    fn no_addresses_is_the_url_alone_and_bad_ones_stop_the_binary() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("lifecycle.toml", "[producer]\nintake_tokens = [\"intake-token-one-1\"]\n")?;
            assert!(Settings::load(None).unwrap().broker.addresses.is_empty());
            for bad in ["mq1:", ":5672", "mq1:port", "mq1:0", "user@mq1:5672", "amqp://mq1:5672", "[::1"] {
                jail.set_env("LIFECYCLE_BROKER__ADDRESSES", format!("mq0:5672,{bad}"));
                let err = Settings::load(None).unwrap_err().to_string();
                assert!(err.contains("broker.addresses"), "{bad}: {err}");
            }
            Ok(())
        });
    }
}
