//! CrowdStrike Falcon user management (`/crowdstrike`): OAuth2 tokens, users by UUID, roles.
//!
//! Plays Falcon's current user-management API exactly as its published definition has it
//! (FalconPy 1.6.2's endpoint table, gofalcon's models: our account of it in
//! `docs/vendors/crowdstrike.md`), and refuses the rest as Falcon does: a path it does not
//! serve (the legacy `/users/...` and `/user-roles/...` families included) is a 404 "no route
//! found"; an unknown, repeated, missing-but-required, ill-typed or out-of-range query
//! parameter, and a body field the operation's model lacks (or of the wrong type), is a 400
//! with Falcon's `{"meta", "errors": [{"code", "message"}]}`. Served operations:
//! - oauth2AccessToken `POST /oauth2/token`: a form body (`client_id`, `client_secret`,
//!   optional `member_cid`; `grant_type=client_credentials` accepted) answers 201 with a bearer
//!   token that expires after `token_ttl_secs` (30 minutes by default) and `X-Cs-Region`; bad
//!   credentials are 403 "Failed to issue access token - Not Authorized"; a missing, unknown or
//!   expired token elsewhere is 401 "access denied, invalid bearer token";
//! - queryUserV1 `GET /user-management/queries/users/v1` (`filter` FQL, `offset`, `limit`
//!   1-500, `sort`): user ids (`uuid`) only, `meta.pagination {offset, limit, total}`;
//! - retrieveUsersGETV1 `POST /user-management/entities/users/GET/v1` `{"ids": [...]}` (at
//!   most 5000): `domain.User`s (`uuid` the id, `uid` the login e-mail, `first_name`, ...);
//! - createUserV1 `POST`, updateUserV1 `PATCH ?user_uuid=`, deleteUserV1 `DELETE ?user_uuid=`
//!   on `/user-management/entities/users/v1`: bodies `{uid, first_name, last_name, ...}` and
//!   `{first_name, last_name}` (both required); deletion is immediate and irreversible;
//! - queriesRolesV1 `GET /user-management/queries/roles/v1`: every role id of the tenant;
//! - CombinedUserRolesV2 `GET /user-management/combined/user-roles/v2?user_uuid=`: the user's
//!   grants (`role_id`, `role_name`, `cid`, `grant_type`), paginated like the user query;
//! - userRolesActionV1 `POST /user-management/entities/user-role-actions/v1` `{action: grant |
//!   revoke, cid, role_ids, uuid}`. Role ids are case-sensitive; an unknown role refuses a
//!   grant and an unheld role a revoke (400, all or nothing).
//!
//! Two scopes gate everything: `user-management:read` for the reads (the `GET`s and
//! retrieveUsersGETV1's `POST`), `user-management:write` for the rest (403 "access denied,
//! authorization failed" without it). The base URL is regional: `/crowdstrike` is the
//! tenant's own region (`--crowdstrike-region`, us-1 by default); every region is also mounted
//! at `/crowdstrike/{region}`, the home one an alias, the others hosts that know nothing of
//! this tenant (token endpoint 403, every call 401: authentication errors, never a redirect).
//! Rate limits are per API client and unpublished: a fixed-window budget per minute
//! (`--crowdstrike-rate-limit`, 6000). Every authenticated response carries
//! `X-RateLimit-Limit` and `X-RateLimit-Remaining`; a 429 adds `X-RateLimit-RetryAfter`, "retry
//! after this time (as milliseconds since epoch)", as the definition says.
//!
//! Files: `model` (users, roles, API clients), `state` (the tenant and its operations), `seed`
//! (built-in roles and client, fixture, `/_sim/seed`), `wire` (the JSON it sends and accepts,
//! each operation's declared parameters and body fields), `handlers`.

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
                .route("/user-management/queries/users/v1", get(query_users))
                .route("/user-management/entities/users/GET/v1", post(retrieve_users))
                .route("/user-management/entities/users/v1", post(create_user).patch(update_user).delete(delete_user))
                .route("/user-management/queries/roles/v1", get(queries_roles))
                .route("/user-management/combined/user-roles/v2", get(combined_user_roles))
                .route("/user-management/entities/user-role-actions/v1", post(user_roles_action))
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
