//! CrowdStrike Falcon user management (`/crowdstrike`): OAuth2 tokens, users by UUID, roles.
//!
//! Faithful to `shared/vendor-guides/crowdstrike.txt`, quirks included:
//! - OAuth2 client credentials: `POST /oauth2/token` with a form body (`client_id`,
//!   `client_secret`, optional `grant_type=client_credentials`) answers 201 with a bearer token
//!   that expires after `token_ttl_secs` (30 minutes by default); bad credentials are 403
//!   "Failed to issue access token - Not Authorized"; a missing, unknown or expired token is 401
//!   "access denied, invalid bearer token";
//! - two scopes gate everything: `user-management:read` for GETs, `user-management:write` for
//!   the rest (403 "access denied, authorization failed" without it);
//! - the base URL is regional. `/crowdstrike` is the tenant's own region (`--crowdstrike-region`,
//!   us-1 by default); every region is also mounted at `/crowdstrike/{region}` (us-1, us-2, eu-1,
//!   us-gov-1). The home region there is an alias; the others behave like real foreign-region
//!   hosts: they know nothing of this tenant, so the token endpoint answers 403 and every API
//!   call 401 — authentication errors, never a redirect;
//! - query endpoints return ids only (`resources: ["uid", ...]`); entities endpoints take `ids`
//!   query parameters, at most 100 per request (more is a 400);
//! - offset pagination on `/users/queries/user-uids/v1` (`offset`, `limit` default 100, at most
//!   500; more is a 400) with `meta.pagination {offset, limit, total}`;
//! - `/users/queries/user-uids/v1?uid=<login e-mail>` (not in the guide; the real API has it)
//!   lists only the uid of the user whose username is that address, compared ignoring case, or
//!   nothing. One address per request here (a repeated or empty `uid` is a 400); other unknown
//!   query parameters are ignored, as everywhere in this simulator;
//! - user entities carry no roles; roles are granted (`POST /user-roles/entities/user-roles/v1`
//!   with `roleIds` and `user_uuid` in the body) and revoked (`DELETE` with `user_uuid` and
//!   `roleId` as query parameters) separately. Role ids are case-sensitive; revoking a role the
//!   user does not hold is a 400; creating a user silently ignores a `roles` field;
//! - `PATCH` and `DELETE /users/entities/users/v1` take `user_uuid` as a query parameter, never in
//!   the body; deletion is immediate and irreversible;
//! - rate limits are per API client and unpublished: a fixed-window budget per minute
//!   (`--crowdstrike-rate-limit`, 6000 by default). Every authenticated response carries
//!   `X-RateLimit-Limit` and `X-RateLimit-Remaining`; a 429 adds `X-RateLimit-RetryAfter`, the
//!   Unix time in seconds (a timestamp, not a delta) when the budget returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, OriginalUri, Query, Request, State as AxState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::{bearer, valid_email, Op};
use crate::ratelimit::{Decision, Limiter, RateLimitConfig, RateLimitStyle};
use crate::registry::{self, update_field, Vendor, VendorSim};
use crate::sim::{now_ms, rfc3339_ms, Sim};
use crate::{Config, Fixture};

const VENDOR: Vendor = Vendor::CrowdStrike;

/// The tenant's default API client (both user-management scopes).
pub const DEFAULT_CLIENT_ID: &str = "cs-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "cs-client-secret";
/// 30 minutes, as the real token endpoint issues them.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 1800;
/// Requests per minute per API client (CrowdStrike publishes no number; 6000 is what tenants see).
pub const DEFAULT_RATE_LIMIT: u32 = 6000;
/// The tenant's CID.
pub const CUSTOMER_ID: &str = "5f4e3d2c1b0a49588776655443322110";
/// Falcon's regions; each is a separate host in reality.
pub const REGIONS: &[&str] = &["us-1", "us-2", "eu-1", "us-gov-1"];
pub const SCOPE_READ: &str = "user-management:read";
pub const SCOPE_WRITE: &str = "user-management:write";

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
const MAX_IDS: usize = 100;
const RATE_WINDOW_MS: u64 = 60_000;

/// Falcon's predefined roles: (id, display name, description). Present in every tenant.
const BUILTIN_ROLES: &[(&str, &str, &str)] = &[
    ("falcon_admin", "Falcon Administrator", "Full access to the Falcon console, users and settings"),
    ("falcon_analyst", "Falcon Analyst", "Investigate and respond to detections"),
    ("falcon_analyst_read_only", "Falcon Analyst - Read Only", "View detections and hosts"),
    ("detection_monitor", "Detection Monitor", "View and monitor detections"),
    ("falcon_console_guest", "Falcon Console Guest", "Read-only access to dashboards"),
    ("remote_responder", "Real Time Responder - Read Only Analyst", "Run read-only Real Time Response commands"),
    ("endpoint_manager", "Endpoint Manager", "Manage sensors, host groups and prevention policies"),
    ("firewall_manager", "Firewall Manager", "Manage firewall policies and rule groups"),
];

// ---------------------------------------------------------------------------------------------
// Flags

/// CrowdStrike's start-up flags.
#[derive(Clone, clap::Args)]
#[group(id = "crowdstrike")]
pub struct Flags {
    /// Client id of the tenant's default API client (both user-management scopes).
    #[arg(long = "crowdstrike-client-id", env = "SIM_CROWDSTRIKE_CLIENT_ID", default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,

    /// Secret of the default API client. Never logged.
    #[arg(
        long = "crowdstrike-client-secret",
        env = "SIM_CROWDSTRIKE_CLIENT_SECRET",
        default_value = DEFAULT_CLIENT_SECRET,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub client_secret: String,

    /// Lifetime of issued access tokens, in seconds (1800 like the real API; shorten it in tests).
    #[arg(long = "crowdstrike-token-ttl", env = "SIM_CROWDSTRIKE_TOKEN_TTL", default_value_t = DEFAULT_TOKEN_TTL_SECS)]
    pub token_ttl_secs: u64,

    /// The tenant's own region, served at `/crowdstrike` (and at `/crowdstrike/{region}`).
    #[arg(long = "crowdstrike-region", env = "SIM_CROWDSTRIKE_REGION", default_value = "us-1", value_parser = ["us-1", "us-2", "eu-1", "us-gov-1"])]
    pub region: String,

    /// Requests per minute allowed per API client.
    #[arg(long = "crowdstrike-rate-limit", env = "SIM_CROWDSTRIKE_RATE_LIMIT", default_value_t = DEFAULT_RATE_LIMIT)]
    pub rate_limit_per_minute: u32,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            region: "us-1".to_owned(),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT,
        }
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("region", &self.region)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Model

#[derive(Clone, Debug)]
struct User {
    uid: String,
    username: String,
    first_name: String,
    last_name: String,
    created_at: String,
    updated_at: String,
    /// Role ids, case-sensitive.
    roles: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct Role {
    id: String,
    display_name: String,
    description: String,
}

#[derive(Clone, Debug)]
struct ApiClient {
    client_id: String,
    secret: String,
    name: String,
    scopes: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct Token {
    client_id: String,
    expires_at_ms: i64,
}

// ---------------------------------------------------------------------------------------------
// State

/// The Falcon tenant.
#[derive(Clone, Debug)]
pub struct State {
    /// Users in creation order (the order the uid query lists them in).
    users: BTreeMap<u64, User>,
    by_uid: HashMap<String, u64>,
    /// Lower-cased username -> key in `users`.
    by_username: HashMap<String, u64>,
    next_user: u64,
    roles: BTreeMap<String, Role>,
    clients: BTreeMap<String, ApiClient>,
    tokens: HashMap<String, Token>,
    tokens_issued: u64,
    token_ttl_secs: u64,
    region: String,
    limiter: Limiter,
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let flags = &config.crowdstrike;
        let mut state = State {
            users: BTreeMap::new(),
            by_uid: HashMap::new(),
            by_username: HashMap::new(),
            next_user: 1,
            roles: BTreeMap::new(),
            clients: BTreeMap::new(),
            tokens: HashMap::new(),
            tokens_issued: 0,
            token_ttl_secs: flags.token_ttl_secs.max(1),
            region: flags.region.clone(),
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: flags.rate_limit_per_minute.max(1),
                window_ms: RATE_WINDOW_MS,
                daily_requests: None,
            }),
        };
        for (id, name, description) in BUILTIN_ROLES {
            state.roles.insert(
                (*id).to_owned(),
                Role { id: (*id).to_owned(), display_name: (*name).to_owned(), description: (*description).to_owned() },
            );
        }
        state.clients.insert(
            flags.client_id.clone(),
            ApiClient {
                client_id: flags.client_id.clone(),
                secret: flags.client_secret.clone(),
                name: "lifecycle".to_owned(),
                scopes: [SCOPE_READ, SCOPE_WRITE].iter().map(|s| (*s).to_owned()).collect(),
            },
        );
        if fixture == Fixture::Default {
            state.load_default_fixture();
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: Seed| state.apply_seed(seed))
    }

    fn snapshot(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                let mut v = user_json(u);
                v["roles"] = json!(u.roles);
                v
            })
            .collect();
        let roles: Vec<Value> = self.roles.values().map(role_json).collect();
        let assignments: Vec<Value> = self
            .users
            .values()
            .flat_map(|u| u.roles.iter().map(|r| json!({ "user_uuid": u.uid, "username": u.username, "role_id": r })))
            .collect();
        let clients: Vec<Value> = self
            .clients
            .values()
            .map(|c| json!({ "client_id": c.client_id, "name": c.name, "scopes": c.scopes }))
            .collect();
        let now = now_ms();
        json!({
            "customer_id": CUSTOMER_ID,
            "region": self.region,
            "users": users,
            "roles": roles,
            "role_assignments": assignments,
            "api_clients": clients,
            "tokens": {
                "issued": self.tokens_issued,
                "active": self.tokens.values().filter(|t| t.expires_at_ms > now).count(),
            },
        })
    }

    fn config(&self) -> Value {
        json!({
            "rate_limit": self.limiter.config(),
            "token_ttl_secs": self.token_ttl_secs,
            "region": self.region,
        })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(map) = patch else {
            return Err("expected an object like {\"token_ttl_secs\": 2}".into());
        };
        // Validate everything first, so a bad patch changes nothing.
        let mut next = self.clone();
        for (knob, value) in map {
            match knob.as_str() {
                "rate_limit" => next.limiter.configure(value)?,
                "token_ttl_secs" => {
                    next.token_ttl_secs =
                        value.as_u64().filter(|s| *s >= 1).ok_or("token_ttl_secs must be a positive integer")?;
                }
                "region" => {
                    let region = value
                        .as_str()
                        .filter(|r| REGIONS.contains(r))
                        .ok_or_else(|| format!("region must be one of {}", REGIONS.join(", ")))?;
                    next.region = region.to_owned();
                }
                other => return Err(format!("unknown knob {other:?} (known: rate_limit, token_ttl_secs, region)")),
            }
        }
        *self = next;
        Ok(())
    }

    fn injected_error(&self, _uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let client = bearer(headers).and_then(|t| self.tokens.get(&t)).map(|t| t.client_id.clone());
            let decision = self.limiter.exhausted(client.as_deref(), now_ms);
            return FalconLimits::rejection(&decision, now_ms);
        }
        ApiError::new(status, status.canonical_reason().unwrap_or("error").to_lowercase()).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        let api = |sim: Sim| {
            Router::new()
                .route("/users/queries/user-uids/v1", get(query_user_uids))
                .route(
                    "/users/entities/users/v1",
                    get(get_users).post(create_user).patch(update_user).delete(delete_user),
                )
                .route("/user-roles/queries/user-role-ids-by-user-uuid/v1", get(user_role_ids))
                .route("/user-roles/queries/roles/v1", get(query_roles))
                .route("/user-roles/entities/user-roles/v1", get(get_roles).post(grant_roles).delete(revoke_roles))
                .route_layer(from_fn_with_state(sim, guard))
                .route("/oauth2/token", post(issue_token))
        };
        Router::new()
            .merge(api(sim.clone()))
            .nest("/{region}", api(sim.clone()).layer(from_fn_with_state(sim, region_gate)))
            .method_not_allowed_fallback(|| async {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            })
            .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no route found") })
    }
}

impl State {
    fn load_default_fixture(&mut self) {
        let people = [
            ("grace@example.com", "Grace", "Hopper", &["falcon_admin", "falcon_analyst"][..]),
            ("alan@example.com", "Alan", "Turing", &["detection_monitor"][..]),
        ];
        for (username, first, last, roles) in people {
            let input = NewUser {
                uid: None,
                username: Some(username.to_owned()),
                first_name: Some(first.to_owned()),
                last_name: Some(last.to_owned()),
            };
            match self.insert_user(input) {
                Ok(key) => {
                    if let Some(u) = self.users.get_mut(&key) {
                        u.roles = roles.iter().map(|r| (*r).to_owned()).collect();
                    }
                }
                Err(e) => tracing::error!(error = %e.message(), "crowdstrike default fixture is invalid"),
            }
        }
    }

    /// The API client a valid, unexpired token belongs to.
    fn authenticate(&self, token: &str, now: i64) -> Option<&ApiClient> {
        let t = self.tokens.get(token).filter(|t| t.expires_at_ms > now)?;
        self.clients.get(&t.client_id)
    }

    fn issue(&mut self, client_id: &str, now: i64) -> String {
        self.tokens.retain(|_, t| t.expires_at_ms > now);
        let token = format!("cs-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let expires_at_ms = now + (self.token_ttl_secs as i64) * 1000;
        self.tokens.insert(token.clone(), Token { client_id: client_id.to_owned(), expires_at_ms });
        self.tokens_issued += 1;
        token
    }

    fn user_by_uid(&self, uid: &str) -> Option<&User> {
        self.by_uid.get(uid).and_then(|k| self.users.get(k))
    }

    fn user_key(&self, uid: &str) -> Result<u64, ApiError> {
        self.by_uid.get(uid).copied().ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))
    }

    fn insert_user(&mut self, input: NewUser) -> Result<u64, ApiError> {
        let username = required_text(input.username, "username")?;
        if !valid_email(&username) {
            return Err(ApiError::bad_request(format!("username {username:?} must be a valid email address")));
        }
        let first_name = required_text(input.first_name, "first_name")?;
        let last_name = required_text(input.last_name, "last_name")?;
        if self.by_username.contains_key(&username.to_lowercase()) {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("user with username {username} already exists")));
        }
        let uid = match input.uid {
            Some(uid) => {
                if uuid::Uuid::parse_str(&uid).is_err() || self.by_uid.contains_key(&uid) {
                    return Err(ApiError::bad_request(format!("uid {uid:?} must be a new UUID")));
                }
                uid
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let now = rfc3339_ms(now_ms());
        let key = self.next_user;
        self.next_user += 1;
        self.by_uid.insert(uid.clone(), key);
        self.by_username.insert(username.to_lowercase(), key);
        self.users.insert(
            key,
            User {
                uid,
                username,
                first_name,
                last_name,
                created_at: now.clone(),
                updated_at: now,
                roles: BTreeSet::new(),
            },
        );
        Ok(key)
    }

    fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let mut roles = Vec::new();
        for r in seed.roles {
            if r.id.trim().is_empty() || r.id.trim() != r.id {
                return Err(format!("roles: invalid role id {:?}", r.id));
            }
            if self.roles.contains_key(&r.id) {
                return Err(format!("roles: a role with id {:?} already exists", r.id));
            }
            let role = Role {
                display_name: r.display_name.unwrap_or_else(|| r.id.clone()),
                description: r.description.unwrap_or_default(),
                id: r.id,
            };
            roles.push(role_json(&role));
            self.roles.insert(role.id.clone(), role);
        }
        let mut users = Vec::new();
        for u in seed.users {
            let username = u.username.clone();
            let key = self
                .insert_user(NewUser {
                    uid: u.uid,
                    username: Some(u.username),
                    first_name: Some(u.first_name),
                    last_name: Some(u.last_name),
                })
                .map_err(|e| format!("users: {username}: {}", e.message()))?;
            for r in &u.roles {
                if !self.roles.contains_key(r) {
                    return Err(format!("users: {username}: no role with id {r:?} (role ids are case-sensitive)"));
                }
            }
            let user = self.users.get_mut(&key).ok_or("users: lost a user")?;
            user.roles = u.roles.into_iter().collect();
            let mut v = user_json(user);
            v["roles"] = json!(user.roles);
            users.push(v);
        }
        let mut clients = Vec::new();
        for c in seed.api_clients {
            if c.client_id.is_empty() || c.client_secret.is_empty() {
                return Err("api_clients: client_id and client_secret must not be empty".into());
            }
            if self.clients.contains_key(&c.client_id) {
                return Err(format!("api_clients: {:?} already exists", c.client_id));
            }
            for s in &c.scopes {
                if s != SCOPE_READ && s != SCOPE_WRITE {
                    return Err(format!("api_clients: unknown scope {s:?} ({SCOPE_READ} or {SCOPE_WRITE})"));
                }
            }
            let client = ApiClient {
                name: c.name.unwrap_or_else(|| c.client_id.clone()),
                client_id: c.client_id,
                secret: c.client_secret,
                scopes: c.scopes.into_iter().collect(),
            };
            clients.push(json!({ "client_id": client.client_id, "name": client.name, "scopes": client.scopes }));
            self.clients.insert(client.client_id.clone(), client);
        }
        Ok(json!({ "roles": roles, "users": users, "api_clients": clients }))
    }
}

struct NewUser {
    uid: Option<String>,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

fn required_text(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required")))
}

/// A user entity as the API shows it: no roles (they live behind their own endpoints).
fn user_json(u: &User) -> Value {
    json!({
        "uid": u.uid,
        "username": u.username,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "customer_id": CUSTOMER_ID,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id,
        "display_name": r.display_name,
        "description": r.description,
        "cid": CUSTOMER_ID,
    })
}

// ---------------------------------------------------------------------------------------------
// Seed format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    roles: Vec<SeedRole>,
    #[serde(default)]
    users: Vec<SeedUser>,
    #[serde(default)]
    api_clients: Vec<SeedClient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRole {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUser {
    username: String,
    first_name: String,
    last_name: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    uid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedClient {
    client_id: String,
    client_secret: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Envelope, errors, request helpers

fn meta() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("query_time".into(), json!(0.003));
    m.insert("powered_by".into(), "user-management".into());
    m.insert("trace_id".into(), uuid::Uuid::new_v4().to_string().into());
    m
}

/// A CrowdStrike error: `{"meta": {...}, "resources": [], "errors": [{"code", "message"}]}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    errors: Vec<Value>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, errors: vec![json!({ "code": status.as_u16(), "message": message.into() })] }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "access denied, invalid bearer token")
    }

    fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "access denied, authorization failed")
    }

    fn token_refused() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Failed to issue access token - Not Authorized")
    }

    fn message(&self) -> String {
        self.errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; ")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "meta": meta(), "resources": [], "errors": self.errors });
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn resources(status: StatusCode, items: Vec<Value>, extra_meta: Option<(&str, Value)>, errors: Vec<Value>) -> Response {
    let mut m = meta();
    if let Some((k, v)) = extra_meta {
        m.insert(k.into(), v);
    }
    (status, Json(json!({ "meta": m, "resources": items, "errors": errors }))).into_response()
}

/// The query string as pairs.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`ids=a&ids=b`), commas splitting too, deduplicated.
    fn all(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, v) in self.0.iter().filter(|(k, _)| k == key) {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if !out.iter().any(|o| o == part) {
                    out.push(part.to_owned());
                }
            }
        }
        out
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|_| ApiError::bad_request("malformed query string"))
    }
}

fn parse_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
        Err(_) => Err(ApiError::bad_request("malformed JSON in request body")),
    }
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

/// `user_uuid` from the query string; in the body it is refused, as the real API does.
fn user_uuid_param(params: &Params, body: Option<&Map<String, Value>>) -> Result<String, ApiError> {
    match params.get("user_uuid").map(str::trim).filter(|s| !s.is_empty()) {
        Some(uid) => Ok(uid.to_owned()),
        None if body.is_some_and(|b| b.contains_key("user_uuid") || b.contains_key("uid")) => {
            Err(ApiError::bad_request("user_uuid must be given as a query parameter, not in the body"))
        }
        None => Err(ApiError::bad_request("user_uuid is a required query parameter")),
    }
}

fn ids_param(params: &Params) -> Result<Vec<String>, ApiError> {
    let ids = params.all("ids");
    if ids.is_empty() {
        return Err(ApiError::bad_request("ids is required"));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!("too many ids: {} given, at most {MAX_IDS} per request", ids.len())));
    }
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------
// Auth, regions and rate limiting

/// How CrowdStrike renders rate-limit decisions.
pub struct FalconLimits;

impl RateLimitStyle for FalconLimits {
    fn headers(d: &Decision, _now_ms: i64, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded.").into_response();
        Self::headers(d, now_ms, response.headers_mut());
        // A Unix timestamp in seconds (rounded up), not a delta.
        let retry_at = -((-d.retry_at_ms).div_euclid(1000));
        response.headers_mut().insert("x-ratelimit-retryafter", HeaderValue::from(retry_at));
        response
    }
}

/// Bearer token, then the API client's per-minute budget, then the scope the method needs.
async fn guard(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let now = now_ms();
    let token = bearer(req.headers());
    let (decision, scopes) = {
        let mut world = sim.lock();
        let cs = &mut world.tenants.crowdstrike;
        let Some(client) = token.as_deref().and_then(|t| cs.authenticate(t, now)) else {
            return ApiError::unauthorized().into_response();
        };
        let (client_id, scopes) = (client.client_id.clone(), client.scopes.clone());
        (cs.limiter.check(&client_id, now), scopes)
    };
    if !decision.allowed {
        return FalconLimits::rejection(&decision, now);
    }
    let needed = if req.method() == Method::GET { SCOPE_READ } else { SCOPE_WRITE };
    let mut response =
        if scopes.contains(needed) { next.run(req).await } else { ApiError::forbidden().into_response() };
    FalconLimits::headers(&decision, now, response.headers_mut());
    response
}

/// `/crowdstrike/{region}/...`: the home region is an alias of `/crowdstrike`; another region
/// is a host that has never heard of this tenant.
async fn region_gate(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let full = req.extensions().get::<OriginalUri>().map(|u| u.0.path().to_owned()).unwrap_or_default();
    let rest = full.strip_prefix(VENDOR.prefix()).unwrap_or(&full);
    let region = rest.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
    if !REGIONS.contains(&region.as_str()) {
        return ApiError::not_found("no route found").into_response();
    }
    let home = sim.lock().tenants.crowdstrike.region.clone();
    if region == home {
        return next.run(req).await;
    }
    if req.uri().path().ends_with("/oauth2/token") {
        ApiError::token_refused().into_response()
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// `POST /oauth2/token`: form-encoded client credentials -> 201 with a bearer token.
async fn issue_token(AxState(sim): AxState<Sim>, form: Result<Form<Vec<(String, String)>>, FormRejection>) -> Response {
    let Ok(Form(pairs)) = form else {
        return ApiError::bad_request("expected a form-encoded body with client_id and client_secret").into_response();
    };
    let field = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    if field("grant_type").is_some_and(|g| g != "client_credentials") {
        return ApiError::bad_request("unsupported grant_type: only client_credentials").into_response();
    }
    let (Some(client_id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return ApiError::bad_request("client_id and client_secret are required").into_response();
    };
    let now = now_ms();
    let mut world = sim.lock();
    let cs = &mut world.tenants.crowdstrike;
    let known = cs.clients.get(&client_id).is_some_and(|c| constant_time_eq(c.secret.as_bytes(), secret.as_bytes()));
    if !known {
        return ApiError::token_refused().into_response();
    }
    let decision = cs.limiter.check(&client_id, now);
    if !decision.allowed {
        return FalconLimits::rejection(&decision, now);
    }
    let token = cs.issue(&client_id, now);
    let ttl = cs.token_ttl_secs;
    drop(world);
    let mut response =
        (StatusCode::CREATED, Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": ttl })))
            .into_response();
    FalconLimits::headers(&decision, now, response.headers_mut());
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// Handlers: users

async fn query_user_uids(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let offset = match params.get("offset") {
        None | Some("") => 0,
        Some(s) => s.parse::<usize>().map_err(|_| ApiError::bad_request("offset must be a non-negative integer"))?,
    };
    let limit = match params.get("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")))?,
    };
    // The filter by login address: exact, ignoring case.
    let wanted: Vec<&str> = params.0.iter().filter(|(k, _)| k == "uid").map(|(_, v)| v.as_str()).collect();
    let username = match wanted.as_slice() {
        [] => None,
        [""] => return Err(ApiError::bad_request("uid must not be empty: give the user's login e-mail")),
        [one] => Some(one.to_lowercase()),
        _ => return Err(ApiError::bad_request("uid takes one login e-mail per request in this simulator")),
    };
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let matching: Vec<&User> = match &username {
        None => cs.users.values().collect(),
        Some(name) => cs.by_username.get(name).and_then(|k| cs.users.get(k)).into_iter().collect(),
    };
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).map(|u| Value::from(u.uid.clone())).collect();
    let pagination = json!({ "offset": offset, "limit": limit, "total": total });
    Ok(resources(StatusCode::OK, page, Some(("pagination", pagination)), vec![]))
}

async fn get_users(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let ids = ids_param(&params)?;
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in &ids {
        match cs.user_by_uid(id) {
            Some(u) => found.push(user_json(u)),
            None => missing.push(json!({ "code": 404, "message": format!("user {id} not found"), "id": id })),
        }
    }
    if found.is_empty() {
        return Err(ApiError { status: StatusCode::NOT_FOUND, errors: missing });
    }
    Ok(resources(StatusCode::OK, found, None, missing))
}

async fn create_user(AxState(sim): AxState<Sim>, op: Op, body: Bytes) -> ApiResult {
    let obj = parse_object(&body)?;
    let input = NewUser {
        uid: None,
        username: string_field(&obj, "username")?,
        first_name: string_field(&obj, "first_name")?,
        last_name: string_field(&obj, "last_name")?,
    };
    // Quirk: roles cannot be set here; a `roles` field is silently ignored.
    let ignored: Vec<&String> =
        obj.keys().filter(|k| !["username", "first_name", "last_name"].contains(&k.as_str())).collect();
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.insert_user(input)?;
    let user = &cs.users[&key];
    let data = user_json(user);
    let mut details = Map::new();
    details.insert("user_uuid".into(), user.uid.clone().into());
    details.insert("username".into(), user.username.clone().into());
    if !ignored.is_empty() {
        details.insert("ignored_fields".into(), json!(ignored));
    }
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.create", details);
    Ok(resources(StatusCode::CREATED, vec![data], None, vec![]))
}

async fn update_user(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    let obj = parse_object(&body)?;
    let uid = user_uuid_param(&params, Some(&obj))?;
    let first = string_field(&obj, "first_name")?.map(|s| s.trim().to_owned());
    let last = string_field(&obj, "last_name")?.map(|s| s.trim().to_owned());
    if first.as_deref() == Some("") || last.as_deref() == Some("") {
        return Err(ApiError::bad_request("first_name and last_name must not be empty"));
    }
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    let mut changed: Vec<&str> = Vec::new();
    update_field(&mut user.first_name, first, "first_name", &mut changed);
    update_field(&mut user.last_name, last, "last_name", &mut changed);
    if !changed.is_empty() {
        user.updated_at = rfc3339_ms(now_ms());
    }
    let data = user_json(user);
    let mut details = Map::new();
    details.insert("user_uuid".into(), uid.into());
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.update", details);
    Ok(resources(StatusCode::OK, vec![data], None, vec![]))
}

async fn delete_user(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    let obj = if body.iter().all(u8::is_ascii_whitespace) { None } else { parse_object(&body).ok() };
    let uid = user_uuid_param(&params, obj.as_ref())?;
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    let Some(user) = cs.users.remove(&key) else {
        return Err(ApiError::not_found(format!("user {uid} not found")));
    };
    cs.by_uid.remove(&user.uid);
    cs.by_username.remove(&user.username.to_lowercase());
    let mut details = Map::new();
    details.insert("user_uuid".into(), uid.clone().into());
    details.insert("username".into(), user.username.into());
    details.insert("roles_at_delete".into(), json!(user.roles));
    world.journal.mutation(VENDOR, &op.method, &op.path, "user.delete", details);
    Ok(resources(StatusCode::OK, vec![uid.into()], None, vec![]))
}

// ---------------------------------------------------------------------------------------------
// Handlers: roles

async fn user_role_ids(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let uid = user_uuid_param(&params, None)?;
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let user = cs.user_by_uid(&uid).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    let roles: Vec<Value> = user.roles.iter().map(|r| Value::from(r.clone())).collect();
    Ok(resources(StatusCode::OK, roles, None, vec![]))
}

async fn query_roles(AxState(sim): AxState<Sim>) -> ApiResult {
    let world = sim.lock();
    let roles: Vec<Value> = world.tenants.crowdstrike.roles.keys().map(|r| Value::from(r.clone())).collect();
    Ok(resources(StatusCode::OK, roles, None, vec![]))
}

async fn get_roles(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let ids = ids_param(&params)?;
    let world = sim.lock();
    let cs = &world.tenants.crowdstrike;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in &ids {
        match cs.roles.get(id) {
            Some(r) => found.push(role_json(r)),
            None => missing.push(json!({ "code": 404, "message": format!("role {id} not found"), "id": id })),
        }
    }
    if found.is_empty() {
        return Err(ApiError { status: StatusCode::NOT_FOUND, errors: missing });
    }
    Ok(resources(StatusCode::OK, found, None, missing))
}

async fn grant_roles(AxState(sim): AxState<Sim>, params: Params, op: Op, body: Bytes) -> ApiResult {
    let obj = parse_object(&body)?;
    let uid = match string_field(&obj, "user_uuid")?.or_else(|| params.get("user_uuid").map(str::to_owned)) {
        Some(u) if !u.trim().is_empty() => u.trim().to_owned(),
        _ => return Err(ApiError::bad_request("user_uuid is required")),
    };
    let role_ids: Vec<String> = match obj.get("roleIds") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::bad_request("roleIds must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad_request("roleIds must be an array of role ids")),
        None => return Err(ApiError::bad_request("roleIds is required")),
    };
    if role_ids.is_empty() {
        return Err(ApiError::bad_request("roleIds must name at least one role"));
    }
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    // Case-sensitive: `Falcon_Admin` is not `falcon_admin`. All or nothing.
    let unknown: Vec<&String> = role_ids.iter().filter(|r| !cs.roles.contains_key(*r)).collect();
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::bad_request(format!("invalid role id(s): {}", list.join(", "))));
    }
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    let mut granted = Vec::new();
    for r in &role_ids {
        if user.roles.insert(r.clone()) {
            granted.push(r.clone());
        }
    }
    let out: Vec<Value> =
        role_ids.iter().map(|r| json!({ "cid": CUSTOMER_ID, "role_id": r, "user_uuid": uid })).collect();
    let mut details = Map::new();
    details.insert("user_uuid".into(), uid.into());
    details.insert("role_ids".into(), json!(granted));
    world.journal.mutation(VENDOR, &op.method, &op.path, "role.grant", details);
    Ok(resources(StatusCode::OK, out, None, vec![]))
}

async fn revoke_roles(AxState(sim): AxState<Sim>, params: Params, op: Op) -> ApiResult {
    let uid = user_uuid_param(&params, None)?;
    let role_ids = params.all("roleId");
    if role_ids.is_empty() {
        return Err(ApiError::bad_request("roleId is a required query parameter"));
    }
    let mut world = sim.lock();
    let world = &mut *world;
    let cs = &mut world.tenants.crowdstrike;
    let key = cs.user_key(&uid)?;
    let user = cs.users.get_mut(&key).ok_or_else(|| ApiError::not_found(format!("user {uid} not found")))?;
    // Quirk: revoking a role the user does not hold is an error. All or nothing.
    let errors: Vec<Value> = role_ids
        .iter()
        .filter(|r| !user.roles.contains(*r))
        .map(|r| json!({ "code": 400, "message": format!("role {r} is not assigned to user {uid}") }))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError { status: StatusCode::BAD_REQUEST, errors });
    }
    for r in &role_ids {
        user.roles.remove(r);
    }
    for r in &role_ids {
        let mut details = Map::new();
        details.insert("user_uuid".into(), uid.clone().into());
        details.insert("role_id".into(), r.clone().into());
        world.journal.mutation(VENDOR, &op.method, &op.path, "role.revoke", details);
    }
    let out: Vec<Value> = role_ids.into_iter().map(Value::from).collect();
    Ok(resources(StatusCode::OK, out, None, vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_the_builtin_roles_two_users_and_the_api_client() {
        let s = state();
        for r in ["falcon_admin", "falcon_analyst", "detection_monitor", "falcon_console_guest"] {
            assert!(s.roles.contains_key(r), "{r}");
        }
        assert_eq!(s.users.len(), 2);
        assert!(s.clients.contains_key(DEFAULT_CLIENT_ID));
        let empty = State::new(&Config::default(), Fixture::Empty);
        assert!(empty.users.is_empty());
        assert_eq!(empty.roles.len(), BUILTIN_ROLES.len(), "built-in roles exist in every tenant");
    }

    #[test]
    fn usernames_are_unique_ignoring_case() {
        let mut s = state();
        let err = s
            .insert_user(NewUser {
                uid: None,
                username: Some("GRACE@example.com".into()),
                first_name: Some("G".into()),
                last_name: Some("H".into()),
            })
            .unwrap_err();
        assert_eq!(err.status, StatusCode::CONFLICT);
    }

    #[test]
    fn tokens_expire() {
        let mut s = state();
        let t = s.issue(DEFAULT_CLIENT_ID, 1_000);
        assert!(s.authenticate(&t, 1_000 + 1_799_999).is_some());
        assert!(s.authenticate(&t, 1_000 + 1_800_000).is_none());
    }

    #[test]
    fn retry_after_is_an_epoch_timestamp_rounded_up() {
        let d = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_at_ms: 1_700_000_060_000,
            daily_limit: None,
            daily_remaining: None,
            retry_at_ms: 1_700_000_060_001,
        };
        let r = FalconLimits::rejection(&d, 1_700_000_000_000);
        assert_eq!(r.headers()["x-ratelimit-retryafter"], "1700000061");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    }
}
