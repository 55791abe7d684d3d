//! Personio's v2 API, the reads the processing makes (docs/hr/personio.md, "API reads"):
//! - `POST /v2/auth/token`, a form `grant_type=client_credentials&client_id&client_secret`:
//!   `{access_token, expires_in}`; the token is kept until a minute before it expires, and
//!   dropped when an answer says 401;
//! - `GET /v2/persons/{id}`: `first_name`, `last_name`, `preferred_name`, `email`;
//! - `GET /v2/persons/{id}/employments`: `_data`, most recent first; its `status` (`ACTIVE`,
//!   `ONBOARDING`, `LEAVE`, `INACTIVE`), `position.title`, `org_units`, `office`, start and
//!   termination dates;
//! - `GET /v2/org-units/{id}?type=department`: the department's `name`.
//!
//! Each request waits for the tenant's governor budget first. 429 is `Throttled` (with
//! `Retry-After` when sent), 5xx and transport errors `Unavailable`, 404 `NotFound`, other
//! refusals `Refused`. No error carries a credential.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use lifecycle_config::Secret;

use super::TenantTable;
use crate::{EmploymentStatus, FetchError, Record};

/// A configured Personio company.
pub(super) struct Tenant {
    pub(super) name: String,
    pub(super) company_id: String,
    pub(super) webhook_secret: Secret,
    pub(super) webhook_token: Option<Secret>,
    api_url: url::Url,
    client_id: Secret,
    client_secret: Secret,
    budget: DefaultDirectRateLimiter,
    token: Mutex<Option<AccessToken>>,
}

struct AccessToken {
    value: Secret,
    renew_at: Instant,
}

impl Tenant {
    pub(super) fn new(t: TenantTable, api_url: url::Url, per_second: u32) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN));
        Tenant {
            name: t.name,
            company_id: t.company_id,
            webhook_secret: t.webhook_secret,
            webhook_token: t.webhook_token,
            api_url,
            client_id: t.client_id,
            client_secret: t.client_secret,
            budget: RateLimiter::direct(quota),
            token: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.as_str().trim_end_matches('/'))
    }

    /// The person and their latest employment, in lifecycle's words.
    pub(super) async fn fetch(&self, http: &reqwest::Client, person_id: &str) -> Result<Record, FetchError> {
        // Ids go into a path: refuse anything that is not a plain id rather than escape it.
        if person_id.is_empty() || !person_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(FetchError::NotFound(person_id.chars().take(64).collect()));
        }
        let person: Person = self.get(http, &format!("/v2/persons/{person_id}"), person_id).await?;
        let employments: List<Employment> =
            self.get(http, &format!("/v2/persons/{person_id}/employments?limit=50"), person_id).await?;
        // Most recent first, as the endpoint documents.
        let employment = employments.data.into_iter().next();
        let department = match employment.as_ref().and_then(Employment::department) {
            Some(OrgUnitRef { name: Some(name), .. }) => Some(name.clone()),
            Some(OrgUnitRef { id: Some(id), .. }) => {
                let id = id_string(id).ok_or_else(|| FetchError::Refused("an org unit id is not an id".into()))?;
                let unit: OrgUnit = self.get(http, &format!("/v2/org-units/{id}?type=department"), person_id).await?;
                unit.name
            }
            _ => None,
        };
        Ok(record(person_id, person, employment, department))
    }

    /// One authenticated GET through the budget; a 401 renews the token once.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        http: &reqwest::Client,
        path: &str,
        person_id: &str,
    ) -> Result<T, FetchError> {
        for attempt in 0..2 {
            let token = self.token(http).await?;
            let request = http.get(self.url(path)).bearer_auth(token.expose());
            match self.send(request).await {
                Ok(response) => {
                    return response
                        .json::<T>()
                        .await
                        .map_err(|e| FetchError::Unavailable(format!("Personio answered something unreadable: {e}")))
                }
                Err(Answer::Unauthorized) if attempt == 0 => *self.token.lock().await = None,
                Err(Answer::Unauthorized) => {
                    return Err(FetchError::Refused("Personio refused the access token (401)".into()))
                }
                Err(Answer::NotFound) => return Err(FetchError::NotFound(person_id.to_owned())),
                Err(Answer::Failed(e)) => return Err(e),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// The cached access token, or a new one.
    async fn token(&self, http: &reqwest::Client) -> Result<Secret, FetchError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.value.clone());
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.expose()),
            ("client_secret", self.client_secret.expose()),
        ];
        let response = match self.send(http.post(self.url("/v2/auth/token")).form(&form)).await {
            Ok(response) => response,
            // The token endpoint answers bad credentials with 400/401: a person must fix them.
            Err(Answer::Unauthorized | Answer::NotFound) => {
                return Err(FetchError::Refused("Personio refused the client credentials".into()))
            }
            Err(Answer::Failed(e)) => return Err(e),
        };
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|_| FetchError::Unavailable("Personio's token answer is unreadable".into()))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let value = Secret::new(answer.access_token);
        *cached = Some(AccessToken {
            value: value.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(Duration::from_secs(60)),
        });
        Ok(value)
    }

    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, Answer> {
        self.budget.until_ready().await;
        let response = request.send().await.map_err(|e| {
            // reqwest's message names the URL (ours, no secret in it) and the cause.
            Answer::Failed(FetchError::Unavailable(format!("cannot reach Personio: {}", e.without_url())))
        })?;
        let status = response.status();
        match status {
            s if s.is_success() => Ok(response),
            StatusCode::TOO_MANY_REQUESTS => {
                Err(Answer::Failed(FetchError::Throttled { retry_after: retry_after(response.headers()) }))
            }
            StatusCode::UNAUTHORIZED => Err(Answer::Unauthorized),
            StatusCode::NOT_FOUND => Err(Answer::NotFound),
            s if s.is_server_error() => Err(Answer::Failed(FetchError::Unavailable(format!("Personio answered {s}")))),
            StatusCode::BAD_REQUEST if response.url().path().ends_with("/auth/token") => Err(Answer::Unauthorized),
            s => Err(Answer::Failed(FetchError::Refused(format!("Personio answered {s}")))),
        }
    }
}

enum Answer {
    Unauthorized,
    NotFound,
    Failed(FetchError),
}

/// `Retry-After` in seconds (Personio's documented form); an HTTP date is not used by it.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') && !s.is_empty() => {
            Some(s.clone())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(rename = "_data", default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct Person {
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    preferred_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize, Default)]
struct Employment {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    position: Option<Position>,
    #[serde(default)]
    org_units: Vec<OrgUnitRef>,
    #[serde(default)]
    office: Option<Named>,
    #[serde(default, alias = "start_date")]
    employment_start_date: Option<NaiveDate>,
    #[serde(default)]
    termination: Option<Termination>,
    #[serde(default)]
    termination_date: Option<NaiveDate>,
}

impl Employment {
    fn department(&self) -> Option<&OrgUnitRef> {
        self.org_units.iter().find(|u| u.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("department")))
    }
}

#[derive(Deserialize)]
struct Position {
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct OrgUnitRef {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct OrgUnit {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Termination {
    #[serde(default)]
    date: Option<NaiveDate>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The person and their latest employment as a [`Record`]. No employment, or a status this
/// code does not know, is `Unknown`: the delivery needs a person.
fn record(person_id: &str, person: Person, employment: Option<Employment>, department: Option<String>) -> Record {
    let employment_status = employment.as_ref().and_then(|e| non_empty(e.status.clone()));
    let status = match employment_status.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("ACTIVE" | "LEAVE") => EmploymentStatus::Active,
        Some("ONBOARDING") => EmploymentStatus::Pending,
        Some("INACTIVE") => EmploymentStatus::Inactive,
        _ => EmploymentStatus::Unknown,
    };
    let e = employment.unwrap_or_default();
    Record {
        employee_id: person_id.to_owned(),
        email: non_empty(person.email),
        given_name: non_empty(person.preferred_name).or(non_empty(person.first_name)),
        family_name: non_empty(person.last_name),
        status,
        department: non_empty(department),
        job_title: non_empty(e.position.and_then(|p| p.title)),
        location: non_empty(e.office.and_then(|o| o.name)),
        employment_status,
        hire_date: e.employment_start_date,
        termination_date: e.termination.and_then(|t| t.date).or(e.termination_date),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_map_as_personio_defines_them() {
        let person =
            || serde_json::from_value::<Person>(json!({"first_name": "Ada", "email": "ada@example.com"})).unwrap();
        let with = |status: &str| {
            let e: Employment = serde_json::from_value(json!({"status": status})).unwrap();
            record("1", person(), Some(e), None).status
        };
        assert_eq!(with("ACTIVE"), EmploymentStatus::Active);
        assert_eq!(with("LEAVE"), EmploymentStatus::Active);
        assert_eq!(with("ONBOARDING"), EmploymentStatus::Pending);
        assert_eq!(with("INACTIVE"), EmploymentStatus::Inactive);
        assert_eq!(with("SOMETHING_NEW"), EmploymentStatus::Unknown);
        assert_eq!(record("1", person(), None, None).status, EmploymentStatus::Unknown);
    }

    #[test]
    fn an_employment_gives_title_dates_and_department_ref() {
        let e: Employment = serde_json::from_value(json!({
            "status": "INACTIVE",
            "position": {"title": "Account Executive"},
            "org_units": [{"id": "7", "type": "TEAM"}, {"id": 12, "type": "DEPARTMENT"}],
            "employment_start_date": "2024-01-15",
            "termination": {"date": "2026-06-30", "type": "resignation"}
        }))
        .unwrap();
        assert_eq!(e.department().and_then(|u| u.id.as_ref()).and_then(id_string).as_deref(), Some("12"));
        let person = serde_json::from_value::<Person>(json!({"first_name": "Alan", "email": " "})).unwrap();
        let r = record("3", person, Some(e), Some("Finance".into()));
        assert_eq!(r.email, None);
        assert_eq!(r.job_title.as_deref(), Some("Account Executive"));
        assert_eq!(r.hire_date, NaiveDate::from_ymd_opt(2024, 1, 15));
        assert_eq!(r.termination_date, NaiveDate::from_ymd_opt(2026, 6, 30));
        assert_eq!(r.department.as_deref(), Some("Finance"));
    }
}
