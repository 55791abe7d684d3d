//! Calendly (`/calendly`): one organization, its memberships and invitations, and users.
//!
//! Plays Calendly's API v2 as its definition gives it (`../shared/vendor-specs/calendly/`: the
//! speakeasy Go SDK generated from Calendly's OpenAPI 2.0.0, and the developer.calendly.com
//! reference pages; our account of it: `docs/vendors/calendly.md`), and refuses the rest:
//! - the nine operations of `operations::OPERATIONS` and no other: an unknown path, or a
//!   method the definition lacks for a path, is Calendly's 404 `Resource Not Found`;
//! - a query parameter the operation does not take, one given twice, a missing `organization`
//!   (or `user`) on the membership list, a `count` that is not an integer from 1 to 100, a
//!   `status` other than pending, accepted or declined, a `role` other than owner, admin or
//!   user, a `sort` other than `created_at:asc|desc`, a made-up `page_token`: a 400
//!   `Invalid Argument` whose `details` name the parameter; so is an invitation body with a
//!   field other than `email`, without `email`, or with one that is not an address;
//! - auth is a Personal Access Token as `Authorization: Bearer`; a token belongs to a user;
//! - there is no "list users": `GET /users/me` gives the token owner and its
//!   `current_organization`; members are enumerated through `GET /organization_memberships`;
//! - both lists take the definition's `email` filter: `GET /organization_memberships?
//!   organization=<uri>&email=<address>` and `GET /organizations/{uuid}/invitations?email=<address>`
//!   answer only the items whose (member's) address is that one, compared case-insensitively, in
//!   the same paginated envelope; an empty `email` is an `Invalid Argument`;
//! - identifiers are full URIs built from the simulator's own base as the caller reached it
//!   (`http://HOST:PORT/calendly/users/AAAA`). Where a URI is expected (`organization` and `user`
//!   query parameters), a bare UUID is refused with Calendly's `Invalid Argument` error, and the
//!   organization URI must match exactly the one `/users/me` returned (anything else is a 404);
//! - listing memberships or invitations, inviting, revoking and removing need an admin or owner
//!   token (403 `Permission Denied` otherwise); `GET /users/{uuid}` needs the same organization or
//!   an admin;
//! - a user joins by invitation only: `POST /organizations/{uuid}/invitations` creates a *pending*
//!   invitation and no membership. The invitee "accepts" through the control API
//!   (`accept_invitations` in `/_sim/seed`), which creates the user (or reuses their account)
//!   and a `user` membership. Inviting a member or someone already invited is a 400 naming
//!   `email` (the definition declares no 409 for this operation);
//! - only pending invitations can be revoked (400 otherwise); revoked invitations disappear from
//!   listings and `GET` (they stay in `/_sim/state` with status `revoked`);
//! - the owner's membership cannot be deleted (403); removing a membership keeps the user's
//!   Calendly account (it stays in `users`, with no organization);
//! - cursor pagination: `count` (default 20, at most 100) and an opaque `page_token`;
//!   `pagination` carries `count`, `next_page`, `next_page_token`, `previous_page`,
//!   `previous_page_token` (null when there is none). Cursors point *after an item*, so deleting
//!   while paging does not skip anyone; invitations also sort newest first (`sort=created_at:desc`);
//! - 60 requests per minute per token (120 on the enterprise plan), in windows aligned to the
//!   minute: stricter than Calendly's documented 500 per user per minute on paid plans, so that
//!   tests meet the budget; every authenticated response carries `X-RateLimit-Limit`,
//!   `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the window resets, a delta),
//!   and a 429 those three only, as Calendly documents it (no `Retry-After`);
//! - errors are `{"title", "message", "details"?: [{"parameter", "message"}]}`.
//!
//! UUIDs are 16 upper-case hex digits, distinct across kinds (a user's UUID is never a
//! membership's), so a client mixing up kinds of ids does not pass a test by accident.
//!
//! Files: `operations` (the definition's operations and their query parameters), `model` (users,
//! memberships, invitations, their UUIDs), `state` (the organization and its operations), `seed`
//! (owner and admin, fixture, `/_sim/seed`), `wire` (the JSON it sends and accepts, URIs,
//! cursors), `handlers`.

mod handlers;
mod model;
mod operations;
mod seed;
mod state;
mod wire;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::extract::bearer;
use crate::ratelimit::RateLimitStyle;
use crate::registry::{self, Vendor, VendorSim};
use crate::sim::{now_ms, rfc3339_ms, Sim};
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;
pub use wire::CalendlyLimits;

const VENDOR: Vendor = Vendor::Calendly;

pub const DEFAULT_ADMIN_TOKEN: &str = "calendly-admin-token";
/// The token owner: an admin member of the organization; survives every reset.
pub const ADMIN_NAME: &str = "Sim Admin";
pub const ADMIN_EMAIL: &str = "admin@sim.example";
/// The organization's owner; survives every reset and cannot be removed.
pub const OWNER_NAME: &str = "Sim Owner";
pub const OWNER_EMAIL: &str = "owner@sim.example";
const ORG_NAME: &str = "Sim Organization";

/// Calendly's plan tier: it sets the rate limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Free, Standard and Teams: 60 requests per minute.
    #[default]
    Standard,
    /// 120 requests per minute.
    Enterprise,
}

impl Plan {
    pub fn requests_per_minute(self) -> u32 {
        match self {
            Plan::Standard => 60,
            Plan::Enterprise => 120,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Plan::Standard => "standard",
            Plan::Enterprise => "enterprise",
        }
    }
}

/// Calendly's start-up flags. The group and argument ids are prefixed: every vendor's flags
/// are flattened into one command, which needs unique ids.
#[derive(Clone, Debug, clap::Args)]
#[group(id = "calendly_flags")]
pub struct Flags {
    /// Personal access token of the organization's built-in admin ("Sim Admin"). Never logged.
    #[arg(
        id = "calendly_admin_token",
        long = "calendly-admin-token",
        value_name = "TOKEN",
        env = "SIM_CALENDLY_ADMIN_TOKEN",
        default_value = DEFAULT_ADMIN_TOKEN,
        hide_env_values = true
    )]
    pub admin_token: Token,

    /// The organization's plan: `standard` (60 requests per minute) or `enterprise` (120).
    #[arg(
        id = "calendly_plan",
        long = "calendly-plan",
        value_name = "PLAN",
        env = "SIM_CALENDLY_PLAN",
        value_enum,
        default_value_t = Plan::Standard
    )]
    pub plan: Plan,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { admin_token: DEFAULT_ADMIN_TOKEN.into(), plan: Plan::Standard }
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let now = rfc3339_ms(now_ms());
        let mut state = State::empty(config, &now);
        state.add_built_ins(config, &now);
        if fixture == Fixture::Default {
            state.load_default_fixture(&now);
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
        json!({ "plan": self.plan.as_str(), "rate_limit": self.limiter.config() })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.configure_knobs(patch)
    }

    fn injected_error(&self, _uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let token = bearer(headers);
            let decision = self.limiter.exhausted(token.as_ref().map(Token::expose), now_ms);
            return CalendlyLimits::rejection(&decision, now_ms);
        }
        wire::ApiError::for_status(status).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        use handlers::*;
        Router::new()
            .route("/users/me", get(me))
            .route("/users/{uuid}", get(get_user))
            .route("/organization_memberships", get(list_memberships))
            .route("/organization_memberships/{uuid}", get(get_membership).delete(remove_membership))
            .route("/organizations/{uuid}/invitations", get(list_invitations).post(invite))
            .route("/organizations/{org_uuid}/invitations/{uuid}", get(get_invitation).delete(revoke_invitation))
            .route_layer(from_fn_with_state(sim, guard))
            // A method the definition lacks for a path is no operation at all: not found.
            .method_not_allowed_fallback(|| async { wire::ApiError::not_found() })
            .fallback(|| async { wire::ApiError::not_found() })
    }
}
