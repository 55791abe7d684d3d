//! Pipedrive (`/pipedrive`, the company's base URL): API v1 under `/api/v1` (users, roles and
//! role assignments) and API v2 under `/api/v2` (deals), as Pipedrive's published definitions
//! have them (docs/vendors/pipedrive.md names each operation). The v1 deals endpoints are out of
//! support and not served: `/api/v1/deals` is a 404 like any other unknown path.
//!
//! Each operation refuses what its definition does not have: an unknown query parameter or body
//! field, a missing required one, a wrong type or a value out of range is a 400 in Pipedrive's
//! error shape (`{"success": false, "error", "errorCode", "error_info"}`). Quirks included:
//! - auth by the `x-api-token` header (current docs), `Authorization: Bearer`, or the
//!   `api_token` query parameter (the v1 definition's scheme, still accepted); a token belongs
//!   to a user; tokens of deactivated users stop working;
//! - admin rights are `access[].admin` per app (no `is_admin`): an admin of `global` or `sales`
//!   may write users and role assignments and list all users (403 otherwise);
//!   `GET /users/{id}` with a non-admin token answers the token owner's own data;
//! - `GET /users/find` returns PARTIAL, case-insensitive matches (an empty list when none);
//! - `POST /users` takes `email`, `access[]`, `active_flag` (no name: the address stands in);
//!   `PUT /users/{id}` takes only `active_flag`; the last active admin cannot be deactivated;
//! - a user holds at most one role: assigning moves them;
//! - `GET /users` has no paging; roles and assignments page by offset (`start`, `limit`
//!   clamped to 500, `more_items_in_collection`; an empty page is `[]`); deals by cursor (`limit` 1 to 500, default
//!   100; `additional_data.next_cursor`, null on the last page);
//! - 80 requests per 2 s per token (windows on even Unix seconds) and 80,000 per day; every
//!   authenticated response carries `X-RateLimit-Limit`, `-Remaining`, `-Reset` (the seconds
//!   left in the window) and `X-Daily-Requests-Left`; a 429 has no `Retry-After`.
//!
//! Ids: the built-in admin is user 1, other users count from 1001, roles from 1, deals from
//! 100001, so that a client mixing up kinds of ids does not pass a test by accident.
//!
//! Files: `model` (users, roles, deals), `state` (the tenant and its operations), `seed`
//! (built-ins, fixture, `/_sim/seed`), `wire` (the JSON it sends and accepts), `handlers`.

mod deals;
mod handlers;
mod model;
mod seed;
mod state;
mod v1;
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
        use deals::*;

        let v2 = Router::new()
            .route("/api/v2/deals", get(list_deals))
            .route("/api/v2/deals/{id}", get(get_deal).patch(update_deal));
        finish(v1_routes("/api/v1").merge(v2), sim)
    }

    /// `https://api.pipedrive.com/v1`, the server the v1 definition names, serves API v1 too:
    /// the same operations (users and roles; its deals are out of support, so not here either).
    /// Clients configured with the older `…/pipedrive/v1` base drop the `/v1` and use the
    /// company layout, so this only answers requests made by hand at that address.
    fn extra_mounts(sim: Sim) -> Vec<(&'static str, Router<Sim>)> {
        vec![("/pipedrive/v1", finish(v1_routes(""), sim))]
    }
}

/// API v1's users and roles under `prefix`.
fn v1_routes(prefix: &str) -> Router<Sim> {
    use handlers::*;
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/users"), get(list_users).post(create_user))
        .route(&at("/users/me"), get(me))
        .route(&at("/users/find"), get(find_users))
        .route(&at("/users/{id}"), get(get_user).put(update_user))
        .route(&at("/users/{id}/roleAssignments"), get(user_role_assignments))
        .route(&at("/users/{id}/permissions"), get(user_permissions))
        .route(&at("/roles"), get(list_roles))
        .route(&at("/roles/{id}"), get(get_role))
        .route(&at("/roles/{id}/assignments"), get(list_role_assignments).post(assign_role).delete(unassign_role))
}

/// Auth and rate limits before every handler; Pipedrive's own 404 and 405 for the rest.
fn finish(routes: Router<Sim>, sim: Sim) -> Router<Sim> {
    routes
        .route_layer(from_fn_with_state(sim, handlers::guard))
        .method_not_allowed_fallback(|| async {
            wire::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .fallback(|| async { wire::ApiError::new(StatusCode::NOT_FOUND, "Unknown method .") })
}
