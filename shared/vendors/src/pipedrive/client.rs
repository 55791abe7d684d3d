//! The Pipedrive admin API, as much of it as our workflows need, exactly as Pipedrive publishes it
//! (docs/vendors/pipedrive.md cites each operation): users and roles through API v1
//! (`/api/v1/...`), deals through API v2 (`/api/v2/...`), both under the company's one base URL.

use super::AuthMode;
use crate::http::{HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// Pages of 500: the most `GET /api/v1/roles` and `GET /api/v2/deals` give (getDeals: "a
/// maximum value of 500 is allowed"), to keep request counts down.
const PAGE: u32 = 500;
/// Pages of [`PAGE`] items: five million roles or deals is a vendor bug, not a company.
const MAX_PAGES: usize = 10_000;
/// The header the API token travels in (Pipedrive's authentication docs; SDK 27.0.0).
const TOKEN_HEADER: &str = "x-api-token";

/// A user as `GET /api/v1/users` and friends show it (SDK model `BaseUser`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub active_flag: bool,
    /// One entry per app the user may use (SDK model `UserAccess`); `is_admin` left the API.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub access: Vec<UserAccess>,
    #[serde(default)]
    pub role_id: Option<i64>,
    /// The user who created the company: its owner.
    #[serde(default)]
    pub has_created_company: bool,
}

/// `access[]` of a user: the app, and whether the user administers it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UserAccess {
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub permission_set_id: Option<String>,
}

impl User {
    /// An admin, for the last-admin guard: `admin` on the `global` app (the company account) or
    /// on `sales` (the CRM whose users we manage). Pipedrive has no single admin flag any more.
    pub fn is_admin(&self) -> bool {
        self.access.iter().any(|a| a.admin && matches!(a.app.as_deref(), Some("global" | "sales")))
    }
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

/// A deal as API v2 shows it (SDK v2 model `Deal`): the owner is `owner_id`, an integer.
#[derive(Debug, Clone, Deserialize)]
pub struct Deal {
    pub id: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub owner_id: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub is_deleted: bool,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Envelope<T> {
    #[serde(default = "none")]
    data: Option<T>,
    #[serde(default)]
    additional_data: Option<AdditionalData>,
}

/// v1 lists: `additional_data.pagination`; v2 lists: `additional_data.next_cursor`.
#[derive(Deserialize, Default)]
struct AdditionalData {
    #[serde(default)]
    pagination: Option<Pagination>,
    #[serde(default)]
    next_cursor: Option<String>,
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
    /// The company's root (`https://<company>.pipedrive.com`), no trailing slash.
    base: String,
    token: Secret,
    auth: AuthMode,
}

impl Client {
    /// `base_url` is the company's root; one that ends in `/api/v1`, `/api/v2` or `/v1` (the
    /// form we once configured, `https://api.pipedrive.com/v1`) is read as the root before it.
    pub fn new(http: VendorHttp, base_url: &str, token: Secret, auth: AuthMode) -> Self {
        Self { http, base: company_root(base_url), token, auth }
    }

    /// A request to API v1 (`path` after `/api/v1`).
    fn v1(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, &format!("/api/v1{path}"))
    }

    /// A request to API v2 (`path` after `/api/v2`).
    fn v2(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, &format!("/api/v2{path}"))
    }

    /// The credential goes in a header, never in the URL: an `x-api-token` (personal API
    /// token) or an OAuth access token as Bearer.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.client().request(method, format!("{}{path}", self.base));
        match self.auth {
            AuthMode::ApiToken => match HeaderValue::from_str(self.token.expose()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    rb.header(TOKEN_HEADER, value)
                }
                // Refused by the configuration already; reqwest reports it without the value.
                Err(_) => rb.header(TOKEN_HEADER, self.token.expose()),
            },
            AuthMode::Bearer => rb.bearer_auth(self.token.expose()),
        }
    }

    async fn data<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<Option<T>, HttpError> {
        let env: Envelope<T> = self.http.json(rb).await?;
        Ok(env.data)
    }

    /// A v1 offset-paged list (`start`, `limit`), followed until the collection is exhausted:
    /// `next_start` where Pipedrive gives it, else the items read so far (getRoles gives
    /// only `more_items_in_collection`). Fails after [`MAX_PAGES`]: a collection that says
    /// "more" for ever (found by the fuzzer, FUZZING.md) must not hold a worker and grow without end.
    async fn all_v1<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut start: u64 = 0;
        for _ in 0..MAX_PAGES {
            let rb = self.v1(Method::GET, path).query(&[("start", start.to_string()), ("limit", PAGE.to_string())]);
            let env: Envelope<Vec<T>> = self.http.json(rb).await?;
            let page = env.data.unwrap_or_default();
            let got = page.len() as u64;
            out.extend(page);
            let pagination = env.additional_data.and_then(|a| a.pagination).unwrap_or_default();
            match pagination.next_start {
                Some(next) if pagination.more_items_in_collection && next > start => start = next,
                None if pagination.more_items_in_collection && got > 0 => start += got,
                _ => return Ok(out),
            }
        }
        Err(endless(path))
    }

    /// A v2 cursor-paged list: `limit` and `cursor`, following `additional_data.next_cursor`
    /// (null, or absent, at the end). Bounded as [`all_v1`](Self::all_v1) is.
    async fn all_v2<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut rb = self.v2(Method::GET, path).query(query).query(&[("limit", PAGE.to_string())]);
            if let Some(c) = &cursor {
                rb = rb.query(&[("cursor", c)]);
            }
            let env: Envelope<Vec<T>> = self.http.json(rb).await?;
            out.extend(env.data.unwrap_or_default());
            match env.additional_data.and_then(|a| a.next_cursor).filter(|c| !c.is_empty()) {
                // The same cursor again would loop for ever: treat it as the end's bug it is.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                Some(_) => return Err(endless(path)),
                None => return Ok(out),
            }
        }
        Err(endless(path))
    }

    /// The user with exactly this address, active or not (findUsersByName, `search_by_email=1`).
    /// It matches partially ("ada@example.com" also finds "nada@example.com"), so the exact
    /// address is filtered here.
    pub async fn find_user_by_email(&self, email: &EmployeeEmail) -> Result<Option<User>, HttpError> {
        let rb = self.v1(Method::GET, "/users/find").query(&[("term", email.as_str()), ("search_by_email", "1")]);
        let users: Vec<User> = self.data(rb).await?.unwrap_or_default();
        Ok(users.into_iter().find(|u| u.email.as_deref().is_some_and(|e| email.matches(e))))
    }

    /// `GET /api/v1/users/{id}` (getUser).
    pub async fn get_user(&self, id: i64) -> Result<User, HttpError> {
        self.data(self.v1(Method::GET, &format!("/users/{id}"))).await?.ok_or_else(|| missing("user"))
    }

    /// Every user, deactivated ones included: `GET /api/v1/users` (getUsers), which takes no
    /// parameters and pages nothing, so it is one request whatever the company's size.
    pub async fn list_users(&self) -> Result<Vec<User>, HttpError> {
        Ok(self.data(self.v1(Method::GET, "/users")).await?.unwrap_or_default())
    }

    /// [`list_users`](Self::list_users), telling `on_page` how many users were read (once: there
    /// is one page).
    pub async fn list_users_paged(&self, mut on_page: impl FnMut(usize) + Send) -> Result<Vec<User>, HttpError> {
        let users = self.list_users().await?;
        on_page(users.len());
        Ok(users)
    }

    /// `GET /api/v1/users/me` (getCurrentUser): the user the token belongs to.
    pub async fn me(&self) -> Result<User, HttpError> {
        self.data(self.v1(Method::GET, "/users/me")).await?.ok_or_else(|| missing("user"))
    }

    /// `POST /api/v1/users` (addUser): `email` (required), `access` (the default Sales access,
    /// said out loud) and `active_flag`. No name: Pipedrive removed it from this body in 2023
    /// (SDK 18.1.4); the person sets their own when they accept Pipedrive's invitation.
    pub async fn create_user(&self, email: &EmployeeEmail) -> Result<User, HttpError> {
        let rb = self.v1(Method::POST, "/users").json(&json!({
            "email": email.as_str(),
            "access": [{ "app": "sales" }],
            "active_flag": true,
        }));
        self.data(rb).await?.ok_or_else(|| missing("created user"))
    }

    /// `PUT /api/v1/users/{id}` (updateUser) `{"active_flag"}`: the only field it takes.
    pub async fn set_active(&self, id: i64, active: bool) -> Result<User, HttpError> {
        let rb = self.v1(Method::PUT, &format!("/users/{id}")).json(&json!({ "active_flag": active }));
        self.data(rb).await?.ok_or_else(|| missing("updated user"))
    }

    /// `GET /api/v1/roles?start&limit` (getRoles).
    pub async fn roles(&self) -> Result<Vec<Role>, HttpError> {
        self.all_v1("/roles").await
    }

    /// `GET /api/v1/users/{id}/roleAssignments` (getUserRoleAssignments): a user holds one role,
    /// so the default page holds them all.
    pub async fn role_assignments(&self, user_id: i64) -> Result<Vec<RoleAssignment>, HttpError> {
        let rb = self.v1(Method::GET, &format!("/users/{user_id}/roleAssignments"));
        Ok(self.data(rb).await?.unwrap_or_default())
    }

    /// `POST /api/v1/roles/{id}/assignments` `{"user_id"}` (addRoleAssignment).
    pub async fn assign_role(&self, role_id: i64, user_id: i64) -> Result<(), HttpError> {
        let rb = self.v1(Method::POST, &format!("/roles/{role_id}/assignments")).json(&json!({ "user_id": user_id }));
        self.http.send(rb).await.map(|_| ())
    }

    /// `DELETE /api/v1/roles/{id}/assignments` `{"user_id"}` (deleteRoleAssignment: a JSON body
    /// on a DELETE is what the definition says).
    pub async fn unassign_role(&self, role_id: i64, user_id: i64) -> Result<(), HttpError> {
        let rb = self.v1(Method::DELETE, &format!("/roles/{role_id}/assignments")).json(&json!({ "user_id": user_id }));
        self.http.send(rb).await.map(|_| ())
    }

    /// Every open deal the user owns: `GET /api/v2/deals?owner_id&status=open&limit=500[&cursor]`
    /// (getDeals), all pages collected *before* anything is reassigned.
    pub async fn open_deals(&self, owner_id: i64) -> Result<Vec<Deal>, HttpError> {
        let deals: Vec<Deal> =
            self.all_v2("/deals", &[("owner_id", owner_id.to_string()), ("status", "open".into())]).await?;
        // Keep only what the filter promised, in case a page was served stale.
        Ok(deals
            .into_iter()
            .filter(|d| {
                d.owner_id == Some(owner_id) && !d.is_deleted && d.status.as_deref().is_none_or(|s| s == "open")
            })
            .collect())
    }

    /// `GET /api/v2/deals/{id}` (getDeal).
    pub async fn get_deal(&self, id: i64) -> Result<Deal, HttpError> {
        self.data(self.v2(Method::GET, &format!("/deals/{id}"))).await?.ok_or_else(|| missing("deal"))
    }

    /// `PATCH /api/v2/deals/{id}` `{"owner_id"}` (updateDeal).
    pub async fn set_deal_owner(&self, deal_id: i64, owner_id: i64) -> Result<(), HttpError> {
        let rb = self.v2(Method::PATCH, &format!("/deals/{deal_id}")).json(&json!({ "owner_id": owner_id }));
        self.http.send(rb).await.map(|_| ())
    }
}

/// The company's root from a configured base URL: without a trailing slash, and without the
/// `/api/v1`, `/api/v2` or `/v1` an older configuration ended in.
pub(crate) fn company_root(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    ["/api/v1", "/api/v2", "/v1"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))
        .unwrap_or(base)
        .trim_end_matches('/')
        .to_string()
}

fn none<T>() -> Option<T> {
    None
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn missing(what: &str) -> HttpError {
    HttpError::Decode { vendor: VendorKind::Pipedrive, message: format!("the response carried no {what}") }
}

fn endless(path: &str) -> HttpError {
    HttpError::Decode {
        vendor: VendorKind::Pipedrive,
        message: format!("{path}: still more items after {MAX_PAGES} pages of {PAGE}"),
    }
}

/// How long a 429 asks us to wait. `Retry-After` (seconds) wins when present; else
/// `X-RateLimit-Reset`, which Pipedrive documents as "the remaining window before the rate
/// limit resets" in seconds (example `2`): a number of seconds, not a time. A value of 0 (the
/// window turning over as it answered) waits one second rather than firing again at once.
pub(crate) fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    if let Some(wait) = crate::http::retry_after_seconds(headers) {
        return Some(wait);
    }
    let reset: f64 = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse().ok()?;
    if !reset.is_finite() || reset < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(reset.clamp(1.0, 3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reset_as_seconds_remaining_and_retry_after_first() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", "2".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(2)), "two seconds, not 1970");
        h.insert("x-ratelimit-reset", "0".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(1)), "no immediate re-fire");
        h.insert("x-ratelimit-reset", "86400".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(3600)), "at most an hour");
        h.insert("retry-after", "5".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(5)), "Retry-After wins");
        assert_eq!(retry_hint(&HeaderMap::new()), None);
    }

    #[test]
    fn the_base_is_the_company_root_whatever_version_suffix_it_was_given() {
        for (configured, root) in [
            ("https://acme.pipedrive.com", "https://acme.pipedrive.com"),
            ("https://acme.pipedrive.com/", "https://acme.pipedrive.com"),
            ("https://acme.pipedrive.com/api/v1", "https://acme.pipedrive.com"),
            ("https://acme.pipedrive.com/api/v2/", "https://acme.pipedrive.com"),
            ("https://api.pipedrive.com/v1", "https://api.pipedrive.com"),
            ("http://127.0.0.1:9900/pipedrive/v1", "http://127.0.0.1:9900/pipedrive"),
            ("http://127.0.0.1:9900/pipedrive", "http://127.0.0.1:9900/pipedrive"),
        ] {
            assert_eq!(company_root(configured), root, "{configured}");
        }
    }

    #[test]
    fn an_admin_is_one_of_global_or_sales_and_is_admin_is_not_read() {
        let user = |access: serde_json::Value| -> User {
            serde_json::from_value(json!({"id": 1, "is_admin": 1, "access": access})).unwrap()
        };
        assert!(user(json!([{"app": "sales", "admin": true}])).is_admin());
        assert!(user(json!([{"app": "sales", "admin": false}, {"app": "global", "admin": true}])).is_admin());
        assert!(!user(json!([{"app": "sales", "admin": false}, {"app": "campaigns", "admin": true}])).is_admin());
        assert!(!user(json!([])).is_admin(), "the old is_admin flag counts for nothing");
        assert!(!user(json!(null)).is_admin());
    }

    #[test]
    fn a_deal_owner_is_the_v2_integer() {
        let d: Deal = serde_json::from_value(json!({"id": 1, "owner_id": 7, "status": "open"})).unwrap();
        assert_eq!(d.owner_id, Some(7));
        assert!(serde_json::from_value::<Deal>(json!({"id": 1, "owner_id": {"id": 7}})).is_err(), "v1's object");
    }

    /// A fake vendor answering every request with `body`; counts requests.
    async fn vendor(body: &'static str) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let vendor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = vendor.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let n = served.clone();
        tokio::spawn(async move {
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
        (addr, served)
    }

    fn client(addr: std::net::SocketAddr) -> Client {
        let http = VendorHttp::new(
            VendorKind::Pipedrive,
            Duration::from_secs(10),
            std::sync::Arc::new(crate::ratelimit::Limiter::new(None)),
            crate::http::no_hint,
        );
        Client::new(http, &format!("http://{addr}"), Secret::new("t"), AuthMode::ApiToken)
    }

    /// Found by the fuzzer (FUZZING.md): "more items" with no `next_start`,
    /// page after page, once kept a worker listing (and growing) for ever.
    #[tokio::test]
    async fn a_collection_that_never_ends_is_an_error_not_a_hang() {
        let (addr, served) = vendor(
            r#"{"success":true,"data":[{"id":1,"name":"R"}],"additional_data":{"pagination":{"more_items_in_collection":true}}}"#,
        )
        .await;
        let e = client(addr).roles().await.unwrap_err();
        assert!(matches!(e, HttpError::Decode { .. }) && e.to_string().contains("10000 pages"), "{e}");
        assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), MAX_PAGES);
    }

    /// The v2 twin: a cursor that comes back unchanged is an error at once, not 10,000 pages.
    #[tokio::test]
    async fn a_cursor_that_never_moves_is_an_error_not_a_hang() {
        let (addr, served) = vendor(
            r#"{"success":true,"data":[{"id":1,"owner_id":5,"status":"open"}],"additional_data":{"next_cursor":"c1"}}"#,
        )
        .await;
        let e = client(addr).open_deals(5).await.unwrap_err();
        assert!(matches!(e, HttpError::Decode { .. }), "{e}");
        assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), 2, "the first page, then c1 once");
    }
}
