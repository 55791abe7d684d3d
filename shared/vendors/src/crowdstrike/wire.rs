//! What Falcon answers, read: its models (only the fields we read), its
//! envelope, and how it says no (its error lists, its 429's
//! `X-RateLimit-RetryAfter`). The requests are the client's.

use crate::http::HttpError;
use lifecycle_config::Secret;
use lifecycle_domain::VendorKind;
use lifecycle_engine::StepError;
use reqwest::header::HeaderMap;
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VENDOR: VendorKind = VendorKind::Crowdstrike;
/// The longest a 429 may pause us. Falcon's window is "the sliding one minute window", so no
/// honest `X-RateLimit-RetryAfter` is further away; a later one is a skewed clock or a misread
/// header, and asking again after two minutes costs one request, not an hour's stall.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);

/// What went wrong talking to Falcon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Our configuration cannot work (credentials refused, wrong region, missing scope): a
    /// person fixes it, then replays. Never carries a secret.
    #[error("{0}")]
    Config(String),
    /// A lookup by login address answered more than one user: usernames are unique in Falcon,
    /// so the filter was not applied (or the tenant is not what we think). A person looks.
    #[error("{0}")]
    Ambiguous(String),
}

impl Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http(e) => e.status(),
            Error::Config(_) | Error::Ambiguous(_) => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Http(e) if e.is_not_found())
    }
    pub fn message(&self) -> &str {
        match self {
            Error::Http(e) => e.message(),
            Error::Config(m) | Error::Ambiguous(m) => m,
        }
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        match e {
            Error::Http(e) => e.into(),
            Error::Config(message) | Error::Ambiguous(message) => StepError::permanent(message),
        }
    }
}

/// A user as retrieveUsersGETV1 and createUserV1 answer it (`domain.User`): `uuid` is the id
/// every other operation takes, `uid` the login e-mail ("the user's email address, which is
/// their username in Falcon"). Only the fields we read; the model's others are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub uuid: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// The customer (CID) the user belongs to: what a role action must name.
    #[serde(default)]
    pub cid: Option<String>,
}

/// One of a user's grants (`flightcontrolapi.CombinedUserRolesResourceV2`; `role_id` is its
/// one required field).
#[derive(Debug, Deserialize)]
pub(super) struct Grant {
    pub(super) role_id: String,
    #[serde(default)]
    pub(super) cid: Option<String>,
}

/// One page of the user-id listing.
#[derive(Debug)]
pub struct UidPage {
    pub uids: Vec<String>,
    /// No page follows.
    pub last: bool,
}

/// `{"meta": {...}, "resources": [...] | null, "errors": [...]}`.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
pub(super) struct Envelope<T> {
    #[serde(default)]
    pub(super) resources: Option<Vec<T>>,
    #[serde(default)]
    pub(super) meta: Meta,
}

#[derive(Deserialize, Default)]
pub(super) struct Meta {
    #[serde(default)]
    pub(super) pagination: Option<Pagination>,
}

#[derive(Deserialize, Default)]
pub(super) struct Pagination {
    #[serde(default, deserialize_with = "lenient_number")]
    pub(super) total: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct TokenAnswer {
    pub(super) access_token: Secret,
    #[serde(default, deserialize_with = "lenient_number")]
    pub(super) expires_in: Option<u64>,
}

pub(super) fn first_resource<T>(env: Envelope<T>, what: &str) -> Result<T, Error> {
    env.resources.and_then(|r| r.into_iter().next()).ok_or_else(|| {
        Error::Http(HttpError::Decode { vendor: VENDOR, message: format!("the response carried no {what}") })
    })
}

/// Falcon's errors are `[{"code": 400, "message": "..."}]`; keep the messages.
pub(crate) fn falcon_message(raw: &str) -> String {
    let parsed = serde_json::from_str::<Value>(raw).ok();
    let messages: Vec<String> = match parsed {
        Some(Value::Array(items)) => {
            items.iter().filter_map(|e| e.get("message").and_then(Value::as_str).map(str::to_string)).collect()
        }
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_string).into_iter().collect(),
        _ => Vec::new(),
    };
    if messages.is_empty() {
        raw.to_string()
    } else {
        messages.join("; ")
    }
}

/// The same error with Falcon's error list turned into plain messages.
pub(super) fn tidy(e: HttpError) -> HttpError {
    match e {
        HttpError::Rejected { vendor, status, message } => {
            HttpError::Rejected { vendor, status, message: falcon_message(&message) }
        }
        HttpError::NotFound { vendor, message } => HttpError::NotFound { vendor, message: falcon_message(&message) },
        HttpError::Server { vendor, status, message } => {
            HttpError::Server { vendor, status, message: falcon_message(&message) }
        }
        HttpError::Unauthorized { vendor, message } => {
            HttpError::Unauthorized { vendor, message: falcon_message(&message) }
        }
        other => other,
    }
}

/// Falcon's 429 names when to come back in `X-RateLimit-RetryAfter`: "retry after this time
/// (as milliseconds since epoch)", as every response of the definition declares it. Read
/// safely, whatever a proxy or an older gateway sends: a value of 10^12 or more is milliseconds
/// since the epoch, of 10^9 or more seconds since the epoch (both before 2001-09-09 in the
/// other unit, so never ambiguous), anything smaller a delay in seconds. A moment already past
/// comes back almost at once; none waits longer than [`MAX_RETRY_WAIT`]. A plain `Retry-After`
/// (seconds) is the fallback.
pub(crate) fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    retry_hint_at(headers, SystemTime::now())
}

fn retry_hint_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let max = MAX_RETRY_WAIT.as_secs_f64();
    if let Some(v) = header("x-ratelimit-retryafter") {
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
        let wait = if v >= 1e12 {
            v / 1000.0 - now
        } else if v >= 1e9 {
            v - now
        } else {
            v
        };
        return Some(Duration::from_secs_f64(wait.clamp(0.05, max)));
    }
    header("retry-after").map(|s| Duration::from_secs_f64(s.clamp(0.0, max)))
}

/// A number, or a number in a string (Falcon is not consistent across endpoints).
fn lenient_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn retry_after(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-retryafter", value.parse().unwrap());
        h
    }

    /// A fixed "now" (2026-12-07T00:00:00Z) for the epoch readings.
    const NOW_S: u64 = 1_796_601_600;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn retry_after_is_milliseconds_since_the_epoch_as_the_definition_says() {
        // What Falcon sends: the moment, in ms. 2.5 s from now is 2.5 s, not an hour.
        let ms = NOW_S * 1000 + 2_500;
        assert_eq!(retry_hint_at(&retry_after(&ms.to_string()), at(NOW_S)), Some(Duration::from_millis(2_500)));
        // A moment already past: come back almost at once, not never.
        let past = (NOW_S - 10) * 1000;
        assert_eq!(retry_hint_at(&retry_after(&past.to_string()), at(NOW_S)), Some(Duration::from_millis(50)));
        // The real clock: a value the simulator would send.
        let soon = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 3_000;
        let wait = retry_hint(&retry_after(&soon.to_string())).unwrap();
        assert!(wait > Duration::from_millis(2_500) && wait <= Duration::from_secs(3), "{wait:?}");
    }

    #[test]
    fn retry_after_in_epoch_seconds_is_read_too() {
        let s = NOW_S + 7;
        assert_eq!(retry_hint_at(&retry_after(&s.to_string()), at(NOW_S)), Some(Duration::from_secs(7)));
    }

    #[test]
    fn a_small_retry_after_is_a_delay_in_seconds() {
        assert_eq!(retry_hint_at(&retry_after("2"), at(NOW_S)), Some(Duration::from_secs(2)));
        assert_eq!(retry_hint_at(&retry_after("0.5"), at(NOW_S)), Some(Duration::from_millis(500)));
    }

    #[test]
    fn no_reading_stalls_for_an_hour() {
        // An epoch-ms value an hour ahead (a skewed clock), or one in seconds read as a delay:
        // both capped at two minutes, Falcon's window being one minute.
        let hour = (NOW_S + 3600) * 1000;
        assert_eq!(retry_hint_at(&retry_after(&hour.to_string()), at(NOW_S)), Some(MAX_RETRY_WAIT));
        assert_eq!(retry_hint_at(&retry_after("99999999"), at(NOW_S)), Some(MAX_RETRY_WAIT));
        // The old misreading: epoch ms taken as epoch seconds would be ~56,000 years away.
        let ms = NOW_S * 1000 + 1_000;
        assert!(retry_hint_at(&retry_after(&ms.to_string()), at(NOW_S)).unwrap() <= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_the_fallback_and_junk_is_no_hint() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "4".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(4)));
        assert_eq!(retry_hint(&HeaderMap::new()), None);
        assert_eq!(retry_hint(&retry_after("soon")), None);
    }

    #[test]
    fn falcon_error_lists_become_plain_messages() {
        let raw = r#"[{"code":400,"message":"role falcon_admin is not assigned to user u-1"},{"code":400,"message":"second"}]"#;
        assert_eq!(falcon_message(raw), "role falcon_admin is not assigned to user u-1; second");
        assert_eq!(falcon_message("plain text"), "plain text");
        let e = tidy(HttpError::Rejected { vendor: VENDOR, status: 400, message: raw.into() });
        assert!(e.to_string().contains("not assigned to user u-1") && !e.to_string().contains("\"code\""), "{e}");
    }

    #[test]
    fn envelopes_tolerate_null_resources_and_string_totals() {
        let env: Envelope<String> =
            serde_json::from_value(json!({"meta": {}, "resources": null, "errors": []})).unwrap();
        assert!(env.resources.is_none());
        let env: Envelope<String> = serde_json::from_value(
            json!({"meta": {"pagination": {"offset": 0, "limit": 500, "total": "1200"}}, "resources": ["a"]}),
        )
        .unwrap();
        assert_eq!(env.meta.pagination.unwrap().total, Some(1200));
        // domain.User: `uuid` is the id, `uid` the login e-mail.
        let u: User = serde_json::from_value(json!({"uuid": "u-9", "uid": "a@example.com", "first_name": "A",
                                                    "cid": "c1", "factors": [], "status": "active"}))
        .unwrap();
        assert_eq!((u.uuid.as_str(), u.uid.as_str(), u.first_name.as_deref()), ("u-9", "a@example.com", Some("A")));
        assert!(serde_json::from_value::<User>(json!({"uid": "a@example.com"})).is_err(), "no id, no user");
    }

    #[test]
    fn a_token_answer_keeps_the_token_secret() {
        let a: TokenAnswer =
            serde_json::from_value(json!({"access_token": "tok-123", "token_type": "bearer", "expires_in": "1799"}))
                .unwrap();
        assert_eq!(a.expires_in, Some(1799));
        assert!(!format!("{:?}", a.access_token).contains("tok-123"));
    }
}
