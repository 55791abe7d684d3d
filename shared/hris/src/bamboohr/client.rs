//! Reading one employee from BambooHR's API:
//! `GET {api_url}/v1/employees/{id}/?fields=...`, HTTP Basic with the API key
//! as the user and `x` as the password, `Accept: application/json`. Each
//! tenant reads through its own budget, so one busy company never spends
//! another's.
//!
//! Every answer becomes one [`FetchError`] the processing loop can act on:
//! 429 (and a 503 carrying `Retry-After`, BambooHR's rate-limit answer before
//! 2026-09-16) is throttled, other 5xx and transport failures are retried
//! later, 404 and the remaining 4xx need a person. No message carries the API
//! key: it only ever travels in the `Authorization` header.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::NaiveDate;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lifecycle_config::Secret;
use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::{EmploymentStatus, FetchError, Record};

/// The fields asked for (BambooHR's names).
pub const FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "workEmail",
    "department",
    "jobTitle",
    "location",
    "status",
    "employmentHistoryStatus",
    "hireDate",
    "terminationDate",
];

/// An employee record is a few hundred bytes; refuse to buffer anything huge.
const MAX_BODY: usize = 1 << 20;

pub(super) struct Client {
    http: reqwest::Client,
    /// `api_url` with a trailing slash, so the path is appended to it.
    base: url::Url,
    api_key: Secret,
    budget: DefaultDirectRateLimiter,
}

impl Client {
    pub(super) fn new(http: reqwest::Client, mut base: url::Url, api_key: Secret, per_second: NonZeroU32) -> Self {
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Client { http, base, api_key, budget: RateLimiter::direct(Quota::per_second(per_second)) }
    }

    fn url(&self, employee_id: &str) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("a base URL (checked at start-up)").pop_if_empty().extend([
            "v1",
            "employees",
            employee_id,
            "",
        ]);
        url.query_pairs_mut().append_pair("fields", &FIELDS.join(","));
        url
    }

    pub(super) async fn employee(&self, employee_id: &str) -> Result<Record, FetchError> {
        // The parser only lets numeric ids through; a caller passing another is refused here too.
        if employee_id.is_empty() || employee_id.len() > 20 || !employee_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FetchError::Refused(format!("{employee_id:?} is not a BambooHR employee id")));
        }
        self.budget.until_ready().await;
        let response = self
            .http
            .get(self.url(employee_id))
            .basic_auth(self.api_key.expose(), Some("x"))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Unavailable(transport(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            return Err(classify(status, &headers, employee_id));
        }
        let body = response.bytes().await.map_err(|e| FetchError::Unavailable(transport(&e)))?;
        if body.len() > MAX_BODY {
            return Err(FetchError::Refused(format!(
                "the employee answer is {} bytes, more than expected",
                body.len()
            )));
        }
        record(employee_id, &body)
    }
}

/// A transport failure without the URL (it names the tenant's company domain,
/// which is harmless, but a proxy's URL could carry credentials).
fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let source = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
    format!("{kind}{source}").chars().take(300).collect()
}

fn classify(status: StatusCode, headers: &HeaderMap, employee_id: &str) -> FetchError {
    let retry_after = retry_after(headers);
    // BambooHR puts its reason in this header rather than the body.
    let said = headers
        .get("x-bamboohr-error-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| m.chars().filter(|c| !c.is_control()).take(200).collect::<String>())
        .filter(|m| !m.trim().is_empty())
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match status.as_u16() {
        429 => FetchError::Throttled { retry_after },
        503 if retry_after.is_some() => FetchError::Throttled { retry_after },
        404 => FetchError::NotFound(employee_id.to_owned()),
        401 => FetchError::Refused(format!("HTTP 401: the API key is missing or unknown{said}")),
        403 => FetchError::Refused(format!("HTTP 403: the API key's user may not read this employee{said}")),
        408 | 500..=599 => FetchError::Unavailable(format!("HTTP {}{said}", status.as_u16())),
        other => FetchError::Refused(format!("HTTP {other}{said}")),
    }
}

/// `Retry-After` in seconds (BambooHR's form); an HTTP date is not trusted to
/// our clock and left to the caller's backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: u64 = v.parse().ok()?;
    Some(Duration::from_secs(secs.min(24 * 3600)))
}

/// The JSON object BambooHR answers, in lifecycle's words.
fn record(employee_id: &str, body: &[u8]) -> Result<Record, FetchError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FetchError::Refused(format!("the employee answer is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(FetchError::Refused("the employee answer is not a JSON object".into()));
    };
    let status_text = field(&fields, "status");
    let status = match status_text.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("active") => EmploymentStatus::Active,
        Some("inactive") => EmploymentStatus::Inactive,
        _ => EmploymentStatus::Unknown,
    };
    Ok(Record {
        employee_id: employee_id.to_owned(),
        email: field(&fields, "workEmail"),
        given_name: field(&fields, "firstName"),
        family_name: field(&fields, "lastName"),
        status,
        department: field(&fields, "department"),
        job_title: field(&fields, "jobTitle"),
        location: field(&fields, "location"),
        // The employment status table ("Full-Time", "Terminated", ...) says more
        // than Active/Inactive; rules match on it when it is there.
        employment_status: field(&fields, "employmentHistoryStatus").or(status_text),
        hire_date: date(&fields, "hireDate"),
        termination_date: date(&fields, "terminationDate"),
    })
}

/// A field's text: strings (BambooHR's form for every value) or numbers;
/// empty, null and absent (not permitted to the key's user) are none.
fn field(fields: &Map<String, Value>, name: &str) -> Option<String> {
    let text = match fields.get(name)? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// `YYYY-MM-DD`; BambooHR writes an unset date as `0000-00-00`, which is none.
fn date(fields: &Map<String, Value>, name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&field(fields, name)?, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_appends_the_employee_path_and_fields_to_the_gateway() {
        let base = url::Url::parse("https://api.bamboohr.com/api/gateway.php/acme").unwrap();
        let c = Client::new(reqwest::Client::new(), base, Secret::new("k"), NonZeroU32::new(1).unwrap());
        let url = c.url("42");
        assert_eq!(url.path(), "/api/gateway.php/acme/v1/employees/42/");
        assert_eq!(url.query_pairs().next().unwrap().1, FIELDS.join(","));
    }

    #[test]
    fn a_record_from_bamboohr_strings() {
        let body = br#"{"id":"42","firstName":"Ada","lastName":"Lovelace","workEmail":" ada@example.com ",
            "department":"Sales","jobTitle":"Account Executive","location":"London","status":"Active",
            "employmentHistoryStatus":"Full-Time","hireDate":"2024-03-01","terminationDate":"0000-00-00"}"#;
        let r = record("42", body).unwrap();
        assert_eq!(r.email.as_deref(), Some("ada@example.com"));
        assert_eq!(r.status, EmploymentStatus::Active);
        assert_eq!(r.employment_status.as_deref(), Some("Full-Time"));
        assert_eq!(r.hire_date, NaiveDate::from_ymd_opt(2024, 3, 1));
        assert_eq!(r.termination_date, None);

        let gone = br#"{"id":"7","workEmail":"","status":"Inactive","terminationDate":"2026-11-30"}"#;
        let r = record("7", gone).unwrap();
        assert_eq!((r.email, r.status.clone()), (None, EmploymentStatus::Inactive));
        assert_eq!(r.employment_status.as_deref(), Some("Inactive"));
        assert_eq!(r.termination_date, NaiveDate::from_ymd_opt(2026, 11, 30));
        assert_eq!(record("7", br#"{"status":"Paused"}"#).unwrap().status, EmploymentStatus::Unknown);
        assert!(matches!(record("7", b"<employee/>"), Err(FetchError::Refused(_))));
    }

    #[test]
    fn answers_become_errors_a_caller_can_act_on() {
        let mut h = HeaderMap::new();
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS, &h, "1"), FetchError::Throttled { retry_after: None });
        assert!(matches!(classify(StatusCode::SERVICE_UNAVAILABLE, &h, "1"), FetchError::Unavailable(_)));
        h.insert(RETRY_AFTER, "30".parse().unwrap());
        let throttled = FetchError::Throttled { retry_after: Some(Duration::from_secs(30)) };
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS, &h, "1"), throttled);
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE, &h, "1"), throttled);
        assert_eq!(classify(StatusCode::NOT_FOUND, &h, "1"), FetchError::NotFound("1".into()));
        assert!(!classify(StatusCode::FORBIDDEN, &h, "1").is_transient());
        assert!(classify(StatusCode::BAD_GATEWAY, &h, "1").is_transient());
        h.insert("x-bamboohr-error-message", "Invalid field: shoeSize".parse().unwrap());
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &h, "1"),
            FetchError::Refused("HTTP 400: Invalid field: shoeSize".into())
        );
    }
}
