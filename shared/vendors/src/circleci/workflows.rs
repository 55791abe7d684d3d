//! CircleCI joiner, mover and leaver workflows, as journaled steps.
//!
//! CircleCI's API manages membership only one way: it can remove a member, not add one.
//! A joiner (or a mover) therefore checks membership and, when the person is not in the
//! org, hands over to a person; a leaver finds and removes.
//!
//! Requests per run, with the org's UUID cached: the members list up to the person's page
//! (CircleCI has no search: one request per 100 members before them, all of them for
//! someone who is not a member), plus the `DELETE` for a leaver. Cold, once per
//! `catalog_max_age`: `/me/collaborations` (every workflow) and `/me` (a leaver's, to never
//! remove the token's owner).

use super::client::{pick_org, Client, Me, Member, OrgSlug};
use crate::catalog::Cached;
use crate::http::HttpError;
use lifecycle_domain::apps::{AppRequest, CircleciApp};
use lifecycle_domain::{VendorKind, Workflow};
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{Access, Connector, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

pub struct Circleci {
    pub(super) client: Client,
    pub(super) slug: OrgSlug,
    /// The configured org's UUID (`/me/collaborations`), kept for `catalog_max_age`.
    org: Cached<OrgRef>,
    /// The token's owner (`/me`), kept as long: removing them would cut us off from the org.
    pub(super) owner: Cached<Me>,
}

/// The configured org, as `/me/collaborations` described it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OrgRef {
    pub(super) org_id: String,
    slug: String,
}

/// A member this run found, with the org it was found in (the vendor ids, journaled).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemberRef {
    user_id: String,
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    org_id: String,
}

impl MemberRef {
    fn new(m: Member, org_id: &str) -> Self {
        MemberRef { user_id: m.id, login: m.login, name: m.name, org_id: org_id.to_string() }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Removal {
    user_id: String,
    /// CircleCI removed them in this attempt.
    removed_now: bool,
    /// An earlier, in-doubt attempt had already removed them.
    #[serde(default)]
    adopted: bool,
}

#[async_trait::async_trait]
impl Connector for Circleci {
    fn vendor(&self) -> VendorKind {
        VendorKind::Circleci
    }

    fn workflows(&self) -> &'static [Workflow] {
        &[Workflow::Joiner, Workflow::Mover, Workflow::Leaver]
    }

    async fn run_workflow(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let AppRequest::Circleci(app) = &run.input.app else { unreachable!("execute checked the request's vendor") };
        let login = login_of(app)?;
        match run.workflow {
            Workflow::Joiner | Workflow::Mover => self.ensure_member(run.workflow, &login, steps).await,
            Workflow::Leaver => self.leaver(&login, steps).await,
            other => unreachable!("execute runs only the workflows above, not {other}"),
        }
    }

    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        super::inspect::directory(self, progress).await
    }

    fn desired_access(&self, app: &AppRequest) -> Option<BTreeSet<String>> {
        super::inspect::desired_access(app)
    }

    async fn plan(&self, run: &RunSpec) -> Result<Plan, StepError> {
        super::inspect::plan(self, run).await
    }
}

/// The event's login, trimmed, or the error the run dies with: members are found by login only.
pub(super) fn login_of(app: &CircleciApp) -> Result<String, StepError> {
    app.login.as_deref().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).ok_or_else(|| {
        StepError::permanent(
            "the event names no CircleCI login (apps.circleci.login), and members can only be found by login; fix the event and send it again",
        )
    })
}

/// What a joiner or mover of someone who is not a member ends with: a person's task, since
/// the API cannot invite.
pub(super) fn not_a_member(workflow: Workflow, login: &str, slug: &OrgSlug) -> String {
    let intro = match workflow {
        Workflow::Mover => {
            format!("{login} is not a member of the CircleCI organization {slug}, so there is nothing to move, and")
        }
        _ => format!("{login} is not a member of the CircleCI organization {slug} yet, and"),
    };
    format!(
        "{intro} CircleCI's API cannot invite anyone. A person must invite {login} to {slug} from the CircleCI web app (Organization Settings > People), or let them join through the organization's SSO (Okta, Entra ID, OneLogin) if it uses one. Once they have accepted, re-check this run (lifecycle-ctl runs recheck RUN_ID, or Re-check on its page in the console) and it ends succeeded."
    )
}

/// What a leaver of the token's own owner ends with: removing them would lock lifecycle out.
pub(super) fn owns_the_token(login: &str, uid: &str, slug: &OrgSlug) -> String {
    format!(
        "{login} (CircleCI user {uid}) owns the API token lifecycle uses for {slug}; removing them would cut lifecycle off from the organization. Set vendors.circleci.token to a token of another org admin (a machine user's, ideally), then replay this run. Nothing was removed."
    )
}

impl Circleci {
    pub(super) fn new(client: Client, slug: OrgSlug, catalog_max_age: Duration) -> Self {
        Self { client, slug, org: Cached::new(catalog_max_age), owner: Cached::new(catalog_max_age) }
    }

    /// Joiner and mover: CircleCI's API cannot add members (and roles are not managed
    /// through it), so all we can do is look. Membership is read fresh on every attempt
    /// (not journaled until found): when a person has invited them and replays the run,
    /// it sees the new member.
    async fn ensure_member(&self, workflow: Workflow, login: &str, steps: &mut Steps) -> Result<Outcome, StepError> {
        let org = self.resolve_org().await?;
        let found = self.checked(self.client.find_member(&org.org_id, login).await, "list members").await?;
        let slug = &self.slug;
        let Some(member) = found.map(|m| MemberRef::new(m, &org.org_id)) else {
            return Ok(Outcome::needs_person(not_a_member(workflow, login, slug), Some(Access::Absent)));
        };
        // Journal the vendor ids this run found (a read: one write).
        let uid = member.user_id.clone();
        let member: MemberRef = steps.read(format!("member:{uid}"), |_| async move { Ok(member) }).await?;
        let what = match workflow {
            Workflow::Mover => "CircleCI roles are not managed through its API, so nothing changed",
            _ => "nothing to do",
        };
        Ok(Outcome::done(
            format!(
                "{} is already a member of the CircleCI organization {slug} (user {}); {what}",
                member.login, member.user_id
            ),
            Access::Active,
        ))
    }

    /// Find the member (a journaled read: a retry after the removal must still know who it
    /// was), then remove them. The DELETE's 204 is the proof: no GET confirms it again.
    async fn leaver(&self, login: &str, steps: &mut Steps) -> Result<Outcome, StepError> {
        let (c, slug) = (&self.client, &self.slug);
        let found: Option<MemberRef> = steps
            .read("find_member", |_| async move {
                let org = self.resolve_org().await?;
                let m = self.checked(c.find_member(&org.org_id, login).await, "list members").await?;
                Ok(m.map(|m| MemberRef::new(m, &org.org_id)))
            })
            .await?;
        let Some(member) = found else {
            return Ok(Outcome::done(
                format!("{login} is not a member of the CircleCI organization {slug}; nothing to remove"),
                Access::Absent,
            ));
        };
        let (uid, login) = (member.user_id.as_str(), member.login.as_str());
        // Found before this version journaled the org: the cached one (its UUID never changes).
        let org_id = match member.org_id.as_str() {
            "" => self.resolve_org().await?.org_id,
            id => id.to_string(),
        };
        let org_id = org_id.as_str();
        let owner = self.checked(self.owner.get(|| c.me()).await, "read the token's owner").await?;
        if uid == owner.id {
            return Err(StepError::needs_person(owns_the_token(login, uid, slug)));
        }

        let removal: Removal = steps
            .run(format!("remove_member:{uid}"), |attempt| async move {
                if attempt.in_doubt {
                    // The last attempt may have landed (the removal is immediate): look first.
                    let still = self.checked(c.get_member(org_id, uid).await, "look up a member").await?;
                    if still.is_none() {
                        return Ok(Removal { user_id: uid.to_string(), removed_now: false, adopted: true });
                    }
                }
                // 204: removed now; 404: not a member any more. Either answer is the proof.
                let removed = self.checked(c.remove_member(org_id, uid).await, "remove a member").await?;
                Ok(Removal { user_id: uid.to_string(), removed_now: removed, adopted: false })
            })
            .await?;

        let what = if removal.removed_now {
            format!(
                "removed {login} (CircleCI user {uid}) from the CircleCI organization {slug} (CircleCI answered 204)"
            )
        } else if removal.adopted {
            format!("removed {login} (CircleCI user {uid}) from the CircleCI organization {slug} (an earlier attempt's removal landed: CircleCI now answers 404 for them)")
        } else {
            format!("{login} (CircleCI user {uid}) had already left the CircleCI organization {slug} (CircleCI answered 404)")
        };
        Ok(Outcome::done(
            format!(
                "{what}. Bringing them back takes a new invitation from the web app. \
                 Their personal API tokens are NOT revoked by this: tokens {login} created keep working for whatever their account can still reach. \
                 Ask {login} to revoke them in the CircleCI web app (User Settings > Personal API Tokens; the API cannot do it), and if the organization uses SSO, also deprovision them in the identity provider so they cannot sign in again."
            ),
            Access::Removed,
        ))
    }

    /// The org's UUID, from `/me/collaborations` matched on the configured slug (never
    /// the name; the slug itself never goes into a path): from the cache, asked afresh once
    /// it is older than `catalog_max_age` or after CircleCI answered 404 for the org. Not a
    /// step: no journal write; the member steps record the UUID they used.
    pub(super) async fn resolve_org(&self) -> Result<OrgRef, StepError> {
        let org = self
            .org
            .get(|| async {
                let c = &self.client;
                let slug = &self.slug;
                let orgs = c.collaborations().await.map_err(|e| self.refused(e, "list its organizations"))?;
                let Some(org) = pick_org(&orgs, slug) else {
                    // Only to say whose token it is.
                    let owner = match c.me().await.ok().and_then(|me| me.login) {
                        Some(l) => format!(" ({l})"),
                        None => String::new(),
                    };
                    let theirs: Vec<&str> = orgs.iter().filter_map(|o| o.slug.as_deref()).collect();
                    let theirs = if theirs.is_empty() { "none".to_string() } else { theirs.join(", ") };
                    return Err(StepError::permanent(format!(
                        "the owner of the configured CircleCI token{owner} is not a member of the organization {slug} (their organizations: {theirs}), so its UUID cannot be found; fix vendors.circleci.org_slug, or set vendors.circleci.token to a token of an admin of {slug}, then replay this run"
                    )));
                };
                Ok(OrgRef { org_id: org.id.clone(), slug: slug.to_string() })
            })
            .await?;
        Ok((*org).clone())
    }

    /// A CircleCI answer, its refusal in words a person can act on. A 404 for the org
    /// means the UUID we keep may be stale: the next run asks `/me/collaborations` again.
    pub(super) async fn checked<T>(&self, answer: Result<T, HttpError>, what: &str) -> Result<T, StepError> {
        match answer {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_not_found() {
                    self.org.invalidate().await;
                }
                Err(self.refused(e, what))
            }
        }
    }

    /// CircleCI's refusals in words a person can act on; everything else keeps its class
    /// (429, 5xx and transport errors are retried).
    fn refused(&self, e: HttpError, what: &str) -> StepError {
        let slug = &self.slug;
        match e {
            HttpError::Unauthorized { .. } => StepError::permanent(format!(
                "CircleCI rejected the configured token (401) when asked to {what}: it is wrong, expired or revoked. Set vendors.circleci.token to a valid personal API token of an admin of {slug}, then replay this run."
            )),
            HttpError::Forbidden { message, .. } => StepError::permanent(format!(
                "CircleCI refused to {what} in {slug} (403: {message}): the configured token does not belong to an admin of the organization, and only org admins may list or remove members. Set vendors.circleci.token to a personal API token of an org admin (a machine user's, ideally), then replay this run."
            )),
            HttpError::NotFound { message, .. } => {
                StepError::permanent(format!(
                    "CircleCI answered 404 when asked to {what} in {slug} ({message}): the organization may have been deleted or the token's owner removed from it. Check vendors.circleci.org_slug and the token, then replay this run."
                ))
            }
            other => StepError::from(other).context(&format!("CircleCI: {what}")),
        }
    }
}
