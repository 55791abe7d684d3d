//! The Jira Cloud REST API v3 and the Atlassian SCIM directory API, as much as our workflows need.

use crate::http::{HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::EmployeeEmail;
use reqwest::Method;
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::json;

/// Jira's largest page: fewer requests for the same answer.
const PAGE: usize = 1000;

/// How we authenticate to Jira. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    Basic { email: String, token: Secret },
    Bearer(Secret),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub account_id: String,
    /// `atlassian` for people; `app` and `customer` accounts are not Jira users.
    #[serde(default)]
    pub account_type: Option<String>,
    /// `None` when the user hides it (privacy): it is then *unknown*, not absent.
    #[serde(default, deserialize_with = "shown_address")]
    pub email_address: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// With `expand=groups`.
    #[serde(default)]
    pub groups: Option<Items<GroupRef>>,
    /// With `expand=applicationRoles`: the products the user has.
    #[serde(default)]
    pub application_roles: Option<Items<ApplicationRole>>,
}

impl User {
    /// Only an address Jira shows can match; a hidden one never does.
    pub fn email_matches(&self, email: &EmployeeEmail) -> bool {
        self.email_address.as_deref().is_some_and(|e| email.matches(e))
    }

    pub fn is_person(&self) -> bool {
        self.account_type.as_deref().is_none_or(|t| t == "atlassian")
    }

    /// "Alex Private (712020:...)", for messages.
    pub fn label(&self) -> String {
        match &self.display_name {
            Some(n) => format!("{n} ({})", self.account_id),
            None => self.account_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Items<T> {
    /// How many there are; Jira may list fewer in `items` (its create answer lists none).
    #[serde(default)]
    pub size: Option<usize>,
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

impl<T> Items<T> {
    /// Every item, when `items` holds them all (`size` not larger).
    pub fn complete(&self) -> Option<&[T]> {
        (self.size.unwrap_or(0) <= self.items.len()).then_some(self.items.as_slice())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    pub group_id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationRole {
    pub key: String,
}

/// What a search for an address found.
#[derive(Debug, Default)]
pub struct Lookup {
    /// The person whose shown address is exactly this one.
    pub found: Option<User>,
    /// People the search returned whose address Jira hides: any of them could be the person.
    pub hidden: Vec<User>,
}

/// `/group/bulk`, `/group/member`: a page bean.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageBean<T> {
    #[serde(default = "Vec::new")]
    values: Vec<T>,
    #[serde(default)]
    is_last: Option<bool>,
}

#[derive(Clone)]
pub struct Client {
    http: VendorHttp,
    base: String,
    credentials: Credentials,
}

impl Client {
    pub(crate) fn new(http: VendorHttp, base_url: &str, credentials: Credentials) -> Self {
        Self { http, base: base_url.trim_end_matches('/').to_string(), credentials }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.client().request(method, format!("{}{}", self.base, path));
        match &self.credentials {
            Credentials::Basic { email, token } => rb.basic_auth(email, Some(token.expose())),
            Credentials::Bearer(token) => rb.bearer_auth(token.expose()),
        }
    }

    /// Every page of a plain-array listing, `startAt` moving by what each page held.
    async fn all<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<T>, HttpError> {
        self.all_pages(path, query, |_| {}).await
    }

    /// [`all`](Self::all), handing each page to `on_page` as it arrives.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        mut on_page: impl FnMut(&[T]) + Send,
    ) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut start = 0usize;
        loop {
            let rb = self
                .request(Method::GET, path)
                .query(query)
                .query(&[("startAt", start.to_string()), ("maxResults", PAGE.to_string())]);
            let page: Vec<T> = self.http.json(rb).await?;
            let got = page.len();
            on_page(&page);
            out.extend(page);
            match next_start(start, PAGE, got, None) {
                Some(next) => start = next,
                None => return Ok(out),
            }
        }
    }

    /// The person with exactly this (shown) address, and the people whose hidden address the
    /// search may have matched. `/user/search` matches display names and addresses, hidden
    /// ones included, but answers `emailAddress: null` for those. One request whatever the
    /// site's size (only the few accounts whose name or address contains the query come back).
    pub async fn find_by_email(&self, email: &EmployeeEmail) -> Result<Lookup, HttpError> {
        let users: Vec<User> = self.all("/user/search", &[("query", email.as_str())]).await?;
        let mut lookup = Lookup::default();
        for u in users.into_iter().filter(User::is_person) {
            if u.email_matches(email) {
                lookup.found.get_or_insert(u);
            } else if u.email_address.is_none() {
                lookup.hidden.push(u);
            }
        }
        Ok(lookup)
    }

    /// `None` when the account does not exist or has no access to this site.
    pub async fn get_user(&self, account_id: &str, expand: &str) -> Result<Option<User>, HttpError> {
        let mut rb = self.request(Method::GET, "/user").query(&[("accountId", account_id)]);
        if !expand.is_empty() {
            rb = rb.query(&[("expand", expand)]);
        }
        match self.http.json(rb).await {
            Ok(u) => Ok(Some(u)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /myself`: the account the credential belongs to.
    pub async fn myself(&self) -> Result<User, HttpError> {
        self.http.json(self.request(Method::GET, "/myself")).await
    }

    /// `GET /users/search`: every account with access to the site, of every type (app and
    /// customer accounts too), 1000 a page; site admins only. `on_page` sees each page.
    pub async fn all_users(&self, on_page: impl FnMut(&[User]) + Send) -> Result<Vec<User>, HttpError> {
        self.all_pages("/users/search", &[], on_page).await
    }

    /// `GET /group/member`: the group's members, deactivated ones too (Jira leaves them out
    /// unless asked), a page bean of up to 1000 (real Jira may serve fewer a page: `isLast`
    /// decides).
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<User>, HttpError> {
        self.bean_pages("/group/member", &[("groupId", group_id), ("includeInactiveUsers", "true")]).await
    }

    /// Creates a Jira-managed user with access to `products`; Jira sends the invitation. The
    /// answer is the new user (Jira's shows `groups` with its `size`: the product's default
    /// groups it was put in).
    pub async fn create_user(&self, email: &EmployeeEmail, name: &str, products: &[String]) -> Result<User, HttpError> {
        let rb = self.request(Method::POST, "/user").json(&json!({
            "emailAddress": email.as_str(),
            "displayName": name,
            "products": products,
        }));
        self.http.json(rb).await
    }

    /// Removes the user's access to the site (the Atlassian account remains).
    pub async fn remove_from_site(&self, account_id: &str) -> Result<(), HttpError> {
        let rb = self.request(Method::DELETE, "/user").query(&[("accountId", account_id)]);
        self.http.send(rb).await.map(|_| ())
    }

    pub async fn user_groups(&self, account_id: &str) -> Result<Vec<GroupRef>, HttpError> {
        let rb = self.request(Method::GET, "/user/groups").query(&[("accountId", account_id)]);
        self.http.json(rb).await
    }

    pub async fn is_member(&self, account_id: &str, group_id: &str) -> Result<bool, HttpError> {
        Ok(self.user_groups(account_id).await?.iter().any(|g| g.group_id == group_id))
    }

    /// Every group of the site (`/group/bulk` with no filter, 1000 a page): the catalogue
    /// the workflows check an event's `groupId`s against.
    pub async fn all_groups(&self) -> Result<Vec<GroupRef>, HttpError> {
        self.groups_by_id(&[]).await
    }

    /// The groups among `ids` that exist (by `groupId`; unknown ids are simply not returned);
    /// every group when `ids` is empty.
    pub async fn groups_by_id(&self, ids: &[String]) -> Result<Vec<GroupRef>, HttpError> {
        let filter: Vec<(&str, &str)> = ids.iter().map(|id| ("groupId", id.as_str())).collect();
        self.bean_pages("/group/bulk", &filter).await
    }

    /// Every page of a page-bean listing, until `isLast` (or an empty page).
    async fn bean_pages<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut start = 0usize;
        loop {
            let rb = self
                .request(Method::GET, path)
                .query(query)
                .query(&[("startAt", start.to_string()), ("maxResults", PAGE.to_string())]);
            let page: PageBean<T> = self.http.json(rb).await?;
            let got = page.values.len();
            out.extend(page.values);
            match next_start(start, PAGE, got, page.is_last) {
                Some(next) => start = next,
                None => return Ok(out),
            }
        }
    }

    pub async fn add_to_group(&self, group_id: &str, account_id: &str) -> Result<(), HttpError> {
        let rb = self
            .request(Method::POST, "/group/user")
            .query(&[("groupId", group_id)])
            .json(&json!({ "accountId": account_id }));
        self.http.send(rb).await.map(|_| ())
    }

    pub async fn remove_from_group(&self, group_id: &str, account_id: &str) -> Result<(), HttpError> {
        let rb = self.request(Method::DELETE, "/group/user").query(&[("groupId", group_id), ("accountId", account_id)]);
        self.http.send(rb).await.map(|_| ())
    }
}

/// Where the next page starts, or `None` after the last one: a page bean says so with
/// `isLast`; a plain array by being shorter than asked. An empty page always ends it, so a
/// server that ignores `startAt` cannot loop us.
fn next_start(start: usize, asked: usize, got: usize, is_last: Option<bool>) -> Option<usize> {
    match is_last {
        _ if got == 0 => None,
        Some(true) => None,
        Some(false) => Some(start + got),
        None if got < asked => None,
        None => Some(start + got),
    }
}

fn yes() -> bool {
    true
}

/// `null`, a missing field and `""` all mean "Jira does not show it".
fn shown_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
}

// ---------------------------------------------------------------------------------------------
// SCIM

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A user of the SCIM directory.
#[derive(Debug, Clone, Deserialize)]
pub struct ScimUser {
    pub id: String,
    #[serde(rename = "userName", default)]
    pub user_name: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(rename = "urn:scim:schemas:extension:atlassian-external:2.0:User", default)]
    atlassian: Option<AtlassianExtension>,
}

#[derive(Debug, Clone, Deserialize)]
struct AtlassianExtension {
    #[serde(rename = "atlassianAccountId", default)]
    account_id: Option<String>,
}

impl ScimUser {
    /// The Atlassian account (the Jira `accountId`) this directory user is.
    pub fn account_id(&self) -> Option<&str> {
        self.atlassian.as_ref().and_then(|a| a.account_id.as_deref())
    }
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(rename = "Resources", default = "Vec::new")]
    resources: Vec<ScimUser>,
}

/// The organisation's SCIM directory (`https://api.atlassian.com/scim/directory/{id}`).
#[derive(Clone)]
pub struct ScimClient {
    http: VendorHttp,
    base: String,
    token: Secret,
}

impl ScimClient {
    pub fn new(http: VendorHttp, base_url: &str, token: Secret) -> Self {
        Self { http, base: base_url.trim_end_matches('/').to_string(), token }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.client().request(method, format!("{}{}", self.base, path)).bearer_auth(self.token.expose())
    }

    /// The directory user whose `userName` (their address) is `email`.
    pub async fn find_by_user_name(&self, email: &EmployeeEmail) -> Result<Option<ScimUser>, HttpError> {
        let rb = self.request(Method::GET, "/Users").query(&[("filter", user_name_filter(email))]);
        let list: ListResponse = self.http.json(rb).await?;
        Ok(list.resources.into_iter().find(|u| u.user_name.as_deref().is_some_and(|n| email.matches(n))))
    }

    /// `PATCH /Users/{id}` with `active`: deactivates (or reactivates) the Atlassian account.
    pub async fn set_active(&self, id: &str, active: bool) -> Result<ScimUser, HttpError> {
        let rb = self.request(Method::PATCH, &format!("/Users/{id}")).json(&json!({
            "schemas": [PATCH_OP],
            "Operations": [{ "op": "replace", "path": "active", "value": active }],
        }));
        self.http.json(rb).await
    }
}

/// `userName eq "..."`, with the value escaped as a SCIM string.
fn user_name_filter(email: &EmployeeEmail) -> String {
    let escaped = email.as_str().replace('\\', "\\\\").replace('"', "\\\"");
    format!("userName eq \"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> EmployeeEmail {
        EmployeeEmail::parse(s).unwrap()
    }

    #[test]
    fn a_hidden_address_reads_as_unknown_and_never_matches() {
        let ada = email("ada@example.com");
        for hidden in [
            json!({"accountId": "1", "emailAddress": null}),
            json!({"accountId": "1"}),
            json!({"accountId": "1", "emailAddress": "  "}),
        ] {
            let u: User = serde_json::from_value(hidden.clone()).unwrap();
            assert_eq!(u.email_address, None, "{hidden}");
            assert!(!u.email_matches(&ada), "{hidden}");
        }
        let u: User = serde_json::from_value(json!({"accountId": "1", "emailAddress": "ADA@example.com"})).unwrap();
        assert!(u.email_matches(&ada), "addresses compare without case");
        let u: User = serde_json::from_value(json!({"accountId": "1", "emailAddress": "nada@example.com"})).unwrap();
        assert!(!u.email_matches(&ada), "a search hit is not a match");
    }

    #[test]
    fn users_default_to_active_and_read_expansions() {
        let u: User = serde_json::from_value(json!({
            "accountId": "a", "accountType": "atlassian", "displayName": "Ada",
            "groups": {"size": 1, "items": [{"name": "jira-software-users", "groupId": "g1"}]},
            "applicationRoles": {"size": 1, "items": [{"key": "jira-software", "name": "Jira Software"}]}
        }))
        .unwrap();
        assert!(u.active && u.is_person());
        let groups = u.groups.unwrap();
        assert_eq!(groups.complete().unwrap()[0].group_id, "g1");
        assert_eq!(u.application_roles.unwrap().items[0].key, "jira-software");
        let app: User =
            serde_json::from_value(json!({"accountId": "b", "accountType": "app", "active": false})).unwrap();
        assert!(!app.active && !app.is_person());
        // Jira's create answer counts the groups without listing them.
        let created: User =
            serde_json::from_value(json!({"accountId": "c", "groups": {"size": 1, "items": []}})).unwrap();
        assert!(created.groups.unwrap().complete().is_none(), "a count without the items is not the list");
        let bare: User = serde_json::from_value(json!({"accountId": "d", "groups": {"items": []}})).unwrap();
        assert_eq!(bare.groups.unwrap().complete().map(<[_]>::len), Some(0));
    }

    #[test]
    fn paging_stops_on_a_short_page_or_when_jira_says_last() {
        assert_eq!(next_start(0, 1000, 1000, None), Some(1000));
        assert_eq!(next_start(1000, 1000, 999, None), None);
        assert_eq!(next_start(0, 1000, 0, None), None);
        assert_eq!(next_start(0, 1000, 1000, Some(true)), None);
        assert_eq!(next_start(0, 1000, 1000, Some(false)), Some(1000));
        // A page bean that holds fewer than asked but says there is more is believed.
        assert_eq!(next_start(0, 1000, 100, Some(false)), Some(100));
        assert_eq!(next_start(100, 1000, 0, Some(false)), None);
    }

    #[test]
    fn the_directory_links_to_the_jira_account() {
        let u: ScimUser = serde_json::from_value(json!({
            "id": "s1", "userName": "ada@example.com", "active": true,
            "urn:scim:schemas:extension:atlassian-external:2.0:User": {"atlassianAccountId": "712020:abc"}
        }))
        .unwrap();
        assert_eq!(u.account_id(), Some("712020:abc"));
        assert_eq!(user_name_filter(&email("ada@example.com")), "userName eq \"ada@example.com\"");
    }
}
