//! The CircleCI v2 API, as much of it as our workflows need.

use crate::http::{HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::VendorKind;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use url::Url;

/// The largest page CircleCI serves (its default is 20).
const PAGE_SIZE: u32 = 100;
/// A pagination that has not ended after this many pages is a vendor bug, not an org.
const MAX_PAGES: usize = 10_000;

/// An org slug as CircleCI writes it in `/me/collaborations`: `gh/name`, `bb/name` or
/// `circleci/id`. Kept normalised (lower case, `github/` -> `gh/`, `bitbucket/` -> `bb/`):
/// VCS org names are case-insensitive, and the long prefixes are the same VCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSlug(String);

impl OrgSlug {
    pub fn parse(raw: &str) -> Result<OrgSlug, String> {
        let raw = raw.trim();
        let shape = "must be the organization's slug as CircleCI shows it, e.g. gh/my-org, bb/my-org or circleci/<id>";
        let Some((vcs, name)) = raw.split_once('/') else {
            return Err(format!("{raw:?} {shape}"));
        };
        let vcs = match vcs.to_ascii_lowercase().as_str() {
            "gh" | "github" => "gh",
            "bb" | "bitbucket" => "bb",
            "circleci" => "circleci",
            _ => return Err(format!("{raw:?} {shape}")),
        };
        if name.is_empty() || name.contains('/') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{raw:?} {shape}"));
        }
        Ok(OrgSlug(format!("{vcs}/{}", name.to_lowercase())))
    }

    /// Whether a slug CircleCI returned names this org.
    pub fn matches(&self, theirs: &str) -> bool {
        OrgSlug::parse(theirs).is_ok_and(|s| s == *self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of the token owner's orgs, from `GET /me/collaborations`.
#[derive(Debug, Clone, Deserialize)]
pub struct Collaboration {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub vcs_type: Option<String>,
}

/// The token owner, from `GET /me`.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: String,
    #[serde(default)]
    pub login: Option<String>,
}

/// An org member: list items are `{id, login, name}`; the role only comes with
/// `GET /org/{orgID}/members/{userID}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    pub id: String,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

/// A page of a token-paginated list.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    /// `null` (or absent, or empty) on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// Where a walk through the member list is: it ends on the last page (a `null`, absent or
/// empty token), and fails on a token handed out twice (a loop) or after `MAX_PAGES`.
#[derive(Default)]
pub struct Cursor {
    /// The token of the page after the first; `None` before the first page is read.
    next: Option<String>,
    done: bool,
    seen: HashSet<String>,
    pages: usize,
}

impl Cursor {
    /// The token of the page to read next (`Some(None)` for the first), or `None` when done.
    pub fn next_token(&mut self) -> Result<Option<Option<String>>, HttpError> {
        if self.done {
            return Ok(None);
        }
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(decode(format!("the members list did not end after {MAX_PAGES} pages")));
        }
        Ok(Some(self.next.clone()))
    }

    /// The page just read handed out `token` for the next one.
    pub fn advance(&mut self, token: Option<String>) -> Result<(), HttpError> {
        match token.filter(|t| !t.is_empty()) {
            None => self.done = true,
            Some(t) if !self.seen.insert(t.clone()) => {
                return Err(decode(format!("the members list handed out page token {t:?} twice")))
            }
            Some(t) => self.next = Some(t),
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct Client {
    http: VendorHttp,
    base: Url,
    /// `Circle-Token`, marked sensitive so that no debug output shows it.
    token: HeaderValue,
}

impl Client {
    /// `base` must be able to carry path segments (checked by the connector).
    pub fn new(http: VendorHttp, base: Url, token: Secret) -> Self {
        let mut token = HeaderValue::from_str(token.expose().trim()).unwrap_or_else(|_| HeaderValue::from_static(""));
        token.set_sensitive(true);
        Self { http, base, token }
    }

    /// The base URL plus one path segment per item, each percent-encoded: an id can
    /// never add a path segment of its own.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.http.client().request(method, self.url(segments)).header("Circle-Token", self.token.clone())
    }

    pub async fn me(&self) -> Result<Me, HttpError> {
        self.http.json(self.request(Method::GET, &["me"])).await
    }

    /// The token owner's orgs (a plain array, not paginated).
    pub async fn collaborations(&self) -> Result<Vec<Collaboration>, HttpError> {
        self.http.json(self.request(Method::GET, &["me", "collaborations"])).await
    }

    /// The member with this VCS login, walking every page until found.
    ///
    /// CircleCI has no search: `GET /org/{orgID}/members` takes no login or e-mail filter,
    /// and no other endpoint finds a member by login. So this lists, 100 a page (the most
    /// CircleCI serves), and stops at the page that holds the person: one request per 100
    /// members before them, every page (the org's size / 100) for someone not in the org.
    pub async fn find_member(&self, org_id: &str, login: &str) -> Result<Option<Member>, HttpError> {
        let mut cursor = Cursor::default();
        while let Some(token) = cursor.next_token()? {
            let page = self.member_page(org_id, token.as_deref()).await?;
            if let Some(m) = pick_login(page.items, login) {
                return Ok(Some(m));
            }
            cursor.advance(page.next_page_token)?;
        }
        Ok(None)
    }

    /// One page of the org's members (100, the most CircleCI serves), after `token`.
    pub async fn member_page(&self, org_id: &str, token: Option<&str>) -> Result<Page<Member>, HttpError> {
        let mut rb =
            self.request(Method::GET, &["org", org_id, "members"]).query(&[("page-size", PAGE_SIZE.to_string())]);
        if let Some(t) = token {
            rb = rb.query(&[("page-token", t)]);
        }
        self.http.json(rb).await
    }

    /// The member, or `None` when CircleCI answers 404 (not, or no longer, a member).
    pub async fn get_member(&self, org_id: &str, user_id: &str) -> Result<Option<Member>, HttpError> {
        match self.http.json(self.request(Method::GET, &["org", org_id, "members", user_id])).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the member: `true` when CircleCI removed them now, `false` when it answered
    /// 404 (they were not a member any more). Immediate and irreversible.
    pub async fn remove_member(&self, org_id: &str, user_id: &str) -> Result<bool, HttpError> {
        match self.http.send(self.request(Method::DELETE, &["org", org_id, "members", user_id])).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The member whose login is `login`: VCS logins are case-insensitive, so a match that
/// differs only in case is the same person; an exact match wins if both exist.
fn pick_login(members: Vec<Member>, login: &str) -> Option<Member> {
    let login = login.trim();
    let mut loose = None;
    for m in members {
        if m.login == login {
            return Some(m);
        }
        if loose.is_none() && m.login.eq_ignore_ascii_case(login) {
            loose = Some(m);
        }
    }
    loose
}

/// The collaboration whose slug is `slug`. Never by name: `gh/acme` and `bb/acme` share one.
pub fn pick_org<'a>(orgs: &'a [Collaboration], slug: &OrgSlug) -> Option<&'a Collaboration> {
    orgs.iter().find(|o| o.slug.as_deref().is_some_and(|s| slug.matches(s)))
}

fn decode(message: String) -> HttpError {
    HttpError::Decode { vendor: VendorKind::Circleci, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Limiter;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;

    fn client(base: &str) -> Client {
        let http = VendorHttp::new(
            VendorKind::Circleci,
            Duration::from_secs(1),
            Arc::new(Limiter::new(None)),
            crate::http::no_hint,
        );
        Client::new(http, Url::parse(base).unwrap(), Secret::new("s3cret"))
    }

    fn member(login: &str) -> Member {
        Member { id: format!("id-{login}"), login: login.into(), name: None, role: None }
    }

    #[test]
    fn slugs_are_normalised_and_matched_on_vcs_and_name() {
        let slug = OrgSlug::parse("github/Sim-Org").unwrap();
        assert_eq!(slug.as_str(), "gh/sim-org");
        assert!(slug.matches("gh/sim-org"));
        assert!(slug.matches("GH/SIM-ORG"));
        assert!(!slug.matches("bb/sim-org"), "same name, other VCS");
        assert!(!slug.matches("gh/sim-org-2"));
        assert_eq!(OrgSlug::parse("bitbucket/x").unwrap().as_str(), "bb/x");
        for bad in ["sim-org", "gh/", "svn/x", "gh/a/b", "gh/a b", ""] {
            assert!(OrgSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_org_is_picked_by_slug_never_by_name() {
        let orgs: Vec<Collaboration> = serde_json::from_value(json!([
            {"id": "bb-uuid", "vcs_type": "bitbucket", "name": "sim-org", "slug": "bb/sim-org", "avatar_url": "x"},
            {"id": "no-slug", "name": "sim-org"},
            {"id": "gh-uuid", "vcs_type": "github", "name": "sim-org", "slug": "gh/sim-org"}
        ]))
        .unwrap();
        let slug = OrgSlug::parse("gh/sim-org").unwrap();
        assert_eq!(pick_org(&orgs, &slug).map(|o| o.id.as_str()), Some("gh-uuid"));
        assert!(pick_org(&orgs, &OrgSlug::parse("gh/other").unwrap()).is_none());
    }

    #[test]
    fn logins_match_case_insensitively_preferring_an_exact_match() {
        let found = pick_login(vec![member("Ada-GH"), member("bob")], "ada-gh").unwrap();
        assert_eq!(found.login, "Ada-GH");
        let found = pick_login(vec![member("Ada-GH"), member("ada-gh")], "ada-gh").unwrap();
        assert_eq!(found.login, "ada-gh");
        assert!(pick_login(vec![member("ada-gh-2")], "ada-gh").is_none(), "no prefix matches");
    }

    #[test]
    fn pages_end_on_a_null_or_missing_token_and_list_items_have_no_role() {
        let p: Page<Member> = serde_json::from_value(json!({
            "items": [{"id": "u1", "login": "jdoe", "name": "Jane Doe"}],
            "next_page_token": null
        }))
        .unwrap();
        assert_eq!(p.items[0].role, None);
        assert_eq!(p.next_page_token, None);
        let p: Page<Member> = serde_json::from_value(json!({"items": []})).unwrap();
        assert!(p.items.is_empty() && p.next_page_token.is_none());
        let p: Page<Member> = serde_json::from_value(json!({"items": [], "next_page_token": "token123"})).unwrap();
        assert_eq!(p.next_page_token.as_deref(), Some("token123"));
        let m: Member =
            serde_json::from_value(json!({"id": "u1", "login": "jdoe", "name": "Jane Doe", "role": "contributor"}))
                .unwrap();
        assert_eq!(m.role.as_deref(), Some("contributor"));
    }

    #[test]
    fn ids_are_path_segments_never_paths() {
        let c = client("http://sim/circleci/api/v2");
        assert_eq!(c.url(&["org", "o-1", "members"]).as_str(), "http://sim/circleci/api/v2/org/o-1/members");
        assert_eq!(
            c.url(&["org", "gh/sim-org", "members"]).as_str(),
            "http://sim/circleci/api/v2/org/gh%2Fsim-org/members"
        );
        assert_eq!(c.url(&["org", "../me"]).path(), "/circleci/api/v2/org/..%2Fme");
        let c = client("http://sim/circleci/api/v2/");
        assert_eq!(c.url(&["me"]).as_str(), "http://sim/circleci/api/v2/me");
    }

    #[test]
    fn the_token_header_is_sensitive() {
        let c = client("http://sim/api/v2");
        assert!(c.token.is_sensitive());
        assert!(!format!("{:?}", c.token).contains("s3cret"));
    }
}
