//! BambooHR (event-based webhooks), read top to bottom: how a delivery is
//! signed, what its body says, how the API is read for the details. Every
//! fact, with the BambooHR page it comes from: `docs/hr/bamboohr.md`.
//!
//! - A webhook POSTs `{"type", "timestamp", "data": {"companyId", "employeeId",
//!   "changedFields"}}` (JSON, or the same fields form-encoded) for
//!   `employee.created`, `employee.updated` and `employee.deleted`: ids only.
//!   A create fires `employee.created` then `employee.updated`; both are kept
//!   as deliveries and the mapping gives them one joiner.
//! - `X-BambooHR-Signature` is the lowercase hex HMAC-SHA256, keyed with the
//!   webhook's private key, of the raw body followed directly by the
//!   `X-BambooHR-Timestamp` header's value. BambooHR names no tolerance for the
//!   timestamp; we refuse one more than `timestamp_tolerance_secs` (5 min by
//!   default) away from our clock, so a captured delivery cannot be replayed
//!   later.
//! - Each webhook has its own private key and the payload's `companyId` tells
//!   companies apart: one `[[hris.bamboohr.tenants]]` per company, and the
//!   signature picks the tenant before anything is parsed.
//! - The details come from `GET {api_url}/v1/employees/{id}/?fields=...`
//!   (`api_url` = `https://api.bamboohr.com/api/gateway.php/{companyDomain}`),
//!   HTTP Basic with the API key as the user and `x` as the password,
//!   `Accept: application/json` (BambooHR answers XML otherwise). A rate-limited
//!   read is a 429 with `Retry-After` (a 503 before 2026-09-16, still honoured
//!   when it carries `Retry-After`); each tenant has its own read budget.

mod client;
mod payload;
mod signature;

use std::collections::HashSet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifecycle_config::{ConfigError, Secret};
use serde::{Deserialize, Deserializer};

use crate::{Delivery, FetchError, ParseError, Record, SignatureError, Source, SourceKind, Verified};

pub use client::FIELDS;
pub use payload::{EMPLOYEE_CREATED, EMPLOYEE_DELETED, EMPLOYEE_UPDATED};
pub use signature::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// How far the signed timestamp may be from our clock (either way) by default.
pub const DEFAULT_TIMESTAMP_TOLERANCE_SECS: u64 = 300;
/// A tenant's API reads per second when `rate_limit` is not set. BambooHR
/// publishes no number; this stays well below what it has been seen to allow.
pub const DEFAULT_READS_PER_SECOND: u32 = 5;

/// `[hris.bamboohr]`: BambooHR's webhooks (`POST /v1/hr/bamboohr`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// One per BambooHR company (`[[hris.bamboohr.tenants]]`).
    pub tenants: Vec<TenantConfig>,
    /// A delivery whose `X-BambooHR-Timestamp` is further than this from now
    /// (either way) is refused as stale.
    #[serde(default = "default_tolerance")]
    pub timestamp_tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    DEFAULT_TIMESTAMP_TOLERANCE_SECS
}

/// `[[hris.bamboohr.tenants]]`: one BambooHR company.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Shown in logs and the console; the tenant's key in `hris_deliveries`.
    pub name: String,
    /// The company's id as the payload's `data.companyId` names it.
    #[serde(deserialize_with = "string_or_number")]
    #[schemars(extend("x-type" = "string or integer"))]
    pub company_id: String,
    /// The webhook's private key (Settings > Webhooks > the webhook > Private Key).
    pub webhook_secret: Secret,
    /// `https://api.bamboohr.com/api/gateway.php/{companyDomain}`; `http://`
    /// only for a loopback address (the simulator).
    pub api_url: String,
    /// An API key of a user who may read the employees' fields.
    pub api_key: Secret,
    /// This tenant's API reads per second (BambooHR publishes no number).
    #[serde(default)]
    #[schemars(extend("default" = { "per_second": DEFAULT_READS_PER_SECOND }))]
    pub rate_limit: Option<RateLimit>,
}

/// A tenant's read budget: `rate_limit = { per_second = 5 }`.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[schemars(extend("x-type" = "`{ per_second = N }`"))]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
}

/// Numbers are welcome where an id is meant (`company_id = 12345`).
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    Ok(match Raw::deserialize(deserializer)? {
        Raw::Text(s) => s,
        Raw::Number(n) => n.to_string(),
    })
}

/// BambooHR as a [`Source`]: its tenants, each with its webhook key and API client.
pub struct Bamboohr {
    tenants: Vec<Tenant>,
    tolerance_secs: i64,
}

struct Tenant {
    name: String,
    company_id: String,
    webhook_secret: Secret,
    client: client::Client,
}

impl std::fmt::Debug for Bamboohr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Bamboohr")
            .field("tenants", &names)
            .field("timestamp_tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

/// Builds BambooHR from its `[hris.bamboohr]` table, refusing at start-up
/// what would only fail on the first delivery.
pub fn source(table: &serde_json::Value, http_timeout: Duration) -> Result<Bamboohr, ConfigError> {
    let config: Config =
        serde_json::from_value(table.clone()).map_err(|e| ConfigError::Rule(format!("hris.bamboohr: {e}")))?;
    Bamboohr::new(config, http_timeout)
}

impl Bamboohr {
    pub fn new(config: Config, http_timeout: Duration) -> Result<Self, ConfigError> {
        let invalid = |what: String| ConfigError::Rule(format!("hris.bamboohr: {what}"));
        if config.tenants.is_empty() {
            return Err(invalid("at least one [[hris.bamboohr.tenants]] is needed".into()));
        }
        if !(1..=3600).contains(&config.timestamp_tolerance_secs) {
            return Err(invalid("timestamp_tolerance_secs must be between 1 and 3600".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(http_timeout)
            // A redirect would carry the API key elsewhere; BambooHR's reads do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        let (mut names, mut companies) = (HashSet::new(), HashSet::new());
        let mut tenants = Vec::with_capacity(config.tenants.len());
        for (i, t) in config.tenants.into_iter().enumerate() {
            let at = |what: &str| invalid(format!("tenants[{i}] ({}): {what}", t.name));
            let name = t.name.trim().to_owned();
            if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic()) {
                return Err(at("name must be 1 to 64 visible ASCII characters"));
            }
            if !names.insert(name.clone()) {
                return Err(at("another tenant has this name"));
            }
            let company_id = t.company_id.trim().to_owned();
            if company_id.is_empty() || company_id.len() > 64 {
                return Err(at("company_id must be 1 to 64 characters"));
            }
            // The signature finds the tenant, then the payload's company must be
            // that tenant's: two tenants for one company would be ambiguous.
            if !companies.insert(company_id.clone()) {
                return Err(at("another tenant has this company_id"));
            }
            if t.webhook_secret.expose().is_empty() {
                return Err(at("webhook_secret is empty"));
            }
            let key = t.api_key.expose();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(at("api_key must be non-empty visible ASCII"));
            }
            let base = api_url(&t.api_url).map_err(|e| at(&format!("api_url: {e}")))?;
            let per_second = t.rate_limit.map_or(DEFAULT_READS_PER_SECOND, |r| r.per_second);
            let per_second = NonZeroU32::new(per_second)
                .filter(|n| n.get() <= 1000)
                .ok_or_else(|| at("rate_limit.per_second must be between 1 and 1000"))?;
            let client = client::Client::new(http.clone(), base, t.api_key, per_second);
            tenants.push(Tenant { name, company_id, webhook_secret: t.webhook_secret, client });
        }
        Ok(Bamboohr { tenants, tolerance_secs: config.timestamp_tolerance_secs as i64 })
    }

    fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// The API's base: `https://`, or `http://` to a loopback address, with no
/// query or fragment (the employee path is appended to it).
fn api_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("{e}"))?;
    if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
        return Err("must be a base URL without a query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (api_key is sent as HTTP Basic)".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err("must be https:// (http:// only to a loopback address, for the simulator)".into()),
        other => Err(format!("unsupported scheme {other:?}")),
    }
}

#[async_trait::async_trait]
impl Source for Bamboohr {
    fn kind(&self) -> SourceKind {
        SourceKind::Bamboohr
    }

    fn verify(&self, headers: &http::HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Verified, SignatureError> {
        let keys = self.tenants.iter().map(|t| (t.name.as_str(), t.webhook_secret.expose().as_bytes()));
        signature::verify(headers, body, now, self.tolerance_secs, keys)
            .map(|tenant| Verified { tenant: tenant.to_owned() })
    }

    fn parse(&self, body: &[u8]) -> Result<Delivery, ParseError> {
        payload::parse(body)
    }

    fn company_id(&self, tenant: &str) -> Option<&str> {
        self.tenant(tenant).map(|t| t.company_id.as_str())
    }

    async fn fetch(&self, tenant: &str, employee_id: &str) -> Result<Record, FetchError> {
        let tenant = self
            .tenant(tenant)
            .ok_or_else(|| FetchError::Refused(format!("no BambooHR tenant {tenant:?} is configured")))?;
        tenant.client.employee(employee_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(api_url: &str) -> serde_json::Value {
        json!({"tenants": [{
            "name": "acme", "company_id": 12345, "webhook_secret": "s3cret",
            "api_url": api_url, "api_key": "key", "rate_limit": {"per_second": 2}
        }]})
    }

    #[test]
    fn a_tenant_needs_https_or_a_loopback_address() {
        let timeout = Duration::from_secs(5);
        assert!(source(&table("https://api.bamboohr.com/api/gateway.php/acme"), timeout).is_ok());
        assert!(source(&table("http://127.0.0.1:9900/bamboohr/api/gateway.php/acme"), timeout).is_ok());
        let plain = source(&table("http://api.bamboohr.com/api/gateway.php/acme"), timeout).unwrap_err();
        assert!(plain.to_string().contains("https"), "{plain}");
        assert!(source(&table("https://api.bamboohr.com/x?key=1"), timeout).is_err());
        assert!(source(&table("https://u:p@api.bamboohr.com/x"), timeout).is_err());
    }

    #[test]
    fn the_config_refuses_unknown_keys_duplicates_and_empty_secrets() {
        let timeout = Duration::from_secs(5);
        let mut unknown = table("https://api.bamboohr.com/api/gateway.php/acme");
        unknown["tenants"][0]["secret"] = json!("x");
        assert!(source(&unknown, timeout).unwrap_err().to_string().contains("unknown field"));

        let one = table("https://api.bamboohr.com/api/gateway.php/acme")["tenants"][0].clone();
        let mut other = one.clone();
        other["name"] = json!("beta");
        let twice = json!({"tenants": [one.clone(), other]});
        assert!(source(&twice, timeout).unwrap_err().to_string().contains("company_id"));

        let mut empty = one.clone();
        empty["webhook_secret"] = json!("");
        assert!(source(&json!({"tenants": [empty]}), timeout).is_err());
        assert!(source(&json!({"tenants": []}), timeout).is_err());
        let mut zero = one;
        zero["rate_limit"] = json!({"per_second": 0});
        assert!(source(&json!({"tenants": [zero]}), timeout).is_err());
    }

    #[test]
    fn debug_names_tenants_and_shows_no_secret() {
        let b = source(&table("https://api.bamboohr.com/api/gateway.php/acme"), Duration::from_secs(5)).unwrap();
        let shown = format!("{b:?}");
        assert!(shown.contains("acme") && !shown.contains("s3cret") && !shown.contains("key\""), "{shown}");
        assert_eq!(b.company_id("acme"), Some("12345"));
        assert_eq!(b.company_id("nobody"), None);
    }
}
