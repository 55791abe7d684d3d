//! Personio (`/personio`): the v2 reads lifecycle makes after a webhook, and a test sender
//! that signs webhook deliveries as lifecycle reads Personio's scheme (docs/hr/personio.md).
//!
//! Served operations, as Personio's v2 OpenAPI definitions have them:
//! - `POST /v2/auth/token`: a form body `grant_type=client_credentials`, `client_id`,
//!   `client_secret` answers `{access_token, token_type: "Bearer", expires_in, scope}`; bad
//!   credentials or another grant type are 401 / 400 with an OAuth2 `error`;
//! - `GET /v2/persons/{id}`: the person (`id`, `first_name`, `last_name`, `preferred_name`,
//!   `email`, `created_at`, `updated_at`), 404 problem when unknown;
//! - `GET /v2/persons/{id}/employments`: `{"_data": [...], "_meta": {"links": {}}}`, most recent
//!   first (`status` `ACTIVE` | `ONBOARDING` | `LEAVE` | `INACTIVE`, `position.title`,
//!   `org_units` `[{id, type}]`, `employment_start_date`, `termination.date`);
//! - `GET /v2/org-units/{id}?type=department|team`: the org unit's `name`.
//!
//! A missing or unknown bearer token is 401. Each token has a fixed-window budget
//! (`--personio-rate-limit` per minute); past it, 429 with `Retry-After`. Errors are
//! `application/problem+json` `{personio_trace_id, timestamp, errors: [{title, detail}]}`.
//!
//! `POST /personio/_sim/send` is the test sender ([`sender`]): it builds a delivery, signs it,
//! posts it to the receiver and answers with the receiver's status and body.
//!
//! Files: `state` (persons, employments, org units, tokens; seed and fixture), `handlers`,
//! `sender`.

mod handlers;
pub mod sender;
mod state;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::registry::{self, VendorSim};
use crate::sim::Sim;
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;

/// The fixture tenant's API credentials.
pub const CLIENT_ID: &str = "personio-client-id";
pub const CLIENT_SECRET: &str = "personio-client-secret";
/// The secret the fixture's webhook is signed with, and its company.
pub const WEBHOOK_SECRET: &str = "personio-webhook-secret";
pub const COMPANY_ID: &str = "41234";
/// Fixture persons: active in Sales with an e-mail; active without one; terminated.
pub const ACTIVE_SALES: &str = "1001";
pub const WITHOUT_EMAIL: &str = "1002";
pub const TERMINATED: &str = "1003";
/// Onboarding, starting on a future date.
pub const ONBOARDING: &str = "1004";
/// Access tokens last a day, as Personio's do.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 86_400;
/// Requests per minute per token (Personio publishes no number for these endpoints).
pub const DEFAULT_RATE_LIMIT: u32 = 600;

/// Personio's start-up flags. Each has an explicit id: clap names an argument
/// after its field, and CrowdStrike's `client_id` is already one.
#[derive(Clone, Debug, clap::Args)]
#[group(id = "personio")]
pub struct Flags {
    /// Client id of the tenant's API credentials.
    #[arg(id = "personio_client_id", long = "personio-client-id", env = "SIM_PERSONIO_CLIENT_ID", default_value = CLIENT_ID)]
    pub client_id: String,

    /// Client secret of the API credentials. Never logged.
    #[arg(
        id = "personio_client_secret",
        long = "personio-client-secret",
        env = "SIM_PERSONIO_CLIENT_SECRET",
        default_value = CLIENT_SECRET,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub client_secret: Token,

    /// Lifetime of issued access tokens, in seconds.
    #[arg(id = "personio_token_ttl", long = "personio-token-ttl", env = "SIM_PERSONIO_TOKEN_TTL", default_value_t = DEFAULT_TOKEN_TTL_SECS)]
    pub token_ttl_secs: u64,

    /// Requests per minute allowed per access token.
    #[arg(id = "personio_rate_limit", long = "personio-rate-limit", env = "SIM_PERSONIO_RATE_LIMIT", default_value_t = DEFAULT_RATE_LIMIT)]
    pub rate_limit_per_minute: u32,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.into(),
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT,
        }
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let mut state = State::empty(config);
        if fixture == Fixture::Default {
            state.load_default_fixture();
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: state::Seed| state.apply_seed(seed))
    }

    fn snapshot(&self) -> Value {
        self.snapshot_json()
    }

    fn config(&self) -> Value {
        json!({ "rate_limit": self.limiter.config(), "token_ttl_secs": self.token_ttl_secs })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.limiter.configure_as_only_knob(patch)
    }

    fn injected_error(&self, _uri: &Uri, _headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            return handlers::too_many_requests(1, now_ms);
        }
        handlers::problem(status, status.canonical_reason().unwrap_or("Error"), "injected by the simulator")
    }

    fn router(sim: Sim) -> Router<Sim> {
        use handlers::*;
        Router::new()
            .route("/v2/persons/{id}", get(person))
            .route("/v2/persons/{id}/employments", get(employments))
            .route("/v2/org-units/{id}", get(org_unit))
            .route_layer(from_fn_with_state(sim, guard))
            .route("/v2/auth/token", post(issue_token))
            .route("/_sim/send", post(sender::send))
            .fallback(|| async { problem(StatusCode::NOT_FOUND, "Not Found", "no such endpoint") })
    }
}
