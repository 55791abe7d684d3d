//! CircleCI API v2 (`/circleci/api/v2`): the token owner, its collaborations, organization
//! members and groups, users.
//!
//! Faithful to `shared/vendor-guides/circleci.txt`, quirks included:
//! - auth by the `Circle-Token` header, or HTTP Basic with the token as the username and an
//!   empty password; a missing or unknown token is 401. A personal token has its owner's
//!   permissions: there are no scopes;
//! - `GET /me/collaborations` lists the token owner's own organizations (a plain array, no
//!   pagination, alphabetical by name), not a roster; it is where the org UUID comes from;
//! - org-scoped endpoints take the org **UUID**: a slug in the path (`/org/gh/sim-org/...`,
//!   `/org/sim-org/...`) answers 404;
//! - org-scoped endpoints need a token of an org **admin**: anyone else gets 403;
//! - member list items are `{id, login, name}`; the role (`admin`, `contributor`, `viewer`:
//!   CircleCI roles, not VCS roles) is only in `GET /org/{orgID}/members/{userID}`;
//! - there is no invite endpoint (`POST /org/{orgID}/members` is 405): people join through
//!   the web UI or SSO;
//! - `DELETE /org/{orgID}/members/{userID}` is immediate and irreversible: 204, after which
//!   the member GET answers 404 and the person is gone from the org's groups. Their personal
//!   API tokens are NOT revoked: they still authenticate (`/me` keeps working);
//! - `GET /user/{id}` only shows users the token owner can see (itself, or someone sharing
//!   one of its orgs); others are 404;
//! - token pagination: `page-token` in, `next_page_token` out (`null` on the last page);
//!   default page size 20, `page-size` up to 100 (larger values are clamped). Tokens are
//!   cursors (the position after the last item served), so removing members while paging
//!   skips nobody;
//! - 1,000 requests per minute per token (fixed windows aligned to the minute). Every
//!   authenticated response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//!   `X-RateLimit-Reset` (seconds until the window resets; CircleCI does not document these
//!   names, so clients must not rely on them). A 429 has NO `Retry-After`: clients back off
//!   on their own;
//! - errors are `{"message": "..."}`.
//!
//! Ids are UUIDs (lower case). The fixture's are fixed, so docs and tests can name them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use axum::extract::{FromRequestParts, Path, Query, Request, State as AxState};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::Op;
use crate::ratelimit::{Decision, Limiter, RateLimitConfig, RateLimitStyle};
use crate::registry::{self, Vendor, VendorSim};
use crate::sim::{now_ms, Sim};
use crate::{Config, Fixture};

const VENDOR: Vendor = Vendor::CircleCi;

/// Token of the built-in org admin (`sim-admin`); survives every reset.
pub const DEFAULT_ADMIN_TOKEN: &str = "circleci-admin-token";
/// Token of `grace-gh`, a contributor (not an admin) of `gh/sim-org`, in the default fixture.
pub const MEMBER_TOKEN: &str = "circleci-member-token";
pub const ADMIN_USER_ID: &str = "cdc37617-df27-435a-97a7-ac4e10a9c986";
pub const ADMIN_LOGIN: &str = "sim-admin";
pub const ADMIN_NAME: &str = "Sim Admin";
/// The org the admin token administers: `gh/sim-org`.
pub const ORG_ID: &str = "610fae58-cf36-4c1d-b310-cf1332493ef4";
pub const ORG_SLUG: &str = "gh/sim-org";
pub const ORG_NAME: &str = "sim-org";
/// A Bitbucket org with the same name (default fixture): matching on the name alone is wrong.
pub const BB_ORG_ID: &str = "e9ebb5a5-5ae3-4607-9071-e5c9df787bdf";
pub const BB_ORG_SLUG: &str = "bb/sim-org";

const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;
const RATE_REQUESTS: u32 = 1000;
const RATE_WINDOW_MS: u64 = 60_000;
/// Page tokens are cursors, lightly disguised so that nobody mistakes them for offsets.
const PAGE_TOKEN_MASK: u64 = 0x9e37_79b9_7f4a_7c15;

// ---------------------------------------------------------------------------------------------
// Flags

/// CircleCI's start-up flags (ids prefixed: every vendor has a `Flags` with an `admin_token`).
#[derive(Clone, clap::Args)]
#[group(id = "circleci_flags")]
pub struct Flags {
    /// Personal API token of the built-in org admin (`sim-admin`, admin of `gh/sim-org`).
    /// Never logged.
    #[arg(
        id = "circleci_admin_token",
        long = "circleci-admin-token",
        env = "SIM_CIRCLECI_ADMIN_TOKEN",
        default_value = DEFAULT_ADMIN_TOKEN,
        hide_env_values = true
    )]
    pub admin_token: String,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { admin_token: DEFAULT_ADMIN_TOKEN.to_owned() }
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags").field("admin_token", &"<redacted>").finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// An org member's CircleCI role (not their VCS role).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    Contributor,
    Viewer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Contributor => "contributor",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Clone, Debug)]
struct User {
    id: String,
    login: String,
    name: String,
    avatar_url: String,
    /// Personal API token, if the user has one the simulator knows.
    token: Option<String>,
    seq: u64,
}

#[derive(Clone, Debug)]
struct Org {
    id: String,
    slug: String,
    name: String,
    vcs_type: &'static str,
    avatar_url: String,
    seq: u64,
}

/// An org's members in the order they joined (that order is what pages follow).
#[derive(Clone, Debug, Default)]
struct Roster {
    order: BTreeMap<u64, String>,
    members: HashMap<String, (u64, Role)>,
}

#[derive(Clone, Debug)]
struct Group {
    id: String,
    org_id: String,
    name: String,
    members: BTreeSet<String>,
}

/// The authenticated caller, put in request extensions by [`guard`].
#[derive(Clone, Debug)]
struct Caller {
    user_id: String,
}

// ---------------------------------------------------------------------------------------------
// State

/// The CircleCI tenant: users, orgs, memberships and groups.
#[derive(Clone, Debug)]
pub struct State {
    users: BTreeMap<String, User>,
    /// Lower-cased login -> user id (logins are unique here, case-insensitively).
    logins: HashMap<String, String>,
    /// Personal API token -> user id.
    tokens: HashMap<String, String>,
    orgs: BTreeMap<String, Org>,
    /// Lower-cased slug -> org id.
    slugs: HashMap<String, String>,
    /// Org id -> its members.
    rosters: HashMap<String, Roster>,
    /// Groups by creation order.
    groups: BTreeMap<u64, Group>,
    next_seq: u64,
    limiter: Limiter,
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let mut state = State {
            users: BTreeMap::new(),
            logins: HashMap::new(),
            tokens: HashMap::new(),
            orgs: BTreeMap::new(),
            slugs: HashMap::new(),
            rosters: HashMap::new(),
            groups: BTreeMap::new(),
            next_seq: 1,
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_REQUESTS,
                window_ms: RATE_WINDOW_MS,
                daily_requests: None,
            }),
        };
        // The credential and what it is for: the admin, its org, its membership.
        let built_in = state
            .insert_org(ORG_SLUG, None, Some(ORG_ID))
            .and_then(|_| {
                state.insert_user(
                    ADMIN_LOGIN,
                    Some(ADMIN_NAME),
                    Some(ADMIN_USER_ID),
                    Some(&config.circleci.admin_token),
                )
            })
            .and_then(|admin| state.join(ORG_ID, &admin, Role::Admin));
        if let Err(e) = built_in {
            tracing::error!(error = %e, "circleci built-in tenant is invalid (is the admin token empty?)");
        }
        if fixture == Fixture::Default {
            if let Err(e) = state.load_default_fixture() {
                tracing::error!(error = %e, "circleci default fixture is invalid");
            }
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: Seed| state.apply_seed(seed))
    }

    fn snapshot(&self) -> Value {
        let mut orgs: Vec<&Org> = self.orgs.values().collect();
        orgs.sort_by_key(|o| o.seq);
        let mut users: Vec<&User> = self.users.values().collect();
        users.sort_by_key(|u| u.seq);
        let memberships: Vec<Value> = orgs
            .iter()
            .flat_map(|org| {
                let roster = self.rosters.get(&org.id);
                roster.into_iter().flat_map(move |r| {
                    r.order.values().filter_map(move |user_id| {
                        let (_, role) = r.members.get(user_id)?;
                        let user = self.users.get(user_id)?;
                        Some(json!({
                            "org_id": org.id,
                            "org_slug": org.slug,
                            "user_id": user.id,
                            "login": user.login,
                            "role": role.as_str(),
                        }))
                    })
                })
            })
            .collect();
        let groups: Vec<Value> = self
            .groups
            .values()
            .map(|g| {
                let members: Vec<Value> = g
                    .members
                    .iter()
                    .filter_map(|id| self.users.get(id))
                    .map(|u| json!({ "id": u.id, "login": u.login }))
                    .collect();
                json!({
                    "id": g.id,
                    "org_id": g.org_id,
                    "name": g.name,
                    "member_count": members.len(),
                    "members": members,
                })
            })
            .collect();
        json!({
            "orgs": orgs.iter().map(|o| json!({
                "id": o.id, "slug": o.slug, "name": o.name, "vcs_type": o.vcs_type,
            })).collect::<Vec<_>>(),
            "users": users.iter().map(|u| json!({
                "id": u.id, "login": u.login, "name": u.name, "has_token": u.token.is_some(),
            })).collect::<Vec<_>>(),
            "memberships": memberships,
            "groups": groups,
        })
    }

    fn config(&self) -> Value {
        json!({ "rate_limit": self.limiter.config() })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.limiter.configure_as_only_knob(patch)
    }

    fn injected_error(&self, _uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let token = request_token(headers);
            let decision = self.limiter.exhausted(token.as_deref(), now_ms);
            return CircleLimits::rejection(&decision, now_ms);
        }
        ApiError::new(status, status.canonical_reason().unwrap_or("Error")).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        Router::new()
            .route("/me", get(me))
            .route("/me/collaborations", get(collaborations))
            .route("/org/{org_id}/members", get(list_members))
            .route("/org/{org_id}/members/{user_id}", get(get_member).delete(remove_member))
            .route("/org/{org_id}/groups", get(list_groups))
            .route("/user/{id}", get(get_user))
            .route_layer(from_fn_with_state(sim, guard))
            .method_not_allowed_fallback(|| async {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            })
            .fallback(|| async { ApiError::not_found() })
    }
}

impl State {
    /// `gh/sim-org` (with the admin) plus: `grace-gh` (contributor, token `circleci-member-token`),
    /// `alan-gh` (contributor), `margaret-gh` (viewer); groups `developers` (grace, alan) and
    /// `admins` (sim-admin); and `bb/sim-org`, a Bitbucket org of the same name where the admin
    /// is only a contributor. `ada-gh` (the contract's joiner) is nobody yet.
    fn load_default_fixture(&mut self) -> Result<(), String> {
        let grace = self.insert_user(
            "grace-gh",
            Some("Grace Hopper"),
            Some("dffac8e5-5c5f-4ee2-b2b7-4d82448d5afc"),
            Some(MEMBER_TOKEN),
        )?;
        let alan =
            self.insert_user("alan-gh", Some("Alan Turing"), Some("1a527c1d-5289-4d64-b976-03e5eb5370f8"), None)?;
        let margaret = self.insert_user(
            "margaret-gh",
            Some("Margaret Hamilton"),
            Some("bdaadf2d-9cfc-401d-9e65-5f8b674d6580"),
            None,
        )?;
        self.join(ORG_ID, &grace, Role::Contributor)?;
        self.join(ORG_ID, &alan, Role::Contributor)?;
        self.join(ORG_ID, &margaret, Role::Viewer)?;
        self.insert_group(ORG_ID, "developers", &[&grace, &alan], Some("3b1c2775-a451-40e7-942f-c3b899c83456"))?;
        self.insert_group(ORG_ID, "admins", &[ADMIN_USER_ID], Some("4e83214f-da2f-4f15-b596-7d498b49b2ca"))?;
        self.insert_org(BB_ORG_SLUG, None, Some(BB_ORG_ID))?;
        self.join(BB_ORG_ID, ADMIN_USER_ID, Role::Contributor)?;
        Ok(())
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn insert_org(&mut self, slug: &str, name: Option<&str>, id: Option<&str>) -> Result<String, String> {
        let slug = slug.trim();
        let (vcs, org_name) = slug.split_once('/').ok_or_else(|| format!("slug {slug:?} is not VCS/NAME"))?;
        let vcs_type = match vcs {
            "gh" | "github" => "github",
            "bb" | "bitbucket" => "bitbucket",
            "circleci" => "circleci",
            other => return Err(format!("slug {slug:?}: unknown VCS {other:?} (gh, bb or circleci)")),
        };
        if org_name.is_empty() || org_name.contains('/') {
            return Err(format!("slug {slug:?} is not VCS/NAME"));
        }
        let short = match vcs_type {
            "github" => "gh",
            "bitbucket" => "bb",
            other => other,
        };
        let slug = format!("{short}/{org_name}");
        if self.slugs.contains_key(&slug.to_lowercase()) {
            return Err(format!("an org with slug {slug:?} already exists"));
        }
        let id = self.new_id(id)?;
        if self.orgs.contains_key(&id) {
            return Err(format!("an org with id {id} already exists"));
        }
        let seq = self.seq();
        let org = Org {
            id: id.clone(),
            name: name.map(str::to_owned).unwrap_or_else(|| org_name.to_owned()),
            avatar_url: format!("https://avatars.example/{slug}"),
            slug: slug.clone(),
            vcs_type,
            seq,
        };
        self.slugs.insert(slug.to_lowercase(), id.clone());
        self.orgs.insert(id.clone(), org);
        self.rosters.insert(id.clone(), Roster::default());
        Ok(id)
    }

    fn insert_user(
        &mut self,
        login: &str,
        name: Option<&str>,
        id: Option<&str>,
        token: Option<&str>,
    ) -> Result<String, String> {
        let login = login.trim();
        if login.is_empty() || login.contains('/') || login.chars().any(char::is_whitespace) {
            return Err(format!("login {login:?} must be a non-empty VCS login"));
        }
        if self.logins.contains_key(&login.to_lowercase()) {
            return Err(format!("a user with login {login:?} already exists"));
        }
        if let Some(t) = token {
            if t.is_empty() || self.tokens.contains_key(t) {
                return Err("token must be non-empty and unique".into());
            }
        }
        let id = self.new_id(id)?;
        if self.users.contains_key(&id) {
            return Err(format!("a user with id {id} already exists"));
        }
        let seq = self.seq();
        let user = User {
            id: id.clone(),
            login: login.to_owned(),
            name: name.map(str::to_owned).unwrap_or_else(|| login.to_owned()),
            avatar_url: format!("https://avatars.example/u/{login}"),
            token: token.map(str::to_owned),
            seq,
        };
        self.logins.insert(login.to_lowercase(), id.clone());
        if let Some(t) = &user.token {
            self.tokens.insert(t.clone(), id.clone());
        }
        self.users.insert(id.clone(), user);
        Ok(id)
    }

    fn insert_group(&mut self, org_id: &str, name: &str, members: &[&str], id: Option<&str>) -> Result<String, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("a group needs a name".into());
        }
        if self.groups.values().any(|g| g.org_id == org_id && g.name.eq_ignore_ascii_case(name)) {
            return Err(format!("the org already has a group named {name:?}"));
        }
        let roster = self.rosters.get(org_id).ok_or_else(|| format!("no org {org_id}"))?;
        for m in members {
            if !roster.members.contains_key(*m) {
                return Err(format!("user {m} is not a member of the group's org"));
            }
        }
        let id = self.new_id(id)?;
        let seq = self.seq();
        let members = members.iter().map(|m| (*m).to_owned()).collect();
        self.groups.insert(seq, Group { id: id.clone(), org_id: org_id.to_owned(), name: name.to_owned(), members });
        Ok(id)
    }

    fn join(&mut self, org_id: &str, user_id: &str, role: Role) -> Result<(), String> {
        let seq = self.seq();
        let roster = self.rosters.get_mut(org_id).ok_or_else(|| format!("no org {org_id}"))?;
        if roster.members.contains_key(user_id) {
            return Err(format!("user {user_id} is already a member of org {org_id}"));
        }
        roster.order.insert(seq, user_id.to_owned());
        roster.members.insert(user_id.to_owned(), (seq, role));
        Ok(())
    }

    /// A given id (must be a UUID) or a fresh one, lower case.
    fn new_id(&self, given: Option<&str>) -> Result<String, String> {
        match given {
            Some(raw) => uuid::Uuid::parse_str(raw.trim())
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| format!("id {raw:?} is not a UUID")),
            None => Ok(uuid::Uuid::new_v4().hyphenated().to_string()),
        }
    }

    /// An org by slug or id, for seeds.
    fn org_ref(&self, key: &str) -> Option<String> {
        let key = key.trim().to_lowercase();
        if self.orgs.contains_key(&key) {
            return Some(key);
        }
        let alias = key.strip_prefix("github/").map(|n| format!("gh/{n}"));
        let alias = alias.or_else(|| key.strip_prefix("bitbucket/").map(|n| format!("bb/{n}")));
        self.slugs.get(alias.as_deref().unwrap_or(&key)).cloned()
    }

    fn user_by_login(&self, login: &str) -> Option<&User> {
        self.users.get(self.logins.get(&login.trim().to_lowercase())?)
    }

    fn role_of(&self, org_id: &str, user_id: &str) -> Option<Role> {
        self.rosters.get(org_id)?.members.get(user_id).map(|(_, r)| *r)
    }

    /// The org named by a path segment, for a caller who must be its admin. Only an org UUID
    /// finds an org: a slug (or a name) is 404, like any unknown org.
    fn admin_org(&self, caller: &Caller, raw: &str) -> Result<&Org, ApiError> {
        let org = self.orgs.get(&raw.to_ascii_lowercase()).ok_or_else(ApiError::not_found)?;
        match self.role_of(&org.id, &caller.user_id) {
            Some(Role::Admin) => Ok(org),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// The token owner sees itself and everyone who shares one of its orgs.
    fn can_see(&self, viewer: &str, target: &str) -> bool {
        viewer == target
            || self.rosters.values().any(|r| r.members.contains_key(viewer) && r.members.contains_key(target))
    }

    fn user_json(u: &User) -> Value {
        json!({ "id": u.id, "login": u.login, "name": u.name, "avatar_url": u.avatar_url })
    }

    fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let mut orgs = Vec::new();
        for o in seed.orgs {
            let id = self.insert_org(&o.slug, o.name.as_deref(), o.id.as_deref()).map_err(|e| format!("orgs: {e}"))?;
            let org = &self.orgs[&id];
            orgs.push(json!({ "id": org.id, "slug": org.slug, "name": org.name, "vcs_type": org.vcs_type }));
        }
        let mut users = Vec::new();
        for u in seed.users {
            let id = self
                .insert_user(&u.login, u.name.as_deref(), u.id.as_deref(), u.token.as_deref())
                .map_err(|e| format!("users: {e}"))?;
            users.push(Self::user_json(&self.users[&id]));
        }
        let mut memberships = Vec::new();
        for m in seed.memberships {
            let org_id = self.org_ref(&m.org).ok_or_else(|| format!("memberships: no org {:?}", m.org))?;
            let user_id = self
                .user_by_login(&m.login)
                .map(|u| u.id.clone())
                .ok_or_else(|| format!("memberships: no user with login {:?}", m.login))?;
            let role = m.role.unwrap_or(Role::Contributor);
            self.join(&org_id, &user_id, role).map_err(|_| {
                format!("memberships: {:?} is already a member of {}", m.login, self.orgs[&org_id].slug)
            })?;
            memberships.push(json!({ "org_id": org_id, "user_id": user_id, "login": m.login, "role": role.as_str() }));
        }
        let mut groups = Vec::new();
        for g in seed.groups {
            let org_id = self.org_ref(&g.org).ok_or_else(|| format!("groups: no org {:?}", g.org))?;
            let mut ids = Vec::new();
            for login in &g.members {
                let user = self.user_by_login(login).ok_or_else(|| format!("groups: no user with login {login:?}"))?;
                ids.push(user.id.clone());
            }
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let id = self.insert_group(&org_id, &g.name, &refs, g.id.as_deref()).map_err(|e| format!("groups: {e}"))?;
            groups.push(json!({ "id": id, "org_id": org_id, "name": g.name.trim(), "member_count": ids.len() }));
        }
        Ok(json!({ "orgs": orgs, "users": users, "memberships": memberships, "groups": groups }))
    }
}

// ---------------------------------------------------------------------------------------------
// Seed format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    orgs: Vec<SeedOrg>,
    #[serde(default)]
    users: Vec<SeedUser>,
    #[serde(default)]
    memberships: Vec<SeedMembership>,
    #[serde(default)]
    groups: Vec<SeedGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedOrg {
    slug: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUser {
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedMembership {
    /// The org's slug or id.
    org: String,
    login: String,
    #[serde(default)]
    role: Option<Role>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedGroup {
    org: String,
    name: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Errors and request helpers

/// A CircleCI error: `{"message": "..."}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Not found.")
    }

    fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "You must log in first.")
    }

    fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Permission denied: this requires an organization admin.")
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "message": self.message }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The query string as pairs; a malformed one is a CircleCI-shaped 400.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|_| ApiError::bad_request("Malformed query string."))
    }
}

/// The caller's token: `Circle-Token`, else the username of HTTP Basic auth.
fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("circle-token") {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Pagination

#[derive(Clone, Copy, Debug)]
struct PageReq {
    /// Serve items strictly after this position.
    after: Option<u64>,
    size: usize,
}

impl PageReq {
    fn parse(params: &Params) -> Result<Self, ApiError> {
        let after = match params.get("page-token") {
            None | Some("") => None,
            Some(t) => Some(decode_page_token(t).ok_or_else(|| ApiError::bad_request("Invalid page-token."))?),
        };
        let size = match params.get("page-size") {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::bad_request("page-size must be a positive integer."))?
                .min(MAX_PAGE_SIZE),
        };
        Ok(PageReq { after, size })
    }

    /// The positions this page may start from.
    fn range(self) -> (Bound<u64>, Bound<u64>) {
        (self.after.map_or(Bound::Unbounded, Bound::Excluded), Bound::Unbounded)
    }

    /// One page of `items` (ordered by position), rendered, in CircleCI's list envelope.
    fn respond<'a, T: 'a>(
        self,
        items: impl Iterator<Item = (u64, &'a T)>,
        render: impl Fn(&T) -> Option<Value>,
    ) -> Response {
        let mut page = Vec::with_capacity(self.size);
        let mut last = None;
        let mut more = false;
        for (pos, item) in items.filter(|(pos, _)| self.after.is_none_or(|a| *pos > a)) {
            if page.len() == self.size {
                more = true;
                break;
            }
            if let Some(v) = render(item) {
                page.push(v);
                last = Some(pos);
            }
        }
        let next = if more { last.map(encode_page_token) } else { None };
        Json(json!({ "items": page, "next_page_token": next })).into_response()
    }
}

fn encode_page_token(position: u64) -> String {
    format!("{:016x}", position ^ PAGE_TOKEN_MASK)
}

fn decode_page_token(token: &str) -> Option<u64> {
    (token.len() == 16).then_some(())?;
    u64::from_str_radix(token, 16).ok().map(|v| v ^ PAGE_TOKEN_MASK)
}

// ---------------------------------------------------------------------------------------------
// Auth and rate limiting

/// How CircleCI renders rate-limit decisions: `X-RateLimit-*` (Reset in seconds from now),
/// and a 429 without `Retry-After`.
pub struct CircleLimits;

impl RateLimitStyle for CircleLimits {
    fn headers(d: &Decision, now_ms: i64, headers: &mut HeaderMap) {
        let reset_in = ((d.reset_at_ms - now_ms).max(0) + 999) / 1000;
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset_in));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded").into_response();
        Self::headers(d, now_ms, response.headers_mut());
        response
    }
}

/// Authenticate, then rate-limit per token; every response after auth gets the headers.
async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let token = request_token(req.headers());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let ci = &mut world.tenants.circleci;
        let Some((token, user_id)) = token.as_deref().and_then(|t| ci.tokens.get(t).map(|id| (t, id.clone()))) else {
            return ApiError::unauthorized().into_response();
        };
        (Caller { user_id }, ci.limiter.check(token, now))
    };
    if !decision.allowed {
        return CircleLimits::rejection(&decision, now);
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    CircleLimits::headers(&decision, now, response.headers_mut());
    response
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn me(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>) -> ApiResult {
    let world = sim.lock();
    let user = world.tenants.circleci.users.get(&caller.user_id).ok_or_else(ApiError::unauthorized)?;
    Ok(Json(State::user_json(user)).into_response())
}

/// The caller's orgs, alphabetically by name (then slug); no pagination. Same-named orgs of
/// different VCSs sit side by side, Bitbucket first: only the slug tells them apart.
async fn collaborations(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let mut orgs: Vec<&Org> = ci.orgs.values().filter(|o| ci.role_of(&o.id, &caller.user_id).is_some()).collect();
    orgs.sort_by_key(|o| (o.name.to_lowercase(), o.slug.to_lowercase()));
    let items: Vec<Value> = orgs
        .iter()
        .map(|o| {
            json!({
                "id": o.id,
                "vcs_type": o.vcs_type,
                "name": o.name,
                "avatar_url": o.avatar_url,
                "slug": o.slug,
            })
        })
        .collect();
    Ok(Json(items).into_response())
}

async fn list_members(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(org_raw): Path<String>,
    params: Params,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org = ci.admin_org(&caller, &org_raw)?;
    let page = PageReq::parse(&params)?;
    let roster = ci.rosters.get(&org.id).ok_or_else(ApiError::not_found)?;
    Ok(page.respond(roster.order.range(page.range()).map(|(pos, id)| (*pos, id)), |id| {
        let u = ci.users.get(id)?;
        Some(json!({ "id": u.id, "login": u.login, "name": u.name }))
    }))
}

async fn get_member(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, user_raw)): Path<(String, String)>,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org = ci.admin_org(&caller, &org_raw)?;
    let user_id = user_raw.to_ascii_lowercase();
    let role = ci.role_of(&org.id, &user_id).ok_or_else(ApiError::not_found)?;
    let u = ci.users.get(&user_id).ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({ "id": u.id, "login": u.login, "name": u.name, "role": role.as_str() })).into_response())
}

/// Immediate and irreversible: the person must be re-invited through the web UI to come back.
async fn remove_member(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org_raw, user_raw)): Path<(String, String)>,
    op: Op,
) -> ApiResult {
    let mut world = sim.lock();
    let world = &mut *world;
    let ci = &mut world.tenants.circleci;
    let org_id = ci.admin_org(&caller, &org_raw)?.id.clone();
    let user_id = user_raw.to_ascii_lowercase();
    let roster = ci.rosters.get_mut(&org_id).ok_or_else(ApiError::not_found)?;
    let (seq, role) = roster.members.remove(&user_id).ok_or_else(ApiError::not_found)?;
    roster.order.remove(&seq);
    let mut left_groups = Vec::new();
    for g in ci.groups.values_mut().filter(|g| g.org_id == org_id) {
        if g.members.remove(&user_id) {
            left_groups.push(Value::from(g.name.clone()));
        }
    }
    let mut details = Map::new();
    details.insert("org_id".into(), org_id.into());
    details.insert("user_id".into(), user_id.clone().into());
    details.insert("login".into(), ci.users.get(&user_id).map(|u| u.login.clone()).into());
    details.insert("role".into(), role.as_str().into());
    details.insert("groups".into(), Value::Array(left_groups));
    world.journal.mutation(VENDOR, &op.method, &op.path, "member.remove", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_groups(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(org_raw): Path<String>,
    params: Params,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let org_id = ci.admin_org(&caller, &org_raw)?.id.clone();
    let page = PageReq::parse(&params)?;
    let groups = ci.groups.range(page.range()).filter(|(_, g)| g.org_id == org_id).map(|(pos, g)| (*pos, g));
    Ok(page.respond(groups, |g| Some(json!({ "id": g.id, "name": g.name, "member_count": g.members.len() }))))
}

async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult {
    let world = sim.lock();
    let ci = &world.tenants.circleci;
    let id = raw.to_ascii_lowercase();
    let user = ci.users.get(&id).filter(|u| ci.can_see(&caller.user_id, &u.id)).ok_or_else(ApiError::not_found)?;
    Ok(Json(State::user_json(user)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_the_admin_org_and_a_same_named_bitbucket_org() {
        let s = state();
        assert_eq!(s.role_of(ORG_ID, ADMIN_USER_ID), Some(Role::Admin));
        assert_eq!(s.role_of(BB_ORG_ID, ADMIN_USER_ID), Some(Role::Contributor));
        assert_eq!(s.orgs[ORG_ID].name, s.orgs[BB_ORG_ID].name);
        assert_eq!(s.rosters[ORG_ID].members.len(), 4);
        assert!(s.user_by_login("ada-gh").is_none(), "the contract's joiner is not a member");
        assert_eq!(s.tokens.get(DEFAULT_ADMIN_TOKEN).map(String::as_str), Some(ADMIN_USER_ID));
    }

    #[test]
    fn empty_fixture_keeps_the_credential_and_its_org() {
        let s = State::new(&Config::default(), Fixture::Empty);
        assert_eq!(s.users.len(), 1);
        assert_eq!(s.orgs.len(), 1);
        assert_eq!(s.role_of(ORG_ID, ADMIN_USER_ID), Some(Role::Admin));
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        for pos in [0, 1, 42, u64::MAX] {
            assert_eq!(decode_page_token(&encode_page_token(pos)), Some(pos));
        }
        assert_eq!(decode_page_token("20"), None);
        assert_eq!(decode_page_token("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn basic_auth_username_is_the_token() {
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("tok:");
        h.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        assert_eq!(request_token(&h).as_deref(), Some("tok"));
        h.insert("circle-token", "other".parse().unwrap());
        assert_eq!(request_token(&h).as_deref(), Some("other"), "Circle-Token wins");
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = s.users.len();
        let err = s
            .seed(json!({
                "users": [{"login": "ada-gh"}],
                "memberships": [{"org": "gh/nowhere", "login": "ada-gh"}]
            }))
            .unwrap_err();
        assert!(err.contains("no org"), "{err}");
        assert_eq!(s.users.len(), before);
    }
}
