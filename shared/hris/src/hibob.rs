//! HiBob ("Bob") as an event source: its v2 webhooks and its People API.
//!
//! Every fact below is HiBob's own, with its page in `docs/hr/hibob.md`:
//! - a delivery is `POST`ed JSON, the v2 envelope `{companyId, type, triggeredBy,
//!   triggeredAt, version: "v2", data}`; `data` holds ids only (`employeeId`), so
//!   the details are read from the API afterwards;
//! - it is signed: header `Bob-Signature` = base64 of HMAC-SHA512 over the raw
//!   body with the webhook's secret. No timestamp is signed, so there is no
//!   replay window to check: a replay is the same delivery, and the envelope's
//!   identity (type, employee, `triggeredAt`, data) is its dedupe key;
//! - lifecycle events (`employee.joined`, `employee.left`, `employee.inactivated`,
//!   `employee.activated`) fire at midnight of the day the lifecycle entry becomes
//!   effective; `employee.created/updated/deleted` when the record changes;
//! - a new webhook is checked with a "ping test" POST (`Ping test`, or
//!   `{"text":"Ping test"}` when that failed) that must get a 2xx;
//! - the API (`https://api.hibob.com/v1`) is read with a service user's id and
//!   token as HTTP Basic credentials: `POST /people/{id}` with the fields wanted
//!   in the body (a read, but POST because the body selects fields); 429 when a
//!   rate limit is exceeded.
//!
//! Config (`[hris.hibob]`):
//! ```toml
//! [[hris.hibob.tenants]]
//! name = "acme"
//! company_id = "637323"                  # the envelope's companyId
//! webhook_secret = { file = "/run/secrets/hibob-webhook" }
//! api_url = "https://api.hibob.com/v1"   # the default; the sandbox is https://api.sandbox.hibob.com/v1
//! service_user_id = "SERVICE-USER-ID"
//! service_user_token = { file = "/run/secrets/hibob-token" }
//! rate_limit = { per_minute = 50 }       # the default (HiBob's documented search limit)
//! ```

use std::num::NonZeroU32;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use lifecycle_config::{ConfigError, Secret};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use url::Url;

use crate::{
    Delivery, DeliveryKind, EmploymentStatus, FetchError, ParseError, Record, SignatureError, Source, SourceKind,
    Verified,
};

/// The header HiBob signs each delivery in (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "Bob-Signature";
/// HiBob's production API; the sandbox is `https://api.sandbox.hibob.com/v1`.
pub const DEFAULT_API_URL: &str = "https://api.hibob.com/v1";
/// The read budget when the tenant names none: HiBob documents 50 requests a
/// minute for `people/search` and publishes no number for the read by id, so
/// the one documented number is the safe default.
pub const DEFAULT_PER_MINUTE: u32 = 50;
/// The fields read for a person (HiBob's field ids, from its fields metadata).
pub const FIELDS: [&str; 11] = [
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "work.department",
    "work.title",
    "work.site",
    "work.startDate",
    "internal.status",
    "internal.lifecycleStatus",
    "internal.terminationDate",
];
/// The two bodies of HiBob's ping test: a plain string first, then JSON.
pub const PING_BODIES: [&str; 2] = ["Ping test", r#"{"text":"Ping test"}"#];

/// The length of an HMAC-SHA512.
const MAC_LEN: usize = 64;
/// Longest envelope string kept in a delivery key (ids are ~20 digits).
const MAX_ID_LEN: usize = 128;

type HmacSha512 = Hmac<Sha512>;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// `[hris.hibob]`: HiBob's webhooks (`POST /v1/hr/hibob`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tables {
    /// One per Bob company (`[[hris.hibob.tenants]]`).
    pub tenants: Vec<TenantTable>,
}

/// One `[[hris.hibob.tenants]]`: one Bob company.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantTable {
    /// The tenant key, shown in logs and the console.
    pub name: String,
    /// The envelope's `companyId` (a number there; a string or a number here).
    pub company_id: CompanyId,
    /// The webhook's signing secret (Bob signs each body with HMAC-SHA512).
    pub webhook_secret: Secret,
    /// The API's root (the sandbox is `https://api.sandbox.hibob.com/v1`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The service user's id: the API's Basic user.
    pub service_user_id: Secret,
    /// The service user's token: the API's Basic password.
    pub service_user_token: Secret,
    /// This tenant's API reads (the default is HiBob's documented search limit).
    #[serde(default)]
    #[schemars(extend("default" = { "per_minute": DEFAULT_PER_MINUTE }))]
    pub rate_limit: Option<RateLimit>,
}

/// A company id as written in config: `company_id = 637323` or `"637323"`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[schemars(extend("x-type" = "string or integer"))]
pub enum CompanyId {
    Number(u64),
    Text(String),
}

impl CompanyId {
    fn into_string(self) -> String {
        match self {
            CompanyId::Number(n) => n.to_string(),
            CompanyId::Text(s) => s.trim().to_owned(),
        }
    }
}

/// The tenant's own read budget: `{ per_second = N }` or `{ per_minute = N }`.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-type" = "`{ per_second = N }` or `{ per_minute = N }`"))]
pub struct RateLimit {
    pub per_second: Option<NonZeroU32>,
    pub per_minute: Option<NonZeroU32>,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

/// Builds the HiBob source from its `[hris.hibob]` table, refusing at start-up
/// what would fail later: no tenant, a duplicated name or company, an empty
/// secret or credential, an API URL that is not http(s).
pub fn source(table: &Value, http_timeout: Duration) -> Result<HiBob, ConfigError> {
    let rule = |msg: String| ConfigError::Rule(format!("hris.hibob: {msg}"));
    let tables: Tables = serde_json::from_value(table.clone()).map_err(|e| rule(e.to_string()))?;
    if tables.tenants.is_empty() {
        return Err(rule("at least one [[hris.hibob.tenants]] is needed".into()));
    }
    let mut tenants: Vec<Tenant> = Vec::with_capacity(tables.tenants.len());
    for t in tables.tenants {
        let name = t.name.trim().to_owned();
        if name.is_empty() {
            return Err(rule("a tenant's name is empty".into()));
        }
        let company_id = t.company_id.into_string();
        if company_id.is_empty() {
            return Err(rule(format!("tenant {name:?}: company_id is empty")));
        }
        if tenants.iter().any(|o| o.name == name) {
            return Err(rule(format!("two tenants are named {name:?}")));
        }
        if let Some(other) = tenants.iter().find(|o| o.company_id == company_id) {
            return Err(rule(format!("tenants {:?} and {name:?} have the same company_id", other.name)));
        }
        for (field, secret) in [
            ("webhook_secret", &t.webhook_secret),
            ("service_user_id", &t.service_user_id),
            ("service_user_token", &t.service_user_token),
        ] {
            if secret.expose().is_empty() {
                return Err(rule(format!("tenant {name:?}: {field} is empty")));
            }
        }
        let api_url = parse_api_url(&t.api_url).map_err(|e| rule(format!("tenant {name:?}: api_url {e}")))?;
        let quota = match t.rate_limit {
            None => Quota::per_minute(NonZeroU32::new(DEFAULT_PER_MINUTE).expect("non-zero")),
            Some(RateLimit { per_second: Some(n), per_minute: None }) => Quota::per_second(n),
            Some(RateLimit { per_second: None, per_minute: Some(n) }) => Quota::per_minute(n),
            Some(_) => return Err(rule(format!("tenant {name:?}: rate_limit takes one of per_second, per_minute"))),
        };
        tenants.push(Tenant {
            name,
            company_id,
            webhook_secret: t.webhook_secret,
            api_url,
            service_user_id: t.service_user_id,
            service_user_token: t.service_user_token,
            limiter: RateLimiter::direct(quota),
        });
    }
    let http = reqwest::Client::builder()
        .timeout(http_timeout)
        // A redirect would carry the Basic credentials to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| rule(format!("cannot build the HTTP client: {e}")))?;
    Ok(HiBob { tenants, http })
}

/// The base URL with a trailing slash, so `join("people/1")` keeps its path.
fn parse_api_url(raw: &str) -> Result<Url, String> {
    let mut url = Url::parse(raw.trim()).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err("must be an http(s) URL".into());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

// ---------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------

/// HiBob, with its configured tenants.
pub struct HiBob {
    tenants: Vec<Tenant>,
    http: reqwest::Client,
}

struct Tenant {
    name: String,
    company_id: String,
    webhook_secret: Secret,
    api_url: Url,
    service_user_id: Secret,
    service_user_token: Secret,
    limiter: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for HiBob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("HiBob").field("tenants", &names).finish()
    }
}

/// The base64 HMAC-SHA512 of `body` with `secret`: what HiBob sends as
/// `Bob-Signature` (and what the simulator's sender signs with).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, body))
}

fn mac(secret: &[u8], body: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = HmacSha512::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// `Bob-Signature`'s value as bytes: standard base64 of 64 bytes.
fn presented_mac(headers: &http::HeaderMap) -> Result<[u8; MAC_LEN], SignatureError> {
    let value = headers.get(SIGNATURE_HEADER).ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let text = value.to_str().map_err(|_| SignatureError::Malformed(SIGNATURE_HEADER))?.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| SignatureError::Malformed(SIGNATURE_HEADER))?;
    bytes.try_into().map_err(|_| SignatureError::Malformed(SIGNATURE_HEADER))
}

impl HiBob {
    fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The tenants' names, in config order.
    pub fn tenant_names(&self) -> impl Iterator<Item = &str> {
        self.tenants.iter().map(|t| t.name.as_str())
    }
}

#[async_trait::async_trait]
impl Source for HiBob {
    fn kind(&self) -> SourceKind {
        SourceKind::Hibob
    }

    fn verify(&self, headers: &http::HeaderMap, body: &[u8], _now: DateTime<Utc>) -> Result<Verified, SignatureError> {
        let presented = presented_mac(headers)?;
        // Every tenant's MAC is computed and compared, so the time taken does
        // not tell which tenant (or how much of a guess) matched.
        let mut matched: Option<&Tenant> = None;
        for tenant in &self.tenants {
            let expected = mac(tenant.webhook_secret.expose().as_bytes(), body);
            if bool::from(expected.ct_eq(&presented)) && matched.is_none() {
                matched = Some(tenant);
            }
        }
        matched.map(|t| Verified { tenant: t.name.clone() }).ok_or(SignatureError::Mismatch)
    }

    fn parse(&self, body: &[u8]) -> Result<Delivery, ParseError> {
        parse(body)
    }

    fn company_id(&self, tenant: &str) -> Option<&str> {
        self.tenant(tenant).map(|t| t.company_id.as_str())
    }

    async fn fetch(&self, tenant: &str, employee_id: &str) -> Result<Record, FetchError> {
        let tenant = self.tenant(tenant).ok_or_else(|| FetchError::Refused(format!("no HiBob tenant {tenant:?}")))?;
        let url = person_url(&tenant.api_url, employee_id)?;
        tenant.limiter.until_ready().await;
        let response = self
            .http
            .post(url)
            .basic_auth(tenant.service_user_id.expose(), Some(tenant.service_user_token.expose()))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&json!({ "fields": FIELDS, "humanReadable": "APPEND" }))
            .send()
            .await
            // reqwest's error names the URL (no credential is in it) and the cause.
            .map_err(|e| FetchError::Unavailable(format!("POST people/{{id}}: {}", e.without_url())))?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(FetchError::Throttled { retry_after: retry_after(response.headers(), Utc::now()) });
        }
        if status.is_server_error() {
            return Err(FetchError::Unavailable(format!("HiBob answered {status}")));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(FetchError::NotFound(employee_id.to_owned()));
        }
        if !status.is_success() {
            // 401/403: the service user's credentials or permissions; a person must fix them.
            let hint = match status.as_u16() {
                401 => " (check service_user_id and service_user_token)",
                403 => " (the service user's permission group lacks a field's category)",
                _ => "",
            };
            return Err(FetchError::Refused(format!("HiBob answered {status}{hint}")));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| FetchError::Unavailable(format!("HiBob's answer is not JSON: {}", e.without_url())))?;
        record(employee_id, &body)
    }
}

/// `{api_url}people/{id}`, the id as one percent-encoded path segment (ids are
/// digits, but the API also takes an e-mail, and nothing may leave the segment).
fn person_url(base: &Url, employee_id: &str) -> Result<Url, FetchError> {
    if employee_id.is_empty() || employee_id.len() > MAX_ID_LEN {
        return Err(FetchError::NotFound(employee_id.to_owned()));
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| FetchError::Refused("the API URL cannot take a path".into()))?
        .pop_if_empty()
        .push("people")
        .push(employee_id);
    Ok(url)
}

/// How long a 429 asks to wait: `Retry-After` (seconds) where sent, else
/// `X-RateLimit-Reset` (an epoch second, or a number of seconds when small).
fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    if let Some(secs) = number("retry-after") {
        return Some(Duration::from_secs(secs.max(0) as u64));
    }
    let reset = number("x-ratelimit-reset")?;
    // Epoch seconds are ~1.7e9; a window is never that long.
    let secs = if reset > 1_000_000_000 { reset - now.timestamp() } else { reset };
    Some(Duration::from_secs(secs.max(0) as u64))
}

// ---------------------------------------------------------------------------
// The delivery
// ---------------------------------------------------------------------------

/// The v2 envelope. `companyId` is a number in HiBob's examples; a string is
/// taken too. Unknown fields are allowed: HiBob adds to its payloads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    company_id: Value,
    #[serde(rename = "type")]
    kind: String,
    triggered_at: String,
    version: Option<String>,
    #[serde(default)]
    data: Value,
}

/// Reads a verified body: a ping test, or a v2 employee event.
pub fn parse(body: &[u8]) -> Result<Delivery, ParseError> {
    if is_ping(body) {
        return Ok(Delivery {
            // A ping names no company: the receiver answers it before comparing.
            company_id: String::new(),
            key: "ping".into(),
            kind: DeliveryKind::Ping,
            type_name: "ping".into(),
            employee_id: None,
            occurred_at: None,
        });
    }
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("not a HiBob webhook v2 envelope: {e}")))?;
    match envelope.version.as_deref() {
        Some("v2") => {}
        Some(other) => return Err(ParseError(format!("webhook version {:?}: only v2 is read", clip(other)))),
        None => return Err(ParseError("no version: a v1 webhook (create a v2 webhook in Bob instead)".into())),
    }
    let company_id =
        id_text(&envelope.company_id).ok_or_else(|| ParseError("companyId is not a number or an id".into()))?;
    let type_name = envelope.kind.trim().to_owned();
    if type_name.is_empty() || type_name.len() > 64 || !type_name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError(format!("type {:?} is not an event type", clip(&type_name))));
    }
    let kind = delivery_kind(&type_name)?;
    let employee_id = envelope
        .data
        .get("employeeId")
        .and_then(id_text)
        .ok_or_else(|| ParseError(format!("{} without data.employeeId", clip(&type_name))))?;
    let occurred_at = triggered_at(&envelope.triggered_at)
        .ok_or_else(|| ParseError(format!("triggeredAt {:?} is not a time", clip(&envelope.triggered_at))))?;
    // No event id and no signed timestamp: a retry is recognised by what the
    // envelope says. `data` is hashed as serde_json writes it (keys sorted), so
    // a retry that reorders keys is still the same delivery.
    let data_digest = hex::encode(&Sha256::digest(envelope.data.to_string().as_bytes())[..8]);
    let at = occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let key = format!("{type_name}:{employee_id}:{at}:{data_digest}");
    Ok(Delivery { company_id, key, kind, type_name, employee_id: Some(employee_id), occurred_at: Some(occurred_at) })
}

fn is_ping(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    if PING_BODIES[0].as_bytes() == trimmed || br#""Ping test""# == trimmed {
        return true;
    }
    // The JSON form, however it is spaced.
    matches!(
        serde_json::from_slice::<Value>(trimmed),
        Ok(Value::Object(map)) if map.len() == 1 && map.get("text").and_then(Value::as_str) == Some("Ping test")
    )
}

/// What a type means to lifecycle. The record fetched afterwards decides the
/// event, so a type lifecycle cannot place exactly (a table entry, a leave)
/// is a `Changed`: a change that alters nothing makes no event.
fn delivery_kind(type_name: &str) -> Result<DeliveryKind, ParseError> {
    Ok(match type_name {
        "employee.created" | "employee.joined" | "employee.activated" => DeliveryKind::Joined,
        "employee.left" | "employee.inactivated" | "employee.deleted" => DeliveryKind::Left,
        "employee.updated" => DeliveryKind::Changed,
        t if t.starts_with("employee.") || t.starts_with("table.entry.") => DeliveryKind::Changed,
        other => {
            return Err(ParseError(format!(
                "event type {:?} is not about an employee's record (subscribe the webhook to employee events only)",
                clip(other)
            )))
        }
    })
}

/// An id as HiBob sends it (a number or a string), kept when it is short and printable.
fn id_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    let printable = text.chars().all(|c| c.is_ascii_graphic() || c == '@');
    (!text.is_empty() && text.len() <= MAX_ID_LEN && printable).then_some(text)
}

/// `triggeredAt`: "ISO 8601-style", and HiBob's own example has no offset
/// (`2024-12-26T11:29:14.399997`): read as UTC then. An offset is honoured.
fn triggered_at(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if raw.len() > 64 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc())
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

// ---------------------------------------------------------------------------
// The record
// ---------------------------------------------------------------------------

/// The person from `POST /people/{id}` with `humanReadable: "APPEND"`: machine
/// values at their paths (ISO dates, list item ids) and their display form
/// under `humanReadable` (department, title and site names, as people write
/// rules).
pub fn record(requested_id: &str, body: &Value) -> Result<Record, FetchError> {
    if !body.is_object() {
        return Err(FetchError::Unavailable("HiBob's answer is not an employee object".into()));
    }
    let machine = |path: &str| text_at(body, path);
    let display = |path: &str| text_at(body, &format!("humanReadable.{path}")).or_else(|| machine(path));
    let status_text = machine("internal.status");
    let lifecycle = machine("internal.lifecycleStatus");
    Ok(Record {
        employee_id: machine("id").unwrap_or_else(|| requested_id.to_owned()),
        email: machine("email"),
        given_name: machine("firstName"),
        family_name: machine("surname"),
        status: status(status_text.as_deref(), lifecycle.as_deref()),
        department: display("work.department"),
        job_title: display("work.title"),
        location: display("work.site"),
        employment_status: display("internal.lifecycleStatus").or_else(|| display("internal.status")),
        hire_date: machine("work.startDate").as_deref().and_then(date),
        termination_date: machine("internal.terminationDate").as_deref().and_then(date),
    })
}

/// `internal.status` says whether the person can work (`Active`/`Inactive`);
/// `internal.lifecycleStatus` refines it: `hired` is someone who has not
/// started yet. Anything else is Unknown: a person looks at it.
fn status(status: Option<&str>, lifecycle: Option<&str>) -> EmploymentStatus {
    let lifecycle = lifecycle.map(str::to_ascii_lowercase);
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("inactive") => EmploymentStatus::Inactive,
        Some("active") if lifecycle.as_deref() == Some("hired") => EmploymentStatus::Pending,
        Some("active") => EmploymentStatus::Active,
        _ => match lifecycle.as_deref() {
            Some("terminated") => EmploymentStatus::Inactive,
            Some("hired") => EmploymentStatus::Pending,
            Some("employed") => EmploymentStatus::Active,
            _ => EmploymentStatus::Unknown,
        },
    }
}

/// A non-empty string (or number) at a dotted path of the answer.
fn text_at(body: &Value, path: &str) -> Option<String> {
    let value = path.split('.').try_fold(body, |v, key| v.get(key))?;
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// A machine date: `YYYY-MM-DD` (a date-time's date part is taken too).
fn date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw.get(..10)?, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests;
