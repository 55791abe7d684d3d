//! GitHub organisations (`https://api.github.com`, REST API version 2022-11-28).
//!
//! Every request is an operation of GitHub's published description, cited by its
//! `operationId` in `client.rs` (users/get-authenticated, users/get-by-username,
//! orgs/get-membership-for-user, orgs/set-membership-for-user, orgs/remove-membership-for-user,
//! orgs/list-members, orgs/list-pending-invitations, orgs/create-invitation,
//! orgs/cancel-invitation, orgs/list-invitation-teams, orgs/list-outside-collaborators,
//! orgs/remove-outside-collaborator, teams/list, teams/list-members-in-org,
//! teams/get-membership-for-user-in-org, teams/add-or-update-membership-for-user-in-org,
//! teams/remove-membership-for-user-in-org). Quirks that shape this module (each is written
//! down in docs/vendors/github.md):
//! - auth is `Authorization: Bearer <token>` (a personal access token, classic or
//!   fine-grained, or an app installation token) of an owner of the organisation; every request
//!   also carries `Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28` and
//!   a `User-Agent` (GitHub refuses requests without one);
//! - people are known by login, not e-mail; an invitation by login needs the account's numeric
//!   id (users/get-by-username), and one by e-mail is the only way in for a joiner whose login
//!   is not known;
//! - joining is an invitation: the person is `pending` until they accept; the invitation
//!   carries the teams (`team_ids`), so teams of a pending person are not touched; role
//!   `member` is `direct_member` on an invitation; `billing_manager` can only be granted by one;
//! - `GET /orgs/{org}/memberships/{username}` tells active, pending (invited by login) or
//!   neither (404) in one request: every login workflow starts there, and an invitation whose
//!   answer was lost is found there (`pending`) before anything is sent again;
//! - `PUT /orgs/{org}/memberships/{username}` invites a non-member: lifecycle uses it only to
//!   change an active member's role (`admin`/`member`);
//! - `DELETE /orgs/{org}/memberships/{username}` removes a member and cancels a pending
//!   invitation by login alike; e-mail invitations are cancelled by id;
//! - GitHub refuses to remove or demote the last owner (403): lifecycle looks first
//!   (orgs/list-members `role=admin`) and leaves it to a person, as it does the token's own user
//!   (removing or demoting it would lock lifecycle out);
//! - outside collaborators are not members: a leaver who is one is only removed when the event
//!   says `remove_outside_collaborator: true`;
//! - a removed member's forks of private org repositories are deleted by GitHub; their personal
//!   access tokens and SSH keys stay theirs but no longer reach the organisation;
//! - team additions are PUTs that would also demote a team maintainer to member: a team
//!   membership is read first, and written only when the person is not in the team;
//! - pagination is `per_page` (100, the most) and `page`, followed through the `Link` header's
//!   `rel="next"` (only on the configured origin: it carries the token);
//! - rate limits: 5,000 requests an hour (primary) and at most 80 content-creating requests a
//!   minute (secondary); both are answered 403 or 429. The client budget is 80 requests a
//!   minute, under both; a 403/429 with `retry-after`, `x-ratelimit-remaining: 0` or a message
//!   naming the rate limit is a rate limit, waited out for `retry-after`, else until
//!   `x-ratelimit-reset`, else a minute (GitHub's rule);
//! - catalogues kept for `catalog_max_age`: the teams (teams/list, asked again with
//!   `If-None-Match`: a `304` keeps the copy and costs no primary quota) and the token's own
//!   login; a team slug missing from the copy is looked up once in a fresh one before a run
//!   fails for it, before anything is written.
//!
//! Reconcile and plan (`inspect.rs`): the directory is orgs/list-members (`role=all` and
//! `role=admin`), orgs/list-pending-invitations, orgs/list-invitation-teams per invitation (only
//! with `managed_teams`), teams/list-members-in-org per managed team, and `GET /user`; access is
//! `role:<role>` plus `team:<slug>` of managed teams; the token's own user and the last owner
//! are protected. A plan makes the workflows' reads and stops with the run's own messages.

mod client;
mod inspect;
mod leaver;
mod limits;
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

pub use client::{
    Client, Invitation, Invitee, MembershipState, OrgMembership, OrgRole, Team, TeamMembership, Teams, User,
};
pub use limits::{next_link, retry_hint, throttled};
pub use workflows::Github;

/// `[vendors.github]`: a GitHub organisation's members and teams (docs/vendors/github.md).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The REST API's root (GitHub Enterprise Server: `https://<host>/api/v3`).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// A token of an owner of the organisation (classic: `admin:org`; fine-grained: the
    /// organisation's Members permission, read and write).
    pub token: Secret,
    /// The organisation's login (`my-org`).
    pub org: String,
    /// The team slugs lifecycle owns: a mover takes a person out of those not asked for, and
    /// reconcile compares them. Other teams are never touched.
    #[serde(default)]
    pub managed_teams: Vec<String>,
    /// 80 requests a minute by default: under the 5,000 an hour primary limit and the 80
    /// content-creating requests a minute secondary one.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: RateLimitConfig,
    /// How long the worker keeps the teams and the token's own login before asking again.
    #[serde(default = "crate::catalog::default_max_age", with = "humantime_serde")]
    #[schemars(with = "lifecycle_config::reference::types::HumanDuration")]
    pub catalog_max_age: Duration,
}

fn default_base_url() -> String {
    "https://api.github.com".into()
}

/// 80 requests per minute.
pub const RATE_LIMIT: RateLimitConfig = RateLimitConfig::new(80, Duration::from_secs(60));

fn default_rate_limit() -> RateLimitConfig {
    RATE_LIMIT
}

pub fn connector(table: &serde_json::Value, common: &Common) -> Result<Arc<dyn Connector>, VendorConfigError> {
    let config: Config = parse(VendorKind::Github, table)?;
    let invalid = |m: String| VendorConfigError::invalid(VendorKind::Github, m);
    crate::vendor_config::base_url(VendorKind::Github, "base_url", &config.base_url, common)?;
    let token = config.token.expose().trim();
    if token.is_empty() || reqwest::header::HeaderValue::from_str(token).is_err() {
        return Err(invalid("token: must be a non-empty token of printable ASCII characters".into()));
    }
    if !is_login(&config.org) {
        return Err(invalid(format!(
            "org: {:?} is not a GitHub organisation login (letters, digits and single hyphens, up to 39)",
            config.org
        )));
    }
    for slug in &config.managed_teams {
        if !is_slug(slug) {
            return Err(invalid(format!(
                "managed_teams: {slug:?} is not a team slug (lower-case letters, digits, - and _), e.g. platform-team"
            )));
        }
    }
    let budget = config.rate_limit.or(RATE_LIMIT);
    budget.check().map_err(|e| invalid(format!("rate_limit: {e}")))?;
    let limiter = Arc::new(Limiter::new(Some(budget)));
    let http = VendorHttp::new(VendorKind::Github, common.http_timeout, limiter, retry_hint).with_throttled(throttled);
    let client = Client::new(http, &config.base_url, Secret::new(token), &config.org);
    Ok(Arc::new(Adapter::new(Github::new(client, config.managed_teams, config.catalog_max_age))))
}

/// GitHub's rule for a login (an organisation's too): 1 to 39 letters, digits and single
/// hyphens, not at either end. It goes into every path.
fn is_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// A team slug: lower-case ASCII letters, digits, `-` and `_` (it goes into paths).
fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common() -> Common {
        Common { http_timeout: Duration::from_secs(5), allow_plain_http: true }
    }

    #[test]
    fn config_needs_a_token_and_an_org_and_refuses_unknown_keys() {
        let ok = json!({"base_url": "http://127.0.0.1:9/github", "token": "t", "org": "sim-org",
                        "managed_teams": ["platform", "sales_eng"]});
        assert!(connector(&ok, &common()).is_ok());
        assert!(connector(&json!({"token": "t"}), &common()).is_err(), "no org");
        assert!(connector(&json!({"org": "x"}), &common()).is_err(), "no token");
        let err = connector(&json!({"token": "t", "org": "x", "organisation": "y"}), &common()).err().unwrap();
        assert!(err.to_string().contains("organisation"), "{err}");
        let err = connector(&json!({"token": "t", "org": "../x"}), &common()).err().unwrap().to_string();
        assert!(err.contains("[vendors.github]") && err.contains("org"), "{err}");
        let err = connector(&json!({"token": "t", "org": "x", "managed_teams": ["Platform Team"]}), &common())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("managed_teams") && err.contains("Platform Team"), "{err}");
        let err = connector(&json!({"token": "  ", "org": "x"}), &common()).err().unwrap().to_string();
        assert!(err.contains("token"), "{err}");
        let err = connector(&json!({"token": "t\n", "org": "x", "base_url": "not a url"}), &common())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("base_url"), "{err}");
        let err = connector(&json!({"token": "t", "org": "x", "rate_limit": {"requests": 0}}), &common())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("rate_limit"), "{err}");
        let plain = Common { http_timeout: Duration::from_secs(5), allow_plain_http: false };
        assert!(connector(&json!({"token": "t", "org": "x", "base_url": "http://127.0.0.1:9/github"}), &plain).is_err());
    }

    #[test]
    fn defaults_are_githubs_and_the_token_stays_secret() {
        let c: Config = serde_json::from_value(json!({"token": "s3cret-token", "org": "acme"})).unwrap();
        assert_eq!(c.base_url, "https://api.github.com");
        assert_eq!(c.rate_limit, RATE_LIMIT);
        assert!(c.managed_teams.is_empty());
        assert_eq!(c.catalog_max_age, crate::catalog::DEFAULT_MAX_AGE);
        assert!(!format!("{c:?}").contains("s3cret-token"));
        let c: Config = serde_json::from_value(
            json!({"token": "t", "org": "acme", "rate_limit": {"share": 0.5}, "catalog_max_age": "90s"}),
        )
        .unwrap();
        assert_eq!(c.rate_limit.or(RATE_LIMIT).requests, Some(80));
        assert_eq!(c.rate_limit.share, 0.5);
        assert_eq!(c.catalog_max_age, Duration::from_secs(90));
        let err = connector(&json!({"token": "s3cret-token", "org": "-bad"}), &common()).err().unwrap().to_string();
        assert!(!err.contains("s3cret-token"), "{err}");
    }

    #[test]
    fn logins_and_slugs_follow_githubs_rules() {
        assert!(is_login("sim-org") && is_login("a") && is_login("Octo-Cat9"));
        for bad in ["", "-a", "a-", "a--b", "a/b", "a.b", &"x".repeat(40)] {
            assert!(!is_login(bad), "{bad}");
        }
        assert!(is_slug("platform") && is_slug("sales-eng") && is_slug("sre_team"));
        assert!(!is_slug("Platform") && !is_slug("") && !is_slug("a b") && !is_slug("a/b"));
    }
}
