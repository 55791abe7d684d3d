//! GitHub (`/github`, i.e. a client's base URL is `http://HOST:PORT/github` where GitHub's is
//! `https://api.github.com`): one organization (`sim-org`), its members, invitations, teams and
//! outside collaborators, and GitHub accounts around it.
//!
//! Plays the 17 operations of GitHub's published REST definition that lifecycle uses, exactly
//! as the excerpt `shared/vendors/tests/vendors/published/github/api.github.com.2022-11-28.excerpt.json`
//! has them (operationIds in `wire::OPERATIONS` and on each handler), and the wire facts of
//! GitHub's docs. Our account of the vendor: `docs/vendors/github.md`. Quirks included:
//! - a request without `User-Agent` is a 403 before anything else; auth is `Authorization:
//!   Bearer TOKEN` (or `token TOKEN`); missing: 401 "Requires authentication", unknown: 401
//!   "Bad credentials"; an `X-GitHub-Api-Version` other than 2022-11-28 is a 400;
//! - any other path or method is a 404 `{"message":"Not Found","documentation_url","status"}`;
//!   an unknown or repeated query parameter, a value off its enum, `per_page` outside 1..=100,
//!   an unknown body field, a wrong type or a bad enum are 422 `validation-error`s (GitHub
//!   itself ignores unknown parameters and caps `per_page`: the simulator is stricter so a
//!   client's mistake shows);
//! - errors are `basic-error {message, documentation_url, status}` and `validation-error
//!   {message: "Validation Failed", errors: [{resource, field, code, message?}], documentation_url}`;
//! - writes need an org owner (admin): others get 403 "You must be an admin to ...";
//! - invitations: by `invitee_id` or `email` (login null for an e-mail no account has), roles
//!   `admin`, `direct_member`, `billing_manager` (`reinstate` becomes `direct_member`), with
//!   `team_ids`; a member is 422 `custom` "Invitee is already a part of this organization", an
//!   invitee already pending 422 `already_exists`. Invitees accept through `/_sim/seed`
//!   (`accept_invitations`). get-membership shows a pending invitee as `state: pending`; DELETE
//!   of one cancels the invitation;
//! - billing managers are not members: get-membership shows them, list-members does not;
//! - the last owner can be neither removed nor demoted (403); removing a member takes them off
//!   every team;
//! - a team PUT for someone who is not an org member is a 422 ("must be an organization
//!   member"); a team DELETE of a non-member of the team is a 404; get team membership answers a
//!   bare 404 (the definition declares no body), and `pending` for an invitee whose invitation
//!   carries the team;
//! - outside collaborators: removing a member that way is a 422, removing a non-collaborator a
//!   204;
//! - pagination: `per_page` (default 30) and `page`, with a `Link` header (`prev`, `next`,
//!   `last`, `first`) built from the address the caller used;
//! - every `GET` answered 200 has a weak `ETag`; `If-None-Match` with it gets a 304 without a
//!   body, which does not count against the primary limit;
//! - rate limits: the primary one (5,000 requests an hour per user; `x-ratelimit-limit`,
//!   `-remaining`, `-used`, `-reset` (epoch seconds), `-resource: core` on every authenticated
//!   answer; spent: 403 with remaining 0 and "API rate limit exceeded for user ID N. ...") and
//!   the secondary one on writes (80 a minute per user: 403 with `retry-after` and "You have
//!   exceeded a secondary rate limit ..."). An injected 429 is the secondary answer as 429.
//!
//! Files: `model` (accounts, roles, invitations, teams), `state` (the tenant, its limits and
//! knobs), `seed` (the built-in owner, the fixture, `/_sim/seed`), `wire` (the definition's
//! operations, parameters, schemas, errors, pages, rate-limit headers), `handlers`.

mod guard;
mod handlers;
mod invitations;
mod model;
mod operations;
mod seed;
mod state;
mod teams;
mod wire;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::registry::{self, Vendor, VendorSim};
use crate::sim::Sim;
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;
pub use wire::GithubLimits;

const VENDOR: Vendor = Vendor::GitHub;

/// The organization every operation is about.
pub const ORG_LOGIN: &str = "sim-org";
pub const ORG_ID: u64 = 1001;
/// Token of the built-in org owner `sim-admin` (user id 1); survives every reset.
pub const DEFAULT_ADMIN_TOKEN: &str = "github-admin-token";
pub const ADMIN_LOGIN: &str = "sim-admin";
pub const ADMIN_USER_ID: u64 = 1;
/// Token of `grace-gh` (user id 101), a plain member, in the default fixture.
pub const MEMBER_TOKEN: &str = "github-member-token";

/// GitHub's start-up flags (ids prefixed: every vendor's flags share one command).
#[derive(Clone, Debug, clap::Args)]
#[group(id = "github_flags")]
pub struct Flags {
    /// Personal access token of the organization's built-in owner (`sim-admin`). Never logged.
    #[arg(
        id = "github_admin_token",
        long = "github-admin-token",
        value_name = "TOKEN",
        env = "SIM_GITHUB_ADMIN_TOKEN",
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
                tracing::error!(error = %e, "github default fixture is invalid");
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
        self.limits.config_json()
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.limits.configure(patch)
    }

    /// A 429 is GitHub's secondary-limit answer (with `retry-after`); a 403 its plain
    /// forbidden `basic-error`; anything else a `basic-error` with the status's reason.
    fn injected_error(&self, _uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        let user = guard::request_token(headers).and_then(|t| self.tokens.get(t.expose()).copied());
        if status == StatusCode::TOO_MANY_REQUESTS {
            let decision = self.limits.peek(user, now_ms);
            return wire::secondary_exceeded(status, &decision, now_ms, self.limits.secondary_retry_after_secs);
        }
        let message =
            if status == StatusCode::FORBIDDEN { "Forbidden" } else { status.canonical_reason().unwrap_or("Error") };
        wire::ApiError::new(status, message).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        use guard::guard;
        use handlers::*;
        use invitations::*;
        use teams::*;
        Router::new()
            .route("/user", get(get_authenticated))
            .route("/users/{username}", get(get_by_username))
            .route("/orgs/{org}/members", get(list_members))
            .route(
                "/orgs/{org}/memberships/{username}",
                get(get_membership).put(set_membership).delete(remove_membership),
            )
            .route("/orgs/{org}/invitations", get(list_invitations).post(create_invitation))
            .route("/orgs/{org}/invitations/{invitation_id}", axum::routing::delete(cancel_invitation))
            .route("/orgs/{org}/invitations/{invitation_id}/teams", get(list_invitation_teams))
            .route("/orgs/{org}/outside_collaborators", get(list_outside))
            .route("/orgs/{org}/outside_collaborators/{username}", axum::routing::delete(remove_outside))
            .route("/orgs/{org}/teams", get(list_teams))
            .route("/orgs/{org}/teams/{team_slug}/members", get(list_team_members))
            .route(
                "/orgs/{org}/teams/{team_slug}/memberships/{username}",
                get(get_team_membership).put(put_team_membership).delete(delete_team_membership),
            )
            .route_layer(from_fn_with_state(sim, guard))
            // GitHub answers a method it lacks for a path as it answers an unknown path.
            .method_not_allowed_fallback(|| async { wire::ApiError::not_found() })
            .fallback(|| async { wire::ApiError::not_found() })
    }
}
