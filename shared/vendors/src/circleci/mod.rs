//! CircleCI (`https://circleci.com/api/v2`): organization membership, as far as the vendor's
//! published API lets lifecycle go, which is not far.
//!
//! CircleCI's API v2 definition (`https://circleci.com/api/v2/openapi.json`, 77 paths) has no
//! organization-member operation: nothing lists, reads, invites or removes a member. What it
//! does publish and lifecycle uses: `getCurrentUser` (`GET /me`) and `getCollaborations`
//! (`GET /me/collaborations`, whose items carry `vcs-type` with a hyphen). So (each point is
//! written down in docs/vendors/circleci.md):
//! - auth is a personal API token in the `Circle-Token` header; it carries all of its owner's
//!   permissions (no scopes); lifecycle only reads the token's own user and organizations, so
//!   any member's token does (a machine user's, ideally);
//! - every workflow checks the token and finds the configured org in `/me/collaborations` by
//!   its slug (never its name: `gh/acme` and `bb/acme` are different orgs with the same name),
//!   both kept by the worker for `catalog_max_age`, then ends `needs_manual_action` with the
//!   exact steps for a person: for a GitHub or Bitbucket OAuth org membership follows the VCS
//!   organization, for a `circleci/` org an admin invites or removes on Organization Settings >
//!   People; a leaver's steps add that personal API tokens are not revoked;
//! - no published read tells membership, so a re-check cannot confirm the person's work: it
//!   ends as the run did, saying so. Only the token's own user is known to be in the org (its
//!   collaborations list it): a joiner or mover of them succeeds, a leaver of them gives no
//!   removal steps;
//! - reconcile cannot list the members: the connector says so (`not_reconcilable`) and no
//!   directory is read; plans make the same two cached reads and stop with the run's message;
//! - 1,000 requests per minute per token (the guide; the definition declares no rate-limit
//!   header), a 429 carries no `Retry-After`, so we back off on our own.

mod client;
mod inspect;
mod vendor;
mod workflows;

use crate::adapter::Adapter;
use crate::http::VendorHttp;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::vendor_config::{parse, Common, VendorConfigError};
use lifecycle_config::Secret;
use lifecycle_domain::VendorKind;
use lifecycle_engine::Connector;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub use client::{Client, OrgKind, OrgSlug};

/// `[vendors.circleci]`: a CircleCI organization (docs/vendors/circleci.md).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API v2 root.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// A personal API token of a member of the org (a machine user's, ideally): lifecycle only
    /// reads the token's own user and organizations.
    pub token: Secret,
    /// The organization, as CircleCI writes its slug: `gh/my-org`, `bb/my-org` or
    /// `circleci/<id>` (`github/` and `bitbucket/` are accepted too). Only used to find
    /// the org's UUID; it never goes into a path.
    pub org_slug: String,
    /// The client's budget; by default CircleCI's 1,000 requests per minute per token.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimitConfig,
    /// How long the worker keeps the org and the token's own user before asking again.
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    #[schemars(with = "lifecycle_config::reference::types::HumanDuration")]
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
    let base = crate::vendor_config::base_url(VendorKind::Circleci, "base_url", &config.base_url, common)?;
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
    Ok(Arc::new(Adapter::new(workflows::Circleci::new(client, slug, config.catalog_max_age))))
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
