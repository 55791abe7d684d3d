//! CircleCI joiner, mover and leaver workflows, as journaled steps.
//!
//! CircleCI's API manages membership only one way: it can remove a member, not add one.
//! A joiner (or a mover) therefore checks membership and, when the person is not in the
//! org, hands over to a person; a leaver finds, removes and confirms.

use super::client::{pick_org, Client, Member, OrgSlug};
use crate::http::HttpError;
use lifecycle_domain::apps::AppRequest;
use lifecycle_domain::Workflow;
use lifecycle_engine::{Access, Connector, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

pub struct Circleci {
    client: Client,
    slug: OrgSlug,
    /// The org as resolved by an earlier run: its UUID does not change, so one
    /// `/me/collaborations` per process is enough. Only successes are kept.
    resolved: Mutex<Option<OrgRef>>,
}

/// The configured org, as `/me/collaborations` (and `/me`) described it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrgRef {
    org_id: String,
    slug: String,
    /// The token owner: removing them would cut us off from the org.
    owner_id: String,
    #[serde(default)]
    owner_login: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemberRef {
    user_id: String,
    login: String,
    #[serde(default)]
    name: Option<String>,
}

impl From<Member> for MemberRef {
    fn from(m: Member) -> Self {
        MemberRef { user_id: m.id, login: m.login, name: m.name }
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
    async fn execute(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let login = match &run.input.app {
            AppRequest::Circleci(app) => app.login.clone(),
            other => {
                return Err(StepError::permanent(format!(
                    "a {} request reached the CircleCI connector",
                    other.vendor()
                )))
            }
        };
        let Some(login) = login.map(|l| l.trim().to_string()).filter(|l| !l.is_empty()) else {
            return Err(StepError::permanent(
                "the event names no CircleCI login (apps.circleci.login), and members can only be found by login; fix the event and send it again",
            ));
        };
        match run.workflow {
            Workflow::Joiner | Workflow::Mover => self.ensure_member(run.workflow, &login, steps).await,
            Workflow::Leaver => self.leaver(&login, steps).await,
            Workflow::ReassignDeals => {
                Err(StepError::permanent("reassign_deals is a Pipedrive workflow; CircleCI has nothing to reassign"))
            }
        }
    }
}

impl Circleci {
    pub(super) fn new(client: Client, slug: OrgSlug) -> Self {
        Self { client, slug, resolved: Mutex::new(None) }
    }

    /// Joiner and mover: CircleCI's API cannot add members (and roles are not managed
    /// through it), so all we can do is look. Membership is read fresh on every attempt:
    /// when a person has invited them and replays the run, it sees the new member.
    async fn ensure_member(&self, workflow: Workflow, login: &str, steps: &mut Steps) -> Result<Outcome, StepError> {
        let org = self.resolve_org(steps).await?;
        let found = self.client.find_member(&org.org_id, login).await.map_err(|e| self.refused(e, "list members"))?;
        let slug = &self.slug;
        let Some(member) = found.map(MemberRef::from) else {
            let intro = match workflow {
                Workflow::Mover => format!(
                    "{login} is not a member of the CircleCI organization {slug}, so there is nothing to move, and"
                ),
                _ => format!("{login} is not a member of the CircleCI organization {slug} yet, and"),
            };
            return Ok(Outcome::needs_person(
                format!(
                    "{intro} CircleCI's API cannot invite anyone. A person must invite {login} to {slug} from the CircleCI web app (Organization Settings > People), or let them join through the organization's SSO (Okta, Entra ID, OneLogin) if it uses one. Nothing to replay afterwards: once they accept, they are a member."
                ),
                Some(Access::Absent),
            ));
        };
        // Journal the vendor id this run found.
        let uid = member.user_id.clone();
        let member: MemberRef = steps.run(format!("member:{uid}"), |_| async move { Ok(member) }).await?;
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

    /// Find the member (journaled: a retry after the removal must still know who it was),
    /// remove them, then confirm with a GET that answers 404.
    async fn leaver(&self, login: &str, steps: &mut Steps) -> Result<Outcome, StepError> {
        let org = self.resolve_org(steps).await?;
        let (c, slug, org_id) = (&self.client, &self.slug, org.org_id.as_str());
        let found: Option<MemberRef> = steps
            .run("find_member", |_| async move {
                let m = c.find_member(org_id, login).await.map_err(|e| self.refused(e, "list members"))?;
                Ok(m.map(MemberRef::from))
            })
            .await?;
        let Some(member) = found else {
            return Ok(Outcome::done(
                format!("{login} is not a member of the CircleCI organization {slug}; nothing to remove"),
                Access::Absent,
            ));
        };
        let uid = member.user_id.as_str();
        let login = member.login.as_str();
        if uid == org.owner_id {
            return Err(StepError::needs_person(format!(
                "{login} (CircleCI user {uid}) owns the API token lifecycle uses for {slug}; removing them would cut lifecycle off from the organization. Set vendors.circleci.token to a token of another org admin (a machine user's, ideally), then replay this run. Nothing was removed."
            )));
        }

        let removal: Removal = steps
            .run(format!("remove_member:{uid}"), |attempt| async move {
                if attempt.in_doubt {
                    // The last attempt may have landed (the removal is immediate): look first.
                    let still = c.get_member(org_id, uid).await.map_err(|e| self.refused(e, "look up a member"))?;
                    if still.is_none() {
                        return Ok(Removal { user_id: uid.to_string(), removed_now: false, adopted: true });
                    }
                }
                let removed = c.remove_member(org_id, uid).await.map_err(|e| self.refused(e, "remove a member"))?;
                Ok(Removal { user_id: uid.to_string(), removed_now: removed, adopted: false })
            })
            .await?;
        steps
            .run(format!("confirm_removed:{uid}"), |_| async move {
                match c.get_member(org_id, uid).await.map_err(|e| self.refused(e, "confirm the removal"))? {
                    None => Ok(true),
                    Some(_) => Err(StepError::transient(format!(
                        "CircleCI still lists {login} (user {uid}) as a member of {slug} after the removal; checking again later"
                    ))),
                }
            })
            .await?;

        let what = if removal.removed_now || removal.adopted {
            format!("removed {login} (CircleCI user {uid}) from the CircleCI organization {slug}")
        } else {
            format!("{login} (CircleCI user {uid}) had already left the CircleCI organization {slug}")
        };
        Ok(Outcome::done(
            format!(
                "{what}; a follow-up check confirmed they are no longer a member (404). Bringing them back takes a new invitation from the web app. \
                 Their personal API tokens are NOT revoked by this: tokens {login} created keep working for whatever their account can still reach. \
                 Ask {login} to revoke them in the CircleCI web app (User Settings > Personal API Tokens; the API cannot do it), and if the organization uses SSO, also deprovision them in the identity provider so they cannot sign in again."
            ),
            Access::Removed,
        ))
    }

    /// The org's UUID, from `/me/collaborations` matched on the configured slug (never
    /// the name; the slug itself never goes into a path), journaled for the run.
    async fn resolve_org(&self, steps: &mut Steps) -> Result<OrgRef, StepError> {
        steps
            .run("resolve_org", |_| async move {
                if let Some(org) = self.resolved.lock().expect("not poisoned").clone() {
                    return Ok(org);
                }
                let c = &self.client;
                let slug = &self.slug;
                let orgs = c.collaborations().await.map_err(|e| self.refused(e, "list its organizations"))?;
                let me = c.me().await.map_err(|e| self.refused(e, "read the token's owner"))?;
                let Some(org) = pick_org(&orgs, slug) else {
                    let owner = me.login.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
                    let theirs: Vec<&str> = orgs.iter().filter_map(|o| o.slug.as_deref()).collect();
                    let theirs = if theirs.is_empty() { "none".to_string() } else { theirs.join(", ") };
                    return Err(StepError::permanent(format!(
                        "the owner of the configured CircleCI token{owner} is not a member of the organization {slug} (their organizations: {theirs}), so its UUID cannot be found; fix vendors.circleci.org_slug, or set vendors.circleci.token to a token of an admin of {slug}, then replay this run"
                    )));
                };
                let org = OrgRef { org_id: org.id.clone(), slug: slug.to_string(), owner_id: me.id, owner_login: me.login };
                *self.resolved.lock().expect("not poisoned") = Some(org.clone());
                Ok(org)
            })
            .await
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
                // The org we resolved is gone (or was renamed away): look it up again next time.
                *self.resolved.lock().expect("not poisoned") = None;
                StepError::permanent(format!(
                    "CircleCI answered 404 when asked to {what} in {slug} ({message}): the organization may have been deleted or the token's owner removed from it. Check vendors.circleci.org_slug and the token, then replay this run."
                ))
            }
            other => StepError::from(other).context(&format!("CircleCI: {what}")),
        }
    }
}
