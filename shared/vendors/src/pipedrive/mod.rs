//! Pipedrive (`https://api.pipedrive.com/v1`).
//!
//! Quirks that shape this module (each is written down in docs/vendors/pipedrive.md):
//! - auth is the personal `api_token` as a query parameter (or an OAuth
//!   token as Bearer); only company admins may write users, others get 403;
//! - `GET /users/find?search_by_email=1` returns *partial* matches (and
//!   `data: null` when there are none): we keep only the exact address;
//! - `PUT /users/{id}` is a partial update; `active_flag=false` deactivates,
//!   and the last admin cannot be deactivated;
//! - a role is a separate call (`POST /roles/{id}/assignments`), resolved by
//!   name through `GET /roles` (cached, see [`crate::catalog`]); a new user has
//!   no role, and assigning one moves the user to it;
//! - deactivation does **not** reassign the user's open deals: the leaver
//!   workflow moves every open deal to the successor first;
//! - offset pagination (`start`/`limit`, `additional_data.pagination.next_start`);
//! - 80 requests per 2 s per token; `X-RateLimit-Reset` is a Unix timestamp,
//!   not a delta; there is no `Retry-After`;
//! - in responses a deal's `user_id` is an object; in requests, an integer.
//!
//! Reconcile and plan (`inspect.rs`, reads only): the directory is `GET /users` at 500 a page
//! (deactivated users included; each carries its `role_id`, so roles need no per-user read),
//! `GET /users/me` once per connector (the token's own user is protected, as is the company's
//! creator) and the cached `GET /roles` to name the roles. A plan makes the reads the run
//! would (role catalogue, `/users/find`, role assignments, open deals, the successor, the
//! admins when a leaver is one) and stops with the run's own messages.

mod client;
mod inspect;
pub mod webhook;
mod workflows;

use crate::http::VendorHttp;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::registry::{parse, Common, VendorConfigError};
use lifecycle_config::Secret;
use lifecycle_domain::{EmployeeEmail, VendorKind};
use lifecycle_engine::Connector;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub use client::Client;

/// `[vendors.pipedrive]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The admin's personal API token (or an OAuth access token with `auth = "bearer"`).
    pub api_token: Secret,
    #[serde(default)]
    pub auth: AuthMode,
    /// Who receives a leaver's open deals when the event names no successor
    /// (or the successor has no active Pipedrive user).
    #[serde(default)]
    pub fallback_owner_email: Option<String>,
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimitConfig,
    /// How long the worker keeps the role catalogue before asking again (a
    /// role not in it is looked up again at once before a run fails for it).
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    pub catalog_max_age: Duration,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `?api_token=...` (personal API token).
    #[default]
    ApiToken,
    /// `Authorization: Bearer ...` (OAuth access token).
    Bearer,
}

fn default_base_url() -> String {
    "https://api.pipedrive.com/v1".into()
}

/// 80 requests per 2 seconds, per token, on every plan.
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
    crate::registry::base_url(VendorKind::Pipedrive, "base_url", &config.base_url, common)?;
    let budget = config.rate_limit.or(RATE_LIMIT);
    budget.check().map_err(|e| VendorConfigError::invalid(VendorKind::Pipedrive, e))?;
    let limiter = Arc::new(Limiter::new(Some(budget)));
    let http = VendorHttp::new(VendorKind::Pipedrive, common.http_timeout, limiter, client::retry_hint);
    let client = Client::new(http, &config.base_url, config.api_token.clone(), config.auth);
    Ok(Arc::new(workflows::Pipedrive {
        client,
        fallback_owner: fallback,
        roles: crate::catalog::Cached::new(config.catalog_max_age),
        seen: Default::default(),
    }))
}
