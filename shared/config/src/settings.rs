//! The settings tree. Every field has a default that works on a developer
//! machine (SQLite file, RabbitMQ on localhost), so `lifecycle-worker` with no
//! configuration at all starts.

use crate::Secret;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use lifecycle_domain::{VendorKind, Workflow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shortest intake token, admin password or webhook password accepted.
pub const MIN_CREDENTIAL_CHARS: usize = 16;
/// The shortest `admin.csrf_secret` accepted.
pub const MIN_CSRF_SECRET_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Rule(String),
}

#[derive(Clone, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub broker: BrokerSettings,
    #[serde(default)]
    pub producer: ProducerSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub worker: WorkerSettings,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub schedule: ScheduleSettings,
    /// The SCIM 2.0 endpoint and its mapping of groups to apps (`[scim]`, see `crate::scim`).
    #[serde(default)]
    pub scim: crate::scim::ScimSettings,
    #[serde(default)]
    pub reconcile: crate::reconcile::ReconcileSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// The blast-radius guard's thresholds (`[safety]`, see `crate::safety`).
    #[serde(default)]
    pub safety: crate::safety::SafetySettings,
    /// Vendor × workflow pairs whose runs await an approver (`[approval]`, see `crate::approval`).
    #[serde(default)]
    pub approval: crate::approval::ApprovalSettings,
    /// Outgoing webhooks about runs that need a person (`[notifications]`, see `crate::notifications`).
    #[serde(default)]
    pub notifications: crate::notifications::NotificationSettings,
    /// HR systems as event sources and their birthright rules (`[hris]`, see `crate::hris`).
    #[serde(default)]
    pub hris: crate::hris::HrisSettings,
    /// One table per configured vendor (`[vendors.pipedrive]`, ...). Each
    /// vendor module parses its own table: its config lives beside its code.
    #[serde(default)]
    pub vendors: BTreeMap<String, serde_json::Value>,
}

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
        Self { url: Secret::new("sqlite://lifecycle.db?mode=rwc"), max_connections: None, migrate_on_start: true }
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

/// `[schedule]`: when a vendor's runs start ahead of their event's `effective_at`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    /// `lead.<vendor>.<workflow> = "3d"`: that vendor's runs of that workflow
    /// start this long before `effective_at` (e.g. create accounts ahead of a
    /// start date). Absent: at `effective_at`.
    pub lead: BTreeMap<String, BTreeMap<String, LeadTime>>,
}

/// A duration in the configuration's human form (`"3d"`, `"12h"`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct LeadTime(#[serde(with = "humantime_serde")] pub Duration);

impl ScheduleSettings {
    /// How long before `effective_at` a run of `workflow` at `vendor` starts.
    pub fn lead(&self, vendor: &str, workflow: &str) -> Duration {
        self.lead.get(vendor).and_then(|w| w.get(workflow)).map_or(Duration::ZERO, |l| l.0)
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

/// How transient failures are retried. `[retry]` holds the defaults,
/// `[retry.vendors.<vendor>]` overrides them for one vendor.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(with = "humantime_serde")]
    pub min_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    pub vendors: BTreeMap<String, RetryOverride>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            vendors: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub min_delay: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub max_delay: Option<Duration>,
}

/// The retry policy for one vendor: the defaults with its overrides applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl RetrySettings {
    pub fn for_vendor(&self, vendor: &str) -> RetryPolicy {
        let o = self.vendors.get(vendor).cloned().unwrap_or_default();
        RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(self.max_attempts),
            max_age: o.max_age.unwrap_or(self.max_age),
            min_delay: o.min_delay.unwrap_or(self.min_delay),
            max_delay: o.max_delay.unwrap_or(self.max_delay),
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

/// Every section's own `Debug` redacts its secrets; the vendor tables are
/// free-form (each vendor module parses its own), so only their names show.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vendors: Vec<&String> = self.vendors.keys().collect();
        f.debug_struct("Settings")
            .field("database", &self.database)
            .field("broker", &self.broker)
            .field("producer", &self.producer)
            .field("admin", &self.admin)
            .field("worker", &self.worker)
            .field("retry", &self.retry)
            .field("log", &self.log)
            .field("vendors", &format_args!("{vendors:?} (tables not shown)"))
            .finish()
    }
}

impl Settings {
    /// Loads settings: defaults, then the file (explicit path, else
    /// `LIFECYCLE_CONFIG`, else `./lifecycle.toml` when present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        let explicit = file.map(Path::to_path_buf).or_else(|| std::env::var_os("LIFECYCLE_CONFIG").map(PathBuf::from));
        match explicit {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path)),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("lifecycle.toml").exists() => figment = figment.merge(Toml::file("lifecycle.toml")),
            None => {}
        }
        figment = figment.merge(Env::prefixed("LIFECYCLE_").ignore(&["CONFIG"]).split("__"));
        Self::from_figment(figment)
    }

    pub fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.broker.namespace.is_empty()
            || !self.broker.namespace.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError::Rule(
                "broker.namespace must be non-empty ASCII letters, digits, '-', '_' or '.'".into(),
            ));
        }
        if self.broker.prefetch == 0 {
            return Err(ConfigError::Rule("broker.prefetch must be at least 1".into()));
        }
        if self.worker.concurrency == 0 {
            return Err(ConfigError::Rule("worker.concurrency must be at least 1".into()));
        }
        if self.worker.lease < Duration::from_secs(2) {
            return Err(ConfigError::Rule("worker.lease must be at least 2s".into()));
        }
        // A request goes out only while the worker's lease outlasts it, and the
        // lease is extended every quarter of it: a request longer than two
        // thirds of the lease could never be sent (or only just after a
        // heartbeat). With that, a request sent under the lease has ended
        // before another worker can claim the run.
        if self.worker.http_timeout.as_nanos() * 3 > self.worker.lease.as_nanos() * 2 {
            return Err(ConfigError::Rule(format!(
                "worker.http_timeout ({:?}) must be at most two thirds of worker.lease ({:?}): \
                 lower worker.http_timeout or raise worker.lease",
                self.worker.http_timeout, self.worker.lease,
            )));
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::Rule("retry.max_attempts must be at least 1".into()));
        }
        if self.producer.body_read_timeout.is_zero() {
            return Err(ConfigError::Rule("producer.body_read_timeout must be more than 0".into()));
        }
        if self.worker.schedule_interval.is_zero() {
            return Err(ConfigError::Rule("worker.schedule_interval must be more than 0".into()));
        }
        // The workflows an HR event starts: only those can be dated.
        const SCHEDULED: [Workflow; 3] = [Workflow::Joiner, Workflow::Mover, Workflow::Leaver];
        for (vendor, workflows) in &self.schedule.lead {
            if vendor.parse::<VendorKind>().is_err() {
                let known: Vec<&str> = VendorKind::ALL.iter().map(|v| v.as_str()).collect();
                return Err(ConfigError::Rule(format!("schedule.lead.{vendor}: not a vendor ({})", known.join(", "))));
            }
            if let Some(w) = workflows.keys().find(|w| w.parse::<Workflow>().map_or(true, |w| !SCHEDULED.contains(&w)))
            {
                return Err(ConfigError::Rule(format!(
                    "schedule.lead.{vendor}.{w}: not a workflow that can be scheduled (joiner, mover, leaver)"
                )));
            }
        }
        for (name, list) in [
            ("producer.trusted_proxies", &self.producer.trusted_proxies),
            ("admin.trusted_proxies", &self.admin.trusted_proxies),
        ] {
            if let Some(bad) = list.iter().find(|p| !is_ip_or_cidr(p)) {
                return Err(ConfigError::Rule(format!(
                    "{name}: {bad:?} is not an IP address or a CIDR range (like 10.0.0.0/8)"
                )));
            }
        }
        self.notifications.check().map_err(ConfigError::Rule)?;
        self.safety.check().map_err(ConfigError::Rule)?;
        self.approval.check().map_err(ConfigError::Rule)?;
        self.check_credential_lengths()
    }

    /// Credentials short enough to guess are refused, naming the setting
    /// (never the value). An empty admin password means "not set": the admin
    /// listener then does not start, and says so.
    fn check_credential_lengths(&self) -> Result<(), ConfigError> {
        let too_short = |name: &str, min: usize| {
            ConfigError::Rule(format!(
                "{name} is shorter than {min} characters: use a long random value (e.g. `openssl rand -hex 24`)"
            ))
        };
        let short = |s: &Secret, min: usize| s.expose().chars().count() < min;
        if let Some(i) = self.producer.intake_tokens.iter().position(|t| short(&t.token, MIN_CREDENTIAL_CHARS)) {
            return Err(too_short(&format!("producer.intake_tokens (token #{})", i + 1), MIN_CREDENTIAL_CHARS));
        }
        if let Some(p) = self.admin.password.as_ref().filter(|p| !p.expose().is_empty()) {
            if short(p, MIN_CREDENTIAL_CHARS) {
                return Err(too_short("admin.password", MIN_CREDENTIAL_CHARS));
            }
        }
        if let Some(p) = &self.producer.pipedrive_webhook.password {
            if short(p, MIN_CREDENTIAL_CHARS) {
                return Err(too_short("producer.pipedrive_webhook.password", MIN_CREDENTIAL_CHARS));
            }
        }
        if let Some(k) = &self.admin.csrf_secret {
            if short(k, MIN_CSRF_SECRET_CHARS) {
                return Err(too_short("admin.csrf_secret", MIN_CSRF_SECRET_CHARS));
            }
        }
        Ok(())
    }

    /// The table `[vendors.<name>]`, when that vendor is configured.
    pub fn vendor(&self, name: &str) -> Option<&serde_json::Value> {
        self.vendors.get(name)
    }
}

fn is_ip_or_cidr(s: &str) -> bool {
    let s = s.trim();
    let (addr, len) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => len.is_none_or(|l| l.parse::<u8>().is_ok_and(|l| l <= if ip.is_ipv4() { 32 } else { 128 })),
        Err(_) => false,
    }
}

#[cfg(test)]
// figment's test jail returns its own (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_without_any_configuration() {
        figment::Jail::expect_with(|_jail| {
            let s = Settings::load(None).unwrap();
            assert_eq!(s.database.url.expose(), "sqlite://lifecycle.db?mode=rwc");
            assert_eq!(s.broker.namespace, "lifecycle");
            assert_eq!(s.producer.max_body_bytes, 65536);
            assert_eq!((s.worker.lease, s.worker.http_timeout), (Duration::from_secs(15), Duration::from_secs(10)));
            Ok(())
        });
    }

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "lifecycle.toml",
                r#"
                [broker]
                namespace = "from-file"
                prefetch = 8
                [producer]
                intake_tokens = ["intake-token-one-1"]
                [retry]
                max_attempts = 3
                [retry.vendors.pipedrive]
                max_attempts = 5
                [vendors.pipedrive]
                base_url = "http://127.0.0.1:9900/pipedrive"
                api_token = "file-token"
                "#,
            )?;
            jail.set_env("LIFECYCLE_BROKER__NAMESPACE", "from-env");
            jail.set_env("LIFECYCLE_WORKER__LEASE", "6s");
            jail.set_env("LIFECYCLE_WORKER__HTTP_TIMEOUT", "4s");
            jail.set_env("LIFECYCLE_VENDORS__PIPEDRIVE__API_TOKEN", "env-token");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.broker.namespace, "from-env");
            assert_eq!(s.broker.prefetch, 8);
            assert_eq!(s.worker.lease, Duration::from_secs(6));
            assert_eq!(s.worker.http_timeout, Duration::from_secs(4));
            assert_eq!(s.producer.intake_tokens.len(), 1);
            assert_eq!(s.retry.for_vendor("pipedrive").max_attempts, 5);
            assert_eq!(s.retry.for_vendor("jira").max_attempts, 3);
            assert_eq!(s.vendor("pipedrive").unwrap()["api_token"], "env-token");
            Ok(())
        });
    }

    #[test]
    fn secrets_can_come_from_files_named_in_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("admin-password", "s3cret-from-a-file\n")?;
            let path = jail.directory().join("admin-password");
            jail.set_env("LIFECYCLE_ADMIN__PASSWORD__FILE", path.display().to_string());
            let s = Settings::load(None).unwrap();
            assert_eq!(s.admin.password.as_ref().unwrap().expose(), "s3cret-from-a-file");
            assert_eq!(format!("{:?}", s.admin), format!("{:?}", s.admin).replace("s3cret", "XX"));
            Ok(())
        });
    }

    #[test]
    fn debug_of_the_whole_settings_shows_no_secret() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pd-webhook", "webhook-pass-from-file\n")?;
            let path = jail.directory().join("pd-webhook");
            jail.set_env("LIFECYCLE_DATABASE__URL", "postgres://app:db-pass-1@db/app");
            jail.set_env("LIFECYCLE_BROKER__URL", "amqp://app:amqp-pass-2@mq/%2f");
            jail.set_env("LIFECYCLE_PRODUCER__INTAKE_TOKENS", "intake-token-333333,intake-token-444444");
            jail.set_env("LIFECYCLE_PRODUCER__PIPEDRIVE_WEBHOOK__USERNAME", "pipedrive");
            jail.set_env("LIFECYCLE_PRODUCER__PIPEDRIVE_WEBHOOK__PASSWORD__FILE", path.display().to_string());
            jail.set_env("LIFECYCLE_ADMIN__PASSWORD", "admin-password-55555");
            jail.set_env("LIFECYCLE_ADMIN__CSRF_SECRET", "csrf-secret-8888888888888888888888");
            jail.set_env("LIFECYCLE_VENDORS__PIPEDRIVE__API_TOKEN", "vendor-tok-6");
            jail.set_env("LIFECYCLE_VENDORS__JIRA__API_TOKEN", "vendor-tok-7");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.producer.pipedrive_webhook.password.as_ref().unwrap().expose(), "webhook-pass-from-file");
            let printed = format!("{s:?} {s:#?}");
            for secret in [
                "db-pass-1",
                "amqp-pass-2",
                "intake-token-333333",
                "intake-token-444444",
                "webhook-pass-from-file",
                "admin-password-55555",
                "csrf-secret-8888888888888888888888",
                "vendor-tok-6",
                "vendor-tok-7",
            ] {
                assert!(!printed.contains(secret), "{secret} printed in {printed}");
            }
            assert!(printed.contains("pipedrive"), "{printed}");
            Ok(())
        });
    }

    #[test]
    fn a_vendor_request_must_end_well_within_the_lease() {
        figment::Jail::expect_with(|jail| {
            // A shorter lease alone leaves the default 10-second request too long for it.
            jail.set_env("LIFECYCLE_WORKER__LEASE", "5s");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("worker.http_timeout (10s)") && err.contains("worker.lease (5s)"), "{err}");
            assert!(err.contains("two thirds"), "{err}");
            // Exactly two thirds is allowed; a millisecond more is not.
            jail.set_env("LIFECYCLE_WORKER__LEASE", "6s");
            jail.set_env("LIFECYCLE_WORKER__HTTP_TIMEOUT", "4s");
            assert!(Settings::load(None).is_ok());
            jail.set_env("LIFECYCLE_WORKER__HTTP_TIMEOUT", "4001ms");
            assert!(Settings::load(None).is_err());
            // A longer request timeout needs a longer lease.
            jail.set_env("LIFECYCLE_WORKER__LEASE", "60s");
            jail.set_env("LIFECYCLE_WORKER__HTTP_TIMEOUT", "30s");
            assert!(Settings::load(None).is_ok());
            Ok(())
        });
    }

    #[test]
    fn credentials_short_enough_to_guess_are_refused_at_start() {
        figment::Jail::expect_with(|jail| {
            let mut refusal = |var: &str, value: &str| {
                jail.set_env(var, value);
                let err = Settings::load(None).map(|_| ()).unwrap_err().to_string();
                std::env::remove_var(var);
                assert!(!err.contains(value), "the value is not repeated: {err}");
                err
            };
            let err = refusal("LIFECYCLE_PRODUCER__INTAKE_TOKENS", "long-enough-token-1,short-token");
            assert!(err.contains("producer.intake_tokens (token #2) is shorter than 16 characters"), "{err}");
            let err = refusal("LIFECYCLE_ADMIN__PASSWORD", "hunter2hunter2!");
            assert!(err.contains("admin.password is shorter than 16"), "{err}");
            let err = refusal("LIFECYCLE_PRODUCER__PIPEDRIVE_WEBHOOK__PASSWORD", "letmein");
            assert!(err.contains("producer.pipedrive_webhook.password"), "{err}");
            let err = refusal("LIFECYCLE_PRODUCER__TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"10.0.0.0/40\"]");
            assert!(err.contains("producer.trusted_proxies: \"10.0.0.0/40\""), "{err}");
            let err = refusal("LIFECYCLE_ADMIN__CSRF_SECRET", "sixteen-chars-ok");
            assert!(err.contains("admin.csrf_secret is shorter than 32"), "{err}");
            jail.set_env("LIFECYCLE_ADMIN__TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.1\"]");
            assert_eq!(Settings::load(None).unwrap().admin.trusted_proxies.len(), 3);
            // Sixteen characters are enough; an empty admin password means "not set".
            jail.set_env("LIFECYCLE_PRODUCER__INTAKE_TOKENS", "0123456789abcdef");
            jail.set_env("LIFECYCLE_ADMIN__PASSWORD", "");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.producer.intake_tokens.len(), 1);
            // What the tests and the demo use passes.
            for (var, value) in [
                ("LIFECYCLE_PRODUCER__INTAKE_TOKENS", "test-intake-token"),
                ("LIFECYCLE_PRODUCER__INTAKE_TOKENS", "demo-intake-token"),
                ("LIFECYCLE_ADMIN__PASSWORD", "test-admin-password"),
                ("LIFECYCLE_ADMIN__PASSWORD", "demo-admin-password"),
            ] {
                jail.set_env(var, value);
                assert!(Settings::load(None).is_ok(), "{var}");
            }
            Ok(())
        });
    }

    #[test]
    fn rejects_unknown_keys_in_a_section() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("lifecycle.toml", "[worker]\nconcurency = 4\n")?;
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("concurency"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn telemetry_and_reconcile_are_read_like_every_section() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "lifecycle.toml",
                "[telemetry]\notlp_endpoint = \"http://collector:4318\"\n[reconcile]\ninterval = \"6h\"\nallowlist = [\"svc@x\"]\n",
            )?;
            let s = Settings::load(None).unwrap();
            assert_eq!(s.telemetry.otlp_endpoint.as_deref(), Some("http://collector:4318"));
            assert_eq!(s.reconcile.interval, Duration::from_secs(6 * 3600));
            assert_eq!(s.reconcile.allowlist, vec!["svc@x".to_string()]);
            jail.create_file("lifecycle.toml", "[telemetry]\notlp_endpiont = \"http://collector:4318\"\n")?;
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("otlp_endpiont"), "{err}");
            Ok(())
        });
    }
}
