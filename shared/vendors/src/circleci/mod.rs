//! CircleCI (`https://circleci.com/api/v2`): organization membership.
//!
//! Quirks that shape this module (each is written down in docs/vendors/circleci.md):
//! - auth is a personal API token in the `Circle-Token` header; it carries all of its
//!   owner's permissions (no scopes), and org endpoints need an org **admin**'s token:
//!   anything else is 403;
//! - org endpoints take the org **UUID**, never the slug: the UUID is looked up in
//!   `GET /me/collaborations`, matched on the configured slug (not on the name: `gh/acme`
//!   and `bb/acme` are different orgs with the same name), and kept by the worker for
//!   `catalog_max_age` (as is the token owner, from `GET /me`);
//! - the API cannot invite anyone: a joiner who is not a member yet needs a person to
//!   invite them from the web UI (or to let SSO provision them);
//! - members are found by VCS login, which is case-insensitive, by walking
//!   `GET /org/{orgID}/members` with `page-token` until `next_page_token` is null: the API
//!   has no search by login or e-mail, so a run costs one request per 100 members before
//!   the person (every page for someone who is not a member);
//! - `DELETE /org/{orgID}/members/{userID}` is immediate and irreversible; its 204 is the
//!   proof (the documented follow-up GET answering 404 would only repeat it). It does **not**
//!   revoke the person's personal API tokens: the run's outcome says so, and what to do;
//! - 1,000 requests per minute per token; a 429 carries no `Retry-After` (and the
//!   rate-limit headers' names are undocumented), so we back off on our own.
//!
//! Reconcile and plan (`inspect.rs`): the directory is the member list, 100 a page
//! (`ceil(N/100)` requests, at least one, plus `/me/collaborations` and `/me` when not cached);
//! a 429 is waited out and the page asked for again. Accounts carry the login (lower-cased), no
//! address, and no access (the API manages membership only); the token's owner is protected.
//! A plan makes the workflows' reads only and stops with the run's own messages.

mod client;
mod inspect;
mod workflows;

use crate::http::VendorHttp;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::registry::{parse, Common, VendorConfigError};
use lifecycle_config::Secret;
use lifecycle_domain::VendorKind;
use lifecycle_engine::Connector;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub use client::{Client, OrgSlug};

/// `[vendors.circleci]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// A personal API token of an org admin (a machine user's, ideally).
    pub token: Secret,
    /// The organization, as CircleCI writes its slug: `gh/my-org`, `bb/my-org` or
    /// `circleci/<id>` (`github/` and `bitbucket/` are accepted too). Only used to find
    /// the org's UUID; it never goes into a path.
    pub org_slug: String,
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimitConfig,
    /// How long the worker keeps the org's UUID and the token owner before asking again.
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    pub catalog_max_age: Duration,
}

fn default_base_url() -> String {
    "https://circleci.com/api/v2".into()
}

/// 1,000 requests per minute per token, on every plan.
pub const RATE_LIMIT: RateLimitConfig = RateLimitConfig::new(1000, Duration::from_secs(60));

fn default_rate_limit() -> RateLimitConfig {
    RATE_LIMIT
}

pub fn connector(table: &serde_json::Value, common: &Common) -> Result<Arc<dyn Connector>, VendorConfigError> {
    let config: Config = parse(VendorKind::Circleci, table)?;
    let slug = OrgSlug::parse(&config.org_slug)
        .map_err(|e| VendorConfigError::invalid(VendorKind::Circleci, format!("org_slug: {e}")))?;
    let base = crate::registry::base_url(VendorKind::Circleci, "base_url", &config.base_url, common)?;
    if reqwest::header::HeaderValue::from_str(config.token.expose().trim()).is_err()
        || config.token.expose().trim().is_empty()
    {
        return Err(VendorConfigError::invalid(
            VendorKind::Circleci,
            "token: must be a non-empty personal API token of printable ASCII characters",
        ));
    }
    let budget = config.rate_limit.or(RATE_LIMIT);
    budget.check().map_err(|e| VendorConfigError::invalid(VendorKind::Circleci, e))?;
    let limiter = Arc::new(Limiter::new(Some(budget)));
    let http = VendorHttp::new(VendorKind::Circleci, common.http_timeout, limiter, crate::http::no_hint);
    let client = Client::new(http, base, config.token.clone());
    Ok(Arc::new(workflows::Circleci::new(client, slug, config.catalog_max_age)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common() -> Common {
        Common { http_timeout: Duration::from_secs(5), allow_plain_http: true }
    }

    #[test]
    fn config_needs_a_token_and_a_slug_and_refuses_unknown_keys() {
        let ok = json!({"base_url": "http://127.0.0.1:9/circleci/api/v2", "token": "t", "org_slug": "gh/sim-org"});
        assert!(connector(&ok, &common()).is_ok());
        let no_slug = json!({"token": "t"});
        assert!(connector(&no_slug, &common()).is_err());
        let bad_slug = json!({"token": "t", "org_slug": "sim-org"});
        let err = connector(&bad_slug, &common()).err().unwrap().to_string();
        assert!(err.contains("org_slug") && err.contains("gh/"), "{err}");
        let unknown = json!({"token": "t", "org_slug": "gh/x", "org_id": "x"});
        assert!(connector(&unknown, &common()).is_err());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let config: Config = serde_json::from_value(json!({"token": "s3cret", "org_slug": "gh/x"})).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(config.rate_limit, RATE_LIMIT);
        assert_eq!(config.catalog_max_age, crate::catalog::DEFAULT_MAX_AGE);
        let config: Config =
            serde_json::from_value(json!({"token": "t", "org_slug": "gh/x", "catalog_max_age": "10m"})).unwrap();
        assert_eq!(config.catalog_max_age, Duration::from_secs(600));
    }
}
