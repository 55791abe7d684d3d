//! Pipedrive v1 (`/pipedrive/v1`): users, roles and role assignments, deals.
//!
//! Faithful to the vendor's documented behaviour (our account of it: `docs/vendors/pipedrive.md`);
//! this crate's README lists the simulated surface. Quirks included:
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
//!
//! Files: `model` (users, roles, deals), `state` (the tenant and its operations), `seed`
//! (built-ins, fixture, `/_sim/seed`), `wire` (the JSON it sends and accepts), `handlers`.

mod handlers;
mod model;
mod seed;
mod state;
mod wire;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::ratelimit::RateLimitStyle;
use crate::registry::{self, Vendor, VendorSim};
use crate::sim::{now_ms, Sim};
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;
pub use wire::PipedriveLimits;

const VENDOR: Vendor = Vendor::Pipedrive;

/// The built-in admin user that owns the admin token; survives every reset.
pub const ADMIN_USER_ID: i64 = 1;
pub const ADMIN_NAME: &str = "Sim Admin";
pub const ADMIN_EMAIL: &str = "admin@sim.example";
pub const DEFAULT_ADMIN_TOKEN: &str = "pd-admin-token";

/// Pipedrive's start-up flags.
#[derive(Clone, Debug, clap::Args)]
pub struct Flags {
    /// API token of the tenant's built-in admin (user 1, "Sim Admin"). Never logged.
    #[arg(
        long = "pipedrive-admin-token",
        env = "SIM_PIPEDRIVE_ADMIN_TOKEN",
        default_value = DEFAULT_ADMIN_TOKEN,
        hide_env_values = true
    )]
    pub admin_token: Token,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { admin_token: DEFAULT_ADMIN_TOKEN.into() }
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let now = now_ms();
        let mut state = State::empty(config);
        state.add_built_in_admin(config, now);
        if fixture == Fixture::Default {
            state.load_default_fixture(now);
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: seed::Seed| state.apply_seed(seed, now_ms()))
    }

    fn snapshot(&self) -> Value {
        self.snapshot_json()
    }

    fn config(&self) -> Value {
        json!({ "rate_limit": self.limiter.config() })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.limiter.configure_as_only_knob(patch)
    }

    fn injected_error(&self, uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let token = wire::request_token(uri, headers);
            let decision = self.limiter.exhausted(token.as_ref().map(Token::expose), now_ms);
            return PipedriveLimits::rejection(&decision, now_ms);
        }
        wire::ApiError::new(status, status.canonical_reason().unwrap_or("Error")).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        use handlers::*;
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
                wire::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
            })
            .fallback(|| async { wire::ApiError::new(StatusCode::NOT_FOUND, "Unknown method .") })
    }
}
