//! Jira Cloud REST API v3 (`/jira/rest/api/3`) and the Atlassian SCIM directory API
//! (`/jira/scim/directory/{directoryId}`, which Atlassian serves from api.atlassian.com).
//!
//! Faithful to `shared/vendor-guides/jira.txt`, quirks included:
//! - auth is Basic `email:api_token` (the email must be the token owner's) or `Bearer`; tokens of
//!   deactivated users, or of users without site access, stop working;
//! - users are identified by `accountId` only: `username` and `key` parameters are refused (400);
//! - `emailAddress` is `null` for users who hide it (privacy settings), even to site admins;
//!   `GET /user/search?query=` still matches on the hidden address, so a search for an address
//!   can return a user whose email reads `null` — a client must never match on it;
//! - `POST /user` (site admin) creates a Jira-managed user with `products` and records an
//!   invitation; an address that already has site access is refused (400: Atlassian accounts are
//!   unique per address); an account whose site access was removed gets it back, same accountId;
//!   the answer is the user, its `groups` and `applicationRoles` counted (`size`) but not listed;
//! - `DELETE /user` (site admin) removes site access, not the account; it is refused (400) for
//!   accounts managed by the SCIM directory, which must be deactivated through SCIM instead;
//! - groups are addressed by `groupId`: `groupname` is refused (400), and so is a group *name*
//!   passed as `groupId`; adding a member twice or removing a non-member is a 400;
//! - removing a user from every group does not deactivate them;
//! - `/users/search` (site admin) returns every account type (atlassian, app, customer);
//! - offset pagination (`startAt`, `maxResults` default 50, clamped to 1000); lists are plain
//!   arrays, except `/group/bulk` and `/group/member`, which are page beans (`isLast`, `total`);
//! - rate limits are adaptive and unpublished: the simulator counts requests per credential in
//!   fixed windows (a runtime knob, 100 per second by default); every authenticated response
//!   carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-NearLimit`, and a 429
//!   carries `Retry-After` in *seconds*, `X-RateLimit-Reset` as an ISO 8601 timestamp and
//!   `RateLimit-Reason`;
//! - SCIM (`/Users` list with `filter=userName eq "..."`, get, PATCH `active`) uses its own bearer
//!   token and 1-based `startIndex`/`count` paging; deactivating through SCIM makes the Jira user
//!   inactive but keeps the account, its site access and its groups.
//!
//! Errors use Jira's shape `{"errorMessages": [...], "errors": {field: message}}`; SCIM errors use
//! the SCIM error schema (`status`, `detail`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
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

use crate::http::{bearer, valid_email, Op};
use crate::ratelimit::{Decision, Limiter, RateLimitConfig};
use crate::registry::{self, update_field, Vendor, VendorSim};
use crate::sim::{now_ms, rfc3339_ms, rfc3339_s, Sim};
use crate::{Config, Fixture};

const VENDOR: Vendor = Vendor::Jira;

/// The built-in site admin that owns the API token; survives every reset.
pub const ADMIN_ACCOUNT_ID: &str = "5b10a2844c20165700ede21g";
pub const ADMIN_NAME: &str = "Sim Admin";
pub const ADMIN_EMAIL: &str = "admin@sim.example";
pub const DEFAULT_ADMIN_TOKEN: &str = "jira-admin-token";
/// The SCIM directory's id and bearer token (generated per directory in admin.atlassian.com).
pub const DEFAULT_DIRECTORY_ID: &str = "d2b1f6c0-5a8e-4e3b-9c71-0f4a6b2e8d15";
pub const DEFAULT_SCIM_TOKEN: &str = "jira-scim-token";
/// Where the SCIM API is mounted: its base URL is `http://HOST:PORT/jira/scim/directory/{id}`.
pub const SCIM_MOUNT: &str = "/jira/scim";
/// `jira-software-users`, the group of the CONTRACT's example event.
pub const SOFTWARE_USERS_GROUP_ID: &str = "276f955c-63d7-42c8-9520-92d01dca0625";

/// Groups of the default fixture: (groupId, name).
pub const FIXTURE_GROUPS: &[(&str, &str)] = &[
    (SOFTWARE_USERS_GROUP_ID, "jira-software-users"),
    ("4c1f3b0e-8d2a-4f6b-9e7c-2a5d8b1c0f93", "jira-servicemanagement-users"),
    ("9a7e2c41-3b5d-4e8f-a1c6-7d0b2e9f4a38", "jira-admins"),
    ("e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24", "engineering"),
    ("b8f0c2e4-6a1d-4b3f-9e5c-7a2d4f6b8c01", "product"),
];
const ADMINS_GROUP_ID: &str = "9a7e2c41-3b5d-4e8f-a1c6-7d0b2e9f4a38";
const ENGINEERING_GROUP_ID: &str = "e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24";

/// Jira's product keys (`products` of `POST /user`) and their names.
pub const PRODUCTS: &[(&str, &str)] = &[
    ("jira-software", "Jira Software"),
    ("jira-servicedesk", "Jira Service Management"),
    ("jira-core", "Jira Work Management"),
    ("jira-product-discovery", "Jira Product Discovery"),
];

/// How `self` links look; the host is the simulated site's, not the simulator's.
const SITE: &str = "https://sim.atlassian.net/rest/api/3";
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;
const SCIM_DEFAULT_COUNT: usize = 100;
const SCIM_MAX_COUNT: usize = 100;
const RATE_REQUESTS: u32 = 100;
const RATE_WINDOW_MS: u64 = 1_000;
/// The key the SCIM API is rate limited under (one token per directory).
const SCIM_RATE_KEY: &str = "scim";

const SCIM_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SCIM_ATLASSIAN_EXT: &str = "urn:scim:schemas:extension:atlassian-external:2.0:User";
const SCIM_LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SCIM_PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

// ---------------------------------------------------------------------------------------------
// Flags

/// Jira's start-up flags.
#[derive(Clone, clap::Args)]
#[group(id = "JiraFlags")]
pub struct Flags {
    /// Email of the built-in site admin (the Basic auth user name).
    #[arg(id = "jira_admin_email", long = "jira-admin-email", env = "SIM_JIRA_ADMIN_EMAIL", default_value = ADMIN_EMAIL)]
    pub admin_email: String,
    /// API token of the built-in site admin (Basic `email:token`, or Bearer). Never logged.
    #[arg(id = "jira_admin_token", long = "jira-admin-token", env = "SIM_JIRA_ADMIN_TOKEN", default_value = DEFAULT_ADMIN_TOKEN, hide_env_values = true)]
    pub admin_token: String,
    /// Id of the simulated SCIM directory (the `{directoryId}` of its base URL).
    #[arg(id = "jira_scim_directory_id", long = "jira-scim-directory-id", env = "SIM_JIRA_SCIM_DIRECTORY_ID", default_value = DEFAULT_DIRECTORY_ID)]
    pub scim_directory_id: String,
    /// Bearer token of the SCIM directory API. Never logged.
    #[arg(id = "jira_scim_token", long = "jira-scim-token", env = "SIM_JIRA_SCIM_TOKEN", default_value = DEFAULT_SCIM_TOKEN, hide_env_values = true)]
    pub scim_token: String,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            admin_email: ADMIN_EMAIL.to_owned(),
            admin_token: DEFAULT_ADMIN_TOKEN.to_owned(),
            scim_directory_id: DEFAULT_DIRECTORY_ID.to_owned(),
            scim_token: DEFAULT_SCIM_TOKEN.to_owned(),
        }
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags")
            .field("admin_email", &self.admin_email)
            .field("admin_token", &"<redacted>")
            .field("scim_directory_id", &self.scim_directory_id)
            .field("scim_token", &"<redacted>")
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AccountType {
    Atlassian,
    App,
    Customer,
}

impl AccountType {
    fn parse(s: &str) -> Option<AccountType> {
        match s {
            "atlassian" => Some(AccountType::Atlassian),
            "app" => Some(AccountType::App),
            "customer" => Some(AccountType::Customer),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AccountType::Atlassian => "atlassian",
            AccountType::App => "app",
            AccountType::Customer => "customer",
        }
    }
}

/// An Atlassian account as the site knows it.
#[derive(Clone, Debug)]
struct User {
    account_id: String,
    account_type: AccountType,
    /// The real address; shown only when `email_visible`.
    email: Option<String>,
    email_visible: bool,
    display_name: String,
    /// False once deactivated (through SCIM or the admin console).
    active: bool,
    /// False after `DELETE /user`: the account exists but is not on this site.
    site_access: bool,
    products: BTreeSet<String>,
    site_admin: bool,
    /// The SCIM directory's id for this user, when the directory manages the account.
    scim_id: Option<String>,
    api_token: Option<String>,
    time_zone: String,
    locale: String,
    created_ms: i64,
    modified_ms: i64,
}

impl User {
    fn shown_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_visible)
    }
}

#[derive(Clone, Debug)]
struct Group {
    group_id: String,
    name: String,
    /// Account ids, in a stable order.
    members: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct Invitation {
    email: String,
    account_id: String,
    at_ms: i64,
}

/// The authenticated caller, put in request extensions by [`guard`].
#[derive(Clone, Debug)]
struct Caller {
    account_id: String,
    site_admin: bool,
}

impl Caller {
    fn require_admin(&self) -> Result<(), ApiError> {
        if self.site_admin {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "You do not have permission to perform this operation: it requires site administration rights.",
            ))
        }
    }
}

/// What a user needs to exist (from `POST /user` or a seed).
#[derive(Debug)]
struct NewUser {
    account_id: Option<String>,
    account_type: AccountType,
    email: Option<String>,
    email_visible: bool,
    display_name: Option<String>,
    active: bool,
    site_access: bool,
    products: BTreeSet<String>,
    site_admin: bool,
    scim_managed: bool,
    api_token: Option<String>,
}

impl NewUser {
    fn person(email: &str, name: &str) -> Self {
        NewUser {
            account_id: None,
            account_type: AccountType::Atlassian,
            email: Some(email.to_owned()),
            email_visible: true,
            display_name: Some(name.to_owned()),
            active: true,
            site_access: true,
            products: BTreeSet::new(),
            site_admin: false,
            scim_managed: false,
            api_token: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State

/// The Jira site plus its organisation's SCIM directory.
#[derive(Clone, Debug)]
pub struct State {
    /// Insertion order, so that pages are stable.
    users: BTreeMap<u64, User>,
    by_account: HashMap<String, u64>,
    /// Lower-cased address -> user (addresses are unique per Atlassian account).
    by_email: HashMap<String, u64>,
    /// API token -> user.
    tokens: HashMap<String, u64>,
    groups: BTreeMap<String, Group>,
    invitations: Vec<Invitation>,
    next_seq: u64,
    directory_id: String,
    scim_token: String,
    limiter: Limiter,
    /// When set, every 429 says `Retry-After: N` instead of the seconds left in the window.
    retry_after_secs: Option<u32>,
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let flags = &config.jira;
        let now = now_ms();
        let mut state = State {
            users: BTreeMap::new(),
            by_account: HashMap::new(),
            by_email: HashMap::new(),
            tokens: HashMap::new(),
            groups: BTreeMap::new(),
            invitations: Vec::new(),
            next_seq: 1,
            directory_id: flags.scim_directory_id.clone(),
            scim_token: flags.scim_token.clone(),
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_REQUESTS,
                window_ms: RATE_WINDOW_MS,
                daily_requests: None,
            }),
            retry_after_secs: None,
        };
        let admin = NewUser {
            account_id: Some(ADMIN_ACCOUNT_ID.to_owned()),
            site_admin: true,
            api_token: Some(flags.admin_token.clone()),
            products: ["jira-software".to_owned()].into(),
            ..NewUser::person(&flags.admin_email, ADMIN_NAME)
        };
        // The built-in admin is valid by construction.
        if let Err(e) = state.insert_user(admin, now) {
            tracing::error!(error = %e.message(), "jira admin is invalid");
        }
        if fixture == Fixture::Default {
            state.load_default_fixture(now);
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: Seed| state.apply_seed(seed, now_ms()))
    }

    fn snapshot(&self) -> Value {
        let users: Vec<Value> = self.users.values().map(|u| self.snapshot_user(u)).collect();
        let mut groups: Vec<&Group> = self.groups.values().collect();
        groups.sort_by_key(|g| g.name.to_lowercase());
        let memberships: Vec<Value> = groups
            .iter()
            .flat_map(|g| g.members.iter().map(move |a| json!({ "groupId": g.group_id, "accountId": a })))
            .collect();
        let groups: Vec<Value> =
            groups.iter().map(|g| json!({ "groupId": g.group_id, "name": g.name, "members": g.members })).collect();
        let invitations: Vec<Value> = self
            .invitations
            .iter()
            .map(|i| json!({ "emailAddress": i.email, "accountId": i.account_id, "at": rfc3339_ms(i.at_ms) }))
            .collect();
        json!({
            "users": users,
            "groups": groups,
            "memberships": memberships,
            "invitations": invitations,
            "scim": { "directoryId": self.directory_id },
        })
    }

    fn config(&self) -> Value {
        json!({ "rate_limit": self.limiter.config(), "retry_after_secs": self.retry_after_secs })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(map) = patch else {
            return Err("expected an object like {\"rate_limit\": {...}, \"retry_after_secs\": 2}".into());
        };
        // Validate everything before changing anything.
        let mut limiter = self.limiter.clone();
        let mut retry_after = self.retry_after_secs;
        for (knob, value) in map {
            match knob.as_str() {
                "rate_limit" => limiter.configure(value)?,
                "retry_after_secs" => {
                    retry_after = match value {
                        Value::Null => None,
                        v => Some(
                            v.as_u64()
                                .and_then(|n| u32::try_from(n).ok())
                                .filter(|n| *n >= 1)
                                .ok_or("retry_after_secs must be a positive integer or null")?,
                        ),
                    }
                }
                other => return Err(format!("unknown knob {other:?} (known: rate_limit, retry_after_secs)")),
            }
        }
        self.limiter = limiter;
        self.retry_after_secs = retry_after;
        Ok(())
    }

    fn injected_error(&self, uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        let scim = is_scim_path(uri.path());
        if status == StatusCode::TOO_MANY_REQUESTS {
            let key = if scim {
                Some(SCIM_RATE_KEY.to_owned())
            } else {
                credential(headers).and_then(|c| self.authenticate(&c)).map(|c| c.account_id)
            };
            let decision = self.limiter.exhausted(key.as_deref(), now_ms);
            return self.rate_limited(&decision, now_ms, scim);
        }
        let reason = status.canonical_reason().unwrap_or("Error");
        if scim {
            ScimError::new(status, reason).into_response()
        } else {
            ApiError::new(status, reason).into_response()
        }
    }

    fn router(sim: Sim) -> Router<Sim> {
        Router::new()
            .route("/myself", get(myself))
            .route("/user", get(get_user).post(create_user).delete(delete_user))
            .route("/user/search", get(search_users))
            .route("/users/search", get(all_users))
            .route("/user/groups", get(user_groups))
            .route("/group/bulk", get(bulk_groups))
            .route("/group/member", get(group_members))
            .route("/group/user", axum::routing::post(add_to_group).delete(remove_from_group))
            .route_layer(from_fn_with_state(sim, guard))
            .method_not_allowed_fallback(|| async {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            })
            .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "null for uri: not a Jira REST resource") })
    }

    fn extra_mounts(sim: Sim) -> Vec<(&'static str, Router<Sim>)> {
        let scim = Router::new()
            .route("/directory/{directory_id}/Users", get(scim_list_users).post(scim_not_simulated))
            .route(
                "/directory/{directory_id}/Users/{id}",
                get(scim_get_user).patch(scim_patch_user).put(scim_not_simulated).delete(scim_not_simulated),
            )
            .route_layer(from_fn_with_state(sim, scim_guard))
            .fallback(|| async { ScimError::new(StatusCode::NOT_FOUND, "Resource not found") });
        vec![(SCIM_MOUNT, scim)]
    }
}

impl State {
    fn load_default_fixture(&mut self, now: i64) {
        for (id, name) in FIXTURE_GROUPS {
            self.insert_group(Some((*id).to_owned()), (*name).to_owned());
        }
        let software: BTreeSet<String> = ["jira-software".to_owned()].into();
        for gid in [SOFTWARE_USERS_GROUP_ID, ADMINS_GROUP_ID] {
            self.add_member(gid, ADMIN_ACCOUNT_ID);
        }
        let people = [
            // A visible address, managed by the SCIM directory.
            NewUser {
                account_id: Some("5b10ac8d82e05b22cc7d4ef5".into()),
                products: software.clone(),
                scim_managed: true,
                ..NewUser::person("grace@example.com", "Grace Hopper")
            },
            // Hides their address: it reads `null` in every response.
            NewUser {
                account_id: Some("712020:6f1c0b7e-4c1d-4f0e-9a55-2f0d8c1b7a11".into()),
                email_visible: false,
                products: software,
                ..NewUser::person("alex.private@example.com", "Alex Private")
            },
            // An app account: no address at all.
            NewUser {
                account_id: Some("557058:f58131cb-b67d-43c7-b30d-6b58d40bd077".into()),
                account_type: AccountType::App,
                email: None,
                ..NewUser::person("", "Automation for Jira")
            },
            // A service desk customer.
            NewUser {
                account_id: Some("qm:2c3a9f1e-6b7d-4e8a-9c0f-1d2e3f4a5b6c:0e1f2a3b".into()),
                account_type: AccountType::Customer,
                ..NewUser::person("casey@customer.example", "Casey Customer")
            },
        ];
        for person in people {
            // The fixture is valid by construction; a failure here would be a bug in it.
            if let Err(e) = self.insert_user(person, now) {
                tracing::error!(error = %e.message(), "jira default fixture is invalid");
            }
        }
        for (gid, account) in [
            (SOFTWARE_USERS_GROUP_ID, "5b10ac8d82e05b22cc7d4ef5"),
            (ENGINEERING_GROUP_ID, "5b10ac8d82e05b22cc7d4ef5"),
            (SOFTWARE_USERS_GROUP_ID, "712020:6f1c0b7e-4c1d-4f0e-9a55-2f0d8c1b7a11"),
        ] {
            self.add_member(gid, account);
        }
    }

    fn user_by_seq(&self, seq: u64) -> Option<&User> {
        self.users.get(&seq)
    }

    fn user(&self, account_id: &str) -> Option<&User> {
        self.by_account.get(account_id).and_then(|s| self.user_by_seq(*s))
    }

    fn user_mut(&mut self, account_id: &str) -> Option<&mut User> {
        let seq = *self.by_account.get(account_id)?;
        self.users.get_mut(&seq)
    }

    /// A user the Jira REST API can see: on this site.
    fn site_user(&self, account_id: &str) -> Result<&User, ApiError> {
        self.user(account_id).filter(|u| u.site_access).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "Specified user does not exist or you do not have required permissions",
            )
        })
    }

    fn user_by_email(&self, email: &str) -> Option<&User> {
        self.by_email.get(&email.to_lowercase()).and_then(|s| self.user_by_seq(*s))
    }

    fn scim_user(&self, scim_id: &str) -> Option<&User> {
        self.users.values().find(|u| u.scim_id.as_deref() == Some(scim_id))
    }

    fn authenticate(&self, credential: &Credential) -> Option<Caller> {
        let token = match credential {
            Credential::Basic { token, .. } | Credential::Bearer(token) => token,
        };
        let user = self.user_by_seq(*self.tokens.get(token)?)?;
        if let Credential::Basic { email, .. } = credential {
            if !user.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email)) {
                return None;
            }
        }
        (user.active && user.site_access)
            .then(|| Caller { account_id: user.account_id.clone(), site_admin: user.site_admin })
    }

    fn groups_of(&self, account_id: &str) -> Vec<&Group> {
        let mut groups: Vec<&Group> = self.groups.values().filter(|g| g.members.contains(account_id)).collect();
        groups.sort_by_key(|g| g.name.to_lowercase());
        groups
    }

    fn insert_group(&mut self, group_id: Option<String>, name: String) -> String {
        let group_id = group_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        self.groups.insert(group_id.clone(), Group { group_id: group_id.clone(), name, members: BTreeSet::new() });
        group_id
    }

    fn add_member(&mut self, group_id: &str, account_id: &str) -> bool {
        self.groups.get_mut(group_id).is_some_and(|g| g.members.insert(account_id.to_owned()))
    }

    fn insert_user(&mut self, input: NewUser, now: i64) -> Result<String, ApiError> {
        let email = input.email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        match (&email, input.account_type) {
            (None, AccountType::Atlassian | AccountType::Customer) => {
                return Err(ApiError::field("emailAddress", "You must specify an email address."))
            }
            (Some(e), _) if !valid_email(e) => {
                return Err(ApiError::field("emailAddress", "You must specify a valid email address."))
            }
            (Some(e), _) if self.user_by_email(e).is_some() => {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "A user with that email address already exists."))
            }
            _ => {}
        }
        for p in &input.products {
            if !PRODUCTS.iter().any(|(k, _)| k == p) {
                return Err(unknown_product(p));
            }
        }
        let account_id = input.account_id.unwrap_or_else(|| format!("712020:{}", uuid::Uuid::new_v4()));
        if account_id.trim().is_empty() || self.by_account.contains_key(&account_id) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "accountId must be non-empty and unique"));
        }
        if let Some(token) = &input.api_token {
            if token.is_empty() || self.tokens.contains_key(token) {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "api token must be non-empty and unique"));
            }
        }
        let display_name = input
            .display_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .or_else(|| email.as_deref().and_then(|e| e.split('@').next()).map(str::to_owned))
            .unwrap_or_else(|| "Unnamed".to_owned());
        let seq = self.next_seq;
        self.next_seq += 1;
        let user = User {
            account_id: account_id.clone(),
            account_type: input.account_type,
            email: email.clone(),
            email_visible: input.email_visible,
            display_name,
            active: input.active,
            site_access: input.site_access,
            products: if input.site_access { input.products } else { BTreeSet::new() },
            site_admin: input.site_admin,
            scim_id: input.scim_managed.then(|| uuid::Uuid::new_v4().to_string()),
            api_token: input.api_token,
            time_zone: "UTC".into(),
            locale: "en_US".into(),
            created_ms: now,
            modified_ms: now,
        };
        if let Some(e) = &email {
            self.by_email.insert(e.to_lowercase(), seq);
        }
        if let Some(t) = &user.api_token {
            self.tokens.insert(t.clone(), seq);
        }
        self.by_account.insert(account_id.clone(), seq);
        self.users.insert(seq, user);
        Ok(account_id)
    }

    // ---- rendering ----

    fn user_json(&self, u: &User, expand: Expand) -> Value {
        let mut v = json!({
            "self": format!("{SITE}/user?accountId={}", u.account_id),
            "accountId": u.account_id,
            "accountType": u.account_type.as_str(),
            "avatarUrls": avatar_urls(&u.account_id),
            "displayName": u.display_name,
            "active": u.active,
            "timeZone": u.time_zone,
            "locale": u.locale,
        });
        // Privacy: a hidden address is `null`; an app account has none at all.
        if u.email.is_some() {
            v["emailAddress"] = u.shown_email().map_or(Value::Null, Value::from);
        }
        if expand.groups {
            let items: Vec<Value> = self.groups_of(&u.account_id).into_iter().map(group_ref).collect();
            v["groups"] = json!({ "size": items.len(), "items": items });
        }
        if expand.application_roles {
            let items: Vec<Value> = u.products.iter().map(|k| json!({ "key": k, "name": product_name(k) })).collect();
            v["applicationRoles"] = json!({ "size": items.len(), "items": items });
        }
        v
    }

    fn snapshot_user(&self, u: &User) -> Value {
        json!({
            "accountId": u.account_id,
            "accountType": u.account_type.as_str(),
            "emailAddress": u.email,
            "emailVisible": u.email_visible,
            "displayName": u.display_name,
            "active": u.active,
            "siteAccess": u.site_access,
            "products": u.products,
            "groups": self.groups_of(&u.account_id).iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(),
            "siteAdmin": u.site_admin,
            "scimManaged": u.scim_id.is_some(),
            "scimId": u.scim_id,
            "hasApiToken": u.api_token.is_some(),
        })
    }

    fn scim_json(&self, u: &User) -> Value {
        let scim_id = u.scim_id.as_deref().unwrap_or_default();
        let email = u.email.as_deref().unwrap_or_default();
        json!({
            "schemas": [SCIM_USER_SCHEMA, SCIM_ATLASSIAN_EXT],
            "id": scim_id,
            "userName": email,
            "emails": [{ "value": email, "type": "work", "primary": true }],
            "name": { "formatted": u.display_name },
            "displayName": u.display_name,
            "active": u.active,
            SCIM_ATLASSIAN_EXT: { "atlassianAccountId": u.account_id },
            "meta": {
                "resourceType": "User",
                "created": rfc3339_s(u.created_ms),
                "lastModified": rfc3339_s(u.modified_ms),
                "location": format!("https://api.atlassian.com/scim/directory/{}/Users/{scim_id}", self.directory_id),
            },
        })
    }

    /// The 429 Jira sends: `Retry-After` in seconds, the reset as an ISO 8601 timestamp.
    fn rate_limited(&self, d: &Decision, now_ms: i64, scim: bool) -> Response {
        let retry_after = self.retry_after_secs.map_or_else(|| d.retry_after_secs(now_ms), i64::from);
        let mut response = if scim {
            ScimError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests: rate limit exceeded").into_response()
        } else {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.").into_response()
        };
        let h = response.headers_mut();
        limit_headers(d, h);
        h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        if let Ok(v) = HeaderValue::from_str(&rfc3339_s(now_ms + retry_after * 1000)) {
            h.insert("x-ratelimit-reset", v);
        }
        h.insert("ratelimit-reason", HeaderValue::from_static("jira-burst-based"));
        response
    }

    // ---- seeding ----

    fn apply_seed(&mut self, seed: Seed, now: i64) -> Result<Value, String> {
        let mut groups = Vec::new();
        for g in seed.groups {
            let name = g.name.trim().to_owned();
            if name.is_empty() {
                return Err("groups: name must not be empty".into());
            }
            if self.groups.values().any(|x| x.name.eq_ignore_ascii_case(&name)) {
                return Err(format!("groups: a group named {name:?} already exists"));
            }
            if let Some(id) = &g.group_id {
                if id.trim().is_empty() || self.groups.contains_key(id) {
                    return Err(format!("groups: groupId {id:?} is empty or taken"));
                }
            }
            let id = self.insert_group(g.group_id, name);
            groups.push(group_ref(&self.groups[&id]));
        }

        let mut users = Vec::new();
        for u in seed.users {
            let account_type = match u.account_type.as_deref() {
                None => AccountType::Atlassian,
                Some(t) => AccountType::parse(t).ok_or_else(|| format!("users: invalid accountType {t:?}"))?,
            };
            let label = u.email_address.clone().or_else(|| u.display_name.clone()).unwrap_or_default();
            for gid in &u.groups {
                if !self.groups.contains_key(gid) {
                    return Err(format!("users: {label}: no group with groupId {gid:?} (groups are given by id)"));
                }
            }
            let input = NewUser {
                account_id: u.account_id,
                account_type,
                email: u.email_address,
                email_visible: u.email_visible.unwrap_or(true),
                display_name: u.display_name,
                active: u.active.unwrap_or(true),
                site_access: u.site_access.unwrap_or(true),
                products: u.products.unwrap_or_default().into_iter().collect(),
                site_admin: u.site_admin.unwrap_or(false),
                scim_managed: u.scim_managed.unwrap_or(false),
                api_token: u.api_token,
            };
            let id = self.insert_user(input, now).map_err(|e| format!("users: {label}: {}", e.message()))?;
            for gid in &u.groups {
                self.add_member(gid, &id);
            }
            let user = self.user(&id).ok_or("users: the new user vanished")?;
            users.push(self.snapshot_user(user));
        }
        Ok(json!({ "groups": groups, "users": users }))
    }
}

fn group_ref(g: &Group) -> Value {
    json!({ "name": g.name, "groupId": g.group_id, "self": format!("{SITE}/group?groupId={}", g.group_id) })
}

fn product_name(key: &str) -> &str {
    PRODUCTS.iter().find(|(k, _)| *k == key).map_or(key, |(_, n)| n)
}

fn unknown_product(p: &str) -> ApiError {
    let known: Vec<&str> = PRODUCTS.iter().map(|(k, _)| *k).collect();
    ApiError::field("products", &format!("'{p}' is not a product of this site (products: {})", known.join(", ")))
}

fn avatar_urls(account_id: &str) -> Value {
    let url = |size: u32| format!("https://avatar-management.sim.example/{account_id}/{size}");
    json!({ "16x16": url(16), "24x24": url(24), "32x32": url(32), "48x48": url(48) })
}

fn is_scim_path(path: &str) -> bool {
    path.starts_with("/directory/")
}

// ---------------------------------------------------------------------------------------------
// Seed format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    groups: Vec<SeedGroup>,
    #[serde(default)]
    users: Vec<SeedUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedGroup {
    name: String,
    #[serde(default)]
    group_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedUser {
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    account_type: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    email_visible: Option<bool>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    site_access: Option<bool>,
    #[serde(default)]
    products: Option<Vec<String>>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    scim_managed: Option<bool>,
    #[serde(default)]
    site_admin: Option<bool>,
    #[serde(default)]
    api_token: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Errors and request helpers

/// A Jira error response: `{"errorMessages": [...], "errors": {...}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    messages: Vec<String>,
    errors: Map<String, Value>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, messages: vec![message.into()], errors: Map::new() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// A validation error on one field: Jira puts these in `errors`, with no `errorMessages`.
    fn field(field: &str, message: &str) -> Self {
        let mut errors = Map::new();
        errors.insert(field.to_owned(), message.into());
        ApiError { status: StatusCode::BAD_REQUEST, messages: Vec::new(), errors }
    }

    fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Client must be authenticated to access this resource.")
    }

    fn message(&self) -> String {
        let mut all = self.messages.clone();
        all.extend(self.errors.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())));
        all.join("; ")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({ "errorMessages": self.messages, "errors": self.errors }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"protected-by-api-token\""));
        }
        response
    }
}

type ApiResult = Result<Response, ApiError>;

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
struct ScimError {
    status: StatusCode,
    detail: String,
    scim_type: Option<&'static str>,
}

impl ScimError {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ScimError { status, detail: detail.into(), scim_type: None }
    }

    fn invalid(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError { status: StatusCode::BAD_REQUEST, detail: detail.into(), scim_type: Some(scim_type) }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [SCIM_ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = t.into();
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
        response
    }
}

type ScimResult = Result<Response, ScimError>;

/// The query string as pairs (a parameter may repeat: `groupId=a&groupId=b`).
struct Params(Vec<(String, String)>);

impl Params {
    fn from_uri(uri: &Uri) -> Option<Self> {
        Query::<Vec<(String, String)>>::try_from_uri(uri).ok().map(|Query(pairs)| Params(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("The query parameter '{key}' is required.")))
    }

    /// Users are identified by `accountId` only since Atlassian's GDPR changes.
    fn refuse_legacy_user_ids(&self) -> Result<(), ApiError> {
        for legacy in ["username", "key", "userKey"] {
            if self.get(legacy).is_some() {
                return Err(ApiError::bad_request(format!(
                    "The '{legacy}' parameter is not supported: users are identified by accountId only (see the GDPR migration guide)."
                )));
            }
        }
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Params::from_uri(&parts.uri).ok_or_else(|| ApiError::bad_request("malformed query string"))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Expand {
    groups: bool,
    application_roles: bool,
}

impl Expand {
    fn parse(params: &Params) -> Self {
        let mut e = Expand::default();
        for part in params.all("expand").iter().flat_map(|v| v.split(',')) {
            match part.trim() {
                "groups" => e.groups = true,
                "applicationRoles" => e.application_roles = true,
                _ => {}
            }
        }
        e
    }
}

/// `startAt`/`maxResults`: default 50, clamped to 1000.
#[derive(Clone, Copy, Debug)]
struct Page {
    start: usize,
    max: usize,
}

impl Page {
    fn parse(params: &Params) -> Result<Self, ApiError> {
        let number = |key: &str, default: usize| -> Result<usize, ApiError> {
            match params.get(key).map(str::trim) {
                None | Some("") => Ok(default),
                Some(raw) => raw.parse::<usize>().map_err(|_| {
                    ApiError::bad_request(format!("The '{key}' parameter must be a non-negative integer, not '{raw}'."))
                }),
            }
        };
        Ok(Page { start: number("startAt", 0)?, max: number("maxResults", DEFAULT_PAGE)?.min(MAX_PAGE) })
    }

    fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = self.start.min(items.len());
        let end = start.saturating_add(self.max).min(items.len());
        &items[start..end]
    }

    /// A Jira page bean: `{self, maxResults, startAt, total, isLast, values}`.
    fn bean(&self, path: &str, values: Vec<Value>, total: usize) -> Value {
        json!({
            "self": format!("{SITE}{path}?startAt={}&maxResults={}", self.start, self.max),
            "maxResults": self.max,
            "startAt": self.start,
            "total": total,
            "isLast": self.start.saturating_add(values.len()) >= total,
            "values": values,
        })
    }
}

/// A presented credential.
#[derive(Debug)]
enum Credential {
    Basic { email: String, token: String },
    Bearer(String),
}

fn credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(token) = bearer(headers) {
        return Some(Credential::Bearer(token));
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, value) = auth.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (email, token) = text.split_once(':')?;
        return Some(Credential::Basic { email: email.to_owned(), token: token.to_owned() });
    }
    None
}

fn limit_headers(d: &Decision, h: &mut HeaderMap) {
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    // "Near" is under a fifth of the budget left.
    let near = u64::from(d.remaining) * 5 < u64::from(d.limit);
    h.insert("x-ratelimit-nearlimit", HeaderValue::from_static(if near { "true" } else { "false" }));
}

/// Authenticate, then rate-limit per account; every response after auth carries the headers.
async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let presented = credential(req.headers());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let jira = &mut world.tenants.jira;
        let Some(caller) = presented.as_ref().and_then(|c| jira.authenticate(c)) else {
            return ApiError::unauthorized().into_response();
        };
        let decision = jira.limiter.check(&caller.account_id, now);
        if !decision.allowed {
            return jira.rate_limited(&decision, now, false);
        }
        (caller, decision)
    };
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    limit_headers(&decision, response.headers_mut());
    response
}

// ---------------------------------------------------------------------------------------------
// Handlers: users

async fn myself(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    let world = sim.lock();
    let jira = &world.tenants.jira;
    Ok(Json(jira.user_json(jira.site_user(&caller.account_id)?, Expand::parse(&params))).into_response())
}

async fn get_user(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    Ok(Json(jira.user_json(jira.site_user(account_id)?, Expand::parse(&params))).into_response())
}

/// `GET /user/search?query=`: matches display names and addresses — hidden ones too, although
/// they read `null` in the answer. Accounts without site access are not found.
async fn search_users(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    params.refuse_legacy_user_ids()?;
    let page = Page::parse(&params)?;
    let query = params.get("query").map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    let account = params.get("accountId").map(str::trim).filter(|a| !a.is_empty());
    if query.is_none() && account.is_none() {
        return Err(ApiError::bad_request("One of 'query' or 'accountId' query parameters must be provided."));
    }
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let found: Vec<&User> = jira
        .users
        .values()
        .filter(|u| u.site_access)
        // Only site admins see app and customer accounts here.
        .filter(|u| caller.site_admin || u.account_type == AccountType::Atlassian)
        .filter(|u| account.is_none_or(|a| u.account_id == a))
        .filter(|u| {
            query.as_deref().is_none_or(|q| {
                u.display_name.to_lowercase().contains(q)
                    || u.email.as_deref().is_some_and(|e| e.to_lowercase().contains(q))
            })
        })
        .collect();
    let out: Vec<Value> = page.slice(&found).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(out).into_response())
}

/// `GET /users/search`: every account on the site, of every type (site admins only).
async fn all_users(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    caller.require_admin()?;
    let page = Page::parse(&params)?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let all: Vec<&User> = jira.users.values().filter(|u| u.site_access).collect();
    let out: Vec<Value> = page.slice(&all).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(out).into_response())
}

async fn create_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let obj = parse_object(&body)?;
    let email = match obj.get("emailAddress") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::field("emailAddress", "You must specify an email address."))
        }
        Some(_) => return Err(ApiError::field("emailAddress", "emailAddress must be a string.")),
    };
    let display_name = match obj.get("displayName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::field("displayName", "displayName must be a string.")),
    };
    let products: BTreeSet<String> = match obj.get("products") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| {
                p.as_str().map(str::to_owned).ok_or_else(|| ApiError::field("products", "products must be strings."))
            })
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => {
            return Err(ApiError::field(
                "products",
                "products is required: the product keys to give access to (may be empty).",
            ))
        }
        Some(_) => return Err(ApiError::field("products", "products must be an array of product keys.")),
    };
    if !valid_email(&email) {
        return Err(ApiError::field("emailAddress", "You must specify a valid email address."));
    }
    if let Some(p) = products.iter().find(|p| !PRODUCTS.iter().any(|(k, _)| k == *p)) {
        return Err(unknown_product(p));
    }

    let now = now_ms();
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let (account_id, action) = match jira.user_by_email(&email).map(|u| (u.account_id.clone(), u.site_access)) {
        Some((_, true)) => {
            return Err(ApiError::bad_request("A user with that email address already exists."));
        }
        // The Atlassian account exists but lost its site access: it comes back, same accountId.
        Some((account_id, false)) => {
            if let Some(u) = jira.user_mut(&account_id) {
                u.site_access = true;
                u.products = products.clone();
                u.modified_ms = now;
            }
            (account_id, "user.restore")
        }
        None => {
            let name = display_name.unwrap_or_default();
            let input = NewUser { products: products.clone(), ..NewUser::person(&email, &name) };
            (jira.insert_user(input, now)?, "user.create")
        }
    };
    // "Creates a Jira-managed user and sends an invitation email."
    jira.invitations.push(Invitation { email: email.clone(), account_id: account_id.clone(), at_ms: now });
    let user = jira.user(&account_id).cloned().ok_or_else(|| ApiError::bad_request("the new user vanished"))?;
    // Jira's answer counts the new user's groups and application roles without listing them.
    let mut data = jira.user_json(&user, Expand::default());
    data["groups"] = json!({ "size": jira.groups_of(&account_id).len(), "items": [] });
    data["applicationRoles"] = json!({ "size": user.products.len(), "items": [] });
    let mut details = Map::new();
    details.insert("account_id".into(), account_id.into());
    details.insert("products".into(), json!(products));
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
    Ok((StatusCode::CREATED, Json(data)).into_response())
}

/// Removes site access (not the Atlassian account). Refused for SCIM-managed accounts.
async fn delete_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
) -> ApiResult {
    caller.require_admin()?;
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?.to_owned();
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let user = jira.site_user(&account_id)?;
    if user.scim_id.is_some() {
        return Err(ApiError::bad_request(
            "This user is managed by an external identity provider through SCIM, so they cannot be deleted with this API: deactivate them through SCIM or in your identity provider.",
        ));
    }
    if account_id == caller.account_id {
        return Err(ApiError::bad_request("You cannot delete yourself."));
    }
    let mut removed = Vec::new();
    for g in jira.groups.values_mut() {
        if g.members.remove(&account_id) {
            removed.push(g.group_id.clone());
        }
    }
    if let Some(u) = jira.user_mut(&account_id) {
        u.site_access = false;
        u.products.clear();
        u.modified_ms = now_ms();
    }
    let mut details = Map::new();
    details.insert("account_id".into(), account_id.into());
    details.insert("groups_removed".into(), json!(removed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.delete", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn user_groups(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    jira.site_user(account_id)?;
    let groups: Vec<Value> = jira.groups_of(account_id).into_iter().map(group_ref).collect();
    Ok(Json(groups).into_response())
}

// ---------------------------------------------------------------------------------------------
// Handlers: groups

async fn bulk_groups(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = Page::parse(&params)?;
    let ids = params.all("groupId");
    let names: Vec<String> = params.all("groupName").into_iter().map(str::to_lowercase).collect();
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let mut groups: Vec<&Group> = jira
        .groups
        .values()
        .filter(|g| ids.is_empty() || ids.contains(&g.group_id.as_str()))
        .filter(|g| names.is_empty() || names.contains(&g.name.to_lowercase()))
        .collect();
    groups.sort_by_key(|g| g.name.to_lowercase());
    let values: Vec<Value> =
        page.slice(&groups).iter().map(|g| json!({ "name": g.name, "groupId": g.group_id })).collect();
    Ok(Json(page.bean("/group/bulk", values, groups.len())).into_response())
}

async fn group_members(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = Page::parse(&params)?;
    let include_inactive = matches!(params.get("includeInactiveUsers"), Some("true"));
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let group = resolve_group(jira, &params)?;
    let members: Vec<&User> = group
        .members
        .iter()
        .filter_map(|a| jira.user(a))
        .filter(|u| u.site_access && (include_inactive || u.active))
        .collect();
    let values: Vec<Value> = page.slice(&members).iter().map(|u| jira.user_json(u, Expand::default())).collect();
    Ok(Json(page.bean("/group/member", values, members.len())).into_response())
}

/// The group a request addresses: by `groupId` only. Names are deprecated as identifiers.
fn resolve_group<'a>(jira: &'a State, params: &Params) -> Result<&'a Group, ApiError> {
    let id = params.get("groupId").map(str::trim).filter(|v| !v.is_empty());
    let Some(id) = id else {
        if params.get("groupname").is_some() || params.get("groupName").is_some() {
            return Err(ApiError::bad_request(
                "Group names are deprecated as identifiers: address the group by groupId.",
            ));
        }
        return Err(ApiError::bad_request("The query parameter 'groupId' is required."));
    };
    if let Some(g) = jira.groups.get(id) {
        return Ok(g);
    }
    if let Some(g) = jira.groups.values().find(|g| g.name.eq_ignore_ascii_case(id)) {
        return Err(ApiError::bad_request(format!(
            "'{id}' is a group name, not a groupId: the group '{}' has groupId {}.",
            g.name, g.group_id
        )));
    }
    Err(ApiError::new(StatusCode::NOT_FOUND, format!("Specified group does not exist: no group has groupId '{id}'.")))
}

async fn add_to_group(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin()?;
    let obj = parse_object(&body)?;
    if obj.contains_key("name") || obj.contains_key("username") {
        return Err(ApiError::bad_request("Users are identified by accountId only."));
    }
    let account_id = match obj.get("accountId") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(ApiError::field("accountId", "accountId is required.")),
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let group = resolve_group(jira, &params)?;
    let (group_id, name) = (group.group_id.clone(), group.name.clone());
    jira.site_user(&account_id)?;
    if group.members.contains(&account_id) {
        return Err(ApiError::bad_request(format!("Cannot add user. User is already a member of '{name}'.")));
    }
    jira.add_member(&group_id, &account_id);
    let data = group_ref(&jira.groups[&group_id]);
    let mut details = Map::new();
    details.insert("group_id".into(), group_id.into());
    details.insert("group_name".into(), name.into());
    details.insert("account_id".into(), account_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "group.add", details);
    Ok((StatusCode::CREATED, Json(data)).into_response())
}

async fn remove_from_group(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    params: Params,
    op: Op,
) -> ApiResult {
    caller.require_admin()?;
    params.refuse_legacy_user_ids()?;
    let account_id = params.required("accountId")?.to_owned();
    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let group = resolve_group(jira, &params)?;
    let (group_id, name) = (group.group_id.clone(), group.name.clone());
    jira.site_user(&account_id)?;
    if !group.members.contains(&account_id) {
        return Err(ApiError::bad_request(format!("Cannot remove user. User is not a member of '{name}'.")));
    }
    if let Some(g) = jira.groups.get_mut(&group_id) {
        g.members.remove(&account_id);
    }
    let data = group_ref(&jira.groups[&group_id]);
    let mut details = Map::new();
    details.insert("group_id".into(), group_id.into());
    details.insert("group_name".into(), name.into());
    details.insert("account_id".into(), account_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "group.remove", details);
    Ok(Json(data).into_response())
}

/// The request body as a JSON object; an empty body is an empty object.
fn parse_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("The request body must be a JSON object.")),
        Err(_) => Err(ApiError::bad_request("Unexpected character in the request body: it is not valid JSON.")),
    }
}

// ---------------------------------------------------------------------------------------------
// SCIM directory

/// Bearer token of the directory, the right directory id, then the rate limit.
async fn scim_guard(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let bearer = match credential(req.headers()) {
        Some(Credential::Bearer(t)) => Some(t),
        _ => None,
    };
    let directory = req.uri().path().split('/').nth(2).unwrap_or_default().to_owned();
    let now = now_ms();
    let decision = {
        let mut world = sim.lock();
        let jira = &mut world.tenants.jira;
        let token_ok = bearer.is_some_and(|t| t == jira.scim_token);
        if !token_ok {
            return ScimError::new(StatusCode::UNAUTHORIZED, "Missing or invalid API key for this directory")
                .into_response();
        }
        if directory != jira.directory_id {
            return ScimError::new(StatusCode::NOT_FOUND, format!("Directory {directory} not found")).into_response();
        }
        let decision = jira.limiter.check(SCIM_RATE_KEY, now);
        if !decision.allowed {
            return jira.rate_limited(&decision, now, true);
        }
        decision
    };
    let mut response = next.run(req).await;
    limit_headers(&decision, response.headers_mut());
    response
}

async fn scim_list_users(AxState(sim): AxState<Sim>, uri: Uri) -> ScimResult {
    let params = Params::from_uri(&uri).ok_or_else(|| ScimError::invalid("invalidValue", "malformed query string"))?;
    let positive = |key: &str, default: usize| -> Result<usize, ScimError> {
        match params.get(key).map(str::trim) {
            None | Some("") => Ok(default),
            Some(raw) => raw
                .parse::<usize>()
                .map_err(|_| ScimError::invalid("invalidValue", format!("{key} must be an integer"))),
        }
    };
    // 1-based; values below 1 are read as 1 (RFC 7644 §3.4.2.4).
    let start_index = positive("startIndex", 1)?.max(1);
    let count = positive("count", SCIM_DEFAULT_COUNT)?.min(SCIM_MAX_COUNT);
    let filter = params.get("filter").map(parse_scim_filter).transpose()?;
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let all: Vec<&User> = jira
        .users
        .values()
        .filter(|u| u.scim_id.is_some())
        .filter(|u| filter.as_deref().is_none_or(|f| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(f))))
        .collect();
    let page: Vec<Value> = all.iter().skip(start_index - 1).take(count).map(|u| jira.scim_json(u)).collect();
    Ok(Json(json!({
        "schemas": [SCIM_LIST_SCHEMA],
        "totalResults": all.len(),
        "startIndex": start_index,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
    .into_response())
}

/// Only `userName eq "value"` is supported; returns the value.
fn parse_scim_filter(filter: &str) -> Result<String, ScimError> {
    let unsupported =
        || ScimError::invalid("invalidFilter", format!("Unsupported filter: {filter} (use userName eq \"...\")"));
    let mut parts = filter.trim().splitn(3, char::is_whitespace);
    let (attr, op, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !attr.eq_ignore_ascii_case("userName") || !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    let value = value.trim();
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).map(str::to_owned).ok_or_else(unsupported)
}

async fn scim_get_user(AxState(sim): AxState<Sim>, Path((_dir, id)): Path<(String, String)>) -> ScimResult {
    let world = sim.lock();
    let jira = &world.tenants.jira;
    let user =
        jira.scim_user(&id).ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("User {id} not found")))?;
    Ok(Json(jira.scim_json(user)).into_response())
}

/// `PATCH /Users/{id}`: `replace` of `active` (or `displayName`), with a path or as a value object.
/// Identity providers send `active` as a boolean or as the string "False"; both are accepted.
async fn scim_patch_user(
    AxState(sim): AxState<Sim>,
    Path((_dir, id)): Path<(String, String)>,
    op: Op,
    body: Bytes,
) -> ScimResult {
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ScimError::invalid("invalidSyntax", "The body is not valid JSON"))?;
    if !body["schemas"].as_array().is_some_and(|s| s.iter().any(|x| x == SCIM_PATCH_SCHEMA)) {
        return Err(ScimError::invalid("invalidSyntax", format!("schemas must contain {SCIM_PATCH_SCHEMA}")));
    }
    let ops = body["Operations"]
        .as_array()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ScimError::invalid("invalidSyntax", "Operations must be a non-empty array"))?;
    let mut active: Option<bool> = None;
    let mut display_name: Option<String> = None;
    for o in ops {
        let kind = o["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        if kind != "replace" && kind != "add" {
            return Err(ScimError::invalid("invalidValue", format!("Unsupported op {:?}", o["op"])));
        }
        let mut apply = |attr: &str, value: &Value| -> Result<(), ScimError> {
            match attr {
                "active" => {
                    active = Some(
                        scim_bool(value)
                            .ok_or_else(|| ScimError::invalid("invalidValue", "active must be a boolean"))?,
                    )
                }
                "displayName" => {
                    display_name = Some(
                        value
                            .as_str()
                            .ok_or_else(|| ScimError::invalid("invalidValue", "displayName must be a string"))?
                            .to_owned(),
                    )
                }
                other => return Err(ScimError::invalid("invalidPath", format!("Unsupported path {other}"))),
            }
            Ok(())
        };
        match o["path"].as_str() {
            Some(path) => apply(path, &o["value"])?,
            None => {
                let value = o["value"].as_object().ok_or_else(|| {
                    ScimError::invalid("invalidValue", "value must be an object when there is no path")
                })?;
                for (k, v) in value {
                    apply(k, v)?;
                }
            }
        }
    }

    let mut world = sim.lock();
    let world = &mut *world;
    let jira = &mut world.tenants.jira;
    let account_id = jira
        .scim_user(&id)
        .map(|u| u.account_id.clone())
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, format!("User {id} not found")))?;
    let Some(user) = jira.user_mut(&account_id) else {
        return Err(ScimError::new(StatusCode::NOT_FOUND, format!("User {id} not found")));
    };
    let before = user.active;
    let mut changed: Vec<&str> = Vec::new();
    update_field(&mut user.active, active, "active", &mut changed);
    update_field(&mut user.display_name, display_name, "displayName", &mut changed);
    if !changed.is_empty() {
        user.modified_ms = now_ms();
    }
    let user = user.clone();
    let data = jira.scim_json(&user);
    let action = match active {
        Some(false) if before => "scim.user.deactivate",
        Some(true) if !before => "scim.user.activate",
        _ => "scim.user.update",
    };
    let mut details = Map::new();
    details.insert("scim_id".into(), id.into());
    details.insert("account_id".into(), account_id.into());
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
    Ok(Json(data).into_response())
}

fn scim_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

async fn scim_not_simulated() -> Response {
    let mut r = registry::not_implemented(VENDOR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_the_contract_group_an_admin_and_a_hidden_address() {
        let s = state();
        assert_eq!(s.groups[SOFTWARE_USERS_GROUP_ID].name, "jira-software-users");
        let admin = s.user(ADMIN_ACCOUNT_ID).unwrap();
        assert!(admin.site_admin);
        let hidden = s.user_by_email("alex.private@example.com").unwrap();
        assert_eq!(hidden.shown_email(), None);
        assert!(s.user_json(hidden, Expand::default())["emailAddress"].is_null());
        let app = s.users.values().find(|u| u.account_type == AccountType::App).unwrap();
        assert!(s.user_json(app, Expand::default()).get("emailAddress").is_none());
        let c = Credential::Basic { email: "ADMIN@sim.example".into(), token: DEFAULT_ADMIN_TOKEN.into() };
        assert!(s.authenticate(&c).is_some_and(|c| c.site_admin));
        let wrong = Credential::Basic { email: "grace@example.com".into(), token: DEFAULT_ADMIN_TOKEN.into() };
        assert!(s.authenticate(&wrong).is_none(), "the email must be the token owner's");
        assert!(s.authenticate(&Credential::Bearer(DEFAULT_ADMIN_TOKEN.into())).is_some());
    }

    #[test]
    fn flags_fit_beside_the_other_vendors() {
        use clap::Args as _;
        Config::augment_args(clap::Command::new("sim")).debug_assert();
    }

    #[test]
    fn scim_filters_are_parsed_strictly() {
        assert_eq!(parse_scim_filter("userName eq \"a@b.example\"").unwrap(), "a@b.example");
        assert_eq!(parse_scim_filter("USERNAME EQ \"x y\"").unwrap(), "x y");
        assert!(parse_scim_filter("emails.value eq \"a@b\"").is_err());
        assert!(parse_scim_filter("userName co \"a\"").is_err());
        assert!(parse_scim_filter("userName eq a").is_err());
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = s.users.len();
        let err = s
            .seed(json!({"users": [
                {"emailAddress": "ada@example.com"},
                {"emailAddress": "x@example.com", "groups": ["jira-software-users"]}
            ]}))
            .unwrap_err();
        assert!(err.contains("groups are given by id"), "{err}");
        assert_eq!(s.users.len(), before);
    }
}
