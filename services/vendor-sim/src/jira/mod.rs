//! Jira Cloud REST API v3 (`/jira/rest/api/3`) and the Atlassian SCIM directory API
//! (`/jira/scim/directory/{directoryId}`, which Atlassian serves from api.atlassian.com).
//!
//! Faithful to the vendor's published definitions (the Jira Cloud platform OpenAPI
//! `swagger-v3.v3.json` and Atlassian's "User provisioning" OpenAPI; our account of them:
//! `docs/vendors/jira.md`); this crate's README lists the simulated surface. Each operation
//! takes exactly the query parameters and body fields its definition lists: an unknown one, a
//! missing required one, a wrong type or an out-of-range page size is a 400 in Jira's error
//! shape (SCIM's on the directory API); an unknown path is Jira's 404. Quirks included:
//! - auth is Basic `email:api_token` (the email must be the token owner's) or `Bearer`; tokens of
//!   deactivated users, or of users without site access, stop working;
//! - users are identified by `accountId` only: `username` and `key` ("no longer available")
//!   are refused (400);
//! - `emailAddress` is `null` for users who hide it (privacy settings), even to site admins;
//!   `GET /user/search?query=` still matches on the hidden address, so a search for an address
//!   can return a user whose email reads `null` — a client must never match on it;
//! - `GET /user/search` (findUsers) "returns a list of active users" whose `displayName` or
//!   `emailAddress` starts with `query`; `GET /users/search` (getAllUsers) lists every account,
//!   inactive and previously deleted ones (site access removed, read `active: false`) too;
//! - `POST /user` (site admin) creates a Jira-managed user with `products` and records an
//!   invitation (`displayName` is "no longer available": ignored, the name is the address's
//!   local part until the person accepts); for an address whose account has access to Jira
//!   (site access and a product) it answers 201 with that account, unchanged; for one without
//!   access (removed from the site, or no product), 400;
//! - `DELETE /user` (site admin) removes site access, not the account; it is refused (400) for
//!   accounts managed by the SCIM directory, which must be deactivated through SCIM instead;
//! - groups are addressed by `groupId` or, where the definition takes it, `groupname` (never
//!   both); a group *name* passed as `groupId` is a 400 naming the id; a group may show
//!   `groupId: null` (the definition makes it nullable: seeded with `nullGroupId`), and is then
//!   addressable by name only; adding a member twice or removing a non-member is a 400;
//! - removing a user from every group does not deactivate them;
//! - `/users/search` (site admin) returns every account type (atlassian, app, customer);
//! - offset pagination (`startAt`, `maxResults` default 50): `/group/member` serves 1 to 50 (more
//!   is a 400, as its definition says "between 1 and 50"); the others serve at most 1000. Lists
//!   are plain arrays, except `/group/bulk` and `/group/member`, which are page beans (`isLast`,
//!   `total`, `nextPage`);
//! - rate limits are adaptive and unpublished: the simulator counts requests per credential in
//!   fixed windows (a runtime knob, 100 per second by default); every authenticated response
//!   carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-NearLimit`, and a 429
//!   carries `Retry-After` in *seconds*, `X-RateLimit-Reset` as an ISO 8601 timestamp and
//!   `RateLimit-Reason`;
//! - SCIM (`/Users` list with `filter=userName eq "..."`, get, PATCH `active`) uses its own bearer
//!   token and 1-based `startIndex`/`count` paging; users carry Atlassian's extension
//!   `urn:scim:schemas:extension:atlassian-external:1.0` (`atlassianAccountId`); a PATCH body's
//!   list may be spelled `operations` (the definition) or `Operations` (RFC 7644); deactivating
//!   through SCIM makes the Jira user inactive but keeps the account, its site access and its
//!   groups.
//!
//! Errors use Jira's shape `{"errorMessages": [...], "errors": {field: message}}`; SCIM errors use
//! the SCIM error schema (`status`, `detail`), except a 401, the definition's `Failure`
//! (`error`, `traceId`).
//!
//! Files: `model` (accounts, groups, invitations), `state` (the site and its operations),
//! `seed` (built-in admin, fixture, `/_sim/seed`), `wire` (the JSON it sends and accepts, SCIM's
//! too), `handlers` (the REST API) and `scim` (the directory API).

mod handlers;
mod model;
mod scim;
mod seed;
mod state;
mod wire;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::registry::{self, Vendor, VendorSim};
use crate::sim::{now_ms, Sim};
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;

const VENDOR: Vendor = Vendor::Jira;

/// The built-in site admin that owns the API token; survives every reset.
pub const ADMIN_ACCOUNT_ID: &str = "5b10a2844c20165700ede21g";
pub const ADMIN_NAME: &str = "Sim Admin";
pub const ADMIN_EMAIL: &str = "admin@sim.example";
pub const DEFAULT_ADMIN_TOKEN: &str = "jira-admin-token";
/// The SCIM directory's id and bearer token (generated per directory in admin.atlassian.com).
pub const DEFAULT_DIRECTORY_ID: &str = "d2b1f6c0-5a8e-4e3b-9c71-0f4a6b2e8d15";
pub const DEFAULT_SCIM_TOKEN: &str = "jira-scim-token";
/// Where the SCIM API is mounted: its base URL is `http://HOST:PORT/jira/scim/directory/{id}`.
pub const SCIM_MOUNT: &str = "/jira/scim";
/// `jira-software-users`, the group of the example event in docs/contract.md §1.
pub const SOFTWARE_USERS_GROUP_ID: &str = "276f955c-63d7-42c8-9520-92d01dca0625";

/// Groups of the default fixture: (groupId, name).
pub const FIXTURE_GROUPS: &[(&str, &str)] = &[
    (SOFTWARE_USERS_GROUP_ID, "jira-software-users"),
    ("4c1f3b0e-8d2a-4f6b-9e7c-2a5d8b1c0f93", "jira-servicemanagement-users"),
    ("9a7e2c41-3b5d-4e8f-a1c6-7d0b2e9f4a38", "jira-admins"),
    ("e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24", "engineering"),
    ("b8f0c2e4-6a1d-4b3f-9e5c-7a2d4f6b8c01", "product"),
];

/// Jira's product keys (`products` of `POST /user`) and their names.
pub const PRODUCTS: &[(&str, &str)] = &[
    ("jira-software", "Jira Software"),
    ("jira-servicedesk", "Jira Service Management"),
    ("jira-core", "Jira Work Management"),
    ("jira-product-discovery", "Jira Product Discovery"),
];

/// Jira's start-up flags.
#[derive(Clone, Debug, clap::Args)]
#[group(id = "JiraFlags")]
pub struct Flags {
    /// Email of the built-in site admin (the Basic auth user name).
    #[arg(id = "jira_admin_email", long = "jira-admin-email", env = "SIM_JIRA_ADMIN_EMAIL", default_value = ADMIN_EMAIL)]
    pub admin_email: String,
    /// API token of the built-in site admin (Basic `email:token`, or Bearer). Never logged.
    #[arg(id = "jira_admin_token", long = "jira-admin-token", env = "SIM_JIRA_ADMIN_TOKEN", default_value = DEFAULT_ADMIN_TOKEN, hide_env_values = true)]
    pub admin_token: Token,
    /// Id of the simulated SCIM directory (the `{directoryId}` of its base URL).
    #[arg(id = "jira_scim_directory_id", long = "jira-scim-directory-id", env = "SIM_JIRA_SCIM_DIRECTORY_ID", default_value = DEFAULT_DIRECTORY_ID)]
    pub scim_directory_id: String,
    /// Bearer token of the SCIM directory API. Never logged.
    #[arg(id = "jira_scim_token", long = "jira-scim-token", env = "SIM_JIRA_SCIM_TOKEN", default_value = DEFAULT_SCIM_TOKEN, hide_env_values = true)]
    pub scim_token: Token,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            admin_email: ADMIN_EMAIL.to_owned(),
            admin_token: DEFAULT_ADMIN_TOKEN.into(),
            scim_directory_id: DEFAULT_DIRECTORY_ID.to_owned(),
            scim_token: DEFAULT_SCIM_TOKEN.into(),
        }
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let now = now_ms();
        let mut state = State::empty(config);
        state.add_built_in_admin(&config.jira, now);
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
        json!({ "rate_limit": self.limiter.config(), "retry_after_secs": self.retry_after_secs })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.configure_knobs(patch)
    }

    fn injected_error(&self, uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        let scim = wire::is_scim_path(uri.path());
        if status == StatusCode::TOO_MANY_REQUESTS {
            let key = if scim {
                Some(state::SCIM_RATE_KEY.to_owned())
            } else {
                wire::credential(headers).and_then(|c| self.authenticate(&c)).map(|c| c.account_id)
            };
            let decision = self.limiter.exhausted(key.as_deref(), now_ms);
            return self.rate_limited(&decision, now_ms, scim);
        }
        let reason = status.canonical_reason().unwrap_or("Error");
        if scim {
            wire::ScimError::new(status, reason).into_response()
        } else {
            wire::ApiError::new(status, reason).into_response()
        }
    }

    fn router(sim: Sim) -> Router<Sim> {
        use handlers::*;
        Router::new()
            .route("/myself", get(myself))
            .route("/user", get(get_user).post(create_user).delete(delete_user))
            .route("/user/search", get(search_users))
            .route("/users/search", get(all_users))
            .route("/user/groups", get(user_groups))
            .route("/group/bulk", get(bulk_groups))
            .route("/group/member", get(group_members))
            .route("/group/user", post(add_to_group).delete(remove_from_group))
            .route_layer(from_fn_with_state(sim, guard))
            .method_not_allowed_fallback(|| async {
                wire::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            })
            .fallback(|| async { wire::ApiError::new(StatusCode::NOT_FOUND, "null for uri: not a Jira REST resource") })
    }

    fn extra_mounts(sim: Sim) -> Vec<(&'static str, Router<Sim>)> {
        use scim::*;
        let scim = Router::new()
            .route("/directory/{directory_id}/Users", get(scim_list_users).post(scim_not_simulated))
            .route(
                "/directory/{directory_id}/Users/{id}",
                get(scim_get_user).patch(scim_patch_user).put(scim_not_simulated).delete(scim_not_simulated),
            )
            .route_layer(from_fn_with_state(sim, scim_guard))
            .fallback(|| async { wire::ScimError::new(StatusCode::NOT_FOUND, "Resource not found") });
        vec![(SCIM_MOUNT, scim)]
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn flags_fit_beside_the_other_vendors() {
        use clap::Args as _;
        Config::augment_args(clap::Command::new("sim")).debug_assert();
    }
}
