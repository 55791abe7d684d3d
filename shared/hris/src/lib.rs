//! HR systems as event sources (issue 27).
//!
//! An HR system does not post lifecycle's JSON: it sends its own webhook, signed
//! its own way, usually with ids only. Each source is one module here, readable
//! top to bottom: how its delivery is signed ([`Source::verify`], over the raw
//! bytes, before anything is parsed), what its body says ([`Source::parse`]),
//! and how its API is read for the details ([`Source::fetch`]). What is common
//! — which record becomes a joiner, mover or leaver, and which apps the
//! birthright rules give — is in [`mapping`], not repeated per source.
//!
//! The receiver (the producer's `/v1/hr/<source>` routes) stores a verified
//! delivery in the same transaction as its 2xx; the processing that fetches
//! and maps it runs afterwards (`lifecycle_ops::hris`), so a slow HRIS API or
//! a 429 never costs the source's delivery deadline (Personio: 3 s).

use chrono::{DateTime, NaiveDate, Utc};
use std::time::Duration;

pub mod bamboohr;
pub mod hibob;
pub mod mapping;
pub mod personio;

/// The HR systems lifecycle receives from: the path segment of
/// `/v1/hr/<source>`, the `[hris.<source>]` table, `events.source` as
/// `hris:<source>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Bamboohr,
    Hibob,
    Personio,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [SourceKind::Bamboohr, SourceKind::Hibob, SourceKind::Personio];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Bamboohr => "bamboohr",
            SourceKind::Hibob => "hibob",
            SourceKind::Personio => "personio",
        }
    }
}

impl SourceKind {
    /// Its `[hris.<source>]` table as the settings reference shows it
    /// (docs/operators/settings.md): its module's configuration type.
    pub fn settings_schema(self) -> serde_json::Value {
        use lifecycle_config::reference::schema_of;
        match self {
            SourceKind::Bamboohr => schema_of::<bamboohr::Config>(),
            SourceKind::Hibob => schema_of::<hibob::Tables>(),
            SourceKind::Personio => schema_of::<personio::PersonioTable>(),
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown HR source {s:?} (known: bamboohr, hibob, personio)"))
    }
}

/// What a verified signature tells: which configured tenant's secret signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The tenant's name in config (`[[hris.<source>.tenants]] name`).
    pub tenant: String,
}

/// Why a delivery's signature is refused: the receiver answers 401 for each
/// and counts it by `reason()`. Never carries the secret or the expected MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is not a well-formed signature or timestamp")]
    Malformed(&'static str),
    #[error("the signature does not match the body with any configured secret")]
    Mismatch,
    #[error("the signed timestamp is {age_secs} s from now, past the {window_secs} s window")]
    Stale { age_secs: i64, window_secs: i64 },
}

impl SignatureError {
    /// The metric label (`lifecycle_hris_signature_failures_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) => "missing",
            SignatureError::Malformed(_) => "malformed",
            SignatureError::Mismatch => "mismatch",
            SignatureError::Stale { .. } => "stale",
        }
    }
}

/// A verified body that is not a delivery this source sends: 400 (the source
/// stops retrying on 4xx where it does) and kept nowhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// What a delivery says, before the HRIS API is asked for the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The source's tenant id as the payload names it (BambooHR's and HiBob's
    /// `companyId`, Personio's company): must be the verifying tenant's.
    pub company_id: String,
    /// What makes a retry of this delivery the same delivery (the source's
    /// event id where it sends one, else its type, employee and timestamp):
    /// `hris_deliveries` is unique on (source, tenant, key).
    pub key: String,
    pub kind: DeliveryKind,
    /// The source's type string as sent (`employee.created`, ...), shown to operators.
    pub type_name: String,
    /// The employee the delivery is about (none for a ping).
    pub employee_id: Option<String>,
    /// When the source says the change happened (its timestamp / triggeredAt).
    pub occurred_at: Option<DateTime<Utc>>,
}

/// What a delivery's type means to lifecycle; the record fetched afterwards
/// decides the event (a `Changed` of a terminated person is a leaver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// Created / joined / employment started.
    Joined,
    /// Some field changed: the record says what.
    Changed,
    /// Left / terminated / inactivated / deleted.
    Left,
    /// A set-up check (HiBob's ping test): answered 2xx, nothing processed.
    Ping,
}

/// The employee as the HRIS API gives them, in lifecycle's words.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub employee_id: String,
    /// The work address; none: the delivery needs a person.
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub status: EmploymentStatus,
    /// The fields birthright rules read (`[[hris.rules]] when`).
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub location: Option<String>,
    /// The source's own status text ("Active", "Terminated", "onboarding", ...),
    /// matched by rules as `employment_status`.
    pub employment_status: Option<String>,
    pub hire_date: Option<NaiveDate>,
    pub termination_date: Option<NaiveDate>,
}

/// Whether the person works here, as the source's status says.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentStatus {
    Active,
    /// Hired, not started yet (Personio's onboarding): a joiner effective at the hire date.
    Pending,
    /// Left, terminated, inactive.
    Inactive,
    /// A status this source sends that lifecycle does not know: needs a person.
    #[default]
    Unknown,
}

/// Why the details could not be read: the delivery is kept and retried
/// (`Throttled`, `Unavailable`) or shown to an operator (`NotFound`, `Refused`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the HRIS API is rate limiting (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("the HRIS API is unavailable: {0}")]
    Unavailable(String),
    #[error("the HRIS API knows no employee {0}")]
    NotFound(String),
    #[error("the HRIS API refused the read: {0}")]
    Refused(String),
}

impl FetchError {
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Throttled { .. } | FetchError::Unavailable(_))
    }
}

/// One HR system. Built from its `[hris.<source>]` table (its tenants:
/// company id, webhook secret, API address and credentials, rate budget).
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    fn kind(&self) -> SourceKind;

    /// Checks the delivery's signature over the raw `body` with each
    /// configured tenant's secret (constant-time), before anything is parsed.
    fn verify(&self, headers: &http::HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Verified, SignatureError>;

    /// Reads a verified body. The caller checks `company_id` against the
    /// verifying tenant's.
    fn parse(&self, body: &[u8]) -> Result<Delivery, ParseError>;

    /// The tenant's company id as the payload names it.
    fn company_id(&self, tenant: &str) -> Option<&str>;

    /// Reads the employee's details from the HRIS API, through the tenant's
    /// own rate budget.
    async fn fetch(&self, tenant: &str, employee_id: &str) -> Result<Record, FetchError>;
}

/// Every configured HR source, by kind: what the receivers verify with and
/// the processing reads through. Built once at start-up from the
/// `[hris.<source>]` tables, each by its own module (which refuses what it
/// cannot use, so a bad table stops start-up with the field named).
#[derive(Clone, Default)]
pub struct Sources(std::collections::BTreeMap<SourceKind, std::sync::Arc<dyn Source>>);

impl Sources {
    pub fn from_settings(
        settings: &lifecycle_config::HrisSettings,
        http_timeout: Duration,
    ) -> Result<Sources, lifecycle_config::ConfigError> {
        let mut sources = Sources::default();
        for (name, table) in &settings.sources {
            let kind: SourceKind = name.parse().map_err(lifecycle_config::ConfigError::Rule)?;
            let source: std::sync::Arc<dyn Source> = match kind {
                SourceKind::Bamboohr => std::sync::Arc::new(bamboohr::source(table, http_timeout)?),
                SourceKind::Hibob => std::sync::Arc::new(hibob::source(table, http_timeout)?),
                SourceKind::Personio => std::sync::Arc::new(personio::source(table, http_timeout)?),
            };
            sources.insert(source);
        }
        Ok(sources)
    }

    /// Adds (or replaces) the source of its kind.
    pub fn insert(&mut self, source: std::sync::Arc<dyn Source>) {
        self.0.insert(source.kind(), source);
    }

    pub fn get(&self, kind: SourceKind) -> Option<&std::sync::Arc<dyn Source>> {
        self.0.get(&kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = SourceKind> + '_ {
        self.0.keys().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl DeliveryKind {
    /// As `hris_deliveries.kind` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Joined => "joined",
            DeliveryKind::Changed => "changed",
            DeliveryKind::Left => "left",
            DeliveryKind::Ping => "ping",
        }
    }
}

impl std::str::FromStr for DeliveryKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [DeliveryKind::Joined, DeliveryKind::Changed, DeliveryKind::Left, DeliveryKind::Ping]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown delivery kind {s:?}"))
    }
}
