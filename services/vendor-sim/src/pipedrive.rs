//! Pipedrive v1 (`/pipedrive/v1`): users, roles and role assignments, deals.
//!
//! Faithful to `shared/vendor-guides/pipedrive.txt`, quirks included:
//! - auth by `api_token` query parameter or `Authorization: Bearer`; a token belongs to a user;
//!   tokens of deactivated users stop working;
//! - only admins write users and role assignments, or list all users (403 otherwise);
//!   `GET /users/{id}` with a non-admin token answers the token owner's own data;
//! - `GET /users/find` returns PARTIAL, case-insensitive matches, and `"data": null` when none;
//! - `PUT /users/{id}` is a partial update; the last active admin cannot be deactivated;
//! - a user holds at most one role: assigning moves them;
//! - a deal's `user_id` is an integer in requests but an object in responses;
//! - offset pagination (`start`, `limit` default 100, clamped to 500) with `next_start`;
//!   an empty page answers `"data": null`, as real v1 list endpoints do;
//! - 80 requests per 2 s per token (windows on even Unix seconds) and 80,000 per day;
//!   every authenticated response carries `X-RateLimit-*` and `X-Daily-Requests-Left`, where
//!   `X-RateLimit-Reset` is a Unix timestamp, not a delta; a 429 has no `Retry-After`.
//!
//! Ids: the built-in admin is user 1, other users count from 1001, roles from 1, deals from
//! 100001, so that a client mixing up kinds of ids does not pass a test by accident.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State as AxState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Number, Value};

use crate::http::{bearer, valid_email, Op};
use crate::ratelimit::{Decision, Limiter, RateLimitConfig, RateLimitStyle};
use crate::registry::{self, update_field, Vendor, VendorSim};
use crate::sim::{now_ms, rfc3339_s, Sim};
use crate::{Config, Fixture};

const VENDOR: Vendor = Vendor::Pipedrive;

/// The built-in admin user that owns the admin token; survives every reset.
pub const ADMIN_USER_ID: i64 = 1;
pub const ADMIN_NAME: &str = "Sim Admin";
pub const ADMIN_EMAIL: &str = "admin@sim.example";
pub const DEFAULT_ADMIN_TOKEN: &str = "pd-admin-token";
const FIRST_USER_ID: i64 = 1001;
const FIRST_ROLE_ID: i64 = 1;
const FIRST_DEAL_ID: i64 = 100_001;
const FIRST_ASSIGNMENT_ID: i64 = 1;
const COMPANY_ID: i64 = 100;
const COMPANY_NAME: &str = "Sim Company";
const COMPANY_DOMAIN: &str = "sim";

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
const RATE_REQUESTS: u32 = 80;
const RATE_WINDOW_MS: u64 = 2_000;
const RATE_DAILY: u32 = 80_000;
const ERROR_INFO: &str = "Please check developers.pipedrive.com for more information about Pipedrive API.";

// ---------------------------------------------------------------------------------------------
// Flags

/// Pipedrive's start-up flags.
#[derive(Clone, clap::Args)]
pub struct Flags {
    /// API token of the tenant's built-in admin (user 1, "Sim Admin"). Never logged.
    #[arg(
        long = "pipedrive-admin-token",
        env = "SIM_PIPEDRIVE_ADMIN_TOKEN",
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

#[derive(Clone, Debug)]
struct User {
    id: i64,
    name: String,
    email: String,
    phone: Option<String>,
    active: bool,
    is_admin: bool,
    role: Option<Holding>,
    /// ISO 8601, formatted once when set.
    created: String,
    modified: String,
    timezone_name: String,
    locale: String,
    default_currency: String,
    has_created_company: bool,
    api_token: Option<String>,
}

/// A user's (single) role assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Holding {
    assignment_id: i64,
    role_id: i64,
}

#[derive(Clone, Debug)]
struct Role {
    id: i64,
    name: String,
    parent_role_id: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DealStatus {
    Open,
    Won,
    Lost,
    Deleted,
}

impl DealStatus {
    fn parse(s: &str) -> Option<DealStatus> {
        match s {
            "open" => Some(DealStatus::Open),
            "won" => Some(DealStatus::Won),
            "lost" => Some(DealStatus::Lost),
            "deleted" => Some(DealStatus::Deleted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            DealStatus::Open => "open",
            DealStatus::Won => "won",
            DealStatus::Lost => "lost",
            DealStatus::Deleted => "deleted",
        }
    }
}

#[derive(Clone, Debug)]
struct Deal {
    id: i64,
    title: String,
    value: Number,
    currency: String,
    status: DealStatus,
    owner: i64,
    /// Every owner the deal had, in order; appended only when the owner actually changes.
    owner_history: Vec<i64>,
    /// ISO 8601, formatted once when set.
    add_time: String,
    update_time: String,
}

/// A user as the API shows it (tokens are never shown).
#[derive(Serialize)]
struct UserOut<'a> {
    id: i64,
    name: &'a str,
    email: &'a str,
    phone: Option<&'a str>,
    active_flag: bool,
    is_admin: u8,
    role_id: Option<i64>,
    created: &'a str,
    modified: &'a str,
    last_login: Option<&'a str>,
    timezone_name: &'a str,
    locale: &'a str,
    default_currency: &'a str,
    icon_url: Option<&'a str>,
    has_created_company: bool,
}

/// A deal as the API shows it: `user_id` is an object here, unlike in requests.
#[derive(Serialize)]
struct DealOut<'a> {
    id: i64,
    title: &'a str,
    value: &'a Number,
    currency: &'a str,
    status: &'static str,
    user_id: OwnerOut<'a>,
    owner_name: Option<&'a str>,
    add_time: &'a str,
    update_time: &'a str,
}

#[derive(Serialize)]
struct OwnerOut<'a> {
    id: i64,
    name: Option<&'a str>,
    email: Option<&'a str>,
    has_pic: u8,
    pic_hash: Option<&'a str>,
    active_flag: bool,
    value: i64,
}

/// Everything needed to create a user (from `POST /users` or a seed).
#[derive(Debug, Default)]
struct NewUser {
    name: Option<String>,
    email: Option<String>,
    active: Option<bool>,
    is_admin: Option<bool>,
    role_id: Option<i64>,
    phone: Option<String>,
    locale: Option<String>,
    timezone_name: Option<String>,
    default_currency: Option<String>,
    api_token: Option<String>,
}

/// The authenticated caller, put in request extensions by [`guard`].
#[derive(Clone, Copy, Debug)]
struct Caller {
    user_id: i64,
    is_admin: bool,
}

impl Caller {
    fn require_admin(self, what: &str) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State

/// The Pipedrive tenant.
#[derive(Clone, Debug)]
pub struct State {
    users: BTreeMap<i64, User>,
    /// Lower-cased email -> user id (emails are unique within the company, case-insensitively).
    emails: HashMap<String, i64>,
    /// API token -> user id.
    tokens: HashMap<String, i64>,
    roles: BTreeMap<i64, Role>,
    deals: BTreeMap<i64, Deal>,
    next_user_id: i64,
    next_role_id: i64,
    next_deal_id: i64,
    next_assignment_id: i64,
    limiter: Limiter,
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let now = now_ms();
        let mut state = State {
            users: BTreeMap::new(),
            emails: HashMap::new(),
            tokens: HashMap::new(),
            roles: BTreeMap::new(),
            deals: BTreeMap::new(),
            next_user_id: FIRST_USER_ID,
            next_role_id: FIRST_ROLE_ID,
            next_deal_id: FIRST_DEAL_ID,
            next_assignment_id: FIRST_ASSIGNMENT_ID,
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_REQUESTS,
                window_ms: RATE_WINDOW_MS,
                daily_requests: Some(RATE_DAILY),
            }),
        };
        let admin = User {
            id: ADMIN_USER_ID,
            name: ADMIN_NAME.to_owned(),
            email: ADMIN_EMAIL.to_owned(),
            phone: None,
            active: true,
            is_admin: true,
            role: None,
            created: rfc3339_s(now),
            modified: rfc3339_s(now),
            timezone_name: "UTC".to_owned(),
            locale: "en_US".to_owned(),
            default_currency: "USD".to_owned(),
            has_created_company: true,
            api_token: Some(config.pipedrive.admin_token.clone()),
        };
        state.index_user(&admin);
        state.users.insert(admin.id, admin);
        if fixture == Fixture::Default {
            state.load_default_fixture(now);
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: Seed| state.apply_seed(seed, now_ms()))
    }

    fn snapshot(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                let mut v = self.user_json(u);
                v["has_api_token"] = u.api_token.is_some().into();
                v
            })
            .collect();
        let roles: Vec<Value> = self.roles.values().map(|r| self.role_json(r)).collect();
        let assignments: Vec<Value> =
            self.users.values().filter_map(|u| u.role.map(|h| assignment_json(u.id, h))).collect();
        let deals: Vec<Value> = self
            .deals
            .values()
            .map(|d| {
                json!({
                    "id": d.id,
                    "title": d.title,
                    "value": d.value,
                    "currency": d.currency,
                    "status": d.status.as_str(),
                    "user_id": d.owner,
                    "owner_history": d.owner_history,
                    "add_time": d.add_time,
                    "update_time": d.update_time,
                })
            })
            .collect();
        json!({
            "users": users,
            "roles": roles,
            "role_assignments": assignments,
            "deals": deals,
        })
    }

    fn config(&self) -> Value {
        json!({ "rate_limit": self.limiter.config() })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.limiter.configure_as_only_knob(patch)
    }

    fn injected_error(&self, uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let token = request_token(uri, headers);
            let decision = self.limiter.exhausted(token.as_deref(), now_ms);
            return PipedriveLimits::rejection(&decision, now_ms);
        }
        ApiError::new(status, status.canonical_reason().unwrap_or("Error")).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        Router::new()
            .route("/users", get(list_users).post(create_user))
            .route("/users/me", get(me))
            .route("/users/find", get(find_users))
            .route("/users/{id}", get(get_user).put(update_user))
            .route("/users/{id}/roleAssignments", get(user_role_assignments))
            .route("/users/{id}/permissions", get(user_permissions))
            .route("/roles", get(list_roles))
            .route("/roles/{id}", get(get_role))
            .route("/roles/{id}/assignments", get(list_role_assignments).post(assign_role).delete(unassign_role))
            .route("/deals", get(list_deals))
            .route("/deals/{id}", get(get_deal).put(update_deal).patch(update_deal))
            .route_layer(from_fn_with_state(sim, guard))
            .method_not_allowed_fallback(|| async {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
            })
            .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Unknown method .") })
    }
}

impl State {
    fn load_default_fixture(&mut self, now: i64) {
        for name in ["Sales Rep", "Sales Manager", "Admin"] {
            self.insert_role(name.to_owned(), None);
        }
        let manager = self.role_id_by_name("Sales Manager");
        let grace = NewUser {
            name: Some("Grace Hopper".into()),
            email: Some("grace@example.com".into()),
            role_id: manager,
            ..NewUser::default()
        };
        // The fixture is valid by construction; a failure here would be a bug in it.
        if let Err(e) = self.insert_user(grace, now) {
            tracing::error!(error = %e.error, "pipedrive default fixture is invalid");
        }
    }

    fn authenticate(&self, token: &str) -> Option<Caller> {
        let user = self.users.get(self.tokens.get(token)?)?;
        user.active.then_some(Caller { user_id: user.id, is_admin: user.is_admin })
    }

    fn index_user(&mut self, user: &User) {
        self.emails.insert(user.email.to_lowercase(), user.id);
        if let Some(token) = &user.api_token {
            self.tokens.insert(token.clone(), user.id);
        }
    }

    fn user(&self, id: i64) -> Result<&User, ApiError> {
        self.users.get(&id).ok_or_else(|| ApiError::not_found("User not found"))
    }

    fn role(&self, id: i64) -> Result<&Role, ApiError> {
        self.roles.get(&id).ok_or_else(|| ApiError::not_found("Role not found"))
    }

    fn role_id_by_name(&self, name: &str) -> Option<i64> {
        self.roles.values().find(|r| r.name == name).map(|r| r.id)
    }

    fn email_taken(&self, email: &str, except: Option<i64>) -> bool {
        self.emails.get(&email.to_lowercase()).is_some_and(|&id| Some(id) != except)
    }

    fn other_active_admin_exists(&self, except: i64) -> bool {
        self.users.values().any(|u| u.id != except && u.active && u.is_admin)
    }

    fn insert_user(&mut self, input: NewUser, now: i64) -> Result<i64, ApiError> {
        let name = input
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("name is required"))?;
        let email = input
            .email
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| ApiError::bad_request("email is required"))?;
        if !valid_email(&email) {
            return Err(ApiError::bad_request("email is not a valid email address"));
        }
        if self.email_taken(&email, None) {
            return Err(ApiError::bad_request("user with this email already exists"));
        }
        if let Some(role_id) = input.role_id {
            self.role(role_id).map_err(|_| ApiError::bad_request(format!("role_id {role_id} does not exist")))?;
        }
        if let Some(token) = &input.api_token {
            if token.is_empty() || self.tokens.contains_key(token) {
                return Err(ApiError::bad_request("api_token must be non-empty and unique"));
            }
        }
        let id = self.next_user_id;
        self.next_user_id += 1;
        let role = input.role_id.map(|role_id| self.new_holding(role_id));
        let user = User {
            id,
            name,
            email,
            phone: input.phone,
            active: input.active.unwrap_or(true),
            is_admin: input.is_admin.unwrap_or(false),
            role,
            created: rfc3339_s(now),
            modified: rfc3339_s(now),
            timezone_name: input.timezone_name.unwrap_or_else(|| "UTC".into()),
            locale: input.locale.unwrap_or_else(|| "en_US".into()),
            default_currency: input.default_currency.unwrap_or_else(|| "USD".into()),
            has_created_company: false,
            api_token: input.api_token,
        };
        self.index_user(&user);
        self.users.insert(id, user);
        Ok(id)
    }

    fn new_holding(&mut self, role_id: i64) -> Holding {
        let assignment_id = self.next_assignment_id;
        self.next_assignment_id += 1;
        Holding { assignment_id, role_id }
    }

    fn insert_role(&mut self, name: String, parent_role_id: Option<i64>) -> i64 {
        let id = self.next_role_id;
        self.next_role_id += 1;
        self.roles.insert(id, Role { id, name, parent_role_id });
        id
    }

    fn insert_deal(
        &mut self,
        title: String,
        owner: i64,
        status: DealStatus,
        value: Number,
        currency: String,
        now: i64,
    ) -> i64 {
        let id = self.next_deal_id;
        self.next_deal_id += 1;
        self.deals.insert(
            id,
            Deal {
                id,
                title,
                value,
                currency,
                status,
                owner,
                owner_history: vec![owner],
                add_time: rfc3339_s(now),
                update_time: rfc3339_s(now),
            },
        );
        id
    }

    /// Put `user_id` in `role_id` (moving them out of any other role), or out of every role.
    /// Returns the role they held before.
    fn set_role(&mut self, user_id: i64, role_id: Option<i64>) -> Option<i64> {
        let current = self.users.get(&user_id).and_then(|u| u.role);
        if current.map(|h| h.role_id) == role_id {
            return role_id;
        }
        let holding = role_id.map(|r| self.new_holding(r));
        if let Some(user) = self.users.get_mut(&user_id) {
            user.role = holding;
        }
        current.map(|h| h.role_id)
    }

    fn assignment_count(&self, role_id: i64) -> usize {
        self.users.values().filter(|u| u.role.is_some_and(|h| h.role_id == role_id)).count()
    }

    fn user_out<'a>(&self, u: &'a User) -> UserOut<'a> {
        UserOut {
            id: u.id,
            name: &u.name,
            email: &u.email,
            phone: u.phone.as_deref(),
            active_flag: u.active,
            is_admin: u8::from(u.is_admin),
            role_id: u.role.map(|h| h.role_id),
            created: &u.created,
            modified: &u.modified,
            last_login: None,
            timezone_name: &u.timezone_name,
            locale: &u.locale,
            default_currency: &u.default_currency,
            icon_url: None,
            has_created_company: u.has_created_company,
        }
    }

    fn user_json(&self, u: &User) -> Value {
        serde_json::to_value(self.user_out(u)).unwrap_or_default()
    }

    fn role_json(&self, r: &Role) -> Value {
        json!({
            "id": r.id,
            "name": r.name,
            "parent_role_id": r.parent_role_id,
            "active_flag": true,
            "assignment_count": self.assignment_count(r.id),
        })
    }

    fn deal_out<'a>(&'a self, d: &'a Deal) -> DealOut<'a> {
        let owner = self.users.get(&d.owner);
        DealOut {
            id: d.id,
            title: &d.title,
            value: &d.value,
            currency: &d.currency,
            status: d.status.as_str(),
            user_id: OwnerOut {
                id: d.owner,
                name: owner.map(|u| u.name.as_str()),
                email: owner.map(|u| u.email.as_str()),
                has_pic: 0,
                pic_hash: None,
                active_flag: owner.is_some_and(|u| u.active),
                value: d.owner,
            },
            owner_name: owner.map(|u| u.name.as_str()),
            add_time: &d.add_time,
            update_time: &d.update_time,
        }
    }

    fn deal_json(&self, d: &Deal) -> Value {
        serde_json::to_value(self.deal_out(d)).unwrap_or_default()
    }

    fn apply_seed(&mut self, seed: Seed, now: i64) -> Result<Value, String> {
        let mut roles = Vec::new();
        for r in seed.roles {
            if r.name.trim().is_empty() {
                return Err("roles: name must not be empty".into());
            }
            if self.role_id_by_name(&r.name).is_some() {
                return Err(format!("roles: a role named {:?} already exists", r.name));
            }
            if let Some(parent) = r.parent_role_id {
                self.role(parent).map_err(|_| format!("roles: parent_role_id {parent} does not exist"))?;
            }
            let id = self.insert_role(r.name, r.parent_role_id);
            roles.push(self.role_json(&self.roles[&id]));
        }

        let mut users = Vec::new();
        for u in seed.users {
            let role_id = match (u.role, u.role_id) {
                (Some(_), Some(_)) => return Err("users: give role or role_id, not both".into()),
                (Some(name), None) => {
                    Some(self.role_id_by_name(&name).ok_or_else(|| format!("users: no role named {name:?}"))?)
                }
                (None, id) => id,
            };
            let is_admin = match &u.is_admin {
                None => None,
                Some(v) => Some(flag_value(v).ok_or("users: is_admin must be 0, 1 or a boolean")?),
            };
            let email = u.email.clone();
            let input = NewUser {
                name: Some(u.name),
                email: Some(u.email),
                active: u.active_flag,
                is_admin,
                role_id,
                phone: u.phone,
                locale: u.locale,
                timezone_name: u.timezone_name,
                default_currency: u.default_currency,
                api_token: u.api_token,
            };
            let id = self.insert_user(input, now).map_err(|e| format!("users: {email}: {}", e.error))?;
            let mut v = self.user_json(&self.users[&id]);
            v["has_api_token"] = self.users[&id].api_token.is_some().into();
            users.push(v);
        }

        let mut deals = Vec::new();
        for d in seed.deals {
            let owner = match (&d.owner_email, d.user_id) {
                (Some(email), None) => *self
                    .emails
                    .get(&email.to_lowercase())
                    .ok_or_else(|| format!("deals: no user with email {email:?}"))?,
                (None, Some(id)) => {
                    self.user(id).map_err(|_| format!("deals: no user with id {id}"))?;
                    id
                }
                _ => return Err("deals: give exactly one of owner_email or user_id".into()),
            };
            let status = match d.status.as_deref() {
                None => DealStatus::Open,
                Some(s) => DealStatus::parse(s).ok_or_else(|| format!("deals: invalid status {s:?}"))?,
            };
            let id = self.insert_deal(
                d.title,
                owner,
                status,
                d.value.unwrap_or_else(|| Number::from(0)),
                d.currency.unwrap_or_else(|| "USD".into()),
                now,
            );
            deals.push(self.deal_json(&self.deals[&id]));
        }
        Ok(json!({ "users": users, "roles": roles, "deals": deals }))
    }
}

fn assignment_json(user_id: i64, h: Holding) -> Value {
    json!({
        "id": h.assignment_id,
        "role_id": h.role_id,
        "user_id": user_id,
        "active_flag": true,
    })
}

// ---------------------------------------------------------------------------------------------
// Seed format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    users: Vec<SeedUser>,
    #[serde(default)]
    roles: Vec<SeedRole>,
    #[serde(default)]
    deals: Vec<SeedDeal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUser {
    name: String,
    email: String,
    #[serde(default)]
    active_flag: Option<bool>,
    #[serde(default)]
    is_admin: Option<Value>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    role_id: Option<i64>,
    #[serde(default)]
    api_token: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    timezone_name: Option<String>,
    #[serde(default)]
    default_currency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRole {
    name: String,
    #[serde(default)]
    parent_role_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedDeal {
    title: String,
    #[serde(default)]
    owner_email: Option<String>,
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    value: Option<Number>,
    #[serde(default)]
    currency: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Envelope, errors, request helpers

/// A Pipedrive error response: `{"success":false,"error":..,"errorCode":..,"error_info":..}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: String,
    /// 401/403/429 bodies carry no `error_info`.
    with_info: bool,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, error: error.into(), with_info: true }
    }

    fn bad_request(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    fn not_found(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    fn unauthorized() -> Self {
        ApiError { status: StatusCode::UNAUTHORIZED, error: "unauthorized access".into(), with_info: false }
    }

    fn forbidden(what: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            error: format!("You do not have permissions to {what}"),
            with_info: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "success": false,
            "error": self.error,
            "errorCode": self.status.as_u16(),
        });
        if self.with_info {
            body["error_info"] = ERROR_INFO.into();
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: Serialize>(data: T) -> Response {
    Json(DataEnvelope { success: true, data }).into_response()
}

#[derive(Serialize)]
struct DataEnvelope<T> {
    success: bool,
    data: T,
}

/// The query string as pairs; never fails the request on odd input.
struct Params(Vec<(String, String)>);

impl Params {
    fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|_| ApiError::bad_request("malformed query string"))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Params::from_uri(&parts.uri)
    }
}

/// The caller's token: `api_token` query parameter first, then `Authorization: Bearer`.
fn request_token(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Ok(params) = Params::from_uri(uri) {
        if let Some(t) = params.get("api_token") {
            return Some(t.to_owned());
        }
    }
    bearer(headers)
}

fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {what} id {raw:?}")))
}

/// The request body as a JSON object; an empty body is an empty object.
fn parse_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
        Err(_) => Err(ApiError::bad_request("malformed JSON in request body")),
    }
}

fn flag_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        _ => None,
    }
}

/// Typed access to body fields; `null` counts as absent. Wrong types are 400s naming the field.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn present(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
        }
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.present(key)
            .map(|v| flag_value(v).ok_or_else(|| ApiError::bad_request(format!("{key} must be a boolean"))))
            .transpose()
    }

    fn id(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.present(key)
            .map(|v| {
                v.as_i64()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| ApiError::bad_request(format!("{key} must be a positive integer")))
            })
            .transpose()
    }

    /// `Some(None)` when the field is explicitly `null`.
    fn nullable_id(&self, key: &str) -> Result<Option<Option<i64>>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(_) => self.id(key).map(Some),
        }
    }

    fn number(&self, key: &str) -> Result<Option<Number>, ApiError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a number"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pagination

#[derive(Clone, Copy, Debug)]
struct PageReq {
    start: usize,
    limit: usize,
}

impl PageReq {
    fn parse(params: &Params) -> Result<Self, ApiError> {
        let start = match params.get("start") {
            None | Some("") => 0,
            Some(s) => s.parse::<usize>().map_err(|_| ApiError::bad_request("start must be a non-negative integer"))?,
        };
        let limit = match params.get("limit") {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|l| *l >= 1)
                .ok_or_else(|| ApiError::bad_request("limit must be a positive integer"))?
                .min(MAX_LIMIT),
        };
        Ok(PageReq { start, limit })
    }

    /// The page of `items`, rendered, in the list envelope.
    fn respond<T, O: Serialize>(self, items: &[T], render: impl Fn(&T) -> O) -> Response {
        let page: Vec<O> = items.iter().skip(self.start).take(self.limit).map(render).collect();
        let more = self.start.saturating_add(page.len()) < items.len();
        let next_start = more.then_some(self.start + page.len());
        Json(ListEnvelope {
            success: true,
            // Quirk: an empty page is `"data": null`.
            data: (!page.is_empty()).then_some(page),
            additional_data: AdditionalData {
                pagination: Pagination {
                    start: self.start,
                    limit: self.limit,
                    more_items_in_collection: more,
                    next_start,
                },
            },
        })
        .into_response()
    }
}

#[derive(Serialize)]
struct ListEnvelope<T> {
    success: bool,
    data: Option<Vec<T>>,
    additional_data: AdditionalData,
}

#[derive(Serialize)]
struct AdditionalData {
    pagination: Pagination,
}

#[derive(Serialize)]
struct Pagination {
    start: usize,
    limit: usize,
    more_items_in_collection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_start: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Auth and rate limiting

/// How Pipedrive renders rate-limit decisions.
pub struct PipedriveLimits;

impl RateLimitStyle for PipedriveLimits {
    fn headers(d: &Decision, _now_ms: i64, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at_secs()));
        if let Some(left) = d.daily_remaining {
            headers.insert("x-daily-requests-left", HeaderValue::from(left));
        }
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response =
            ApiError { status: StatusCode::TOO_MANY_REQUESTS, error: "Rate limit exceeded".into(), with_info: false }
                .into_response();
        Self::headers(d, now_ms, response.headers_mut());
        response
    }
}

/// Authenticate, then rate-limit per token; every response after auth gets the headers.
async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let token = request_token(req.uri(), req.headers());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let pd = &mut world.tenants.pipedrive;
        let Some((token, caller)) = token.as_deref().and_then(|t| pd.authenticate(t).map(|c| (t, c))) else {
            return ApiError::unauthorized().into_response();
        };
        (caller, pd.limiter.check(token, now))
    };
    if !decision.allowed {
        return PipedriveLimits::rejection(&decision, now);
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    PipedriveLimits::headers(&decision, now, response.headers_mut());
    response
}

// ---------------------------------------------------------------------------------------------
// Handlers: users

async fn list_users(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>, params: Params) -> ApiResult {
    caller.require_admin("list all users")?;
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let users: Vec<&User> = pd.users.values().collect();
    Ok(page.respond(&users, |u| pd.user_out(u)))
}

async fn me(AxState(sim): AxState<Sim>, Extension(caller): Extension<Caller>) -> ApiResult {
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let mut data = pd.user_json(pd.user(caller.user_id)?);
    data["company_id"] = COMPANY_ID.into();
    data["company_name"] = COMPANY_NAME.into();
    data["company_domain"] = COMPANY_DOMAIN.into();
    Ok(ok(data))
}

async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> ApiResult {
    let id = parse_id(&raw, "user")?;
    // Quirk: a non-admin token gets its owner's own data, whatever id it asked for.
    let id = if caller.is_admin { id } else { caller.user_id };
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    Ok(ok(pd.user_json(pd.user(id)?)))
}

async fn find_users(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let term = params
        .get("term")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("term is required"))?
        .to_lowercase();
    let by_email = matches!(params.get("search_by_email"), Some("1" | "true"));
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let found: Vec<UserOut> = pd
        .users
        .values()
        .filter(|u| {
            let haystack = if by_email { &u.email } else { &u.name };
            haystack.to_lowercase().contains(&term)
        })
        .map(|u| pd.user_out(u))
        .collect();
    // Quirk: no match is `"data": null`, not an empty list.
    Ok(ok((!found.is_empty()).then_some(found)))
}

async fn create_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("add users")?;
    let obj = parse_object(&body)?;
    let f = Fields(&obj);
    let input = NewUser {
        name: f.string("name")?,
        email: f.string("email")?,
        active: f.flag("active_flag")?,
        is_admin: f.flag("is_admin")?,
        role_id: f.id("role_id")?,
        phone: f.string("phone")?,
        locale: f.string("locale")?,
        timezone_name: f.string("timezone_name")?,
        default_currency: f.string("default_currency")?,
        api_token: None,
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    let id = pd.insert_user(input, now_ms())?;
    let user = &pd.users[&id];
    let data = pd.user_json(user);
    let mut details = Map::new();
    details.insert("user_id".into(), id.into());
    if let Some(h) = user.role {
        details.insert("role_id".into(), h.role_id.into());
    }
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.create", details);
    Ok((StatusCode::CREATED, Json(json!({ "success": true, "data": data }))).into_response())
}

async fn update_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("update users")?;
    let id = parse_id(&raw, "user")?;
    let obj = parse_object(&body)?;
    let f = Fields(&obj);
    let name = f.string("name")?;
    let email = f.string("email")?;
    let active = f.flag("active_flag")?;
    let is_admin = f.flag("is_admin")?;
    let role_id = f.nullable_id("role_id")?;
    let phone = f.string("phone")?;
    let locale = f.string("locale")?;
    let timezone_name = f.string("timezone_name")?;
    let default_currency = f.string("default_currency")?;

    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    let before = pd.user(id)?.clone();

    // Validate everything before changing anything.
    let name = name.map(|n| n.trim().to_owned());
    if name.as_deref() == Some("") {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    let email = email.map(|e| e.trim().to_owned());
    if let Some(e) = &email {
        if !valid_email(e) {
            return Err(ApiError::bad_request("email is not a valid email address"));
        }
        if pd.email_taken(e, Some(id)) {
            return Err(ApiError::bad_request("user with this email already exists"));
        }
    }
    if let Some(Some(r)) = role_id {
        pd.role(r).map_err(|_| ApiError::bad_request(format!("role_id {r} does not exist")))?;
    }
    let last_admin = before.active && before.is_admin && !pd.other_active_admin_exists(id);
    if last_admin && active == Some(false) {
        return Err(ApiError::bad_request("Cannot deactivate the last admin of the company"));
    }
    if last_admin && is_admin == Some(false) {
        return Err(ApiError::bad_request("Cannot remove admin rights from the last admin of the company"));
    }

    let mut changed: Vec<&str> = Vec::new();
    if let Some(r) = role_id {
        if before.role.map(|h| h.role_id) != r {
            pd.set_role(id, r);
            changed.push("role_id");
        }
    }
    let now = now_ms();
    if let Some(e) = &email {
        if *e != before.email {
            pd.emails.remove(&before.email.to_lowercase());
            pd.emails.insert(e.to_lowercase(), id);
        }
    }
    let Some(user) = pd.users.get_mut(&id) else {
        return Err(ApiError::not_found("User not found"));
    };
    update_field(&mut user.name, name, "name", &mut changed);
    update_field(&mut user.email, email, "email", &mut changed);
    update_field(&mut user.active, active, "active_flag", &mut changed);
    update_field(&mut user.is_admin, is_admin, "is_admin", &mut changed);
    update_field(&mut user.phone, phone.map(Some), "phone", &mut changed);
    update_field(&mut user.locale, locale, "locale", &mut changed);
    update_field(&mut user.timezone_name, timezone_name, "timezone_name", &mut changed);
    update_field(&mut user.default_currency, default_currency, "default_currency", &mut changed);
    if !changed.is_empty() {
        user.modified = rfc3339_s(now);
    }
    let user = user.clone();
    let data = pd.user_json(&user);

    let action = match active {
        Some(false) => "user.deactivate",
        Some(true) if !before.active => "user.activate",
        _ => "user.update",
    };
    let mut details = Map::new();
    details.insert("user_id".into(), id.into());
    if let Some(h) = user.role {
        details.insert("role_id".into(), h.role_id.into());
    }
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, action, details);
    Ok(ok(data))
}

async fn user_role_assignments(AxState(sim): AxState<Sim>, Path(raw): Path<String>, params: Params) -> ApiResult {
    let id = parse_id(&raw, "user")?;
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let user = world.tenants.pipedrive.user(id)?;
    let all: Vec<Value> = user.role.map(|h| assignment_json(id, h)).into_iter().collect();
    let data: Vec<Value> = all.iter().skip(page.start).take(page.limit).cloned().collect();
    let more = page.start + data.len() < all.len();
    // Unlike the other lists, "none" is an empty list here.
    Ok(Json(json!({
        "success": true,
        "data": data,
        "additional_data": { "pagination": {
            "start": page.start,
            "limit": page.limit,
            "more_items_in_collection": more,
        }},
    }))
    .into_response())
}

/// Which permission flags a user has, by tier: everyone, role holders, admins.
const PERMISSIONS: &[(&str, Tier)] = &[
    ("can_add_products", Tier::RoleHolder),
    ("can_bulk_edit_items", Tier::Admin),
    ("can_change_visibility_of_items", Tier::RoleHolder),
    ("can_delete_activities", Tier::Everyone),
    ("can_delete_deals", Tier::RoleHolder),
    ("can_edit_deals_closed_date", Tier::Admin),
    ("can_edit_products", Tier::Admin),
    ("can_export_data_from_lists", Tier::RoleHolder),
    ("can_follow_other_users", Tier::RoleHolder),
    ("can_merge_deals", Tier::RoleHolder),
    ("can_merge_organizations", Tier::Admin),
    ("can_merge_people", Tier::Admin),
    ("can_modify_labels", Tier::Admin),
    ("can_see_company_wide_statistics", Tier::Admin),
    ("can_see_deals_list_summary", Tier::Everyone),
    ("can_see_hidden_users_and_teams", Tier::Admin),
    ("can_see_other_users", Tier::RoleHolder),
    ("can_see_other_users_statistics", Tier::RoleHolder),
    ("can_share_filters", Tier::RoleHolder),
    ("can_use_api", Tier::Everyone),
    ("can_use_email_tracking", Tier::Everyone),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Everyone,
    RoleHolder,
    Admin,
}

fn permissions(user: &User) -> Value {
    let tier = if user.is_admin {
        Tier::Admin
    } else if user.role.is_some() {
        Tier::RoleHolder
    } else {
        Tier::Everyone
    };
    let map: Map<String, Value> =
        PERMISSIONS.iter().map(|(name, needed)| ((*name).to_owned(), Value::Bool(tier >= *needed))).collect();
    Value::Object(map)
}

async fn user_permissions(AxState(sim): AxState<Sim>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_id(&raw, "user")?;
    let world = sim.lock();
    Ok(ok(permissions(world.tenants.pipedrive.user(id)?)))
}

// ---------------------------------------------------------------------------------------------
// Handlers: roles

async fn list_roles(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let roles: Vec<&Role> = pd.roles.values().collect();
    Ok(page.respond(&roles, |r| pd.role_json(r)))
}

async fn get_role(AxState(sim): AxState<Sim>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_id(&raw, "role")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    Ok(ok(pd.role_json(pd.role(id)?)))
}

async fn list_role_assignments(AxState(sim): AxState<Sim>, Path(raw): Path<String>, params: Params) -> ApiResult {
    let id = parse_id(&raw, "role")?;
    let page = PageReq::parse(&params)?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let role = pd.role(id)?;
    let holders: Vec<&User> = pd.users.values().filter(|u| u.role.is_some_and(|h| h.role_id == id)).collect();
    Ok(page.respond(&holders, |u| {
        json!({
            "user_id": u.id,
            "role_id": id,
            "parent_role_id": role.parent_role_id,
            "name": role.name,
            "active_flag": true,
            "type": "assignment",
        })
    }))
}

/// The `user_id` of a role assignment request: JSON body, or `user_id` query parameter.
fn assignment_user_id(body: &Bytes, params: &Params) -> Result<i64, ApiError> {
    let obj = parse_object(body)?;
    if let Some(id) = Fields(&obj).id("user_id")? {
        return Ok(id);
    }
    match params.get("user_id") {
        Some(raw) => parse_id(raw, "user"),
        None => Err(ApiError::bad_request("user_id is required")),
    }
}

async fn assign_role(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("manage role assignments")?;
    let role_id = parse_id(&raw, "role")?;
    let user_id = assignment_user_id(&body, &params)?;
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    pd.role(role_id)?;
    pd.user(user_id)?;
    // A user holds at most one role: assigning moves them here.
    let previous = pd.set_role(user_id, Some(role_id));
    let mut details = Map::new();
    details.insert("role_id".into(), role_id.into());
    details.insert("user_id".into(), user_id.into());
    details.insert("previous_role_id".into(), json!(previous));
    world.journal.mutation(VENDOR, &op.method, &op.path, "role.assign", details);
    Ok(ok(json!({ "user_id": user_id, "role_id": role_id })))
}

async fn unassign_role(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    caller.require_admin("manage role assignments")?;
    let role_id = parse_id(&raw, "role")?;
    let user_id = assignment_user_id(&body, &params)?;
    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    pd.role(role_id)?;
    let user = pd.user(user_id)?;
    if user.role.map(|h| h.role_id) != Some(role_id) {
        return Err(ApiError::bad_request(format!("User {user_id} is not assigned to role {role_id}")));
    }
    pd.set_role(user_id, None);
    let mut details = Map::new();
    details.insert("role_id".into(), role_id.into());
    details.insert("user_id".into(), user_id.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "role.unassign", details);
    Ok(ok(json!({ "user_id": user_id, "role_id": role_id })))
}

// ---------------------------------------------------------------------------------------------
// Handlers: deals

async fn list_deals(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let page = PageReq::parse(&params)?;
    let owner = match params.get("user_id") {
        None | Some("") => None,
        Some(raw) => Some(parse_id(raw, "user")?),
    };
    let status = params.get("status").unwrap_or("all_not_deleted");
    let wanted: fn(DealStatus) -> bool = match status {
        "all_not_deleted" => |s| s != DealStatus::Deleted,
        "open" => |s| s == DealStatus::Open,
        "won" => |s| s == DealStatus::Won,
        "lost" => |s| s == DealStatus::Lost,
        "deleted" => |s| s == DealStatus::Deleted,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid status {other:?}: open, won, lost, deleted or all_not_deleted"
            )))
        }
    };
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let deals: Vec<&Deal> =
        pd.deals.values().filter(|d| owner.is_none_or(|o| d.owner == o) && wanted(d.status)).collect();
    Ok(page.respond(&deals, |d| pd.deal_out(d)))
}

async fn get_deal(AxState(sim): AxState<Sim>, Path(raw): Path<String>) -> ApiResult {
    let id = parse_id(&raw, "deal")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let deal = pd.deals.get(&id).ok_or_else(|| ApiError::not_found("Deal not found"))?;
    Ok(ok(pd.deal_json(deal)))
}

async fn update_deal(AxState(sim): AxState<Sim>, Path(raw): Path<String>, op: Op, body: Bytes) -> ApiResult {
    let id = parse_id(&raw, "deal")?;
    let obj = parse_object(&body)?;
    let f = Fields(&obj);
    let owner = f.id("user_id")?;
    let title = f.string("title")?;
    let value = f.number("value")?;
    let currency = f.string("currency")?;
    let status = f
        .string("status")?
        .map(|s| DealStatus::parse(&s).ok_or_else(|| ApiError::bad_request(format!("invalid status {s:?}"))))
        .transpose()?;
    if title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request("title must not be empty"));
    }

    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    if !pd.deals.contains_key(&id) {
        return Err(ApiError::not_found("Deal not found"));
    }
    if let Some(o) = owner {
        if !pd.users.get(&o).is_some_and(|u| u.active) {
            return Err(ApiError::bad_request(format!("User {o} does not exist or is not active")));
        }
    }
    let Some(deal) = pd.deals.get_mut(&id) else {
        return Err(ApiError::not_found("Deal not found"));
    };
    let previous_owner = deal.owner;
    let mut changed: Vec<&str> = Vec::new();
    if let Some(o) = owner {
        if o != deal.owner {
            deal.owner = o;
            deal.owner_history.push(o);
            changed.push("user_id");
        }
    }
    update_field(&mut deal.title, title, "title", &mut changed);
    update_field(&mut deal.value, value, "value", &mut changed);
    update_field(&mut deal.currency, currency, "currency", &mut changed);
    update_field(&mut deal.status, status, "status", &mut changed);
    if !changed.is_empty() {
        deal.update_time = rfc3339_s(now_ms());
    }
    let deal = deal.clone();
    let data = pd.deal_json(&deal);
    let mut details = Map::new();
    details.insert("deal_id".into(), id.into());
    details.insert("user_id".into(), deal.owner.into());
    if deal.owner != previous_owner {
        details.insert("previous_user_id".into(), previous_owner.into());
    }
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "deal.update", details);
    Ok(ok(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_admin_grace_and_three_roles() {
        let s = state();
        assert_eq!(s.users.len(), 2);
        assert_eq!(s.roles.len(), 3);
        let grace = s.users.values().find(|u| u.email == "grace@example.com");
        let grace = grace.expect("grace is in the fixture");
        assert_eq!(grace.role.map(|h| h.role_id), s.role_id_by_name("Sales Manager"));
        assert!(s.authenticate(DEFAULT_ADMIN_TOKEN).is_some_and(|c| c.is_admin));
    }

    #[test]
    fn email_uniqueness_ignores_case() {
        let s = state();
        assert!(s.email_taken("GRACE@example.COM", None));
        assert!(!s.email_taken("GRACE@example.COM", s.emails.get("grace@example.com").copied()));
    }

    #[test]
    fn permissions_follow_admin_then_role() {
        let s = state();
        let admin = &s.users[&ADMIN_USER_ID];
        assert_eq!(permissions(admin)["can_modify_labels"], true);
        let mut nobody = admin.clone();
        nobody.is_admin = false;
        assert_eq!(permissions(&nobody)["can_see_other_users"], false);
        assert_eq!(permissions(&nobody)["can_use_api"], true);
        nobody.role = Some(Holding { assignment_id: 1, role_id: 1 });
        assert_eq!(permissions(&nobody)["can_see_other_users"], true);
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = s.users.len();
        let err = s
            .seed(json!({"users": [
                {"name": "Ada", "email": "ada@example.com"},
                {"name": "Dup", "email": "ADA@example.com"}
            ]}))
            .unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(s.users.len(), before);
    }
}
