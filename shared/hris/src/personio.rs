//! Personio: webhooks (v2, "dataless": ids only) and the v2 API for the details.
//!
//! What Personio sends and how it signs it is in `docs/hr/personio.md`, each fact with the page
//! it comes from. In short:
//! - a delivery is `{"company_id", "event_name", "occurred_at", "payload", "meta"}`; `payload`
//!   carries ids only (`person.*`: the person's `id`; `employment.*`: the employment's `id` and
//!   its person);
//! - it is signed with HMAC-SHA256 "over the request timestamp and body" with a secret shared
//!   with the receiver. Personio's page, as far as we could read it, does not name the headers;
//!   we read `X-Personio-Signature` (hex or base64, optionally `sha256=`/`v1=`-prefixed, or a
//!   `t=…,v1=…` pair) and `X-Personio-Timestamp` (Unix seconds or milliseconds, or RFC 3339),
//!   and accept the MAC over `timestamp "." body` or `timestamp body`. The MAC is checked
//!   before the timestamp's age, so `stale` is only ever counted for authentic replays;
//! - it must be answered 2xx within 3 s and is retried on timeouts and 5xx (not 501), never on
//!   4xx: a body we cannot use is a 400 and is not sent again.
//!
//! A webhook may also carry a static `Authorization` token (Personio's `auth_type = TOKEN`); a
//! tenant that configures `webhook_token` requires it as well as the signature.
//!
//! The details come from the v2 API ([`api`]): a client-credentials token, the person, their
//! employments (most recent first) and the department's org unit, each read through the
//! tenant's own rate budget.

mod api;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use lifecycle_config::{ConfigError, Secret};

use crate::{Delivery, DeliveryKind, FetchError, ParseError, Record, SignatureError, Source, SourceKind, Verified};

/// The header the signature arrives in (our reading; see the module doc).
pub const SIGNATURE_HEADER: &str = "x-personio-signature";
/// The header the signed timestamp arrives in (our reading; see the module doc).
pub const TIMESTAMP_HEADER: &str = "x-personio-timestamp";
/// How far a signed timestamp may be from now. Personio names no window; 5 minutes is what
/// signed-webhook receivers commonly allow, and a retry carries a fresh timestamp.
pub const DEFAULT_SIGNATURE_WINDOW: Duration = Duration::from_secs(300);
/// Where Personio's API lives (`servers` in its OpenAPI definitions).
pub const DEFAULT_API_URL: &str = "https://api.personio.de";
/// Reads per second per tenant when the tenant names no budget. Personio publishes no number
/// for the v2 person endpoints; this stays well under what its v1 documentation allowed.
pub const DEFAULT_PER_SECOND: u32 = 2;

type HmacSha256 = Hmac<Sha256>;

/// `[hris.personio]`: Personio's webhooks (`POST /v1/hr/personio`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonioTable {
    /// One per Personio company (`[[hris.personio.tenants]]`).
    pub tenants: Vec<TenantTable>,
    /// How old (or how far ahead) a signed timestamp may be, in seconds.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_SIGNATURE_WINDOW.as_secs()))]
    pub signature_window_secs: Option<u64>,
}

/// One `[[hris.personio.tenants]]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantTable {
    /// Shown in logs and the console; the tenant's key.
    pub name: String,
    /// The `company_id` the payload names.
    pub company_id: String,
    /// The secret Personio signs deliveries with.
    pub webhook_secret: Secret,
    /// The static token Personio sends in `Authorization` (webhook `auth_type = TOKEN`), if set up.
    #[serde(default)]
    pub webhook_token: Option<Secret>,
    /// The API's base URL.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_API_URL))]
    pub api_url: Option<String>,
    /// The API client's id (client-credentials grant).
    pub client_id: Secret,
    /// The API client's secret.
    pub client_secret: Secret,
    /// This tenant's API reads per second (Personio publishes no number for the v2 person endpoints).
    #[serde(default)]
    #[schemars(extend("default" = { "per_second": DEFAULT_PER_SECOND }))]
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-type" = "`{ per_second = N }`"))]
pub struct RateLimit {
    pub per_second: u32,
}

/// Builds the source from its `[hris.personio]` table, checking what can be checked at start-up.
pub fn source(table: &Value, http_timeout: Duration) -> Result<Personio, ConfigError> {
    let invalid = |msg: String| ConfigError::Rule(format!("[hris.personio] {msg}"));
    let table: PersonioTable = serde_json::from_value(table.clone()).map_err(|e| invalid(e.to_string()))?;
    if table.tenants.is_empty() {
        return Err(invalid("has no tenants".into()));
    }
    let mut tenants = Vec::with_capacity(table.tenants.len());
    for t in table.tenants {
        if t.name.trim().is_empty() || t.company_id.trim().is_empty() {
            return Err(invalid("a tenant needs a name and a company_id".into()));
        }
        if tenants.iter().any(|o: &api::Tenant| o.name == t.name || o.company_id == t.company_id) {
            return Err(invalid(format!("tenant {:?} or its company_id is listed twice", t.name)));
        }
        if t.webhook_secret.expose().is_empty() {
            return Err(invalid(format!("tenant {:?}: webhook_secret is empty", t.name)));
        }
        let api_url = t.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        let api_url = url::Url::parse(api_url.trim_end_matches('/'))
            .map_err(|e| invalid(format!("tenant {:?}: api_url {api_url:?}: {e}", t.name)))?;
        let per_second = t.rate_limit.map_or(DEFAULT_PER_SECOND, |r| r.per_second);
        if per_second == 0 {
            return Err(invalid(format!("tenant {:?}: rate_limit.per_second must be at least 1", t.name)));
        }
        tenants.push(api::Tenant::new(t, api_url, per_second));
    }
    let window = table.signature_window_secs.map_or(DEFAULT_SIGNATURE_WINDOW, Duration::from_secs);
    Ok(Personio::new(tenants, window, http_timeout))
}

/// The Personio source: its tenants, the signature window, one HTTP client.
pub struct Personio {
    tenants: Vec<api::Tenant>,
    window: Duration,
    http: reqwest::Client,
}

impl Personio {
    fn new(tenants: Vec<api::Tenant>, window: Duration, http_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(http_timeout)
            // Personio's answers never redirect; following one could send the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Personio { tenants, window, http }
    }

    fn tenant(&self, name: &str) -> Option<&api::Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// The signature and timestamp as presented, decoded but not yet checked.
struct Presented<'h> {
    mac: Vec<u8>,
    /// The timestamp exactly as sent: it is part of what was signed.
    timestamp: &'h str,
    at: DateTime<Utc>,
}

fn header<'h>(headers: &'h http::HeaderMap, name: &'static str) -> Result<Option<&'h str>, SignatureError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| SignatureError::Malformed(name)),
    }
}

fn read_presented(headers: &http::HeaderMap) -> Result<Presented<'_>, SignatureError> {
    let raw = header(headers, SIGNATURE_HEADER)?.ok_or(SignatureError::Missing("X-Personio-Signature"))?;
    // A `t=…,v1=…` header carries both; otherwise the timestamp has its own header.
    let (mut signature, mut timestamp) = (raw, None);
    if raw.contains(',') || raw.starts_with("t=") {
        let (mut t, mut v1) = (None, None);
        for part in raw.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("t", value)) => t = Some(value),
                Some(("v1", value)) if v1.is_none() => v1 = Some(value),
                _ => {}
            }
        }
        signature = v1.ok_or(SignatureError::Malformed("X-Personio-Signature"))?;
        timestamp = t;
    }
    let timestamp = match timestamp {
        Some(t) => t,
        None => header(headers, TIMESTAMP_HEADER)?.ok_or(SignatureError::Missing("X-Personio-Timestamp"))?,
    };
    let mac = decode_mac(signature).ok_or(SignatureError::Malformed("X-Personio-Signature"))?;
    let at = parse_timestamp(timestamp).ok_or(SignatureError::Malformed("X-Personio-Timestamp"))?;
    Ok(Presented { mac, timestamp, at })
}

/// A 32-byte MAC in hex (either case) or base64, with an optional `sha256=` / `v1=` prefix.
fn decode_mac(value: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let value = value.strip_prefix("sha256=").or_else(|| value.strip_prefix("v1=")).unwrap_or(value);
    let bytes = if value.len() == 64 {
        hex::decode(value).ok()?
    } else {
        base64::engine::general_purpose::STANDARD.decode(value).ok()?
    };
    (bytes.len() == 32).then_some(bytes)
}

/// Unix seconds, Unix milliseconds (13 digits and more), or RFC 3339.
fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    if !value.is_empty() && value.len() <= 16 && value.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = value.parse().ok()?;
        return if value.len() >= 13 { Utc.timestamp_millis_opt(n).single() } else { Utc.timestamp_opt(n, 0).single() };
    }
    DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc))
}

/// Whether `secret` signed `timestamp` and `body` (with or without a `.` between them).
/// `verify_slice` compares in constant time.
fn signed_by(secret: &Secret, timestamp: &str, body: &[u8], mac: &[u8]) -> bool {
    [&b"."[..], &b""[..]].iter().any(|separator| {
        let Ok(mut m) = HmacSha256::new_from_slice(secret.expose().as_bytes()) else { return false };
        m.update(timestamp.as_bytes());
        m.update(separator);
        m.update(body);
        m.verify_slice(mac).is_ok()
    })
}

/// Personio's `event_name`s lifecycle acts on, and what each means.
fn kind_of(event_name: &str) -> Option<DeliveryKind> {
    Some(match event_name {
        "person.created" | "employment.created" | "employment.started" => DeliveryKind::Joined,
        "person.updated" | "employment.updated" => DeliveryKind::Changed,
        "person.deleted" | "employment.deleted" | "employment.terminated" => DeliveryKind::Left,
        _ => return None,
    })
}

/// An id as Personio writes it: a string, or a number in older payloads.
fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() && s.len() <= 128 => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a verified Personio delivery. Public for the fuzz target; [`Source::parse`] is the same.
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, ParseError> {
    #[derive(Deserialize)]
    struct Envelope {
        company_id: Value,
        event_name: String,
        occurred_at: String,
        #[serde(default)]
        payload: Value,
        #[serde(default)]
        meta: Value,
    }
    let bad = |m: String| ParseError(m);
    let env: Envelope = serde_json::from_slice(body).map_err(|e| bad(format!("not a Personio webhook body: {e}")))?;
    let company_id = id_of(Some(&env.company_id)).ok_or_else(|| bad("company_id is not an id".into()))?;
    let kind = kind_of(&env.event_name).ok_or_else(|| {
        bad(format!(
            "event {:?} is not one lifecycle acts on (subscribe to person.* and employment.* only)",
            env.event_name.chars().take(64).collect::<String>()
        ))
    })?;
    let occurred_at = DateTime::parse_from_rfc3339(&env.occurred_at)
        .map_err(|_| bad("occurred_at is not an RFC 3339 date-time".into()))?
        .with_timezone(&Utc);
    let payload = &env.payload;
    let entity_id = id_of(payload.get("id"));
    // Employment events name the employment; its person is what lifecycle reads.
    let employee_id = if env.event_name.starts_with("person.") {
        entity_id.clone()
    } else {
        id_of(payload.pointer("/person/id")).or_else(|| id_of(payload.get("person_id")))
    }
    .ok_or_else(|| bad(format!("{} names no person id in its payload", env.event_name)))?;

    // Personio documents no delivery id; a retry repeats the body, so its event, entity and
    // time identify it. An id in `meta`, where one is sent, is better still.
    let key = match id_of(env.meta.get("event_id")).or_else(|| id_of(env.meta.get("id"))) {
        Some(event_id) => format!("event:{event_id}"),
        None => format!(
            "{}:{}:{}",
            env.event_name,
            entity_id.as_deref().unwrap_or(&employee_id),
            occurred_at.timestamp_millis()
        ),
    };
    let key = if key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    } else {
        key
    };
    Ok(Delivery {
        company_id,
        key,
        kind,
        type_name: env.event_name,
        employee_id: Some(employee_id),
        occurred_at: Some(occurred_at),
    })
}

#[async_trait::async_trait]
impl Source for Personio {
    fn kind(&self) -> SourceKind {
        SourceKind::Personio
    }

    fn verify(&self, headers: &http::HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Verified, SignatureError> {
        let presented = read_presented(headers)?;
        let authorization = headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        // Every tenant is tried (no early exit), so timing does not tell which secret matched.
        let mut verified = None;
        for tenant in &self.tenants {
            let signed = signed_by(&tenant.webhook_secret, presented.timestamp, body, &presented.mac);
            let token_ok = match &tenant.webhook_token {
                None => true,
                Some(token) => authorization.is_some_and(|a| token.matches(a)),
            };
            if signed && token_ok && verified.is_none() {
                verified = Some(tenant.name.clone());
            }
        }
        let tenant = verified.ok_or(SignatureError::Mismatch)?;
        let age = (now - presented.at).num_seconds();
        let window = self.window.as_secs() as i64;
        if age.abs() > window {
            return Err(SignatureError::Stale { age_secs: age, window_secs: window });
        }
        Ok(Verified { tenant })
    }

    fn parse(&self, body: &[u8]) -> Result<Delivery, ParseError> {
        parse_delivery(body)
    }

    fn company_id(&self, tenant: &str) -> Option<&str> {
        self.tenant(tenant).map(|t| t.company_id.as_str())
    }

    async fn fetch(&self, tenant: &str, employee_id: &str) -> Result<Record, FetchError> {
        let tenant =
            self.tenant(tenant).ok_or_else(|| FetchError::Refused(format!("no Personio tenant named {tenant:?}")))?;
        tenant.fetch(&self.http, employee_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn personio() -> Personio {
        source(
            &json!({"tenants": [
                {"name": "acme", "company_id": "41234", "webhook_secret": "s3cret",
                 "client_id": "id", "client_secret": "secret"},
                {"name": "globex", "company_id": "777", "webhook_secret": "other",
                 "client_id": "id2", "client_secret": "secret2", "webhook_token": "Bearer tok"}
            ]}),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn sign(secret: &str, signed: &[u8]) -> String {
        let mut m = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        m.update(signed);
        hex::encode(m.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    const BODY: &[u8] = br#"{"company_id":"41234","event_name":"person.created","occurred_at":"2026-12-01T09:00:00Z","payload":{"id":"1001"},"meta":{}}"#;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 30).unwrap()
    }

    #[test]
    fn a_delivery_signed_over_timestamp_dot_body_verifies_for_its_tenant() {
        let ts = now().timestamp().to_string();
        let sig = sign("s3cret", &[ts.as_bytes(), b".", BODY].concat());
        let v = personio().verify(&headers(&[(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, ts)]), BODY, now()).unwrap();
        assert_eq!(v.tenant, "acme");
    }

    #[test]
    fn other_readings_of_the_scheme_verify_too() {
        let p = personio();
        let ts = now().timestamp().to_string();
        // No separator, sha256= prefix.
        let sig = format!("sha256={}", sign("s3cret", &[ts.as_bytes(), BODY].concat()));
        assert!(p.verify(&headers(&[(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, ts.clone())]), BODY, now()).is_ok());
        // One header, t=…,v1=…
        let sig = sign("s3cret", &[ts.as_bytes(), b".", BODY].concat());
        assert!(p.verify(&headers(&[(SIGNATURE_HEADER, format!("t={ts},v1={sig}"))]), BODY, now()).is_ok());
        // Base64, millisecond timestamp.
        use base64::Engine as _;
        let ms = now().timestamp_millis().to_string();
        let mut m = HmacSha256::new_from_slice(b"s3cret").unwrap();
        m.update(&[ms.as_bytes(), b".", BODY].concat());
        let b64 = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
        assert!(p.verify(&headers(&[(SIGNATURE_HEADER, b64), (TIMESTAMP_HEADER, ms)]), BODY, now()).is_ok());
    }

    #[test]
    fn tampering_a_wrong_secret_and_a_stale_timestamp_are_refused_with_their_reason() {
        let p = personio();
        let ts = now().timestamp().to_string();
        let sig = sign("s3cret", &[ts.as_bytes(), b".", BODY].concat());
        let h = headers(&[(SIGNATURE_HEADER, sig.clone()), (TIMESTAMP_HEADER, ts.clone())]);
        let tampered = String::from_utf8(BODY.to_vec()).unwrap().replace("1001", "1002");
        assert_eq!(p.verify(&h, tampered.as_bytes(), now()), Err(SignatureError::Mismatch));
        let wrong = sign("guess", &[ts.as_bytes(), b".", BODY].concat());
        let h2 = headers(&[(SIGNATURE_HEADER, wrong), (TIMESTAMP_HEADER, ts)]);
        assert_eq!(p.verify(&h2, BODY, now()), Err(SignatureError::Mismatch));
        let later = now() + chrono::Duration::minutes(6);
        assert!(matches!(p.verify(&h, BODY, later), Err(SignatureError::Stale { window_secs: 300, .. })));
        assert_eq!(
            p.verify(&http::HeaderMap::new(), BODY, now()),
            Err(SignatureError::Missing("X-Personio-Signature"))
        );
        let h3 = headers(&[(SIGNATURE_HEADER, sig)]);
        assert_eq!(p.verify(&h3, BODY, now()), Err(SignatureError::Missing("X-Personio-Timestamp")));
        let h4 = headers(&[(SIGNATURE_HEADER, "zz".into()), (TIMESTAMP_HEADER, "1".into())]);
        assert_eq!(p.verify(&h4, BODY, now()), Err(SignatureError::Malformed("X-Personio-Signature")));
    }

    #[test]
    fn a_tenant_with_a_webhook_token_also_needs_the_authorization_header() {
        let p = personio();
        let body = String::from_utf8(BODY.to_vec()).unwrap().replace("41234", "777");
        let ts = now().timestamp().to_string();
        let sig = sign("other", &[ts.as_bytes(), b".", body.as_bytes()].concat());
        let without = headers(&[(SIGNATURE_HEADER, sig.clone()), (TIMESTAMP_HEADER, ts.clone())]);
        assert_eq!(p.verify(&without, body.as_bytes(), now()), Err(SignatureError::Mismatch));
        let with = headers(&[(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, ts), ("authorization", "Bearer tok".into())]);
        assert_eq!(p.verify(&with, body.as_bytes(), now()).unwrap().tenant, "globex");
    }

    #[test]
    fn deliveries_parse_to_the_person_they_are_about() {
        let d = parse_delivery(BODY).unwrap();
        assert_eq!(d.company_id, "41234");
        assert_eq!(d.kind, DeliveryKind::Joined);
        assert_eq!(d.employee_id.as_deref(), Some("1001"));
        assert_eq!(
            d.key,
            format!("person.created:1001:{}", Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap().timestamp_millis())
        );

        let employment = br#"{"company_id":41234,"event_name":"employment.terminated","occurred_at":"2026-12-01T00:00:00+01:00","payload":{"id":"e-9","person":{"id":1003}}}"#;
        let d = parse_delivery(employment).unwrap();
        assert_eq!(
            (d.kind, d.employee_id.as_deref(), d.company_id.as_str()),
            (DeliveryKind::Left, Some("1003"), "41234")
        );
        assert!(d.key.starts_with("employment.terminated:e-9:"));

        for bad in [
            &br#"{"company_id":"1","event_name":"document.created","occurred_at":"2026-12-01T00:00:00Z","payload":{"id":"1"}}"#[..],
            br#"{"company_id":"1","event_name":"employment.updated","occurred_at":"2026-12-01T00:00:00Z","payload":{"id":"e"}}"#,
            br#"{"company_id":"1","event_name":"person.updated","occurred_at":"yesterday","payload":{"id":"1"}}"#,
            br#"[]"#,
        ] {
            assert!(parse_delivery(bad).is_err());
        }
    }

    #[test]
    fn config_errors_are_caught_at_start_up() {
        for table in [
            json!({"tenants": []}),
            json!({"tenants": [{"name": "a", "company_id": "1", "webhook_secret": "", "client_id": "x", "client_secret": "y"}]}),
            json!({"tenants": [{"name": "a", "company_id": "1", "webhook_secret": "s", "client_id": "x", "client_secret": "y", "api_key": "z"}]}),
            json!({"tenants": [{"name": "a", "company_id": "1", "webhook_secret": "s", "client_id": "x", "client_secret": "y", "api_url": "not a url"}]}),
        ] {
            assert!(source(&table, Duration::from_secs(1)).is_err(), "{table}");
        }
    }
}
