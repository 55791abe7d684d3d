//! The Falcon user-management API, as much of it as our workflows need, behind a shared
//! OAuth2 token.

use super::Region;
use crate::http::{HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use lifecycle_engine::StepError;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use tokio::time::Instant;

const VENDOR: VendorKind = VendorKind::Crowdstrike;
/// The largest page of uids the query endpoint gives.
pub(super) const PAGE: usize = 500;
/// The most ids an entities request may carry.
pub(super) const BATCH: usize = 100;
/// A tenant larger than this many pages is a loop, not a tenant.
pub(super) const MAX_PAGES: usize = 10_000;
/// What a token lives when the answer does not say (the documented 30 minutes).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(1800);
/// Refresh this long before expiry at most (a tenth of the lifetime for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

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

/// Where the API is, and how to name it to a person.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    region: Option<Region>,
}

impl Endpoint {
    pub fn new(base: &str, region: Option<Region>) -> Self {
        Self { base: base.trim_end_matches('/').to_string(), region }
    }
    pub fn base(&self) -> &str {
        &self.base
    }
    /// "region us-2 (https://api.us-2.crowdstrike.com)" or "base_url http://...".
    pub fn describe(&self) -> String {
        match self.region {
            Some(r) => format!("region {r} ({})", self.base),
            None => format!("base_url {}", self.base),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    #[serde(alias = "uuid")]
    pub uid: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

/// One page of the uid listing.
#[derive(Debug)]
pub struct UidPage {
    pub uids: Vec<String>,
    /// No page follows.
    pub last: bool,
}

/// `{"meta": {...}, "resources": [...] | null, "errors": [...]}`.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Envelope<T> {
    #[serde(default)]
    resources: Option<Vec<T>>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize, Default)]
struct Pagination {
    #[serde(default, deserialize_with = "lenient_number")]
    total: Option<u64>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Secret,
    #[serde(default, deserialize_with = "lenient_number")]
    expires_in: Option<u64>,
}

struct Token {
    value: Secret,
    refresh_at: Instant,
    /// Which issue this is, so that many tasks seeing the same 401 refresh it once.
    generation: u64,
}

pub struct Client {
    http: VendorHttp,
    endpoint: Endpoint,
    client_id: String,
    secret: Secret,
    /// The cached token. Held across the token request, so one request is in flight at a time
    /// and every waiting task gets its result.
    token: Mutex<Option<Token>>,
    generation: std::sync::atomic::AtomicU64,
}

impl Client {
    pub fn new(http: VendorHttp, endpoint: Endpoint, client_id: &str, secret: Secret) -> Self {
        Self {
            http,
            endpoint,
            client_id: client_id.to_string(),
            secret,
            token: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    // ---- the token ----

    /// A valid token: the cached one, or a new one (one request for all waiting tasks).
    async fn bearer(&self) -> Result<(Secret, u64), Error> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok((t.value.clone(), t.generation));
        }
        let fresh = self.fetch_token().await?;
        let out = (fresh.value.clone(), fresh.generation);
        *cached = Some(fresh);
        Ok(out)
    }

    /// Forgets the token of `generation` after a 401; a newer one is kept.
    async fn invalidate(&self, generation: u64) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.generation == generation) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<Token, Error> {
        let rb = self.http.client().post(format!("{}/oauth2/token", self.endpoint.base)).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
        ]);
        let answer: TokenAnswer = match self.http.json(rb).await {
            Ok(a) => a,
            Err(e @ (HttpError::Unauthorized { .. } | HttpError::Forbidden { .. } | HttpError::NotFound { .. })) => {
                return Err(Error::Config(self.token_refused(&e)))
            }
            Err(e) => return Err(tidy(e).into()),
        };
        let ttl = answer.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_TOKEN_TTL);
        let margin = REFRESH_MARGIN.min(ttl / 10);
        let generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        tracing::debug!(ttl_s = ttl.as_secs(), generation, "new CrowdStrike access token");
        Ok(Token { value: answer.access_token, refresh_at: Instant::now() + ttl - margin, generation })
    }

    /// The token endpoint refused us. Falcon answers a tenant's credentials this way at another
    /// region's URL too (no redirect), so the message names the region to check.
    fn token_refused(&self, e: &HttpError) -> String {
        let status = e.status().map(|s| s.to_string()).unwrap_or_default();
        let said = falcon_message(e.message());
        let what =
            if self.endpoint.region.is_some() { "vendors.crowdstrike.region" } else { "vendors.crowdstrike.base_url" };
        let regions: Vec<String> = Region::ALL.iter().map(|r| format!("{r}: {}", r.base_url())).collect();
        format!(
            "CrowdStrike did not issue an access token to API client {} at {} ({status}: {said}). \
             The wrong regional URL answers exactly like this instead of redirecting: check that {what} is \
             the region of your Falcon tenant ({}; the Falcon console's address shows it), and that client_id \
             and client_secret belong to an existing API client; then replay this run.",
            self.client_id,
            self.endpoint.describe(),
            regions.join(", "),
        )
    }

    // ---- requests ----

    /// Sends with the token; on a 401 refreshes the token once and sends again.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Envelope<T>, Error> {
        let url = format!("{}{}", self.endpoint.base, path);
        let (token, generation) = self.bearer().await?;
        let first = build(self.http.client().request(method.clone(), &url)).bearer_auth(token.expose());
        match self.http.json(first).await {
            Err(HttpError::Unauthorized { .. }) => {
                self.invalidate(generation).await;
                let (token, _) = self.bearer().await?;
                let again = build(self.http.client().request(method.clone(), &url)).bearer_auth(token.expose());
                match self.http.json(again).await {
                    Err(HttpError::Unauthorized { message, .. }) => Err(Error::Config(format!(
                        "CrowdStrike rejected a freshly issued access token (401: {}) at {}: the API client {} may have been deleted or its secret reset; check it in the Falcon console (Support and resources > API clients and keys), then replay this run",
                        falcon_message(&message),
                        self.endpoint.describe(),
                        self.client_id
                    ))),
                    other => other.map_err(|e| self.classify(&method, e)),
                }
            }
            other => other.map_err(|e| self.classify(&method, e)),
        }
    }

    fn classify(&self, method: &Method, e: HttpError) -> Error {
        match e {
            HttpError::Forbidden { message, .. } => {
                let scope = if *method == Method::GET { "user-management:read" } else { "user-management:write" };
                Error::Config(format!(
                    "the CrowdStrike API client {} is not allowed to do this (403: {}): it needs the {scope} scope. Add the scope to the API client in the Falcon console (Support and resources > API clients and keys; scopes are fixed when a client is created, so you may have to create a new one), then replay this run",
                    self.client_id,
                    falcon_message(&message)
                ))
            }
            other => Error::Http(tidy(other)),
        }
    }

    // ---- users ----

    /// Every user's uid, page by page (offset pagination, 500 a page). The workflows never list
    /// the tenant (they use [`Client::find_user`]); the directory reads it page by page itself
    /// ([`Client::user_uid_page`]) to report progress.
    pub async fn user_uids(&self) -> Result<Vec<String>, Error> {
        let mut out: Vec<String> = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.user_uid_page(out.len()).await?;
            out.extend(page.uids);
            if page.last {
                out.dedup();
                return Ok(out);
            }
        }
        Err(too_many_pages())
    }

    /// One page of uids (the largest, 500) from `offset`: one request.
    pub async fn user_uid_page(&self, offset: usize) -> Result<UidPage, Error> {
        let env: Envelope<String> = self
            .call(Method::GET, "/users/queries/user-uids/v1", |rb| {
                rb.query(&[("offset", offset.to_string()), ("limit", PAGE.to_string())])
            })
            .await?;
        let uids = env.resources.unwrap_or_default();
        let total = env.meta.pagination.and_then(|p| p.total);
        // With a total, the page that reaches it is the last; without one, a short page is.
        let last = match total {
            Some(total) => (offset + uids.len()) as u64 >= total || uids.is_empty(),
            None => uids.len() < PAGE,
        };
        Ok(UidPage { uids, last })
    }

    /// The users with these uids, read in batches of at most 100; unknown uids are skipped.
    pub async fn users(&self, uids: &[String]) -> Result<Vec<User>, Error> {
        let mut out = Vec::new();
        for batch in uids.chunks(BATCH) {
            let ids: Vec<(&str, &str)> = batch.iter().map(|id| ("ids", id.as_str())).collect();
            match self.call::<User>(Method::GET, "/users/entities/users/v1", |rb| rb.query(&ids)).await {
                Ok(env) => out.extend(env.resources.unwrap_or_default()),
                // None of them exists (any more).
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub async fn get_user(&self, uid: &str) -> Result<Option<User>, Error> {
        Ok(self.users(&[uid.to_string()]).await?.into_iter().find(|u| u.uid == uid))
    }

    /// The uid of the user whose username (login e-mail) is this address, ignoring case, in one
    /// request whatever the tenant's size: `GET /users/queries/user-uids/v1?uid=<address>`. The
    /// documented listing shows no filter, but the API filters by `uid` (the login address).
    ///
    /// Usernames are unique, so more than one uid means the filter was not applied (a listing
    /// came back): that is an error, never a guess at which user is meant.
    pub async fn find_user(&self, email: &EmployeeEmail) -> Result<Option<String>, Error> {
        let env: Envelope<String> =
            self.call(Method::GET, "/users/queries/user-uids/v1", |rb| rb.query(&[("uid", email.as_str())])).await?;
        let mut uids = env.resources.unwrap_or_default();
        uids.dedup();
        let total = env.meta.pagination.and_then(|p| p.total).unwrap_or(uids.len() as u64);
        match uids.len() {
            0 => Ok(None),
            1 if total <= 1 => Ok(uids.pop()),
            _ => Err(Error::Ambiguous(format!(
                "CrowdStrike answered {} users (first: {}) when asked for the one whose username is {email}; \
                 usernames are unique in Falcon, so the lookup was not applied as asked. Check the user in the \
                 Falcon console and the API at {}, then replay this run",
                total.max(uids.len() as u64),
                uids.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                self.endpoint.describe()
            ))),
        }
    }

    /// Creates the user (Falcon emails them an invitation to set a password). Roles cannot be
    /// given here: they are granted separately.
    pub async fn create_user(&self, email: &EmployeeEmail, first: &str, last: &str) -> Result<User, Error> {
        let body = json!({ "username": email.as_str(), "first_name": first, "last_name": last });
        let env: Envelope<User> = self.call(Method::POST, "/users/entities/users/v1", |rb| rb.json(&body)).await?;
        first_resource(env, "created user")
    }

    /// `user_uuid` goes in the query, not the body.
    pub async fn update_names(&self, uid: &str, first: &str, last: &str) -> Result<(), Error> {
        let body = json!({ "first_name": first, "last_name": last });
        self.call::<Value>(Method::PATCH, "/users/entities/users/v1", |rb| rb.query(&[("user_uuid", uid)]).json(&body))
            .await
            .map(drop)
    }

    /// Immediate and irreversible.
    pub async fn delete_user(&self, uid: &str) -> Result<(), Error> {
        self.call::<Value>(Method::DELETE, "/users/entities/users/v1", |rb| rb.query(&[("user_uuid", uid)]))
            .await
            .map(drop)
    }

    // ---- roles ----

    /// Every role id of the tenant (case-sensitive strings).
    pub async fn role_ids(&self) -> Result<Vec<String>, Error> {
        let env: Envelope<String> = self.call(Method::GET, "/user-roles/queries/roles/v1", |rb| rb).await?;
        Ok(env.resources.unwrap_or_default())
    }

    /// The user's role ids; `None` when the user does not exist.
    pub async fn user_roles(&self, uid: &str) -> Result<Option<Vec<String>>, Error> {
        match self
            .call::<String>(Method::GET, "/user-roles/queries/user-role-ids-by-user-uuid/v1", |rb| {
                rb.query(&[("user_uuid", uid)])
            })
            .await
        {
            Ok(env) => Ok(Some(env.resources.unwrap_or_default())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn grant_roles(&self, uid: &str, roles: &[String]) -> Result<(), Error> {
        let body = json!({ "roleIds": roles, "user_uuid": uid });
        self.call::<Value>(Method::POST, "/user-roles/entities/user-roles/v1", |rb| rb.json(&body)).await.map(drop)
    }

    /// Both parameters in the query. Revoking a role the user does not hold is an error (400).
    pub async fn revoke_role(&self, uid: &str, role: &str) -> Result<(), Error> {
        self.revoke_roles(uid, &[role.to_string()]).await
    }

    /// Several roles in one request (`roleId` repeated). All or nothing: one role the user does
    /// not hold refuses the whole request (400), and none is revoked.
    pub async fn revoke_roles(&self, uid: &str, roles: &[String]) -> Result<(), Error> {
        let query: Vec<(&str, &str)> =
            std::iter::once(("user_uuid", uid)).chain(roles.iter().map(|r| ("roleId", r.as_str()))).collect();
        self.call::<Value>(Method::DELETE, "/user-roles/entities/user-roles/v1", |rb| rb.query(&query)).await.map(drop)
    }
}

/// The uid listing did not end: a loop at the vendor, not a tenant.
pub(super) fn too_many_pages() -> Error {
    Error::Http(HttpError::Decode {
        vendor: VENDOR,
        message: format!("the user list did not end after {MAX_PAGES} pages"),
    })
}

fn first_resource<T>(env: Envelope<T>, what: &str) -> Result<T, Error> {
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
fn tidy(e: HttpError) -> HttpError {
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

/// Falcon's 429 names the moment the budget returns in `X-RateLimit-RetryAfter`: a Unix
/// timestamp in seconds (what the real API and our simulator send). A small number is read as
/// a delay in seconds instead; a plain `Retry-After` is the fallback.
pub(crate) fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    if let Some(v) = header("x-ratelimit-retryafter") {
        // Anything after 2001-09-09 is a timestamp; no vendor asks for a 31-year pause.
        if v >= 1_000_000_000.0 {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
            return Some(Duration::from_secs_f64((v - now).clamp(0.05, 3600.0)));
        }
        return Some(Duration::from_secs_f64(v.clamp(0.05, 3600.0)));
    }
    header("retry-after").map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)))
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
    use crate::ratelimit::Limiter;
    use lifecycle_vendor_sim::registry::VendorSim;
    use lifecycle_vendor_sim::{Config as SimConfig, Running, Vendor};
    use std::sync::Arc;

    #[test]
    fn retry_after_is_read_as_an_epoch_timestamp() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-retryafter", (now + 3).to_string().parse().unwrap());
        let wait = retry_hint(&h).unwrap();
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(3), "{wait:?}");
        // In the past: come back almost at once, not never.
        h.insert("x-ratelimit-retryafter", (now - 10).to_string().parse().unwrap());
        assert_eq!(retry_hint(&h).unwrap(), Duration::from_millis(50));
    }

    #[test]
    fn a_small_retry_after_is_a_delay_and_retry_after_is_the_fallback() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-retryafter", "2".parse().unwrap());
        assert_eq!(retry_hint(&h).unwrap(), Duration::from_secs(2));
        let mut h = HeaderMap::new();
        h.insert("retry-after", "4".parse().unwrap());
        assert_eq!(retry_hint(&h).unwrap(), Duration::from_secs(4));
        assert_eq!(retry_hint(&HeaderMap::new()), None);
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
        let u: User = serde_json::from_value(json!({"uuid": "u-9", "username": "a@example.com"})).unwrap();
        assert_eq!(u.uid, "u-9", "the newer API's `uuid` is accepted too");
    }

    #[test]
    fn a_token_answer_keeps_the_token_secret() {
        let a: TokenAnswer =
            serde_json::from_value(json!({"access_token": "tok-123", "token_type": "bearer", "expires_in": "1799"}))
                .unwrap();
        assert_eq!(a.expires_in, Some(1799));
        assert!(!format!("{:?}", a.access_token).contains("tok-123"));
    }

    // ---- against the simulator, in process ----

    async fn sim(config: SimConfig) -> Running {
        lifecycle_vendor_sim::build(config).await.expect("the simulator starts")
    }

    fn client_for(base: &str, region: Option<Region>) -> Arc<Client> {
        let http = VendorHttp::new(VENDOR, Duration::from_secs(5), Arc::new(Limiter::new(None)), retry_hint);
        Arc::new(Client::new(http, Endpoint::new(base, region), "cs-client-id", Secret::new("cs-client-secret")))
    }

    fn token_requests(running: &Running) -> u64 {
        let counters = running.sim.lock().journal.counters(Vendor::CrowdStrike);
        counters.by_route.iter().filter(|(k, _)| k.ends_with("/oauth2/token")).map(|(_, v)| *v).sum()
    }

    #[tokio::test]
    async fn concurrent_tasks_share_one_token_request() {
        let running = sim(SimConfig::ephemeral()).await;
        let client = client_for(&running.base_url(Vendor::CrowdStrike), None);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let c = client.clone();
            tasks.spawn(async move { c.role_ids().await.map(|r| r.len()) });
        }
        while let Some(r) = tasks.join_next().await {
            assert!(r.unwrap().unwrap() >= 4);
        }
        assert_eq!(token_requests(&running), 1, "one token for twenty concurrent calls");
    }

    #[tokio::test]
    async fn a_401_refreshes_the_token_once_for_everyone() {
        let running = sim(SimConfig::ephemeral()).await;
        let client = client_for(&running.base_url(Vendor::CrowdStrike), None);
        client.role_ids().await.unwrap();
        assert_eq!(token_requests(&running), 1);
        // The cached token stops working (revoked, or expired early): every task sees a 401.
        *client.token.lock().await = Some(Token {
            value: Secret::new("revoked"),
            refresh_at: Instant::now() + Duration::from_secs(600),
            generation: 99,
        });
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let c = client.clone();
            tasks.spawn(async move { c.role_ids().await.map(|r| r.len()) });
        }
        while let Some(r) = tasks.join_next().await {
            assert!(r.unwrap().unwrap() >= 4, "every task recovered after the refresh");
        }
        assert_eq!(token_requests(&running), 2, "ten 401s, one refresh");
        let counters = running.sim.lock().journal.counters(Vendor::CrowdStrike);
        assert_eq!(counters.by_route["GET /user-roles/queries/roles/v1"], 1 + 10 + 10);
    }

    #[tokio::test]
    async fn the_token_is_refreshed_before_it_expires() {
        let mut config = SimConfig::ephemeral();
        config.crowdstrike.token_ttl_secs = 1;
        let running = sim(config).await;
        let client = client_for(&running.base_url(Vendor::CrowdStrike), None);
        client.role_ids().await.unwrap();
        tokio::time::sleep(Duration::from_millis(950)).await;
        client.role_ids().await.unwrap();
        assert_eq!(token_requests(&running), 2, "renewed at 90 % of its life");
        let counters = running.sim.lock().journal.counters(Vendor::CrowdStrike);
        assert_eq!(counters.requests, 4, "no request was refused with 401");
    }

    #[tokio::test]
    async fn a_wrong_region_names_the_region_to_check() {
        let running = sim(SimConfig::ephemeral()).await;
        let foreign = format!("{}/eu-1", running.base_url(Vendor::CrowdStrike));
        let client = client_for(&foreign, Some(Region::Eu1));
        let err = client.role_ids().await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(msg.contains("region eu-1") && msg.contains("vendors.crowdstrike.region"), "{msg}");
        assert!(msg.contains("Failed to issue access token"), "{msg}");
        assert!(!msg.contains("cs-client-secret"), "never the secret: {msg}");
        assert!(matches!(StepError::from(err), StepError::Permanent { .. }));
    }

    #[tokio::test]
    async fn a_client_without_the_write_scope_is_told_which_scope_to_add() {
        let running = sim(SimConfig::ephemeral()).await;
        running
            .sim
            .lock()
            .tenants
            .crowdstrike
            .seed(json!({"api_clients": [{"client_id": "ro", "client_secret": "ro-secret", "scopes": ["user-management:read"]}]}))
            .unwrap();
        let http = VendorHttp::new(VENDOR, Duration::from_secs(5), Arc::new(Limiter::new(None)), retry_hint);
        let base = running.base_url(Vendor::CrowdStrike);
        let client = Client::new(http, Endpoint::new(&base, None), "ro", Secret::new("ro-secret"));
        assert!(client.role_ids().await.is_ok(), "reading is allowed");
        let email = EmployeeEmail::parse("x@example.com").unwrap();
        let err = client.create_user(&email, "X", "Y").await.unwrap_err();
        assert!(err.to_string().contains("user-management:write"), "{err}");
    }

    /// The simulator with `n` more users, `u0@bulk.example.com` onwards (the fixture has two).
    async fn sim_with_bulk_users(n: usize) -> Running {
        let running = sim(SimConfig::ephemeral()).await;
        let users: Vec<Value> = (0..n)
            .map(|i| json!({"username": format!("u{i}@bulk.example.com"), "first_name": "U", "last_name": format!("{i}")}))
            .collect();
        running.sim.lock().tenants.crowdstrike.seed(json!({ "users": users })).unwrap();
        running
    }

    #[tokio::test]
    async fn finding_a_user_is_one_request_whatever_the_tenants_size() {
        let running = sim_with_bulk_users(620).await;
        let client = client_for(&running.base_url(Vendor::CrowdStrike), None);
        let last = EmployeeEmail::parse("U619@bulk.example.com").unwrap();
        let uid = client.find_user(&last).await.unwrap().expect("found, however it is cased");
        let user = client.get_user(&uid).await.unwrap().unwrap();
        assert_eq!(user.username, "u619@bulk.example.com");
        let nobody = EmployeeEmail::parse("nobody@bulk.example.com").unwrap();
        assert!(client.find_user(&nobody).await.unwrap().is_none());
        let counters = running.sim.lock().journal.counters(Vendor::CrowdStrike);
        assert_eq!(counters.by_route["GET /users/queries/user-uids/v1"], 2, "one request per lookup");
        assert_eq!(counters.by_route["GET /users/entities/users/v1"], 1, "only the get_user");
    }

    #[tokio::test]
    async fn the_inventory_listing_pages_through_every_uid_in_batches() {
        let running = sim_with_bulk_users(620).await;
        let client = client_for(&running.base_url(Vendor::CrowdStrike), None);
        let uids = client.user_uids().await.unwrap();
        assert_eq!(uids.len(), 622);
        let all = client.users(&uids).await.unwrap();
        assert!(all.iter().any(|u| u.username == "u619@bulk.example.com"), "the last page is read too");
        let counters = running.sim.lock().journal.counters(Vendor::CrowdStrike);
        assert_eq!(counters.by_route["GET /users/queries/user-uids/v1"], 2, "two pages of 500");
        assert_eq!(counters.by_route["GET /users/entities/users/v1"], 7, "batches of at most 100");
    }

    #[tokio::test]
    async fn a_lookup_answered_with_several_users_is_an_error_not_a_guess() {
        // A server that ignores `uid` and lists everyone: never pick one of them.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let vendor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = vendor.local_addr().unwrap();
        tokio::spawn(async move {
            let body = r#"{"meta":{"pagination":{"offset":0,"limit":100,"total":2}},"resources":["u-1","u-2"]}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            while let Ok((mut s, _)) = vendor.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(k) if k > 0) {
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let client = client_for(&format!("http://{addr}"), None);
        // A token already held: only the lookup goes to this server.
        *client.token.lock().await = Some(Token {
            value: Secret::new("t"),
            refresh_at: Instant::now() + Duration::from_secs(600),
            generation: 1,
        });
        let err = client.find_user(&EmployeeEmail::parse("ada@example.com").unwrap()).await.unwrap_err();
        assert!(matches!(err, Error::Ambiguous(_)), "{err:?}");
        assert!(err.to_string().contains("answered 2 users"), "{err}");
        assert!(matches!(StepError::from(err), StepError::Permanent { .. }));
    }
}
