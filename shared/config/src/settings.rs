//! The settings tree. Every field has a default that works on a developer
//! machine (SQLite file, RabbitMQ on localhost), so `lifecycle-worker` with no
//! configuration at all starts.

use crate::Secret;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use lifecycle_domain::VendorKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::retry::*;
pub use crate::runtime::*;
pub use crate::schedule::*;

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
    /// Keyed by vendor: a misspelt one is refused at load, naming it.
    #[serde(default)]
    pub vendors: BTreeMap<VendorKind, serde_json::Value>,
}

/// Every section's own `Debug` redacts its secrets; the vendor tables are
/// free-form (each vendor module parses its own), so only their names show.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vendors: Vec<&str> = self.vendors.keys().map(|v| v.as_str()).collect();
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
        self.broker.check_addresses().map_err(ConfigError::Rule)?;
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
        // A request that waits longer for a connection than it may take ends
        // 408 instead of telling the caller to retry (503 and Retry-After).
        if let Some(wait) = self.database.acquire_timeout {
            if wait.is_zero() || wait >= self.producer.request_timeout {
                return Err(ConfigError::Rule(format!(
                    "database.acquire_timeout ({wait:?}) must be more than 0 and less than producer.request_timeout ({:?})",
                    self.producer.request_timeout
                )));
            }
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::Rule("retry.max_attempts must be at least 1".into()));
        }
        if self.producer.body_read_timeout.is_zero() {
            return Err(ConfigError::Rule("producer.body_read_timeout must be more than 0".into()));
        }
        if self.worker.lane_interval.is_zero() || self.worker.lane_lease < self.worker.lane_interval * 2 {
            return Err(ConfigError::Rule(format!(
                "worker.lane_lease ({:?}) must be at least twice worker.lane_interval ({:?}), which must be more than 0",
                self.worker.lane_lease, self.worker.lane_interval,
            )));
        }
        if self.worker.schedule_interval.is_zero() {
            return Err(ConfigError::Rule("worker.schedule_interval must be more than 0".into()));
        }
        self.schedule.check().map_err(ConfigError::Rule)?;
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
    pub fn vendor(&self, vendor: VendorKind) -> Option<&serde_json::Value> {
        self.vendors.get(&vendor)
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
            assert_eq!(s.retry.for_vendor(VendorKind::Pipedrive).max_attempts, 5);
            assert_eq!(s.retry.for_vendor(VendorKind::Jira).max_attempts, 3);
            assert_eq!(s.vendor(VendorKind::Pipedrive).unwrap()["api_token"], "env-token");
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
            assert!(printed.contains("[\"pipedrive\", \"jira\"] (tables not shown)"), "names, not values: {printed}");
            Ok(())
        });
    }

    #[test]
    fn a_database_wait_defaults_by_backend_and_must_end_before_the_request_does() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Settings::load(None).unwrap().database.acquire_wait(), Duration::from_secs(30), "SQLite");
            jail.set_env("LIFECYCLE_DATABASE__URL", "postgres://lifecycle@db/lifecycle");
            assert_eq!(Settings::load(None).unwrap().database.acquire_wait(), Duration::from_secs(5), "PostgreSQL");
            jail.set_env("LIFECYCLE_DATABASE__ACQUIRE_TIMEOUT", "10s");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(
                err.contains("database.acquire_timeout (10s)") && err.contains("producer.request_timeout"),
                "{err}"
            );
            jail.set_env("LIFECYCLE_DATABASE__ACQUIRE_TIMEOUT", "3s");
            assert_eq!(Settings::load(None).unwrap().database.acquire_wait(), Duration::from_secs(3));
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

    #[test]
    fn a_misspelt_vendor_table_is_refused_at_load_naming_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("lifecycle.toml", "[vendors.pipedrve]\napi_token = \"t\"\n")?;
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("pipedrve") && err.contains("pipedrive"), "names it and the known vendors: {err}");
            // The same from the environment.
            jail.create_file("lifecycle.toml", "")?;
            jail.set_env("LIFECYCLE_VENDORS__JIRRA__API_TOKEN", "t");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("jirra") && err.contains("jira"), "{err}");
            Ok(())
        });
    }
}
