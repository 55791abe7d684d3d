//! CircleCI API v2 (`/circleci/api/v2`): the operations of the vendor's published definition
//! (`https://circleci.com/api/v2/openapi.json`) that lifecycle and its tests need, and nothing
//! else: `getCurrentUser` (`GET /me`), `getCollaborations` (`GET /me/collaborations`),
//! `getUser` (`GET /user/{id}`), `getOrganizationGroups` (`GET /organizations/{org_id}/groups`)
//! and `getGroup` (`GET /organizations/{org_id}/groups/{group_id}`).
//!
//! The definition has no organization-member operation, so neither has the simulator: any
//! other path (the guide's `/org/{orgID}/members...` and `/org/{orgID}/groups` among them) is a
//! 404 `{"message": "Not found."}`. Memberships exist in the tenant (seeded: what people do in
//! the web app), and show only where the definition shows them: in the caller's collaborations.
//! Our account of the vendor: `docs/vendors/circleci.md`; this crate's README lists the
//! simulated surface. Quirks included:
//! - auth by the `Circle-Token` header, HTTP Basic with the token as the username and an empty
//!   password, or the deprecated `circle-token` query parameter (the definition's three
//!   security schemes); a missing or unknown token is 401. A personal token has its owner's
//!   permissions: there are no scopes;
//! - every operation refuses a query parameter it does not take (400 `{"message"}`), and a
//!   path parameter of `format: uuid` that is not one (400);
//! - `GET /me/collaborations` lists the token owner's own organizations (a plain array, no
//!   pagination, alphabetical by name), items `{id, vcs-type, name, avatar_url, slug}`;
//! - the groups operations take the org **UUID** (a slug is 404 `Organization does not
//!   exist.`) and need an org **admin** (403 `Permission denied.` otherwise); groups are
//!   `{id, name, description}`, members not included; `limit` (default 20, served at most 100
//!   at a time: the definition names no maximum) and `page-token` in, `next_page_token` out
//!   (`null` on the last page). Tokens are cursors;
//! - `GET /user/{id}` only shows users the token owner can see (itself, or someone sharing
//!   one of its orgs); others are 404 `User does not exist.`;
//! - 1,000 requests per minute per token (fixed windows aligned to the minute; the guide's
//!   number). Every authenticated response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`
//!   and `X-RateLimit-Reset` (seconds until the window resets; the definition declares no
//!   rate-limit header, so clients must not rely on them). A 429 has NO `Retry-After`;
//! - errors are `{"message": "..."}`.
//!
//! Ids are UUIDs (lower case). The fixture's are fixed, so docs and tests can name them.
//!
//! Files: `model` (users, orgs, rosters, groups), `state` (the tenant and its operations), `seed`
//! (the built-in admin and org, fixture, `/_sim/seed`), `wire` (the JSON it sends and accepts,
//! each operation's parameters, page tokens), `handlers`.

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
use crate::registry::{self, VendorSim};
use crate::sim::Sim;
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;
pub use wire::CircleLimits;

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

/// CircleCI's start-up flags (ids prefixed: every vendor has a `Flags` with an `admin_token`).
#[derive(Clone, Debug, clap::Args)]
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
    pub admin_token: Token,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { admin_token: DEFAULT_ADMIN_TOKEN.into() }
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let mut state = State::empty(config);
        state.add_built_ins(config);
        if fixture == Fixture::Default {
            if let Err(e) = state.load_default_fixture() {
                tracing::error!(error = %e, "circleci default fixture is invalid");
            }
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
        json!({ "rate_limit": self.limiter.config() })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.limiter.configure_as_only_knob(patch)
    }

    fn injected_error(&self, uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let token = wire::request_token(headers, uri);
            let decision = self.limiter.exhausted(token.as_ref().map(Token::expose), now_ms);
            return CircleLimits::rejection(&decision, now_ms);
        }
        wire::ApiError::new(status, status.canonical_reason().unwrap_or("Error")).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        use handlers::*;
        Router::new()
            .route("/me", get(me))
            .route("/me/collaborations", get(collaborations))
            .route("/user/{id}", get(get_user))
            .route("/organizations/{org_id}/groups", get(list_groups))
            .route("/organizations/{org_id}/groups/{group_id}", get(get_group))
            .route_layer(from_fn_with_state(sim, guard))
            .method_not_allowed_fallback(|| async {
                wire::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            })
            .fallback(|| async { wire::ApiError::not_found() })
    }
}
