//! CircleCI joiner, mover and leaver: what lifecycle can honestly do with an API that publishes
//! no organization-member operation.
//!
//! Every workflow reads the token's own user (`getCurrentUser`, `GET /me`) and the org among
//! that user's collaborations (`getCollaborations`, `GET /me/collaborations`), matched on the
//! configured slug: the token works and sees the org, and the org's `vcs-type` says who decides
//! its members (GitHub or Bitbucket through OAuth, or CircleCI's own People page). Both reads
//! are kept by the worker for `catalog_max_age`: a warm run makes no request at all. Then the
//! run hands over to a person with the exact steps, ending `needs_manual_action`, because no
//! published operation adds, reads or removes a member. Nothing is journaled: the runs write
//! nothing anywhere and need nothing again on a retry.
//!
//! The one thing a published read does tell is the token's own user: `/me/collaborations`
//! lists the org for them, so a joiner or mover of that user ends `succeeded`; a leaver of
//! them gives no removal steps (lifecycle reads the org with their token) and says what to
//! change first.

use super::client::{pick_org, Client, Me, OrgKind, OrgSlug};
use crate::adapter::Staffing;
use crate::catalog::Cached;
use crate::http::HttpError;
use lifecycle_domain::apps::CircleciApp;
use lifecycle_engine::{Access, RunSpec, StepError};
use std::sync::Arc;
use std::time::Duration;

pub struct Circleci {
    pub(super) client: Client,
    pub(super) slug: OrgSlug,
    /// The configured org as `/me/collaborations` describes it, kept for `catalog_max_age`.
    org: Cached<OrgRef>,
    /// The token's own user (`/me`), kept as long.
    owner: Cached<Me>,
}

/// The configured org, as `/me/collaborations` described it.
#[derive(Debug, Clone)]
pub(super) struct OrgRef {
    /// The org's UUID (the definition lets it be null); only ever shown, never put in a path.
    id: Option<String>,
    /// The slug as CircleCI writes it (`circleci/` ids are mixed case): what people see.
    slug: String,
    /// The org's name: the GitHub organization or Bitbucket workspace of an OAuth org.
    name: String,
    kind: OrgKind,
}

/// How a run ends, and what a plan says: the same words for both.
pub(super) enum Verdict {
    /// Nothing to do (only ever for the token's own user).
    Done { summary: String, access: Access },
    /// A person must act: the exact steps.
    Person { message: String, access: Option<Access> },
}

/// Why reconcile cannot read CircleCI at all.
pub(super) const NOT_RECONCILABLE: &str = "CircleCI's API v2 publishes no operation that lists an organization's members (its definition, https://circleci.com/api/v2/openapi.json, has none: only the token's own user, getCurrentUser, and that user's organizations, getCollaborations), so lifecycle cannot read who has an account there and compares nothing. Review Organization Settings > People in the CircleCI web app (and, for a GitHub or Bitbucket OAuth organization, the VCS organization's members) by hand";

/// The end of every person's task: nothing published can tell when it is done.
const NO_READ: &str = "CircleCI's API v2 publishes no organization-member read either, so lifecycle cannot confirm this: a re-check of this run cannot see the change and ends as this run did. Once a person has done it, nothing more is needed here: the run stays needs_manual_action as the record of the task.";

/// The event's login, trimmed, or the error the run dies with: the person's VCS login is what a
/// person acting at CircleCI (or at GitHub, Bitbucket) needs, and how the token's own user is
/// told apart.
pub(super) fn login_of(app: &CircleciApp) -> Result<String, StepError> {
    app.login.as_deref().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).ok_or_else(|| {
        StepError::permanent(
            "the event names no CircleCI login (apps.circleci.login), the VCS login a person needs to find them at CircleCI; fix the event and send it again",
        )
    })
}

impl Circleci {
    pub(super) fn new(client: Client, slug: OrgSlug, catalog_max_age: Duration) -> Self {
        Self { client, slug, org: Cached::new(catalog_max_age), owner: Cached::new(catalog_max_age) }
    }

    /// The token's own user and the configured org among its collaborations: from the cache,
    /// or `GET /me` then `GET /me/collaborations` once they are older than `catalog_max_age`.
    /// The slug is matched, never the name (`gh/acme` and `bb/acme` share one).
    pub(super) async fn look(&self) -> Result<(Arc<Me>, Arc<OrgRef>), StepError> {
        let c = &self.client;
        let owner = self.owner.get(|| c.me()).await.map_err(|e| self.refused(e, "read its own user (GET /me)"))?;
        let org = self
            .org
            .get(|| async {
                let slug = &self.slug;
                let orgs = c
                    .collaborations()
                    .await
                    .map_err(|e| self.refused(e, "list its organizations (GET /me/collaborations)"))?;
                let Some(org) = pick_org(&orgs, slug) else {
                    let theirs: Vec<&str> = orgs.iter().map(|o| o.slug.as_str()).collect();
                    let theirs = if theirs.is_empty() { "none".to_string() } else { theirs.join(", ") };
                    return Err(StepError::permanent(format!(
                        "the owner of the configured CircleCI token ({}) does not see the organization {slug} (their organizations: {theirs}); fix vendors.circleci.org_slug, or set vendors.circleci.token to a personal API token of a member of {slug}, then replay this run",
                        owner.login
                    )));
                };
                Ok(OrgRef {
                    id: org.id.clone(),
                    slug: org.slug.clone(),
                    name: org.name.clone(),
                    kind: OrgKind::of(&org.vcs_type, slug),
                })
            })
            .await?;
        Ok((owner, org))
    }

    /// What `run` ends with, from what [`look`](Circleci::look) found.
    pub(super) fn verdict(&self, flow: Staffing, run: &RunSpec, login: &str, owner: &Me, org: &OrgRef) -> Verdict {
        let slug = org.slug.as_str();
        let seen = match &org.id {
            Some(id) => format!("lifecycle checked that the configured token works and sees {slug}, organization {id}"),
            None => format!("lifecycle checked that the configured token works and sees {slug}"),
        };
        let is_owner = owner.login.eq_ignore_ascii_case(login);
        match flow {
            Staffing::Leaver if is_owner => Verdict::Person {
                message: format!(
                    "{login} (CircleCI user {}) owns the API token lifecycle uses for {slug} (vendors.circleci.token), so this run gives no steps to remove them: lifecycle reads the organization with that token. First set vendors.circleci.token to a personal API token of another member of {slug} (a machine user's, ideally) and restart the workers; then re-check this run, and it says how to remove {login}. Nothing was changed.",
                    owner.id
                ),
                access: Some(Access::Active),
            },
            Staffing::Joiner | Staffing::Mover if is_owner => {
                let roles = if flow == Staffing::Mover {
                    "; CircleCI roles are not managed through its API"
                } else {
                    ""
                };
                Verdict::Done {
                    summary: format!(
                        "{login} owns the API token lifecycle uses for {slug}, and CircleCI lists {slug} among that user's organizations (GET /me/collaborations): they are in it already; nothing to do{roles}"
                    ),
                    access: Access::Active,
                }
            }
            Staffing::Leaver => Verdict::Person {
                message: format!(
                    "lifecycle cannot remove {login} from the CircleCI organization {slug}: CircleCI's API v2 publishes no endpoint that removes a member ({seen}). A person must do it. {} {} {NO_READ}",
                    remove_steps(org, slug, login),
                    token_steps(slug, login)
                ),
                access: None,
            },
            Staffing::Mover => Verdict::Person {
                message: format!(
                    "lifecycle cannot check or change {login}'s access to the CircleCI organization {slug}: CircleCI's API v2 publishes no organization-member endpoint ({seen}). A person must see to it. If {login} is not a member yet: {} If their access should change with the move: {} {NO_READ}",
                    add_steps(org, slug, login, run.input.employee.email.as_str()),
                    role_steps(org, slug, login)
                ),
                access: None,
            },
            Staffing::Joiner => Verdict::Person {
                message: format!(
                    "lifecycle cannot add {login} to the CircleCI organization {slug}: CircleCI's API v2 publishes no endpoint that invites or adds a member ({seen}). A person must do it. {} {NO_READ}",
                    add_steps(org, slug, login, run.input.employee.email.as_str())
                ),
                access: None,
            },
        }
    }

    /// CircleCI's refusals in words a person can act on; everything else keeps its class
    /// (429, 5xx and transport errors are retried).
    fn refused(&self, e: HttpError, what: &str) -> StepError {
        let slug = &self.slug;
        match e {
            HttpError::Unauthorized { .. } => StepError::permanent(format!(
                "CircleCI rejected the configured token (401) when asked to {what}: it is wrong, expired or revoked. Set vendors.circleci.token to a valid personal API token of a member of {slug} (a machine user's, ideally), then replay this run."
            )),
            HttpError::Forbidden { message, .. } => StepError::permanent(format!(
                "CircleCI refused to {what} (403: {message}). API v2 takes personal API tokens only, not project tokens: set vendors.circleci.token to a personal API token of a member of {slug}, then replay this run."
            )),
            HttpError::NotFound { message, .. } => StepError::permanent(format!(
                "CircleCI answered 404 when asked to {what} ({message}): check vendors.circleci.base_url (https://circleci.com/api/v2), then replay this run."
            )),
            other => StepError::from(other).context(&format!("CircleCI: {what}")),
        }
    }
}

/// How a person gives `login` access to the org.
fn add_steps(org: &OrgRef, slug: &str, login: &str, email: &str) -> String {
    let name = &org.name;
    match org.kind {
        OrgKind::GithubOauth => format!(
            "{slug} signs in through GitHub (OAuth): CircleCI takes its members and their permissions from the GitHub organization {name}. Invite {login} to the GitHub organization {name} (https://github.com/orgs/{name}/people > Invite member) and give them access to the repositories they need; once they have accepted and signed in to CircleCI with GitHub (https://app.circleci.com), they are in {slug}."
        ),
        OrgKind::BitbucketOauth => format!(
            "{slug} signs in through Bitbucket (OAuth): CircleCI takes its members and their permissions from the Bitbucket workspace {name}. Add {login} to the Bitbucket workspace {name} with access to the repositories they need; once they have signed in to CircleCI with Bitbucket (https://app.circleci.com), they are in {slug}."
        ),
        OrgKind::Circleci => format!(
            "{slug} ({name}) manages its members in CircleCI: an admin of it invites them in the CircleCI web app (https://app.circleci.com), Organization Settings > People > Invite, with their e-mail address ({email}) and the role they need; they are in once they accept the invitation e-mail."
        ),
    }
}

/// How a person changes what `login` may do in the org.
fn role_steps(org: &OrgRef, slug: &str, login: &str) -> String {
    let name = &org.name;
    match org.kind {
        OrgKind::GithubOauth => format!(
            "CircleCI takes their permissions in {slug} from GitHub: change {login}'s role or repository access in the GitHub organization {name}."
        ),
        OrgKind::BitbucketOauth => format!(
            "CircleCI takes their permissions in {slug} from Bitbucket: change {login}'s permissions in the Bitbucket workspace {name}."
        ),
        OrgKind::Circleci => format!(
            "an admin of {slug} changes {login}'s role in the CircleCI web app, Organization Settings > People."
        ),
    }
}

/// How a person takes `login` out of the org.
fn remove_steps(org: &OrgRef, slug: &str, login: &str) -> String {
    let name = &org.name;
    match org.kind {
        OrgKind::GithubOauth => format!(
            "{slug} signs in through GitHub (OAuth): CircleCI takes its members from the GitHub organization {name}, so remove {login} from it (https://github.com/orgs/{name}/people > the menu on their row > Remove from organization); CircleCI drops them from {slug} at its next sync with GitHub, or when they next sign in."
        ),
        OrgKind::BitbucketOauth => format!(
            "{slug} signs in through Bitbucket (OAuth): CircleCI takes its members from the Bitbucket workspace {name}, so remove {login} from that workspace on Bitbucket; CircleCI drops them from {slug} at its next sync with Bitbucket, or when they next sign in."
        ),
        OrgKind::Circleci => format!(
            "{slug} ({name}) manages its members in CircleCI: an admin of it removes them in the CircleCI web app (https://app.circleci.com), Organization Settings > People, the three-dot menu at the end of {login}'s row > Remove From Organization (an invitation they never accepted is in the Pending list). An organization keeps at least one admin: if {login} is its last, make someone else admin first."
        ),
    }
}

/// What leaving an org does not do: the person's own tokens live on.
fn token_steps(slug: &str, login: &str) -> String {
    format!(
        "Leaving the organization does not revoke their personal API tokens: a token keeps working for whatever their CircleCI account can still reach, and the API publishes no way to revoke another person's token. Ask {login} to delete theirs in the CircleCI web app (User Settings > Personal API Tokens) before they go, and rotate the secrets of {slug} they could read (project environment variables, contexts) if they may have kept copies. If the organization signs in through SSO, deprovision them in the identity provider too."
    )
}
