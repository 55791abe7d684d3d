//! Atlassian Jira Cloud (`https://<site>.atlassian.net/rest/api/3`), and optionally the
//! organisation's SCIM directory (`https://api.atlassian.com/scim/directory/{directoryId}`).
//!
//! Every request is an operation of the published definitions (the Jira Cloud platform OpenAPI,
//! Atlassian's "User provisioning" OpenAPI), named in `client.rs`. Quirks that shape this module
//! (each is written down in docs/vendors/jira.md):
//! - auth is Basic `email:api_token` (or `Authorization: Bearer` for an OAuth token); an API
//!   token carries all the permissions of the user who made it, so it must be a site admin's;
//! - users are identified by `accountId` only (`username` and `key` are gone since GDPR);
//! - `emailAddress` may be `null` for privacy, even to site admins. A user is matched only on an
//!   address Jira *shows* and that equals the employee's, never on a null one. When Jira hides
//!   it, the only place an admin API shows the address is the SCIM directory: with
//!   `[vendors.jira.scim]` configured, a person is also looked up there (`userName`) and the
//!   directory's `atlassianAccountId` (extension `urn:scim:schemas:extension:atlassian-external:1.0`)
//!   names their Jira account. Without it the account cannot be identified, and:
//!   - a joiner still asks Jira to create the user: Atlassian allows one account per address,
//!     so no duplicate can appear: Jira answers with the existing account (201) or refuses it
//!     (400), and the run says so, never "created";
//!   - a mover or leaver whose search returns hidden-address accounts but no visible match
//!     needs a person (nothing is touched: it could be the wrong user);
//! - `GET /user/search` lists *active* users only: a deactivated account is found through the
//!   directory (when configured) or, for a mover or leaver, by walking `GET /users/search`;
//! - `POST /user` creates a Jira-managed user, grants its `products` and sends an invitation;
//!   products are granted only there (an existing user lacking one needs a person); "if the
//!   user exists and has access to Jira" it answers 201 with that user, "if the user exists but
//!   does not have access to Jira", 400: a look-up runs first, and an answer for an account
//!   that existed is reported as such;
//! - groups are addressed by `groupId` (nullable in the definition: a group without one is left
//!   alone, and said so), never by name; the ids of an event are checked against
//!   the site's groups (`/group/bulk`, kept by the worker for `catalog_max_age`, fetched again
//!   once before an id is called unknown) before anything changes; adding a member twice is an
//!   error, so an existing user's memberships are read before acting, and again when Jira refuses;
//! - no separate verification: a write's 2xx answer (the new user, the group, the directory user
//!   now inactive, DELETE's 204) is the proof;
//! - removing a user from every group does not deactivate them, and the REST API cannot
//!   deactivate at all: the leaver removes every group (`GET /user/groups` first), then removes
//!   site access with `DELETE /user` (the Atlassian account remains) — or, with a SCIM directory
//!   configured, deactivates through SCIM (`PATCH /Users/{id}` `active=false`) instead, since
//!   Jira refuses `DELETE /user` for SCIM-managed users. The run's outcome says which path;
//! - rate limits are adaptive and unpublished: no client-side budget, only the gate a 429
//!   closes, for the `Retry-After` seconds Jira names;
//! - offset pagination (`startAt`/`maxResults`): 50 a page for group members (the definition's
//!   maximum), 1000 elsewhere; a page bean ends at `isLast`, a plain array at a short page.
//!
//! Reconcile and plan (`inspect.rs`, reads only): the directory is `GET /users/search` at 1000 a
//! page (people only: app and customer accounts are dropped; removed ones read inactive), the
//! site's groups (`/group/bulk`, read afresh) and each group's members (`GET /group/member`, 50 a
//! page, inactive members included), so memberships cost a request per 50 members of a group,
//! not per person; a 429 is waited out; `GET /myself` once per connector names
//! the credential's own account, which is protected. `access` is `group:<groupId>`; products are
//! not compared (granted only at creation, never converged). A plan makes the reads the run would
//! (the group catalogue, the search, the user's groups and products, the SCIM directory's user)
//! and stops with the run's own messages.

mod client;
mod groups;
mod inspect;
mod messages;
mod vendor;
mod workflows;

use crate::adapter::Adapter;
use crate::http::{retry_after_seconds, VendorHttp};
use crate::ratelimit::Limiter;
use crate::vendor_config::{parse, Common, VendorConfigError};
use lifecycle_config::Secret;
use lifecycle_domain::VendorKind;
use lifecycle_engine::Connector;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub use client::{Client, ScimClient};

/// `[vendors.jira]`: a Jira Cloud site's users, products and groups (docs/vendors/jira.md).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://<site>.atlassian.net/rest/api/3`.
    pub base_url: String,
    /// The site admin who owns `api_token` (the Basic auth user name). Not used with `auth = "bearer"`.
    #[serde(default)]
    pub email: Option<String>,
    /// An API token of a site admin (or an OAuth access token with `auth = "bearer"`).
    pub api_token: Secret,
    /// How `api_token` is sent.
    #[serde(default)]
    pub auth: AuthMode,
    /// The organisation's SCIM directory (Atlassian Guard). When set, leavers are deactivated
    /// through it, and people whose address Jira hides are looked up in it.
    #[serde(default)]
    pub scim: Option<ScimConfig>,
    /// How long the worker keeps the site's group catalogue before asking again (a groupId
    /// not in it is looked up again at once before a run fails for it).
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    #[schemars(with = "lifecycle_config::reference::types::HumanDuration")]
    pub catalog_max_age: Duration,
}

/// `[vendors.jira.scim]`
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// `https://api.atlassian.com/scim/directory/{directoryId}`.
    pub base_url: String,
    /// The directory's API key (a bearer token generated in admin.atlassian.com).
    pub token: Secret,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `Authorization: Basic base64(email:api_token)`.
    #[default]
    Basic,
    /// `Authorization: Bearer api_token` (OAuth 2.0 3LO access token).
    Bearer,
}

pub fn connector(table: &serde_json::Value, common: &Common) -> Result<Arc<dyn Connector>, VendorConfigError> {
    let config: Config = parse(VendorKind::Jira, table)?;
    let invalid = |m: String| VendorConfigError::invalid(VendorKind::Jira, m);
    crate::vendor_config::base_url(VendorKind::Jira, "base_url", &config.base_url, common)?;
    let email = config.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    let auth = match (config.auth, email) {
        (AuthMode::Basic, None) => {
            return Err(invalid("email is required with auth = \"basic\": the site admin who owns api_token".into()))
        }
        (AuthMode::Basic, Some(email)) => {
            client::Credentials::Basic { email: email.to_string(), token: config.api_token }
        }
        (AuthMode::Bearer, _) => client::Credentials::Bearer(config.api_token),
    };
    // Jira publishes no budget: only the gate a 429 closes paces us.
    let http = |vendor| VendorHttp::new(vendor, common.http_timeout, Arc::new(Limiter::new(None)), retry_after_seconds);
    let client = Client::new(http(VendorKind::Jira), &config.base_url, auth);
    let scim = match config.scim {
        Some(s) => {
            crate::vendor_config::base_url(VendorKind::Jira, "scim.base_url", &s.base_url, common)?;
            // Another host with its own limits: its own 429 gate.
            Some(ScimClient::new(http(VendorKind::Jira), &s.base_url, s.token))
        }
        None => None,
    };
    Ok(Arc::new(Adapter::new(workflows::Jira {
        client,
        scim,
        groups: crate::catalog::Cached::new(config.catalog_max_age),
        seen: Default::default(),
    })))
}

/// What directory reads (`inspect.rs`) learn and keep for the connector's life; the
/// connector (`workflows.rs`) holds it.
#[derive(Default)]
pub(crate) struct Seen {
    /// The credential's own account (`GET /myself`): it cannot change under a running connector.
    me: tokio::sync::OnceCell<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common() -> Common {
        Common { http_timeout: Duration::from_secs(5), allow_plain_http: true }
    }

    #[test]
    fn basic_auth_needs_the_admins_email() {
        let table = json!({"base_url": "https://x.atlassian.net/rest/api/3", "api_token": "t"});
        let err = connector(&table, &common()).err().expect("refused").to_string();
        assert!(err.contains("email is required"), "{err}");
        let bearer = json!({"base_url": "https://x.atlassian.net/rest/api/3", "api_token": "t", "auth": "bearer"});
        assert!(connector(&bearer, &common()).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_refused_without_showing_secrets() {
        let typo = json!({"base_url": "https://x.atlassian.net/rest/api/3", "email": "a@b.example",
                          "api_token": "s3cret-token", "scim": {"base_url": "https://api.atlassian.com/scim/directory/d", "tokn": "x"}});
        let err = connector(&typo, &common()).err().expect("refused").to_string();
        assert!(err.contains("tokn") && !err.contains("s3cret-token"), "{err}");
        let bad = json!({"base_url": "not a url", "email": "a@b.example", "api_token": "s3cret-token"});
        let err = connector(&bad, &common()).err().expect("refused").to_string();
        assert!(err.contains("base_url") && !err.contains("s3cret-token"), "{err}");
        let ok = json!({"base_url": "https://x.atlassian.net/rest/api/3", "email": "a@b.example", "api_token": "t",
                        "scim": {"base_url": "https://api.atlassian.com/scim/directory/d", "token": "k"}});
        assert!(connector(&ok, &common()).is_ok());
    }

    #[test]
    fn the_catalogue_age_is_a_duration_with_a_default() {
        let base = json!({"base_url": "https://x.atlassian.net/rest/api/3", "email": "a@b.example", "api_token": "t"});
        let config: Config = parse(VendorKind::Jira, &base).unwrap();
        assert_eq!(config.catalog_max_age, crate::catalog::DEFAULT_MAX_AGE);
        let mut table = base.clone();
        table["catalog_max_age"] = json!("90s");
        let config: Config = parse(VendorKind::Jira, &table).unwrap();
        assert_eq!(config.catalog_max_age, Duration::from_secs(90));
        table["catalog_max_age"] = json!("soon");
        assert!(connector(&table, &common()).is_err());
    }
}
