//! Pipedrive: the company's one base URL (`https://<company>.pipedrive.com`) serving API v1
//! (`/api/v1/...`: users, roles, role assignments) and API v2 (`/api/v2/...`: deals).
//!
//! Quirks that shape this module (each is written down in docs/vendors/pipedrive.md, with the
//! operation of Pipedrive's published definition it follows):
//! - auth is the personal API token in the `x-api-token` header (or an OAuth token as
//!   Bearer), never in the query string; only company admins may write users, others get 403;
//! - `GET /api/v1/users/find?search_by_email=1` returns *partial* matches (and `data: null`
//!   when there are none): we keep only the exact address;
//! - `POST /api/v1/users` takes `email`, `access[]` and `active_flag` (no name since 2023);
//!   `PUT /api/v1/users/{id}` takes only `active_flag`, and the last admin cannot be deactivated;
//! - admin rights are `access[].admin` per app (`is_admin` left the API): the last-admin
//!   guard counts `global` and `sales` admins;
//! - a role is a separate call (`POST /api/v1/roles/{id}/assignments`), resolved by name
//!   through `GET /api/v1/roles` (cached, see [`crate::catalog`]); a new user has no role, and
//!   assigning one moves the user to it;
//! - deactivation does **not** reassign the user's open deals: the leaver moves every open deal
//!   first, through API v2 (`GET /api/v2/deals?owner_id&status=open` with cursor paging,
//!   `PATCH /api/v2/deals/{id}` `{owner_id}`); the v1 deals endpoints are out of support;
//! - `GET /api/v1/users` has no paging (one request for the whole company); roles page by
//!   offset (`start`/`limit`), deals by cursor (`limit` ≤ 500, `additional_data.next_cursor`);
//! - 80 requests per 2 s per token (by plan: 20 to 120); `X-RateLimit-Reset` is the number
//!   of seconds left in the window, and a 429 carries no `Retry-After`.
//!
//! Reconcile and plan (`inspect.rs`, reads only): the directory is `GET /api/v1/users` (one
//! request; deactivated users included; each carries its `role_id`, so roles need no per-user
//! read), `GET /api/v1/users/me` once per connector (the token's own user is protected, as is the
//! company's creator) and the cached `GET /api/v1/roles` to name the roles. A plan makes the
//! reads the run would (role catalogue, `/users/find`, role assignments, open deals, the
//! successor, the users when a leaver is an admin) and stops with the run's own messages.

mod client;
mod inspect;
mod vendor;
pub mod webhook;
mod workflows;

use crate::adapter::Adapter;
use crate::http::VendorHttp;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::vendor_config::{parse, Common, VendorConfigError};
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use lifecycle_engine::Connector;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub use client::Client;

/// `[vendors.pipedrive]`: Pipedrive's users and their deals (what lifecycle does there: docs/vendors/pipedrive.md).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The company's root, `https://<company>.pipedrive.com` (API v1 and v2 are under it). A
    /// value ending in `/api/v1`, `/api/v2` or `/v1` (the old `https://api.pipedrive.com/v1`)
    /// is read as the root before that suffix.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The admin's personal API token (or an OAuth access token with `auth = "bearer"`).
    pub api_token: Secret,
    /// How `api_token` is sent.
    #[serde(default)]
    pub auth: AuthMode,
    /// Who receives a leaver's open deals when the event names no successor
    /// (or the successor has no active Pipedrive user).
    #[serde(default)]
    pub fallback_owner_email: Option<String>,
    /// The client's budget. The default is Pipedrive's Professional plan
    /// (Essential 20 per 2 s, Advanced 40, Enterprise 120): set `requests` for another plan.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimitConfig,
    /// How long the worker keeps the role catalogue before asking again (a
    /// role not in it is looked up again at once before a run fails for it).
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    #[schemars(with = "lifecycle_config::reference::types::HumanDuration")]
    pub catalog_max_age: Duration,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `x-api-token: ...` (personal API token), the header Pipedrive's docs name.
    #[default]
    ApiToken,
    /// `Authorization: Bearer ...` (OAuth access token).
    Bearer,
}

fn default_base_url() -> String {
    "https://api.pipedrive.com".into()
}

/// 80 requests per 2 seconds per token: Pipedrive's Professional plan (Essential 20, Advanced
/// 40, Enterprise 120); `rate_limit` in the table sets another plan's.
pub const RATE_LIMIT: RateLimitConfig = RateLimitConfig::new(80, Duration::from_secs(2));

fn default_rate_limit() -> RateLimitConfig {
    RATE_LIMIT
}

pub fn connector(table: &serde_json::Value, common: &Common) -> Result<Arc<dyn Connector>, VendorConfigError> {
    let config: Config = parse(VendorKind::Pipedrive, table)?;
    let fallback = match &config.fallback_owner_email {
        Some(e) => Some(EmployeeEmail::parse(e).map_err(|err| {
            VendorConfigError::invalid(VendorKind::Pipedrive, format!("fallback_owner_email: {err}"))
        })?),
        None => None,
    };
    crate::vendor_config::base_url(VendorKind::Pipedrive, "base_url", &config.base_url, common)?;
    if config.auth == AuthMode::ApiToken && reqwest::header::HeaderValue::from_str(config.api_token.expose()).is_err() {
        return Err(VendorConfigError::invalid(
            VendorKind::Pipedrive,
            "api_token: has characters an HTTP header cannot carry (it travels in x-api-token)",
        ));
    }
    let budget = config.rate_limit.or(RATE_LIMIT);
    budget.check().map_err(|e| VendorConfigError::invalid(VendorKind::Pipedrive, e))?;
    let limiter = Arc::new(Limiter::new(Some(budget)));
    let http = VendorHttp::new(VendorKind::Pipedrive, common.http_timeout, limiter, client::retry_hint);
    let client = Client::new(http, &config.base_url, config.api_token.clone(), config.auth);
    Ok(Arc::new(Adapter::new(workflows::Pipedrive {
        client,
        fallback_owner: fallback,
        roles: crate::catalog::Cached::new(config.catalog_max_age),
        seen: Default::default(),
    })))
}

/// What directory reads (`inspect.rs`) learn and keep for the connector's life; the
/// connector (`workflows.rs`) holds it.
#[derive(Default)]
pub(crate) struct Seen {
    /// The token's own user (`GET /users/me`): the token cannot change under a running connector.
    owner: tokio::sync::OnceCell<i64>,
    /// The roles' names as Pipedrive spells them, from the last catalogue a directory read used:
    /// [`Pipedrive::access_asked`] turns an event's spelling into this one, as the workflows'
    /// role lookup does, so that "sales rep" does not read as drift from "Sales Rep".
    role_names: std::sync::Mutex<Vec<String>>,
}
