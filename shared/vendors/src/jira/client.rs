//! The Jira Cloud REST API v3 and the Atlassian SCIM directory API, as much as our workflows need.
//!
//! Each request is the operation of the published definitions it names
//! (`platform-swagger-v3.v3.json` for Jira, the Atlassian "User provisioning" OpenAPI for SCIM);
//! docs/vendors/jira.md tables them.

use crate::http::{patiently, HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::EmployeeEmail;
use reqwest::Method;
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::json;

/// The page we ask `GET /users/search` (getAllUsers: "limited to 1000"), `GET /user/search`
/// (findUsers: "up to the thousandth user") and `GET /group/bulk` (bulkGetGroups: no maximum
/// published) for: fewer requests for the same answer.
const PAGE: usize = 1000;
/// `GET /group/member` (getUsersFromGroup): maxResults "should be between 1 and 50".
const MEMBER_PAGE: usize = 50;
/// How many 429s in a row a directory read waits out (each behind the gate the 429 closed for
/// its `Retry-After`) before it fails: a workflow's reads fail at once instead, and the run is
/// retried by the executor.
const DIRECTORY_PATIENCE: u32 = 5;

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

/// `GroupName` (`/user/groups`, `expand=groups`) and `GroupDetails` (`/group/bulk`): both
/// define `groupId` as `nullable`, so one group without an id must not fail a whole page.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl GroupRef {
    /// The id the group is addressed by; `None` when Jira answers `groupId: null`.
    pub fn id(&self) -> Option<&str> {
        self.group_id.as_deref().filter(|id| !id.is_empty())
    }
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

/// `/group/bulk`, `/group/member`: a page bean (`PageBeanGroupDetails`, `PageBeanUserDetails`).
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

    /// One page of a plain-array listing; with `patience`, a 429 is waited out and the page
    /// asked again (directory reads), else it is the answer (a workflow's run is retried).
    async fn array_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        start: usize,
        patience: u32,
    ) -> Result<Vec<T>, HttpError> {
        patiently(patience, HttpError::is_rate_limited, || {
            let rb = self
                .request(Method::GET, path)
                .query(query)
                .query(&[("startAt", start.to_string()), ("maxResults", PAGE.to_string())]);
            self.http.json(rb)
        })
        .await
    }

    /// Every page of a plain-array listing, `startAt` moving by what each page held; each page
    /// is handed to `on_page`, which says whether to go on.
    async fn array_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        patience: u32,
        mut on_page: impl FnMut(&[T]) -> bool + Send,
    ) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut start = 0usize;
        loop {
            let page: Vec<T> = self.array_page(path, query, start, patience).await?;
            let got = page.len();
            let go_on = on_page(&page);
            out.extend(page);
            match next_start(start, PAGE, got, None) {
                Some(next) if go_on => start = next,
                _ => return Ok(out),
            }
        }
    }

    /// `GET /user/search?query=` (findUsers): the *active* person with exactly this (shown)
    /// address, and the active people whose hidden address the search may have matched. The
    /// definition: "Returns a list of active users"; `query` "can match the prefix" of
    /// `displayName` or `emailAddress`. Jira answers `emailAddress: null` for a hidden address.
    /// One request whatever the site's size (only the few accounts whose name or address
    /// starts with the query come back). A deactivated account is never found here: see
    /// [`find_anywhere`](Self::find_anywhere) and the SCIM directory.
    pub async fn find_by_email(&self, email: &EmployeeEmail) -> Result<Lookup, HttpError> {
        let users: Vec<User> = self.array_pages("/user/search", &[("query", email.as_str())], 0, |_| true).await?;
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

    /// `GET /users/search` (getAllUsers: "all users, including active users, inactive users and
    /// previously deleted users"), walked until a page holds a person whose shown address is
    /// exactly this one: how a deactivated account is found when no SCIM directory names it
    /// (the definition itself says to use Get all users and filter "in your code"). Up to
    /// ⌈U/1000⌉ requests, so only where the search found nobody and it matters.
    pub async fn find_anywhere(&self, email: &EmployeeEmail) -> Result<Option<User>, HttpError> {
        let mut found = None;
        self.array_pages("/users/search", &[], 0, |page: &[User]| {
            found = page.iter().find(|u| u.is_person() && u.email_matches(email)).cloned();
            found.is_none()
        })
        .await?;
        Ok(found)
    }

    /// `GET /user?accountId=` (getUser). `None` when the account does not exist or has no
    /// access to this site.
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

    /// `GET /users/search` (getAllUsers) for reconcile: every account, of every type (app and
    /// customer accounts too), active, inactive and previously deleted, 1000 a page; 429s
    /// waited out. `on_page` sees each page.
    pub async fn all_users(&self, mut on_page: impl FnMut(&[User]) + Send) -> Result<Vec<User>, HttpError> {
        self.array_pages("/users/search", &[], DIRECTORY_PATIENCE, |page| {
            on_page(page);
            true
        })
        .await
    }

    /// `GET /group/member` (getUsersFromGroup) for reconcile: the group's members, deactivated
    /// ones too (Jira leaves them out unless asked), page beans of 50 (the definition's
    /// maximum) until `isLast`; 429s waited out.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<User>, HttpError> {
        let query = [("groupId", group_id), ("includeInactiveUsers", "true")];
        self.bean_pages("/group/member", &query, MEMBER_PAGE, DIRECTORY_PATIENCE).await
    }

    /// `POST /user` (createUser) `{"emailAddress", "products"}` (`NewUserDetails`; both
    /// required). Jira creates a Jira-managed user with access to `products` and sends the
    /// invitation, whose acceptance sets the person's name (`displayName` is "no longer
    /// available", so it is not sent). The answer (201) is a `User`, whose `groups` has only
    /// its `size`: the product's default groups. Per the definition, "if the user exists and
    /// has access to Jira, the operation returns a 201" too (with that user), and "if the user
    /// exists but does not have access to Jira, … a 400": the caller tells them apart.
    pub async fn create_user(&self, email: &EmployeeEmail, products: &[String]) -> Result<User, HttpError> {
        let rb = self.request(Method::POST, "/user").json(&json!({
            "emailAddress": email.as_str(),
            "products": products,
        }));
        self.http.json(rb).await
    }

    /// `DELETE /user?accountId=` (removeUser): removes the user from Jira's user base (the
    /// Atlassian account remains); 204.
    pub async fn remove_from_site(&self, account_id: &str) -> Result<(), HttpError> {
        let rb = self.request(Method::DELETE, "/user").query(&[("accountId", account_id)]);
        self.http.send(rb).await.map(|_| ())
    }

    /// `GET /user/groups?accountId=` (getUserGroups): `GroupName`s.
    pub async fn user_groups(&self, account_id: &str) -> Result<Vec<GroupRef>, HttpError> {
        let rb = self.request(Method::GET, "/user/groups").query(&[("accountId", account_id)]);
        self.http.json(rb).await
    }

    pub async fn is_member(&self, account_id: &str, group_id: &str) -> Result<bool, HttpError> {
        Ok(self.user_groups(account_id).await?.iter().any(|g| g.id() == Some(group_id)))
    }

    /// Every group of the site (`GET /group/bulk` (bulkGetGroups) with no filter, 1000 a
    /// page): the catalogue the workflows check an event's `groupId`s against. A group whose
    /// `groupId` is null is listed too (it matches no id).
    pub async fn all_groups(&self) -> Result<Vec<GroupRef>, HttpError> {
        self.bean_pages("/group/bulk", &[], PAGE, 0).await
    }

    /// [`all_groups`](Self::all_groups) for reconcile: 429s waited out.
    pub async fn all_groups_patiently(&self) -> Result<Vec<GroupRef>, HttpError> {
        self.bean_pages("/group/bulk", &[], PAGE, DIRECTORY_PATIENCE).await
    }

    /// Every page of a page-bean listing, `size` a page, until `isLast` (or an empty page).
    async fn bean_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        size: usize,
        patience: u32,
    ) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut start = 0usize;
        loop {
            let page: PageBean<T> = patiently(patience, HttpError::is_rate_limited, || {
                let rb = self
                    .request(Method::GET, path)
                    .query(query)
                    .query(&[("startAt", start.to_string()), ("maxResults", size.to_string())]);
                self.http.json(rb)
            })
            .await?;
            let got = page.values.len();
            out.extend(page.values);
            match next_start(start, size, got, page.is_last) {
                Some(next) => start = next,
                None => return Ok(out),
            }
        }
    }

    /// `POST /group/user?groupId=` (addUserToGroup) `{"accountId"}` (`UpdateUserToGroupBean`); 201.
    pub async fn add_to_group(&self, group_id: &str, account_id: &str) -> Result<(), HttpError> {
        let rb = self
            .request(Method::POST, "/group/user")
            .query(&[("groupId", group_id)])
            .json(&json!({ "accountId": account_id }));
        self.http.send(rb).await.map(|_| ())
    }

    /// `DELETE /group/user?groupId=&accountId=` (removeUserFromGroup); 200.
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

/// A user of the SCIM directory (`ScimUser`).
#[derive(Debug, Clone, Deserialize)]
pub struct ScimUser {
    pub id: String,
    #[serde(rename = "userName", default)]
    pub user_name: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// Atlassian's extension (`ExternalAtlassianScimExtension`); absent for a directory user
    /// not linked to an Atlassian account.
    #[serde(rename = "urn:scim:schemas:extension:atlassian-external:1.0", default)]
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

    /// `GET /Users?filter=userName eq "…"` (getUsersFromAnActiveDirectory): the directory user
    /// whose `userName` (their address) is `email`, active or not.
    pub async fn find_by_user_name(&self, email: &EmployeeEmail) -> Result<Option<ScimUser>, HttpError> {
        let rb = self.request(Method::GET, "/Users").query(&[("filter", user_name_filter(email))]);
        let list: ListResponse = self.http.json(rb).await?;
        Ok(list.resources.into_iter().find(|u| u.user_name.as_deref().is_some_and(|n| email.matches(n))))
    }

    /// `PATCH /Users/{id}` (patchUserInformationInAnActiveDirectory) with `active`: deactivates
    /// (or reactivates) the Atlassian account; the answer (200) is the `ScimUser`.
    ///
    /// The list is sent as `Operations`, RFC 7644 §3.5.2's name, which Atlassian's own PATCH
    /// example (Groups) uses too; the definition's `RequestPayloadToPatch` spells it
    /// `operations`, the same attribute since SCIM attribute names are case-insensitive (RFC
    /// 7643 §2.1).
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
        assert_eq!(groups.complete().unwrap()[0].id(), Some("g1"));
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
    fn the_directory_links_to_the_jira_account_through_atlassians_extension() {
        let u: ScimUser = serde_json::from_value(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:scim:schemas:extension:atlassian-external:1.0"],
            "id": "s1", "userName": "ada@example.com", "active": true,
            "urn:scim:schemas:extension:atlassian-external:1.0": {"atlassianAccountId": "712020:abc"}
        }))
        .unwrap();
        assert_eq!(u.account_id(), Some("712020:abc"));
        // Not linked (no extension, or an empty one): no account, and the user still reads.
        for unlinked in [
            json!({"id": "s2", "userName": "b@example.com", "active": false}),
            json!({"id": "s2", "userName": "b@example.com", "urn:scim:schemas:extension:atlassian-external:1.0": {}}),
            // A key of another version is not Atlassian's extension.
            json!({"id": "s2", "userName": "b@example.com",
                   "urn:scim:schemas:extension:atlassian-external:2.0:User": {"atlassianAccountId": "712020:x"}}),
        ] {
            let u: ScimUser = serde_json::from_value(unlinked.clone()).unwrap();
            assert_eq!(u.account_id(), None, "{unlinked}");
        }
        assert_eq!(user_name_filter(&email("ada@example.com")), "userName eq \"ada@example.com\"");
    }

    #[test]
    fn a_null_group_id_does_not_fail_the_page() {
        let page: PageBean<GroupRef> = serde_json::from_value(json!({
            "isLast": true, "maxResults": 50, "startAt": 0, "total": 3,
            "values": [{"groupId": "g1", "name": "one"}, {"groupId": null, "name": "legacy"}, {"name": "older"}]
        }))
        .unwrap();
        let ids: Vec<Option<&str>> = page.values.iter().map(GroupRef::id).collect();
        assert_eq!(ids, [Some("g1"), None, None]);
        let groups: Vec<GroupRef> = serde_json::from_value(
            json!([{"groupId": null, "name": "legacy", "self": "https://x/group?groupname=legacy"}]),
        )
        .unwrap();
        assert_eq!(groups[0].id(), None);
    }
}
