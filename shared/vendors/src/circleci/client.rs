//! The CircleCI v2 API, as much of it as lifecycle can use: the token's own user and the
//! organizations it sees. Both are operations of the published definition (OpenAPI
//! `https://circleci.com/api/v2/openapi.json`): `getCurrentUser` (`GET /me`) and
//! `getCollaborations` (`GET /me/collaborations`). The definition has no organization-member
//! operation at all, so nothing here lists, reads, invites or removes a member.

use crate::http::{HttpError, VendorHttp};
use lifecycle_config::Secret;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde::Deserialize;
use std::fmt;
use url::Url;

/// An org slug as CircleCI writes it in `/me/collaborations`: `gh/name`, `bb/name` or
/// `circleci/id`. Kept normalised (lower case, `github/` -> `gh/`, `bitbucket/` -> `bb/`):
/// VCS org names are case-insensitive, and the long prefixes are the same VCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSlug(String);

impl OrgSlug {
    pub fn parse(raw: &str) -> Result<OrgSlug, String> {
        let raw = raw.trim();
        let shape = "must be the organization's slug as CircleCI shows it, e.g. gh/my-org, bb/my-org or circleci/<id>";
        let Some((vcs, name)) = raw.split_once('/') else {
            return Err(format!("{raw:?} {shape}"));
        };
        let vcs = match vcs.to_ascii_lowercase().as_str() {
            "gh" | "github" => "gh",
            "bb" | "bitbucket" => "bb",
            "circleci" => "circleci",
            _ => return Err(format!("{raw:?} {shape}")),
        };
        if name.is_empty() || name.contains('/') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{raw:?} {shape}"));
        }
        Ok(OrgSlug(format!("{vcs}/{}", name.to_lowercase())))
    }

    /// Whether a slug CircleCI returned names this org.
    pub fn matches(&self, theirs: &str) -> bool {
        OrgSlug::parse(theirs).is_ok_and(|s| s == *self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The VCS part: `gh`, `bb` or `circleci`.
    pub fn vcs(&self) -> &str {
        self.0.split_once('/').map_or("", |(vcs, _)| vcs)
    }
}

impl fmt::Display for OrgSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of the token owner's orgs: an item of `getCollaborations` (`GET /me/collaborations`).
/// The definition requires `id`, `vcs-type` (with a hyphen), `name`, `avatar_url` and `slug`,
/// and marks `id` `x-nullable`; `avatar_url` is not read.
#[derive(Debug, Clone, Deserialize)]
pub struct Collaboration {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "vcs-type")]
    pub vcs_type: String,
    pub name: String,
    pub slug: String,
}

/// The token's own user: `getCurrentUser` (`GET /me`). The definition requires `id`, `login`,
/// `name` and `avatar_url` (nullable); only `id` and `login` are read.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: String,
    pub login: String,
}

#[derive(Clone)]
pub struct Client {
    http: VendorHttp,
    base: Url,
    /// `Circle-Token` (the definition's `api_key_header`), marked sensitive so that no debug
    /// output shows it.
    token: HeaderValue,
}

impl Client {
    /// `base` must be able to carry path segments (checked by the connector).
    pub fn new(http: VendorHttp, base: Url, token: Secret) -> Self {
        let mut token = HeaderValue::from_str(token.expose().trim()).unwrap_or_else(|_| HeaderValue::from_static(""));
        token.set_sensitive(true);
        Self { http, base, token }
    }

    /// The base URL plus one path segment per item, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.http.client().request(method, self.url(segments)).header("Circle-Token", self.token.clone())
    }

    /// `getCurrentUser`: `GET /me`, no parameters.
    pub async fn me(&self) -> Result<Me, HttpError> {
        self.http.json(self.request(Method::GET, &["me"])).await
    }

    /// `getCollaborations`: `GET /me/collaborations`, no parameters; a plain array, not paginated.
    pub async fn collaborations(&self) -> Result<Vec<Collaboration>, HttpError> {
        self.http.json(self.request(Method::GET, &["me", "collaborations"])).await
    }
}

/// The collaboration whose slug is `slug`. Never by name: `gh/acme` and `bb/acme` share one.
pub fn pick_org<'a>(orgs: &'a [Collaboration], slug: &OrgSlug) -> Option<&'a Collaboration> {
    orgs.iter().find(|o| slug.matches(&o.slug))
}

/// Who decides an org's members: its VCS (GitHub or Bitbucket through OAuth, slugs `gh/` and
/// `bb/`), or CircleCI itself (`circleci/` slugs: GitHub App, GitLab, Bitbucket Data Center
/// and standalone orgs, whose People page invites and removes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgKind {
    GithubOauth,
    BitbucketOauth,
    Circleci,
}

impl OrgKind {
    /// From the collaboration's `vcs-type`; a value this code does not know falls back to the
    /// configured slug's prefix, which says the same.
    pub fn of(vcs_type: &str, slug: &OrgSlug) -> OrgKind {
        match vcs_type.to_ascii_lowercase().as_str() {
            "github" | "gh" => OrgKind::GithubOauth,
            "bitbucket" | "bb" => OrgKind::BitbucketOauth,
            "circleci" => OrgKind::Circleci,
            _ => match slug.vcs() {
                "gh" => OrgKind::GithubOauth,
                "bb" => OrgKind::BitbucketOauth,
                _ => OrgKind::Circleci,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Limiter;
    use lifecycle_domain::VendorKind;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;

    fn client(base: &str) -> Client {
        let http = VendorHttp::new(
            VendorKind::Circleci,
            Duration::from_secs(1),
            Arc::new(Limiter::new(None)),
            crate::http::no_hint,
        );
        Client::new(http, Url::parse(base).unwrap(), Secret::new("s3cret"))
    }

    #[test]
    fn slugs_are_normalised_and_matched_on_vcs_and_name() {
        let slug = OrgSlug::parse("github/Sim-Org").unwrap();
        assert_eq!(slug.as_str(), "gh/sim-org");
        assert_eq!(slug.vcs(), "gh");
        assert!(slug.matches("gh/sim-org"));
        assert!(slug.matches("GH/SIM-ORG"));
        assert!(!slug.matches("bb/sim-org"), "same name, other VCS");
        assert!(!slug.matches("gh/sim-org-2"));
        assert_eq!(OrgSlug::parse("bitbucket/x").unwrap().as_str(), "bb/x");
        for bad in ["sim-org", "gh/", "svn/x", "gh/a/b", "gh/a b", ""] {
            assert!(OrgSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_org_is_picked_by_slug_never_by_name() {
        let orgs: Vec<Collaboration> = serde_json::from_value(json!([
            {"id": "bb-uuid", "vcs-type": "bitbucket", "name": "sim-org", "slug": "bb/sim-org", "avatar_url": "x"},
            {"id": null, "vcs-type": "circleci", "name": "sim-org", "slug": "circleci/AbC", "avatar_url": "x"},
            {"id": "gh-uuid", "vcs-type": "github", "name": "sim-org", "slug": "gh/sim-org", "avatar_url": "x"}
        ]))
        .unwrap();
        let slug = OrgSlug::parse("gh/sim-org").unwrap();
        assert_eq!(pick_org(&orgs, &slug).and_then(|o| o.id.as_deref()), Some("gh-uuid"));
        assert!(pick_org(&orgs, &OrgSlug::parse("gh/other").unwrap()).is_none());
        assert_eq!(orgs[1].id, None, "the definition lets the id be null");
    }

    /// The definition spells it `vcs-type`; the guide's `vcs_type` is not the vendor's field.
    #[test]
    fn collaborations_are_read_with_the_definitions_field_names() {
        let ok: Collaboration = serde_json::from_value(
            json!({"id": "u", "vcs-type": "github", "name": "acme", "avatar_url": "x", "slug": "gh/acme"}),
        )
        .unwrap();
        assert_eq!(ok.vcs_type, "github");
        let guide = json!({"id": "u", "vcs_type": "github", "name": "acme", "avatar_url": "x", "slug": "gh/acme"});
        assert!(serde_json::from_value::<Collaboration>(guide).is_err(), "vcs_type is not CircleCI's field");
        let me: Me =
            serde_json::from_value(json!({"id": "u", "login": "jdoe", "name": "Jane", "avatar_url": null})).unwrap();
        assert_eq!((me.id.as_str(), me.login.as_str()), ("u", "jdoe"));
    }

    #[test]
    fn who_decides_membership_follows_vcs_type_then_the_slug() {
        let gh = OrgSlug::parse("gh/acme").unwrap();
        let standalone = OrgSlug::parse("circleci/AbC123").unwrap();
        assert_eq!(OrgKind::of("github", &gh), OrgKind::GithubOauth);
        assert_eq!(OrgKind::of("bitbucket", &gh), OrgKind::BitbucketOauth);
        assert_eq!(OrgKind::of("circleci", &standalone), OrgKind::Circleci);
        assert_eq!(OrgKind::of("something-new", &gh), OrgKind::GithubOauth);
        assert_eq!(OrgKind::of("something-new", &standalone), OrgKind::Circleci);
    }

    #[test]
    fn paths_are_the_definitions() {
        let c = client("http://sim/circleci/api/v2");
        assert_eq!(c.url(&["me"]).as_str(), "http://sim/circleci/api/v2/me");
        assert_eq!(c.url(&["me", "collaborations"]).as_str(), "http://sim/circleci/api/v2/me/collaborations");
        let c = client("http://sim/circleci/api/v2/");
        assert_eq!(c.url(&["me"]).as_str(), "http://sim/circleci/api/v2/me");
    }

    #[test]
    fn the_token_header_is_sensitive() {
        let c = client("http://sim/api/v2");
        assert!(c.token.is_sensitive());
        assert!(!format!("{:?}", c.token).contains("s3cret"));
    }
}
