//! The Falcon user-management API, as much of it as our workflows need, behind a shared
//! OAuth2 token. Each request is the operation of Falcon's published definition named on its
//! method (FalconPy 1.6.2's endpoint table `_endpoint/_user_management.py`, gofalcon's models):
//! the current `/user-management/...` family, never the deprecated `/users/...` and
//! `/user-roles/...` one.

use super::wire::{falcon_message, first_resource, tidy, Envelope, Error, TokenAnswer, UidPage, User};
use super::Region;
use crate::http::{HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

const VENDOR: VendorKind = VendorKind::Crowdstrike;
/// The largest page queryUserV1 and CombinedUserRolesV2 give (`limit` "[1-500]").
pub(super) const PAGE: usize = 500;
/// User ids per retrieveUsersGETV1 request: one page of the listing (the definition allows
/// 5000; a page keeps a request and its answer small and progress regular).
pub(super) const BATCH: usize = 500;
/// A tenant larger than this many pages is a loop, not a tenant.
pub(super) const MAX_PAGES: usize = 10_000;
/// What a token lives when the answer does not say (the documented 30 minutes).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(1800);
/// Refresh this long before expiry at most (a tenth of the lifetime for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

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
    /// The tenant's CID, as the answers show it (a user's `cid`, a grant's `cid`): a role
    /// action must name it, and it never changes for an API client.
    pub(super) cid: std::sync::Mutex<Option<String>>,
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
            cid: std::sync::Mutex::new(None),
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

    /// oauth2AccessToken `POST /oauth2/token`, form `client_id`, `client_secret` (the fields
    /// the definition lists; no `grant_type`).
    async fn fetch_token(&self) -> Result<Token, Error> {
        let rb = self
            .http
            .client()
            .post(format!("{}/oauth2/token", self.endpoint.base))
            .form(&[("client_id", self.client_id.as_str()), ("client_secret", self.secret.expose())]);
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
    pub(super) async fn call<T: DeserializeOwned>(
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

    /// Every user's id, page by page (queryUserV1, 500 a page). The workflows never list the
    /// tenant (they use [`Client::find_user`]); the directory reads it page by page itself
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

    /// One page of user ids (the largest, 500) from `offset`: queryUserV1
    /// `GET /user-management/queries/users/v1?offset=&limit=500`, one request.
    pub async fn user_uid_page(&self, offset: usize) -> Result<UidPage, Error> {
        let env: Envelope<String> = self
            .call(Method::GET, "/user-management/queries/users/v1", |rb| {
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

    /// The users with these ids, in batches of [`BATCH`]: retrieveUsersGETV1
    /// `POST /user-management/entities/users/GET/v1` `{"ids": [...]}`. Ids that name nobody
    /// are skipped.
    pub async fn users(&self, uuids: &[String]) -> Result<Vec<User>, Error> {
        let mut out = Vec::new();
        for batch in uuids.chunks(BATCH) {
            let body = json!({ "ids": batch });
            match self.call::<User>(Method::POST, "/user-management/entities/users/GET/v1", |rb| rb.json(&body)).await {
                Ok(env) => out.extend(env.resources.unwrap_or_default()),
                // None of them exists (any more).
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(cid) = out.iter().find_map(|u| u.cid.clone()) {
            self.learn_cid(cid);
        }
        Ok(out)
    }

    pub async fn get_user(&self, uuid: &str) -> Result<Option<User>, Error> {
        Ok(self.users(&[uuid.to_string()]).await?.into_iter().find(|u| u.uuid == uuid))
    }

    /// The id of the user whose login (`uid`, the e-mail address) is this address, in one
    /// request whatever the tenant's size: queryUserV1
    /// `GET /user-management/queries/users/v1?filter=uid:'<address>'` (FQL, the address
    /// lower-cased, `\` and `'` escaped).
    ///
    /// Logins are unique, so more than one id means the filter was not applied (a listing
    /// came back): that is an error, never a guess at which user is meant.
    pub async fn find_user(&self, email: &EmployeeEmail) -> Result<Option<String>, Error> {
        let filter = format!("uid:{}", fql_string(&email.normalized()));
        let env: Envelope<String> =
            self.call(Method::GET, "/user-management/queries/users/v1", |rb| rb.query(&[("filter", &filter)])).await?;
        let mut uids = env.resources.unwrap_or_default();
        uids.dedup();
        let total = env.meta.pagination.and_then(|p| p.total).unwrap_or(uids.len() as u64);
        match uids.len() {
            0 => Ok(None),
            1 if total <= 1 => Ok(uids.pop()),
            _ => Err(Error::Ambiguous(format!(
                "CrowdStrike answered {} users (first: {}) when asked for the one whose login is {email}; \
                 logins are unique in Falcon, so the lookup was not applied as asked. Check the user in the \
                 Falcon console and the API at {}, then replay this run",
                total.max(uids.len() as u64),
                uids.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                self.endpoint.describe()
            ))),
        }
    }

    /// Creates the user: createUserV1 `POST /user-management/entities/users/v1`
    /// `{"uid", "first_name", "last_name"}` (`domain.CreateUserRequest`; no password, so Falcon
    /// emails an activation request, or SSO applies). Roles cannot be given here: they are
    /// granted separately.
    pub async fn create_user(&self, email: &EmployeeEmail, first: &str, last: &str) -> Result<User, Error> {
        let body = json!({ "uid": email.as_str(), "first_name": first, "last_name": last });
        let env: Envelope<User> =
            self.call(Method::POST, "/user-management/entities/users/v1", |rb| rb.json(&body)).await?;
        let user = first_resource(env, "created user")?;
        if let Some(cid) = &user.cid {
            self.learn_cid(cid.clone());
        }
        Ok(user)
    }

    /// updateUserV1 `PATCH /user-management/entities/users/v1?user_uuid=`
    /// `{"first_name", "last_name"}` (`domain.UpdateUserRequest`; both, as the definition asks).
    pub async fn update_names(&self, uuid: &str, first: &str, last: &str) -> Result<(), Error> {
        let body = json!({ "first_name": first, "last_name": last });
        self.call::<Value>(Method::PATCH, "/user-management/entities/users/v1", |rb| {
            rb.query(&[("user_uuid", uuid)]).json(&body)
        })
        .await
        .map(drop)
    }

    /// deleteUserV1 `DELETE /user-management/entities/users/v1?user_uuid=`. Immediate and
    /// irreversible.
    pub async fn delete_user(&self, uuid: &str) -> Result<(), Error> {
        self.call::<Value>(Method::DELETE, "/user-management/entities/users/v1", |rb| rb.query(&[("user_uuid", uuid)]))
            .await
            .map(drop)
    }
}

/// An FQL string literal: single-quoted, with `\` and `'` escaped by a backslash (a quote is
/// legal in an e-mail's local part: `o'brien@example.com`).
pub(crate) fn fql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The uid listing did not end: a loop at the vendor, not a tenant.
pub(super) fn too_many_pages() -> Error {
    Error::Http(HttpError::Decode {
        vendor: VENDOR,
        message: format!("the user list did not end after {MAX_PAGES} pages"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::wire::retry_hint;
    use super::*;
    use crate::ratelimit::Limiter;
    use lifecycle_engine::StepError;
    use lifecycle_vendor_sim::registry::VendorSim;
    use lifecycle_vendor_sim::{Config as SimConfig, Running, Vendor};
    use std::sync::Arc;

    #[test]
    fn fql_strings_are_quoted_and_escaped() {
        assert_eq!(fql_string("ada@example.com"), "'ada@example.com'");
        assert_eq!(fql_string("o'brien@example.com"), r"'o\'brien@example.com'");
        assert_eq!(fql_string(r"a\b"), r"'a\\b'");
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
        assert_eq!(counters.by_route["GET /user-management/queries/roles/v1"], 1 + 10 + 10);
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
        assert_eq!((user.uuid.as_str(), user.uid.as_str()), (uid.as_str(), "u619@bulk.example.com"));
        let nobody = EmployeeEmail::parse("nobody@bulk.example.com").unwrap();
        assert!(client.find_user(&nobody).await.unwrap().is_none());
        let counters = running.sim.lock().journal.counters(Vendor::CrowdStrike);
        assert_eq!(counters.by_route["GET /user-management/queries/users/v1"], 2, "one request per lookup");
        assert_eq!(counters.by_route["POST /user-management/entities/users/GET/v1"], 1, "only the get_user");
    }

    #[tokio::test]
    async fn the_inventory_listing_pages_through_every_uid_in_batches() {
        let running = sim_with_bulk_users(620).await;
        let client = client_for(&running.base_url(Vendor::CrowdStrike), None);
        let uids = client.user_uids().await.unwrap();
        assert_eq!(uids.len(), 622);
        let all = client.users(&uids).await.unwrap();
        assert_eq!(all.len(), 622);
        assert!(all.iter().any(|u| u.uid == "u619@bulk.example.com"), "the last page is read too");
        let counters = running.sim.lock().journal.counters(Vendor::CrowdStrike);
        assert_eq!(counters.by_route["GET /user-management/queries/users/v1"], 2, "two pages of 500");
        assert_eq!(counters.by_route["POST /user-management/entities/users/GET/v1"], 2, "batches of at most 500");
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
