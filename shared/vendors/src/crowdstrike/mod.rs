//! CrowdStrike Falcon (`https://api.crowdstrike.com` and its regional siblings), through the
//! current user-management API exactly as Falcon's published definition has it (FalconPy
//! 1.6.2's endpoint table, gofalcon's models; docs/vendors/crowdstrike.md has the table).
//!
//! Quirks that shape this module (each is written down in docs/vendors/crowdstrike.md):
//! - OAuth2 client credentials: `POST /oauth2/token` (a form body) gives a bearer token that
//!   expires after 30 minutes. The client caches it, refreshes it shortly before it expires and
//!   once on a 401, and every concurrent task shares one refresh (one token request in flight);
//! - the base URL is regional (us-1, us-2, eu-1, us-gov-1) and the wrong region answers with
//!   authentication errors, not a redirect: a refused token request names the configured
//!   region and tells the operator to check it;
//! - a user's id is its `uuid`; its `uid` is the login e-mail. queryUserV1 answers ids only
//!   (offset-paginated, up to 500 a page) and takes an FQL `filter`: `uid:'<login e-mail>'`
//!   finds someone in one request whatever the tenant's size; retrieveUsersGETV1 reads users
//!   by id (a `POST` with `{"ids"}`);
//! - roles are not part of the user: creating a user (createUserV1, `{uid, first_name,
//!   last_name}`) gives none, and they are granted and revoked through userRolesActionV1
//!   (`{action, cid, role_ids, uuid}`, several roles at once, one action a request; all or
//!   nothing), which must name the tenant's CID (learned from answers). Role ids are
//!   case-sensitive and validated against the role catalogue (queriesRolesV1, kept for
//!   `catalog_max_age` and fetched again once before a role is called unknown) before anything
//!   is created; a user's roles are its direct grants (CombinedUserRolesV2); revoking a role
//!   the user does not hold is an error. A 2xx grant or revoke is the proof: no read-back;
//! - updateUserV1 and deleteUserV1 take `user_uuid` as a query parameter; deletion is
//!   immediate and irreversible, so a leaver revokes every role first (the audit trail), then
//!   deletes (the 2xx is the proof);
//! - rate limits are per API client and unpublished: no client-side budget, only the shared
//!   gate that a 429 closes until `X-RateLimit-RetryAfter` ("as milliseconds since epoch").
//!
//! Reconcile and plan (`inspect.rs`): the directory is the user-id listing (500 a page), each
//! page's users in one read and each user's direct grants (`2 * ceil(N/500) + N` requests; no
//! operation lists roles for many users), a 429 waited out and the page asked for again;
//! `access` holds role ids as events name them; nothing is protected (the credential is an API
//! client, not a user). A plan makes the workflows' reads only (the catalogue, the user, its
//! names and roles) and stops with the run's own messages.

mod client;
mod inspect;
mod roles;
mod vendor;
mod wire;
mod workflows;

use crate::adapter::Adapter;
use crate::http::VendorHttp;
use crate::ratelimit::Limiter;
use crate::vendor_config::{parse, Common, VendorConfigError};
use lifecycle_config::Secret;
use lifecycle_domain::VendorKind;
use lifecycle_engine::Connector;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub use client::{Client, Endpoint};
pub use wire::Error;

/// `[vendors.crowdstrike]`: Falcon's users and roles (docs/vendors/crowdstrike.md): `region` and/or
/// `base_url` (at least one), and the API client.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Falcon tenant's region; picks the base URL unless `base_url` is given.
    #[serde(default)]
    pub region: Option<Region>,
    /// An explicit base URL (a proxy, the simulator). With `region` too, `region` only names
    /// the region in messages.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API client (Support and resources > API clients and keys), with the
    /// `user-management:read` and `user-management:write` scopes.
    pub client_id: String,
    /// That API client's secret.
    pub client_secret: Secret,
    /// How long the worker keeps the role catalogue before asking again (a role not in it is
    /// looked up again at once before a run fails for it).
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    #[schemars(with = "lifecycle_config::reference::types::HumanDuration")]
    pub catalog_max_age: Duration,
}

/// Falcon's cloud regions, each with its own API host.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum Region {
    #[serde(rename = "us-1")]
    Us1,
    #[serde(rename = "us-2")]
    Us2,
    #[serde(rename = "eu-1")]
    Eu1,
    #[serde(rename = "us-gov-1")]
    UsGov1,
}

impl Region {
    pub const ALL: [Region; 4] = [Region::Us1, Region::Us2, Region::Eu1, Region::UsGov1];

    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us1 => "us-1",
            Region::Us2 => "us-2",
            Region::Eu1 => "eu-1",
            Region::UsGov1 => "us-gov-1",
        }
    }

    pub fn base_url(self) -> &'static str {
        match self {
            Region::Us1 => "https://api.crowdstrike.com",
            Region::Us2 => "https://api.us-2.crowdstrike.com",
            Region::Eu1 => "https://api.eu-1.crowdstrike.com",
            Region::UsGov1 => "https://api.laggar.gcw.crowdstrike.com",
        }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Config {
    /// Where requests go, and how to name it in messages.
    pub fn endpoint(&self) -> Result<Endpoint, VendorConfigError> {
        let invalid = |m: String| VendorConfigError::invalid(VendorKind::Crowdstrike, m);
        let base = match (&self.base_url, self.region) {
            (Some(url), _) => url.clone(),
            (None, Some(region)) => region.base_url().to_string(),
            (None, None) => {
                return Err(invalid(
                    "set region (us-1, us-2, eu-1 or us-gov-1: the region of your Falcon tenant) or base_url".into(),
                ))
            }
        };
        url::Url::parse(&base).map_err(|e| invalid(format!("base_url: {e}")))?;
        if self.client_id.trim().is_empty() {
            return Err(invalid("client_id must not be empty".into()));
        }
        if self.client_secret.expose().is_empty() {
            return Err(invalid("client_secret must not be empty".into()));
        }
        Ok(Endpoint::new(&base, self.region))
    }
}

pub fn connector(table: &serde_json::Value, common: &Common) -> Result<Arc<dyn Connector>, VendorConfigError> {
    let config: Config = parse(VendorKind::Crowdstrike, table)?;
    let endpoint = config.endpoint()?;
    crate::vendor_config::base_url(VendorKind::Crowdstrike, "base_url", endpoint.base(), common)?;
    // No published budget: only the gate that a 429 closes.
    let limiter = Arc::new(Limiter::new(None));
    let http = VendorHttp::new(VendorKind::Crowdstrike, common.http_timeout, limiter, wire::retry_hint);
    let client = Client::new(http, endpoint, config.client_id.trim(), config.client_secret.clone());
    let roles = crate::catalog::Cached::new(config.catalog_max_age);
    Ok(Arc::new(Adapter::new(workflows::CrowdStrike { client, roles })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn region_picks_the_regional_host_and_base_url_wins() {
        let c: Config =
            serde_json::from_value(json!({"region": "eu-1", "client_id": "id", "client_secret": "s"})).unwrap();
        assert_eq!(c.endpoint().unwrap().base(), "https://api.eu-1.crowdstrike.com");
        let c: Config = serde_json::from_value(
            json!({"region": "us-2", "base_url": "http://127.0.0.1:9/crowdstrike/", "client_id": "id", "client_secret": "s"}),
        )
        .unwrap();
        let e = c.endpoint().unwrap();
        assert_eq!(e.base(), "http://127.0.0.1:9/crowdstrike");
        assert!(e.describe().contains("us-2"), "{}", e.describe());
    }

    #[test]
    fn a_missing_or_unknown_region_is_a_config_error() {
        let c: Config = serde_json::from_value(json!({"client_id": "id", "client_secret": "s"})).unwrap();
        assert!(c.endpoint().unwrap_err().to_string().contains("set region"));
        let bad = serde_json::from_value::<Config>(json!({"region": "us-3", "client_id": "id", "client_secret": "s"}));
        assert!(bad.unwrap_err().to_string().contains("us-3"));
        let typo = serde_json::from_value::<Config>(json!({"regoin": "us-1", "client_id": "id", "client_secret": "s"}));
        assert!(typo.is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_catalogue_age_defaults_to_five_minutes_and_reads_humantime() {
        let c: Config =
            serde_json::from_value(json!({"region": "us-1", "client_id": "id", "client_secret": "s"})).unwrap();
        assert_eq!(c.catalog_max_age, crate::catalog::DEFAULT_MAX_AGE);
        let c: Config = serde_json::from_value(
            json!({"region": "us-1", "client_id": "id", "client_secret": "s", "catalog_max_age": "90s"}),
        )
        .unwrap();
        assert_eq!(c.catalog_max_age, Duration::from_secs(90));
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let c: Config =
            serde_json::from_value(json!({"region": "us-1", "client_id": "id", "client_secret": "hunter2"})).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
