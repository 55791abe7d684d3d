//! The GitHub REST API (version 2022-11-28), as much of it as our workflows need.
//!
//! Every request is an operation of GitHub's published description
//! (`api.github.com.2022-11-28.json`; the excerpt lifecycle keeps is
//! shared/vendors/tests/vendors/published/github/), named by its `operationId` at each method.
//! Wire types are written from that description: property names, enums and status codes.

use super::limits::next_link;
use crate::http::{patiently, HttpError, VendorHttp};
use lifecycle_config::Secret;
use lifecycle_domain::VendorKind;
use reqwest::header::{HeaderMap, ACCEPT, ETAG, IF_NONE_MATCH, LINK};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;

/// `per_page`: the most GitHub serves (1..100), so lists cost the fewest requests.
const PAGE: &str = "100";
/// A list longer than this many pages is a vendor bug, not an organisation.
const MAX_PAGES: usize = 10_000;
/// The media type GitHub recommends (`Accept`), and the API version the description is of.
const MEDIA_TYPE: &str = "application/vnd.github+json";
const API_VERSION: &str = "2022-11-28";

/// `simple-user` (and `team-member`, `nullable-simple-user`, `private-user`, `public-user`: the
/// fields lifecycle reads are common to all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub login: String,
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// An organisation role, as `org-membership.role` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Admin,
    Member,
    BillingManager,
}

impl OrgRole {
    /// The role an event names (`member`, `admin`, `billing_manager`: validated at intake).
    pub fn parse(name: &str) -> Option<OrgRole> {
        match name {
            "admin" => Some(OrgRole::Admin),
            "member" => Some(OrgRole::Member),
            "billing_manager" => Some(OrgRole::BillingManager),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
            OrgRole::BillingManager => "billing_manager",
        }
    }

    /// orgs/create-invitation's `role` enum names a member `direct_member`.
    pub fn invitation_role(self) -> &'static str {
        match self {
            OrgRole::Admin => "admin",
            OrgRole::Member => "direct_member",
            OrgRole::BillingManager => "billing_manager",
        }
    }

    /// orgs/set-membership-for-user's `role` enum: `admin` and `member` only (a billing manager
    /// is made by an invitation, never by this PUT).
    pub fn membership_role(self) -> Option<&'static str> {
        match self {
            OrgRole::Admin => Some("admin"),
            OrgRole::Member => Some("member"),
            OrgRole::BillingManager => None,
        }
    }

    /// An invitation's `role` (`direct_member`, `admin`, `billing_manager`, or another GitHub
    /// adds, such as `hiring_manager`) as the role an event names; another is kept as it is.
    pub fn of_invitation(role: &str) -> Result<OrgRole, String> {
        match role {
            "direct_member" | "member" => Ok(OrgRole::Member),
            "admin" => Ok(OrgRole::Admin),
            "billing_manager" => Ok(OrgRole::BillingManager),
            other => Err(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipState {
    Active,
    /// Invited and not accepted yet.
    Pending,
}

/// `org-membership`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrgMembership {
    pub state: MembershipState,
    pub role: OrgRole,
    #[serde(default)]
    pub user: Option<User>,
}

/// `team`: the catalogue keeps what names a team and what an invitation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: i64,
    pub slug: String,
    pub name: String,
}

/// `team-membership`.
#[derive(Debug, Clone, Deserialize)]
pub struct TeamMembership {
    /// `member` or `maintainer`.
    pub role: String,
    /// `active` or `pending` (pending: the org invitation carrying the team is not accepted).
    pub state: String,
}

/// `organization-invitation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: i64,
    /// Null when sent by e-mail to an address not tied to a GitHub account.
    #[serde(default)]
    pub login: Option<String>,
    /// Null when sent by login.
    #[serde(default)]
    pub email: Option<String>,
    /// `direct_member`, `admin`, `billing_manager` (see [`OrgRole::of_invitation`]).
    pub role: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub team_count: Option<i64>,
}

impl Invitation {
    pub fn email_is(&self, email: &str) -> bool {
        self.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(email.trim()))
    }
}

/// Whom an invitation is for: a GitHub account (by its numeric id) or an e-mail address.
#[derive(Debug, Clone)]
pub enum Invitee<'a> {
    User(i64),
    Email(&'a str),
}

/// The organisation's teams (teams/list), page by page with each page's `ETag`: the next
/// read asks with `If-None-Match`, and a page GitHub answers `304 Not Modified` is kept.
#[derive(Debug, Clone, Default)]
pub struct Teams {
    pub teams: Vec<Team>,
    pages: Vec<TeamsPage>,
    /// How many pages the read that made this copy got as `304 Not Modified`.
    pub unchanged_pages: usize,
}

#[derive(Debug, Clone)]
struct TeamsPage {
    url: String,
    etag: Option<String>,
    teams: Vec<Team>,
    next: Option<String>,
}

impl Teams {
    pub fn by_slug(&self, slug: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.slug.eq_ignore_ascii_case(slug))
    }
}

#[derive(Clone)]
pub struct Client {
    http: VendorHttp,
    base: String,
    token: Secret,
    org: String,
}

impl Client {
    /// `org` goes into paths: the caller has held it to GitHub's login rule.
    pub fn new(http: VendorHttp, base_url: &str, token: Secret, org: &str) -> Self {
        Self { http, base: base_url.trim_end_matches('/').to_string(), token, org: org.to_string() }
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    fn request_url(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, url)
            .bearer_auth(self.token.expose())
            .header(ACCEPT, MEDIA_TYPE)
            .header("X-GitHub-Api-Version", API_VERSION)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request_url(method, &format!("{}{}", self.base, path))
    }

    fn org_path(&self, rest: &str) -> String {
        format!("/orgs/{}{rest}", self.org)
    }

    /// users/get-authenticated (`GET /user`): the token's own user.
    pub async fn authenticated_user(&self) -> Result<User, HttpError> {
        self.http.json(self.request(Method::GET, "/user")).await
    }

    /// users/get-by-username (`GET /users/{username}`); `None` on 404 (no such account).
    pub async fn user(&self, login: &str) -> Result<Option<User>, HttpError> {
        found(self.http.json(self.request(Method::GET, &format!("/users/{login}"))).await)
    }

    /// orgs/get-membership-for-user (`GET /orgs/{org}/memberships/{username}`): `active`,
    /// `pending` (invited by login, not accepted), or `None` (404: neither).
    pub async fn membership(&self, login: &str) -> Result<Option<OrgMembership>, HttpError> {
        let rb = self.request(Method::GET, &self.org_path(&format!("/memberships/{login}")));
        found(self.http.json(rb).await)
    }

    /// orgs/set-membership-for-user (`PUT /orgs/{org}/memberships/{username}` `{"role"}`): only
    /// ever for an active member's role (for anyone else GitHub would send an invitation).
    pub async fn set_role(&self, login: &str, role: &str) -> Result<OrgMembership, HttpError> {
        let rb =
            self.request(Method::PUT, &self.org_path(&format!("/memberships/{login}"))).json(&json!({ "role": role }));
        self.http.json(rb).await
    }

    /// orgs/remove-membership-for-user (`DELETE /orgs/{org}/memberships/{username}`): removes a
    /// member, or cancels their pending invitation. `false` on 404 (neither any more).
    pub async fn remove_membership(&self, login: &str) -> Result<bool, HttpError> {
        self.delete(&self.org_path(&format!("/memberships/{login}"))).await
    }

    /// orgs/list-members (`GET /orgs/{org}/members?role=`), every page.
    pub async fn members(&self, admins_only: bool, patience: u32) -> Result<Vec<User>, HttpError> {
        let role = if admins_only { "admin" } else { "all" };
        self.all_pages(&self.org_path("/members"), &[("role", role)], patience).await
    }

    /// orgs/list-pending-invitations (`GET /orgs/{org}/invitations`), every page.
    pub async fn pending_invitations(&self, patience: u32) -> Result<Vec<Invitation>, HttpError> {
        self.all_pages(&self.org_path("/invitations"), &[], patience).await
    }

    /// orgs/create-invitation (`POST /orgs/{org}/invitations`): 201 with the invitation.
    pub async fn create_invitation(
        &self,
        invitee: &Invitee<'_>,
        role: OrgRole,
        team_ids: &[i64],
    ) -> Result<Invitation, HttpError> {
        let mut body = json!({ "role": role.invitation_role() });
        match invitee {
            Invitee::User(id) => body["invitee_id"] = json!(id),
            Invitee::Email(email) => body["email"] = json!(email),
        }
        if !team_ids.is_empty() {
            body["team_ids"] = json!(team_ids);
        }
        let rb = self.request(Method::POST, &self.org_path("/invitations")).json(&body);
        self.http.json(rb).await
    }

    /// orgs/cancel-invitation (`DELETE /orgs/{org}/invitations/{invitation_id}`); `false` on
    /// 404 (no longer pending: cancelled or accepted).
    pub async fn cancel_invitation(&self, id: i64) -> Result<bool, HttpError> {
        self.delete(&self.org_path(&format!("/invitations/{id}"))).await
    }

    /// orgs/list-invitation-teams (`GET /orgs/{org}/invitations/{invitation_id}/teams`).
    pub async fn invitation_teams(&self, id: i64, patience: u32) -> Result<Vec<Team>, HttpError> {
        self.all_pages(&self.org_path(&format!("/invitations/{id}/teams")), &[], patience).await
    }

    /// orgs/list-outside-collaborators (`GET /orgs/{org}/outside_collaborators`), every page.
    pub async fn outside_collaborators(&self, patience: u32) -> Result<Vec<User>, HttpError> {
        self.all_pages(&self.org_path("/outside_collaborators"), &[], patience).await
    }

    /// orgs/remove-outside-collaborator (`DELETE /orgs/{org}/outside_collaborators/{username}`):
    /// 204 also for someone who is not one; 422 for an org member.
    pub async fn remove_outside_collaborator(&self, login: &str) -> Result<(), HttpError> {
        self.delete(&self.org_path(&format!("/outside_collaborators/{login}"))).await.map(|_| ())
    }

    /// teams/list-members-in-org (`GET /orgs/{org}/teams/{team_slug}/members`), every page.
    pub async fn team_members(&self, slug: &str, patience: u32) -> Result<Vec<User>, HttpError> {
        self.all_pages(&self.org_path(&format!("/teams/{slug}/members")), &[], patience).await
    }

    /// teams/get-membership-for-user-in-org; `None` on 404 (not in the team).
    pub async fn team_membership(&self, slug: &str, login: &str) -> Result<Option<TeamMembership>, HttpError> {
        let rb = self.request(Method::GET, &self.org_path(&format!("/teams/{slug}/memberships/{login}")));
        found(self.http.json(rb).await)
    }

    /// teams/add-or-update-membership-for-user-in-org (`PUT ... {"role":"member"}`).
    pub async fn add_to_team(&self, slug: &str, login: &str) -> Result<TeamMembership, HttpError> {
        let rb = self
            .request(Method::PUT, &self.org_path(&format!("/teams/{slug}/memberships/{login}")))
            .json(&json!({ "role": "member" }));
        self.http.json(rb).await
    }

    /// teams/remove-membership-for-user-in-org; `false` on 404 (was not in it).
    pub async fn remove_from_team(&self, slug: &str, login: &str) -> Result<bool, HttpError> {
        self.delete(&self.org_path(&format!("/teams/{slug}/memberships/{login}"))).await
    }

    /// teams/list (`GET /orgs/{org}/teams`), every page. Each page is asked for with the `ETag`
    /// `previous` had for it (`If-None-Match`): a `304 Not Modified` keeps that page as it was
    /// (and does not count against GitHub's primary limit).
    pub async fn teams(&self, previous: Option<&Teams>) -> Result<Teams, HttpError> {
        let mut out = Teams::default();
        let mut url = Some(self.first_page_url(&self.org_path("/teams"), &[]));
        let mut seen = HashSet::new();
        while let Some(u) = url.take() {
            self.check_page(&mut seen, &u, "teams/list")?;
            let cached = previous.and_then(|p| p.pages.get(out.pages.len())).filter(|p| p.url == u);
            let mut rb = self.request_url(Method::GET, &u);
            if let Some(etag) = cached.and_then(|p| p.etag.as_deref()) {
                rb = rb.header(IF_NONE_MATCH, etag);
            }
            let response = self.http.send(rb).await?;
            let page = if response.status() == StatusCode::NOT_MODIFIED {
                out.unchanged_pages += 1;
                cached
                    .cloned()
                    .ok_or_else(|| decode("teams/list answered 304 to a request that was not conditional"))?
            } else {
                let etag = header_text(response.headers(), ETAG);
                let next = header_text(response.headers(), LINK).and_then(|l| next_link(&l));
                let teams: Vec<Team> = read_json(response).await?;
                TeamsPage { url: u, etag, teams, next }
            };
            url = page.next.clone();
            out.teams.extend(page.teams.iter().cloned());
            out.pages.push(page);
        }
        Ok(out)
    }

    async fn delete(&self, path: &str) -> Result<bool, HttpError> {
        match self.http.send(self.request(Method::DELETE, path)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn first_page_url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}{path}?per_page={PAGE}", self.base);
        for (k, v) in query {
            url.push_str(&format!("&{k}={v}"));
        }
        url
    }

    /// Every page of a list, following `Link: <...>; rel="next"` (GitHub's pagination), each
    /// page sent again after up to `patience` rate-limit answers in a row.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        patience: u32,
    ) -> Result<Vec<T>, HttpError> {
        let mut out = Vec::new();
        let mut url = Some(self.first_page_url(path, query));
        let mut seen = HashSet::new();
        while let Some(u) = url.take() {
            self.check_page(&mut seen, &u, path)?;
            let (items, next): (Vec<T>, Option<String>) = patiently(patience, HttpError::is_rate_limited, || async {
                let response = self.http.send(self.request_url(Method::GET, &u)).await?;
                let next = header_text(response.headers(), LINK).and_then(|l| next_link(&l));
                Ok((read_json(response).await?, next))
            })
            .await?;
            out.extend(items);
            url = next;
        }
        Ok(out)
    }

    /// A `rel="next"` URL is followed only on GitHub's own origin (it carries our token), never
    /// twice (a loop at the vendor), and at most `MAX_PAGES` times.
    fn check_page(&self, seen: &mut HashSet<String>, url: &str, what: &str) -> Result<(), HttpError> {
        if !same_origin(&self.base, url) {
            return Err(decode(format!("{what}: the next page's link points away from the configured base_url")));
        }
        if !seen.insert(url.to_string()) || seen.len() > MAX_PAGES {
            return Err(decode(format!("{what}: the pages loop (a next link came back, or more than {MAX_PAGES})")));
        }
        Ok(())
    }
}

fn found<T>(r: Result<T, HttpError>) -> Result<Option<T>, HttpError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, HttpError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| HttpError::Transport { vendor: VendorKind::Github, message: e.without_url().to_string() })?;
    serde_json::from_slice(&bytes).map_err(|e| decode(e.to_string()))
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

fn decode(message: impl Into<String>) -> HttpError {
    HttpError::Decode { vendor: VendorKind::Github, message: message.into() }
}

fn same_origin(base: &str, url: &str) -> bool {
    match (url::Url::parse(base), url::Url::parse(url)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_followed_on_githubs_origin_only() {
        assert!(same_origin("https://api.github.com", "https://api.github.com/organizations/1/members?page=2"));
        assert!(same_origin("http://127.0.0.1:9/github", "http://127.0.0.1:9/github/orgs/x/members?page=2"));
        assert!(!same_origin("https://api.github.com", "https://evil.example/steal"));
        assert!(!same_origin("https://api.github.com", "http://api.github.com/x"));
        assert!(!same_origin("http://127.0.0.1:9/github", "http://127.0.0.1:10/github"));
    }

    #[test]
    fn roles_map_between_events_invitations_and_memberships() {
        assert_eq!(OrgRole::parse("member").unwrap().invitation_role(), "direct_member");
        assert_eq!(OrgRole::parse("admin").unwrap().invitation_role(), "admin");
        assert_eq!(OrgRole::parse("billing_manager").unwrap().invitation_role(), "billing_manager");
        assert_eq!(OrgRole::BillingManager.membership_role(), None);
        assert_eq!(OrgRole::Member.membership_role(), Some("member"));
        assert_eq!(OrgRole::parse("owner"), None);
        assert_eq!(OrgRole::of_invitation("direct_member"), Ok(OrgRole::Member));
        assert_eq!(OrgRole::of_invitation("hiring_manager"), Err("hiring_manager".into()));
    }

    #[test]
    fn wire_types_read_the_definitions_shapes() {
        let m: OrgMembership = serde_json::from_value(json!({
            "url": "https://api.github.com/orgs/octocat/memberships/defunkt", "state": "pending",
            "role": "billing_manager", "organization_url": "https://api.github.com/orgs/octocat",
            "organization": {"login": "octocat", "id": 1}, "user": null
        }))
        .unwrap();
        assert_eq!((m.state, m.role), (MembershipState::Pending, OrgRole::BillingManager));
        let i: Invitation = serde_json::from_value(json!({
            "id": 7, "login": null, "email": "Ada@Example.com", "role": "direct_member",
            "created_at": "2016-11-30T06:46:10-08:00", "inviter": {"login": "sim-admin", "id": 1},
            "team_count": 2, "node_id": "x", "invitation_teams_url": "https://api.github.com/organizations/2/invitations/7/teams"
        }))
        .unwrap();
        assert!(i.email_is("ada@example.com") && !i.email_is("ada@example.org"));
        assert!(serde_json::from_value::<OrgMembership>(json!({"state": "gone", "role": "member"})).is_err());
    }
}
