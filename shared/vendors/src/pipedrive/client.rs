//! The Pipedrive admin API, as much of it as our workflows need.

use super::AuthMode;
use crate::http::{HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Pages of 500, the maximum, to keep request counts down.
const PAGE: u32 = 500;
/// Pages of [`PAGE`] items: five million users or deals is a vendor bug, not a company.
const MAX_PAGES: usize = 10_000;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub active_flag: bool,
    #[serde(default, deserialize_with = "flag")]
    pub is_admin: bool,
    #[serde(default)]
    pub role_id: Option<i64>,
    /// The user who created the company: its owner.
    #[serde(default, deserialize_with = "flag")]
    pub has_created_company: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Role {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RoleAssignment {
    pub role_id: i64,
    #[serde(default)]
    pub user_id: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deal {
    pub id: i64,
    #[serde(default)]
    pub title: Option<String>,
    /// An object `{id, name, ...}` in responses; we keep the id.
    #[serde(deserialize_with = "owner_id")]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Envelope<T> {
    #[serde(default = "none")]
    data: Option<T>,
    #[serde(default)]
    additional_data: Option<AdditionalData>,
}

#[derive(Deserialize, Default)]
struct AdditionalData {
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize, Default)]
struct Pagination {
    #[serde(default)]
    more_items_in_collection: bool,
    #[serde(default)]
    next_start: Option<u64>,
}

#[derive(Clone)]
pub struct Client {
    http: VendorHttp,
    base: String,
    token: Secret,
    auth: AuthMode,
}

impl Client {
    pub fn new(http: VendorHttp, base_url: &str, token: Secret, auth: AuthMode) -> Self {
        Self { http, base: base_url.trim_end_matches('/').to_string(), token, auth }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.client().request(method, format!("{}{}", self.base, path));
        match self.auth {
            AuthMode::ApiToken => rb.query(&[("api_token", self.token.expose())]),
            AuthMode::Bearer => rb.bearer_auth(self.token.expose()),
        }
    }

    async fn data<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<Option<T>, HttpError> {
        let env: Envelope<T> = self.http.json(rb).await?;
        Ok(env.data)
    }

    /// Follows `next_start` until the collection is exhausted, or fails
    /// after [`MAX_PAGES`]: a collection that says "more" for ever (found by
    /// the fuzzer, FUZZING.md) must not hold a worker and grow without end.
    async fn all<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<T>, HttpError> {
        self.all_pages(path, query, |_| {}).await
    }

    /// [`all`](Self::all), telling `on_page` how many items were read so far after each page.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        mut on_page: impl FnMut(usize) + Send,
    ) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut start: u64 = 0;
        for _ in 0..MAX_PAGES {
            let rb = self
                .request(Method::GET, path)
                .query(query)
                .query(&[("start", start.to_string()), ("limit", PAGE.to_string())]);
            let env: Envelope<Vec<T>> = self.http.json(rb).await?;
            let page = env.data.unwrap_or_default();
            let got = page.len() as u64;
            out.extend(page);
            on_page(out.len());
            let pagination = env.additional_data.and_then(|a| a.pagination).unwrap_or_default();
            match pagination.next_start {
                Some(next) if pagination.more_items_in_collection && next > start => start = next,
                None if pagination.more_items_in_collection && got > 0 => start += got,
                _ => return Ok(out),
            }
        }
        Err(HttpError::Decode {
            vendor: VendorKind::Pipedrive,
            message: format!("{path}: still more items after {MAX_PAGES} pages of {PAGE}"),
        })
    }

    /// The user with exactly this address, active or not. `/users/find`
    /// matches partially ("ada@example.com" also finds "nada@example.com"),
    /// so the exact address is filtered here.
    pub async fn find_user_by_email(&self, email: &EmployeeEmail) -> Result<Option<User>, HttpError> {
        let rb = self.request(Method::GET, "/users/find").query(&[("term", email.as_str()), ("search_by_email", "1")]);
        let users: Vec<User> = self.data(rb).await?.unwrap_or_default();
        Ok(users.into_iter().find(|u| u.email.as_deref().is_some_and(|e| email.matches(e))))
    }

    pub async fn get_user(&self, id: i64) -> Result<User, HttpError> {
        self.data(self.request(Method::GET, &format!("/users/{id}"))).await?.ok_or_else(|| missing("user"))
    }

    pub async fn list_users(&self) -> Result<Vec<User>, HttpError> {
        self.all("/users", &[]).await
    }

    /// Every user (deactivated ones included), 500 a page, `on_page` told the count so far.
    pub async fn list_users_paged(&self, on_page: impl FnMut(usize) + Send) -> Result<Vec<User>, HttpError> {
        self.all_pages("/users", &[], on_page).await
    }

    /// `GET /users/me`: the user the token belongs to.
    pub async fn me(&self) -> Result<User, HttpError> {
        self.data(self.request(Method::GET, "/users/me")).await?.ok_or_else(|| missing("user"))
    }

    pub async fn create_user(&self, name: &str, email: &EmployeeEmail) -> Result<User, HttpError> {
        let rb = self
            .request(Method::POST, "/users")
            .json(&json!({ "name": name, "email": email.as_str(), "active_flag": true }));
        self.data(rb).await?.ok_or_else(|| missing("created user"))
    }

    /// A partial update: only the given fields change.
    pub async fn update_user(&self, id: i64, fields: Value) -> Result<User, HttpError> {
        let rb = self.request(Method::PUT, &format!("/users/{id}")).json(&fields);
        self.data(rb).await?.ok_or_else(|| missing("updated user"))
    }

    pub async fn roles(&self) -> Result<Vec<Role>, HttpError> {
        self.all("/roles", &[]).await
    }

    pub async fn role_assignments(&self, user_id: i64) -> Result<Vec<RoleAssignment>, HttpError> {
        let rb = self.request(Method::GET, &format!("/users/{user_id}/roleAssignments"));
        Ok(self.data(rb).await?.unwrap_or_default())
    }

    pub async fn assign_role(&self, role_id: i64, user_id: i64) -> Result<(), HttpError> {
        let rb =
            self.request(Method::POST, &format!("/roles/{role_id}/assignments")).json(&json!({ "user_id": user_id }));
        self.http.send(rb).await.map(|_| ())
    }

    pub async fn unassign_role(&self, role_id: i64, user_id: i64) -> Result<(), HttpError> {
        let rb =
            self.request(Method::DELETE, &format!("/roles/{role_id}/assignments")).json(&json!({ "user_id": user_id }));
        self.http.send(rb).await.map(|_| ())
    }

    /// Every open deal the user owns, all pages collected *before* anything
    /// is reassigned: reassigning while paging would shift the offsets and skip deals.
    pub async fn open_deals(&self, user_id: i64) -> Result<Vec<Deal>, HttpError> {
        let deals: Vec<Deal> =
            self.all("/deals", &[("user_id", user_id.to_string()), ("status", "open".into())]).await?;
        // Keep only what the filter promised, in case a page was served stale.
        Ok(deals
            .into_iter()
            .filter(|d| d.user_id == Some(user_id) && d.status.as_deref().is_none_or(|s| s == "open"))
            .collect())
    }

    pub async fn get_deal(&self, id: i64) -> Result<Deal, HttpError> {
        self.data(self.request(Method::GET, &format!("/deals/{id}"))).await?.ok_or_else(|| missing("deal"))
    }

    /// `PUT /deals/{id}` (the v1 API's update) with the new owner.
    pub async fn set_deal_owner(&self, deal_id: i64, user_id: i64) -> Result<(), HttpError> {
        let rb = self.request(Method::PUT, &format!("/deals/{deal_id}")).json(&json!({ "user_id": user_id }));
        self.http.send(rb).await.map(|_| ())
    }
}

fn none<T>() -> Option<T> {
    None
}

fn missing(what: &str) -> HttpError {
    HttpError::Decode {
        vendor: lifecycle_domain::VendorKind::Pipedrive,
        message: format!("the response carried no {what}"),
    }
}

/// Pipedrive's 429 carries no `Retry-After`: `X-RateLimit-Reset` is the Unix
/// time (seconds) at which the window resets — a timestamp, not a delta.
pub(crate) fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    let reset: f64 = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse().ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    // A reset a little in the past still means "now": wait a beat, not zero.
    Some(Duration::from_secs_f64((reset - now).clamp(0.05, 3600.0)))
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        Value::String(s) => s == "1" || s == "true",
        _ => false,
    })
}

fn owner_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| de::Error::custom("user_id is not an integer")),
        Value::Object(o) => Ok(o.get("id").or_else(|| o.get("value")).and_then(Value::as_i64)),
        _ => Err(de::Error::custom("user_id is neither an id nor an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reset_as_a_timestamp_not_a_delta() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", (now + 2).to_string().parse().unwrap());
        let wait = retry_hint(&h).unwrap();
        assert!(wait <= Duration::from_secs(3) && wait >= Duration::from_millis(900), "{wait:?}");
        // A small number is a timestamp in 1970, i.e. "already reset".
        h.insert("x-ratelimit-reset", "2".parse().unwrap());
        assert!(retry_hint(&h).unwrap() < Duration::from_secs(1));
    }

    #[test]
    fn deal_owner_is_an_object_in_responses() {
        let d: Deal =
            serde_json::from_value(json!({"id": 1, "user_id": {"id": 7, "name": "X", "value": 7}, "status": "open"}))
                .unwrap();
        assert_eq!(d.user_id, Some(7));
        let d: Deal = serde_json::from_value(json!({"id": 1, "user_id": 8})).unwrap();
        assert_eq!(d.user_id, Some(8));
    }

    /// Found by the fuzzer (FUZZING.md): "more items" with no `next_start`,
    /// page after page, once kept a worker listing (and growing) for ever.
    #[tokio::test]
    async fn a_collection_that_never_ends_is_an_error_not_a_hang() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let vendor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = vendor.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let n = served.clone();
        tokio::spawn(async move {
            let body = r#"{"success":true,"data":[{"id":1}],"additional_data":{"pagination":{"more_items_in_collection":true}}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            while let Ok((mut s, _)) = vendor.accept().await {
                let (answer, n) = (answer.clone(), n.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // One request per read is enough for these small GETs.
                    while matches!(s.read(&mut buf).await, Ok(k) if k > 0) {
                        n.fetch_add(1, Ordering::Relaxed);
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let http = VendorHttp::new(
            VendorKind::Pipedrive,
            Duration::from_secs(10),
            Arc::new(crate::ratelimit::Limiter::new(None)),
            crate::http::no_hint,
        );
        let client = Client::new(http, &format!("http://{addr}/v1"), Secret::new("t"), AuthMode::ApiToken);
        let e = client.list_users().await.unwrap_err();
        assert!(matches!(e, HttpError::Decode { .. }) && e.to_string().contains("10000 pages"), "{e}");
        assert_eq!(served.load(Ordering::Relaxed), MAX_PAGES);
    }
}
