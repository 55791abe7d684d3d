//! CrowdStrike Falcon user management (`/crowdstrike`): OAuth2 tokens, users by UUID, roles.
//!
//! Faithful to the vendor's documented behaviour (our account of it: `docs/vendors/crowdstrike.md`);
//! this crate's README lists the simulated surface. Quirks included:
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
//! - `/users/queries/user-uids/v1?uid=<login e-mail>` (beyond the documentation we were given; the real API has it)
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
//!
//! Files: `model` (users, roles, API clients), `state` (the tenant and its operations), `seed`
//! (built-in roles and client, fixture, `/_sim/seed`), `wire` (the JSON it sends and accepts),
//! `handlers`.

mod handlers;
mod model;
mod seed;
mod state;
mod wire;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::extract::bearer;
use crate::ratelimit::RateLimitStyle;
use crate::registry::{self, Vendor, VendorSim};
use crate::sim::Sim;
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;
pub use wire::FalconLimits;

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

/// CrowdStrike's start-up flags.
#[derive(Clone, Debug, clap::Args)]
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
    pub client_secret: Token,

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
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            region: "us-1".to_owned(),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT,
        }
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let mut state = State::empty(config);
        state.add_built_ins(&config.crowdstrike);
        if fixture == Fixture::Default {
            state.load_default_fixture();
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: seed::Seed| state.apply_seed(seed))
    }

    fn snapshot(&self) -> Value {
        self.snapshot_json()
    }

    fn config(&self) -> Value {
        json!({
            "rate_limit": self.limiter.config(),
            "token_ttl_secs": self.token_ttl_secs,
            "region": self.region,
        })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.configure_knobs(patch)
    }

    fn injected_error(&self, _uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let client = bearer(headers).and_then(|t| self.tokens.get(&t)).map(|g| g.client_id.clone());
            let decision = self.limiter.exhausted(client.as_deref(), now_ms);
            return FalconLimits::rejection(&decision, now_ms);
        }
        wire::ApiError::new(status, status.canonical_reason().unwrap_or("error").to_lowercase()).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        use handlers::*;
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
                wire::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            })
            .fallback(|| async { wire::ApiError::new(StatusCode::NOT_FOUND, "no route found") })
    }
}
