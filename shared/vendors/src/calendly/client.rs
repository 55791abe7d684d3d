//! The Calendly API, as much of it as our workflows need.

use crate::http::{retry_after_seconds, HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Pages of 100, the maximum, to keep request counts down (60 a minute). Lookups by e-mail
/// are filtered and fit in one page; a page of 100 costs nothing more.
const PAGE: u32 = 100;
/// A collection longer than this many pages is a vendor bug, not an organization.
const MAX_PAGES: usize = 10_000;

/// The organization the token's user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// The full URI, exactly as `/users/me` gave it: what queries must carry.
    pub uri: String,
    /// Its last segment: what paths carry.
    pub uuid: String,
    /// The URI of the token's own user (from the same `/users/me`): the directory marks their
    /// membership, since removing them would cut lifecycle off.
    #[serde(default)]
    pub token_user: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CurrentUser {
    pub uri: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub current_organization: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Membership {
    pub uri: String,
    /// `owner`, `admin` or `user`.
    pub role: String,
    /// The member, nested: this is where the email is.
    pub user: MemberUser,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MemberUser {
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl Membership {
    pub fn uuid(&self) -> Result<&str, HttpError> {
        uuid_of(&self.uri).ok_or_else(|| decode(format!("a membership URI without a UUID: {:?}", self.uri)))
    }
    pub fn is_owner(&self) -> bool {
        self.role.eq_ignore_ascii_case("owner")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Invitation {
    pub uri: String,
    pub email: String,
    /// `pending`, `accepted` or `declined`.
    pub status: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl Invitation {
    pub fn uuid(&self) -> Result<&str, HttpError> {
        uuid_of(&self.uri).ok_or_else(|| decode(format!("an invitation URI without a UUID: {:?}", self.uri)))
    }
    pub fn is_pending(&self) -> bool {
        self.status.eq_ignore_ascii_case("pending")
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Resource<T> {
    resource: T,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Collection<T> {
    #[serde(default = "Vec::new")]
    collection: Vec<T>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize, Default)]
struct Pagination {
    #[serde(default)]
    next_page_token: Option<String>,
}

impl Pagination {
    /// The next cursor; `null`, absent and `""` all mean "last page".
    fn next(self) -> Option<String> {
        self.next_page_token.filter(|t| !t.trim().is_empty())
    }
}

/// One page of a collection, and the cursor of the next (`None` on the last).
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where a walk through a cursor-paginated collection is: it ends on the last page, and fails
/// on a cursor that comes back (a loop at the vendor) or after `MAX_PAGES`.
pub struct Cursor {
    what: String,
    /// The cursor of the page after the first; `None` before the first page is read.
    next: Option<String>,
    done: bool,
    seen: HashSet<String>,
    pages: usize,
}

impl Cursor {
    pub fn new(what: &str) -> Self {
        Cursor { what: what.to_string(), next: None, done: false, seen: HashSet::new(), pages: 0 }
    }

    /// The cursor of the page to read next (`Some(None)` for the first), or `None` when done.
    pub fn next_token(&mut self) -> Result<Option<Option<String>>, HttpError> {
        if self.done {
            return Ok(None);
        }
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(decode(format!("{}: more than {MAX_PAGES} pages", self.what)));
        }
        Ok(Some(self.next.clone()))
    }

    /// The page just read named `next` as the following one (`None` on the last).
    pub fn advance(&mut self, next: Option<String>) -> Result<(), HttpError> {
        match next {
            None => self.done = true,
            Some(t) if !self.seen.insert(t.clone()) => {
                return Err(decode(format!("{}: the page token {t:?} came back twice", self.what)))
            }
            Some(t) => self.next = Some(t),
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct Client {
    http: VendorHttp,
    base: String,
    token: Secret,
}

impl Client {
    pub fn new(http: VendorHttp, base_url: &str, token: Secret) -> Self {
        Self { http, base: base_url.trim_end_matches('/').to_string(), token }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.client().request(method, format!("{}{}", self.base, path)).bearer_auth(self.token.expose())
    }

    pub async fn me(&self) -> Result<CurrentUser, HttpError> {
        let r: Resource<CurrentUser> = self.http.json(self.request(Method::GET, "/users/me")).await?;
        Ok(r.resource)
    }

    /// The organization of the token's user (one `GET /users/me`), or `None` (with who the user
    /// is) when they belong to none. The caller keeps it (see `catalog_max_age`).
    pub async fn organization(&self) -> Result<Result<Organization, CurrentUser>, HttpError> {
        let me = self.me().await?;
        let Some(uri) = me.current_organization.clone().filter(|u| !u.trim().is_empty()) else {
            return Ok(Err(me));
        };
        let uuid = uuid_of(&uri).ok_or_else(|| decode(format!("current_organization is not a URI: {uri:?}")))?;
        Ok(Ok(Organization { uuid: uuid.to_string(), uri, token_user: Some(me.uri) }))
    }

    /// Walks a cursor-paginated collection until `wanted` matches an item (which is returned)
    /// or the pages run out.
    async fn find<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        wanted: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, HttpError> {
        let mut cursor = Cursor::new(path);
        while let Some(token) = cursor.next_token()? {
            let page: Page<T> = self.page(path, query, token.as_deref()).await?;
            if let Some(found) = page.items.into_iter().find(|item| wanted(item)) {
                return Ok(Some(found));
            }
            cursor.advance(page.next)?;
        }
        Ok(None)
    }

    /// One page of a collection (100 items, the most Calendly serves), after `token`.
    async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
    ) -> Result<Page<T>, HttpError> {
        let mut rb = self.request(Method::GET, path).query(query).query(&[("count", PAGE.to_string())]);
        if let Some(t) = token {
            rb = rb.query(&[("page_token", t)]);
        }
        let page: Collection<T> = self.http.json(rb).await?;
        Ok(Page { items: page.collection, next: page.pagination.unwrap_or_default().next() })
    }

    /// One page of the organization's memberships (every member, the owner included).
    pub async fn membership_page(
        &self,
        org: &Organization,
        token: Option<&str>,
    ) -> Result<Page<Membership>, HttpError> {
        self.page("/organization_memberships", &[("organization", org.uri.as_str())], token).await
    }

    /// One page of the organization's pending invitations (accepted ones are memberships,
    /// declined and revoked ones give no access).
    pub async fn pending_invitation_page(
        &self,
        org: &Organization,
        token: Option<&str>,
    ) -> Result<Page<Invitation>, HttpError> {
        let path = format!("/organizations/{}/invitations", org.uuid);
        self.page(&path, &[("status", "pending")], token).await
    }

    /// The organization membership of the person with this email: one request, filtered by
    /// Calendly (`email=`, case-insensitive). The nested `user.email` is matched here too, so
    /// a vendor that ignored the filter would cost pages, never a wrong person.
    pub async fn find_membership(
        &self,
        org: &Organization,
        email: &EmployeeEmail,
    ) -> Result<Option<Membership>, HttpError> {
        let query = [("organization", org.uri.as_str()), ("email", email.as_str())];
        self.find("/organization_memberships", &query, |m: &Membership| {
            m.user.email.as_deref().is_some_and(|e| email.matches(e))
        })
        .await
    }

    /// The pending invitation for this email, if any: one request, filtered by Calendly
    /// (`email=` and `status=pending`).
    pub async fn find_pending_invitation(
        &self,
        org: &Organization,
        email: &EmployeeEmail,
    ) -> Result<Option<Invitation>, HttpError> {
        let path = format!("/organizations/{}/invitations", org.uuid);
        let query = [("email", email.as_str()), ("status", "pending")];
        self.find(&path, &query, |i: &Invitation| i.is_pending() && email.matches(&i.email)).await
    }

    /// This email's invitation with this UUID, whatever its status (revoked ones are no
    /// longer listed): the invitations filtered by email, not the organization's all.
    pub async fn find_invitation(
        &self,
        org: &Organization,
        email: &EmployeeEmail,
        uuid: &str,
    ) -> Result<Option<Invitation>, HttpError> {
        let path = format!("/organizations/{}/invitations", org.uuid);
        self.find(&path, &[("email", email.as_str())], |i: &Invitation| uuid_of(&i.uri) == Some(uuid)).await
    }

    /// Sends the invitation email; the person is not a member until they accept it.
    pub async fn invite(&self, org: &Organization, email: &EmployeeEmail) -> Result<Invitation, HttpError> {
        let rb = self
            .request(Method::POST, &format!("/organizations/{}/invitations", org.uuid))
            .json(&json!({ "email": email.as_str() }));
        let r: Resource<Invitation> = self.http.json(rb).await?;
        Ok(r.resource)
    }

    /// Only a pending invitation can be revoked.
    pub async fn revoke_invitation(&self, org: &Organization, uuid: &str) -> Result<(), HttpError> {
        let rb = self.request(Method::DELETE, &format!("/organizations/{}/invitations/{uuid}", org.uuid));
        self.http.send(rb).await.map(|_| ())
    }

    /// Removes the person from the organization; their Calendly account remains.
    pub async fn remove_membership(&self, uuid: &str) -> Result<(), HttpError> {
        let rb = self.request(Method::DELETE, &format!("/organization_memberships/{uuid}"));
        self.http.send(rb).await.map(|_| ())
    }
}

/// The UUID of a resource URI: its last path segment
/// (`https://api.calendly.com/organization_memberships/CCCC` -> `CCCC`).
pub fn uuid_of(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let path = rest.split(['?', '#']).next()?.trim_end_matches('/');
    let (_, last) = path.rsplit_once('/')?;
    (!last.is_empty()).then_some(last)
}

fn decode(message: String) -> HttpError {
    HttpError::Decode { vendor: VendorKind::Calendly, message }
}

/// How long a 429 asks us to wait. Calendly documents its 429 with `X-RateLimit-Limit`,
/// `X-RateLimit-Remaining` and `X-RateLimit-Reset`, "the number of seconds until the limit
/// resets" (developer.calendly.com, "Rate Limits"), and no `Retry-After`: the reset is read
/// first, as seconds from now (a value too large to be that is taken as a Unix time rather than
/// stalling for hours); a `Retry-After` in seconds only stands in when it is missing.
pub(crate) fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    reset_seconds(headers).or_else(|| retry_after_seconds(headers))
}

fn reset_seconds(headers: &HeaderMap) -> Option<Duration> {
    let reset: f64 = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse().ok()?;
    if !reset.is_finite() || reset < 0.0 {
        return None;
    }
    let seconds = if reset > 1_000_000_000.0 {
        reset - SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64()
    } else {
        reset
    };
    Some(Duration::from_secs_f64(seconds.clamp(0.05, 3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uuid_is_the_last_segment_of_a_uri() {
        assert_eq!(uuid_of("https://api.calendly.com/organizations/BBBB"), Some("BBBB"));
        assert_eq!(uuid_of("http://127.0.0.1:9900/calendly/organization_memberships/CCCC/"), Some("CCCC"));
        assert_eq!(uuid_of("https://api.calendly.com/organizations/BBBB/invitations/DDDD"), Some("DDDD"));
        assert_eq!(uuid_of("https://api.calendly.com/users/AAAA?x=1"), Some("AAAA"));
        // A bare UUID is not a URI.
        assert_eq!(uuid_of("BBBB"), None);
        assert_eq!(uuid_of("https://api.calendly.com"), None);
    }

    #[test]
    fn a_membership_carries_the_email_in_its_nested_user() {
        let m: Membership = serde_json::from_value(json!({
            "uri": "https://api.calendly.com/organization_memberships/CCCC",
            "role": "admin",
            "user": { "uri": "https://api.calendly.com/users/AAAA", "email": "Jane@Example.com", "name": "Jane" },
            "organization": "https://api.calendly.com/organizations/BBBB"
        }))
        .unwrap();
        assert_eq!(m.uuid().unwrap(), "CCCC");
        let jane = EmployeeEmail::parse("jane@example.com").unwrap();
        assert!(m.user.email.as_deref().is_some_and(|e| jane.matches(e)));
        assert!(!m.is_owner());
        // The documented example (docs/vendors/calendly.md) has no user uri.
        let m: Membership = serde_json::from_value(json!({
            "uri": "https://api.calendly.com/organization_memberships/CCCC",
            "role": "owner",
            "user": { "name": "John", "email": "john@example.com" }
        }))
        .unwrap();
        assert!(m.is_owner() && m.user.uri.is_none());
    }

    #[test]
    fn the_last_page_has_a_null_missing_or_empty_token() {
        for body in [
            json!({"collection": [], "pagination": {"next_page_token": null}}),
            json!({"collection": [], "pagination": {"next_page_token": ""}}),
            json!({"collection": [], "pagination": {}}),
            json!({"collection": []}),
        ] {
            let c: Collection<Invitation> = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(c.pagination.unwrap_or_default().next(), None, "{body}");
        }
        let c: Collection<Invitation> = serde_json::from_value(json!({
            "collection": [{ "email": "pending@example.com", "status": "pending", "created_at": "2024-01-01T00:00:00Z",
                             "uri": "https://api.calendly.com/organizations/BBBB/invitations/DDDD" }],
            "pagination": { "next_page_token": "abc123", "next_page": "https://api.calendly.com/x?page_token=abc123" }
        }))
        .unwrap();
        assert_eq!(c.collection[0].uuid().unwrap(), "DDDD");
        assert!(c.collection[0].is_pending());
        assert_eq!(c.pagination.unwrap().next().as_deref(), Some("abc123"));
    }

    #[test]
    fn users_me_may_have_no_organization() {
        let me: Resource<CurrentUser> = serde_json::from_value(json!({"resource": {
            "uri": "https://api.calendly.com/users/AAAA", "email": "jane@example.com",
            "current_organization": "https://api.calendly.com/organizations/BBBB"
        }}))
        .unwrap();
        assert_eq!(uuid_of(me.resource.current_organization.as_deref().unwrap()), Some("BBBB"));
        let me: Resource<CurrentUser> = serde_json::from_value(json!({"resource": {
            "uri": "https://api.calendly.com/users/AAAA", "current_organization": null
        }}))
        .unwrap();
        assert!(me.resource.current_organization.is_none());
    }

    #[test]
    fn the_documented_reset_is_seconds_from_now_and_wins() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", "40".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(40)), "a delta, not a timestamp in 1970");
        // An undocumented Retry-After does not override what Calendly documents.
        h.insert("retry-after", "17".parse().unwrap());
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(40)));
        // Without a reset, it stands in.
        h.remove("x-ratelimit-reset");
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(17)));
        h.remove("retry-after");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        h.insert("x-ratelimit-reset", (now + 5).to_string().parse().unwrap());
        let wait = retry_hint(&h).unwrap();
        assert!(wait <= Duration::from_secs(6) && wait >= Duration::from_secs(3), "{wait:?}");
        h.insert("x-ratelimit-reset", "soon".parse().unwrap());
        assert_eq!(retry_hint(&h), None, "unreadable: the client's default pause");
        assert_eq!(retry_hint(&HeaderMap::new()), None);
    }
}
