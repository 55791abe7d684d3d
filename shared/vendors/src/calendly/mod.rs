//! Calendly (`https://api.calendly.com`).
//!
//! Quirks that shape this module (each is written down in docs/vendors/calendly.md):
//! - auth is a personal access token as Bearer; it must belong to an owner or
//!   admin of the organization, or listing members, inviting and removing are 403;
//! - there is no "list users": the organization URI comes from `GET /users/me`
//!   (`resource.current_organization`; kept by the worker for `catalog_max_age`);
//! - a person is found by e-mail with the `email` filter Calendly's definition gives both
//!   lists (`GetOrganizationMemberships`, `GetOrganizationsUUIDInvitations`):
//!   `GET /organization_memberships?organization=<URI>&email=<address>` and
//!   `GET /organizations/{uuid}/invitations?email=<address>` answer the matching items only,
//!   so a lookup costs one request however large the organization;
//! - identifiers in queries and bodies are full URIs, never bare UUIDs, and the
//!   organization URI must be exactly the one `/users/me` returned; paths take
//!   the UUID (the URI's last segment);
//! - a joiner is an *invitation*: the person is not a member (and takes no
//!   seat) until they accept the email, so the run ends `invited`, not `active`;
//!   inviting someone already invited or already a member is refused (a 400);
//! - only pending invitations can be revoked; an accepted one means a
//!   membership to remove instead; the owner's membership cannot be removed
//!   through the API (a person must transfer ownership first);
//! - removing a membership leaves the person's Calendly account and data;
//! - roles cannot be changed through the REST API, so a mover only makes sure
//!   the person is a member or invited;
//! - cursor pagination: `count` at most 100, `page_token`, `pagination.next_page_token`
//!   (followed even on a filtered list, which a person's past invitations can lengthen);
//! - the budget is 60 requests per minute (120 with `plan = "enterprise"`), well under the
//!   documented 500 per user per minute of paid plans (an organization with members to manage
//!   has paid seats); a 429 carries `X-RateLimit-Reset`, the seconds until the limit resets,
//!   which is waited out (no `Retry-After` is documented).
//!
//! Reconcile and plan (`inspect.rs`): the directory is every membership and every pending
//! invitation, 100 a page (`ceil(M/100) + ceil(I/100)` requests, at least one each, and
//! `/users/me` when the organization is not cached); a 429 is waited out and the page asked
//! for again. `access` is empty (events name no role); the owner and the token's own user are
//! protected. A plan makes the workflows' look-ups only and stops with the run's own messages.

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

pub use client::Client;

/// `[vendors.calendly]`: a Calendly organization's members (docs/vendors/calendly.md).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The API root.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// A personal access token of an owner or admin of the organization.
    pub token: Secret,
    /// Sets the client's budget: 60 or 120 requests per minute, both under Calendly's documented
    /// 500 per user per minute on paid plans (see docs/vendors/calendly.md, "Rate limits").
    #[serde(default)]
    pub plan: Plan,
    /// Overrides the plan's budget field by field, e.g. `rate_limit = { share = 0.5 }` for
    /// two workers sharing the token.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// How long the worker keeps the organization's URI (from `GET /users/me`) before asking
    /// again; an organization the vendor no longer knows is asked for again at once.
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    #[schemars(with = "lifecycle_config::reference::types::HumanDuration")]
    pub catalog_max_age: Duration,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// 60 requests per minute (the vendor guide's figure for Free, Standard and Teams).
    #[default]
    Standard,
    /// 120 requests per minute (the guide's Enterprise figure).
    Enterprise,
}

impl Plan {
    pub fn rate_limit(self) -> RateLimitConfig {
        match self {
            Plan::Standard => RateLimitConfig::new(60, Duration::from_secs(60)),
            Plan::Enterprise => RateLimitConfig::new(120, Duration::from_secs(60)),
        }
    }
}

impl Config {
    /// The plan's budget with what is configured applied over it.
    pub fn rate_limit(&self) -> RateLimitConfig {
        self.rate_limit.or(self.plan.rate_limit())
    }
}

fn default_base_url() -> String {
    "https://api.calendly.com".into()
}

pub fn connector(table: &serde_json::Value, common: &Common) -> Result<Arc<dyn Connector>, VendorConfigError> {
    let config: Config = parse(VendorKind::Calendly, table)?;
    crate::vendor_config::base_url(VendorKind::Calendly, "base_url", &config.base_url, common)?;
    let budget = config.rate_limit();
    if budget.check().is_err() {
        return Err(VendorConfigError::invalid(
            VendorKind::Calendly,
            "rate_limit: requests and per must be positive and share in (0, 1]",
        ));
    }
    let limiter = Arc::new(Limiter::new(Some(budget)));
    let http = VendorHttp::new(VendorKind::Calendly, common.http_timeout, limiter, client::retry_hint);
    let client = Client::new(http, &config.base_url, config.token.clone());
    let organization = crate::catalog::Cached::new(config.catalog_max_age);
    Ok(Arc::new(Adapter::new(workflows::Calendly { client, organization })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plan_sets_the_budget_and_overrides_refine_it() {
        let c: Config = serde_json::from_value(json!({"token": "t"})).unwrap();
        assert_eq!(c.rate_limit(), RateLimitConfig::new(60, Duration::from_secs(60)));
        let c: Config = serde_json::from_value(json!({"token": "t", "plan": "enterprise"})).unwrap();
        assert_eq!(c.rate_limit().requests, Some(120));
        let c: Config =
            serde_json::from_value(json!({"token": "t", "plan": "enterprise", "rate_limit": {"share": 0.5}})).unwrap();
        assert_eq!((c.rate_limit().requests, c.rate_limit().share), (Some(120), 0.5));
        let c: Config =
            serde_json::from_value(json!({"token": "t", "rate_limit": {"requests": 1000, "per": "1m"}})).unwrap();
        assert_eq!(c.rate_limit(), RateLimitConfig::new(1000, Duration::from_secs(60)));
        assert!(serde_json::from_value::<Config>(json!({"token": "t", "plan": "gold"})).is_err());
        assert!(serde_json::from_value::<Config>(json!({"token": "t", "api_token": "x"})).is_err());
    }

    #[test]
    fn the_organization_is_kept_for_catalog_max_age() {
        let c: Config = serde_json::from_value(json!({"token": "t"})).unwrap();
        assert_eq!(c.catalog_max_age, crate::catalog::DEFAULT_MAX_AGE);
        let c: Config = serde_json::from_value(json!({"token": "t", "catalog_max_age": "90s"})).unwrap();
        assert_eq!(c.catalog_max_age, Duration::from_secs(90));
        assert!(serde_json::from_value::<Config>(json!({"token": "t", "catalog_max_age": "soon"})).is_err());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let c: Config = serde_json::from_value(json!({"token": "very-secret-token"})).unwrap();
        assert!(!format!("{c:?}").contains("very-secret-token"));
    }

    #[test]
    fn a_bad_table_names_the_vendor() {
        let common = Common { http_timeout: Duration::from_secs(5), allow_plain_http: true };
        let err = connector(&json!({"token": "t", "base_url": "not a url"}), &common).err().unwrap().to_string();
        assert!(err.contains("[vendors.calendly]") && err.contains("base_url"), "{err}");
        let err = connector(&json!({"token": "t", "rate_limit": {"requests": 0}}), &common).err().unwrap().to_string();
        assert!(err.contains("rate_limit"), "{err}");
        assert!(connector(&json!({"token": "t"}), &common).is_ok());
    }
}
