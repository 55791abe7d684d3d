//! GitHub joiner, mover and leaver workflows, as journaled steps.
//!
//! Requests per run (catalogues cached: `GET /user` once per `catalog_max_age` when a check
//! needs the token's own login, teams/list once per `catalog_max_age` when the event names
//! teams, a 304 when they did not change):
//! - joiner by login, someone new: 3 (get-membership, get-by-username, create-invitation with
//!   `team_ids`); already invited: 1; an active member: 1, plus 1 PUT when the role differs
//!   (plus ceil(A/100) list-members `role=admin` and `GET /user` before a demotion), plus per
//!   wanted team 1 (get team membership) or 2 (and the PUT when not in it), plus 1 DELETE per
//!   managed team not wanted;
//! - joiner by e-mail: 2 (ceil(I/100) list-pending-invitations, create-invitation); 1 when
//!   already invited;
//! - mover: 1 (get-membership) plus the active member's convergence above;
//! - leaver by login: `GET /user` (cached) then get-membership; a member or invitee: DELETE
//!   and list-pending-invitations (3; plus ceil(A/100) list-members `role=admin` for an owner);
//!   neither: list-pending-invitations and list-outside-collaborators (3, a 4th to remove the
//!   collaborator); plus one cancel-invitation per e-mail invitation found;
//! - leaver without login: list-pending-invitations, plus one cancel per match.

use super::client::{Client, Invitation, Invitee, MembershipState, OrgMembership, OrgRole, Team, Teams};
use crate::catalog::Cached;
use crate::http::HttpError;
use lifecycle_domain::apps::GithubApp;
use lifecycle_domain::EmployeeEmail;
use lifecycle_engine::{Access, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Github {
    pub(super) client: Client,
    /// `managed_teams`: the teams a mover takes people out of.
    pub(super) managed: Vec<String>,
    /// teams/list, kept for `catalog_max_age`.
    pub(super) teams: Cached<Teams>,
    /// The last copy of the teams read, whose ETags the next read sends.
    last_teams: Mutex<Option<Arc<Teams>>>,
    /// The token's own login (users/get-authenticated), lower-case.
    pub(super) me: Cached<String>,
}

/// What get-membership says of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(super) enum Found {
    Active { role: OrgRole },
    Pending { role: OrgRole },
    Absent,
}

impl From<Option<OrgMembership>> for Found {
    fn from(m: Option<OrgMembership>) -> Self {
        match m {
            Some(m) if m.state == MembershipState::Active => Found::Active { role: m.role },
            Some(m) => Found::Pending { role: m.role },
            None => Found::Absent,
        }
    }
}

/// Where a joiner's invitation step left the person.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Joined {
    /// An active member: converged next.
    Member { role: OrgRole },
    /// Already invited (not by this run): nothing sent.
    Pending { role: String },
    /// Invited by this run (`adopted`: by an earlier attempt whose answer was lost).
    Invited {
        #[serde(default)]
        invitation_id: Option<i64>,
        adopted: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TeamChange {
    Added,
    AlreadyIn,
    Removed,
    NotIn,
}

impl Github {
    pub fn new(client: Client, managed: Vec<String>, catalog_max_age: Duration) -> Self {
        Self {
            client,
            managed,
            teams: Cached::new(catalog_max_age),
            last_teams: Mutex::new(None),
            me: Cached::new(catalog_max_age),
        }
    }

    pub(super) fn org(&self) -> &str {
        self.client.org()
    }

    /// The token's own login, lower-case (one `GET /user` per `catalog_max_age`); empty for a
    /// GitHub App installation token, which has no user behind it (GitHub answers its `GET /user`
    /// with 403 "Resource not accessible by integration"): no login is then the token's own.
    pub(super) async fn me(&self) -> Result<Arc<String>, StepError> {
        let c = &self.client;
        self.me
            .get(|| async move {
                match c.authenticated_user().await {
                    Ok(u) => Ok(u.login.to_lowercase()),
                    Err(HttpError::Forbidden { .. }) => Ok(String::new()),
                    Err(e) => Err(explain(e, c.org(), "read the token's own user (GET /user)")),
                }
            })
            .await
    }

    async fn read_teams(&self) -> Result<Teams, HttpError> {
        let previous = self.last_teams.lock().expect("not poisoned").clone();
        let teams = self.client.teams(previous.as_deref()).await?;
        *self.last_teams.lock().expect("not poisoned") = Some(Arc::new(teams.clone()));
        Ok(teams)
    }

    /// The event's teams, by slug, from the catalogue: a slug missing from the cached copy is
    /// looked up once in a fresh one before the run fails for it (nothing is written before).
    pub(super) async fn resolve_teams(&self, slugs: &[String]) -> Result<Vec<Team>, StepError> {
        if slugs.is_empty() {
            return Ok(Vec::new());
        }
        let org = self.org();
        let load = || async { self.read_teams().await.map_err(|e| explain(e, org, "list the organisation's teams")) };
        let all = |t: &Teams| slugs.iter().map(|s| t.by_slug(s).cloned()).collect::<Option<Vec<Team>>>();
        if let Some(found) = self.teams.find(load, all).await? {
            return Ok(found);
        }
        let catalogue = self.teams.get(load).await?;
        let unknown: Vec<&str> = slugs.iter().filter(|s| catalogue.by_slug(s).is_none()).map(String::as_str).collect();
        Err(StepError::permanent(format!(
            "unknown team {} in the GitHub organisation {org}: apps.github.teams takes team slugs as GitHub shows them (the last part of the team's URL); fix the event and send it again",
            unknown.join(", ")
        )))
    }

    /// Joiner: invited once (by login, or by e-mail without one); an active member is converged.
    pub(super) async fn joiner(&self, run: &RunSpec, app: &GithubApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        let org = self.org();
        let role = wanted_role(app).unwrap_or(OrgRole::Member);
        let teams = self.resolve_teams(app.teams.as_deref().unwrap_or_default()).await?;
        let team_ids: Vec<i64> = teams.iter().map(|t| t.id).collect();
        let email = &run.input.employee.email;
        let joined = match app.login.as_deref() {
            Some(login) => self.invite_login(steps, login, role, &team_ids).await?,
            None => self.invite_email(steps, email, role, &team_ids).await?,
        };
        let who = app.login.clone().unwrap_or_else(|| email.to_string());
        match joined {
            Joined::Invited { adopted, .. } => Ok(Outcome::done(
                format!(
                    "invited {who} to {org} as {} with teams {}{}; pending acceptance: they become a member when they accept GitHub's invitation",
                    role.as_str(),
                    slugs_or_none(&teams),
                    if adopted { " (sent by an earlier attempt whose answer was lost)" } else { "" }
                ),
                Access::Invited,
            )),
            Joined::Pending { role } => Ok(Outcome::done(
                format!(
                    "{who} is already invited to {org} (as {role}), pending acceptance; no second invitation was sent (the teams are the invitation's)"
                ),
                Access::Invited,
            )),
            Joined::Member { role: current } => {
                let login = app.login.as_deref().expect("only a login look-up finds a member");
                let wanted_teams = app.teams.as_ref().map(|_| teams.as_slice());
                self.converge(steps, login, current, Some(role), wanted_teams).await
            }
        }
    }

    async fn invite_login(
        &self,
        steps: &mut Steps,
        login: &str,
        role: OrgRole,
        team_ids: &[i64],
    ) -> Result<Joined, StepError> {
        let c = &self.client;
        let org = self.org();
        steps
            .run(format!("invite:{login}"), |attempt| async move {
                let doing = format!("look {login} up in {org}");
                let found = c.membership(login).await.map_err(|e| explain(e, org, &doing))?;
                if let Some(joined) = joined_of(found.into(), attempt.in_doubt) {
                    return Ok(joined);
                }
                let Some(user) = c.user(login).await.map_err(|e| explain(e, org, &format!("look up {login}")))?
                else {
                    return Err(StepError::permanent(format!(
                        "no GitHub user {login}: check apps.github.login (the person's GitHub login), then send the joiner again"
                    )));
                };
                match c.create_invitation(&Invitee::User(user.id), role, team_ids).await {
                    Ok(inv) => Ok(Joined::Invited { invitation_id: Some(inv.id), adopted: false }),
                    // "Already a part of this organization" or "already invited": look to confirm.
                    Err(e @ HttpError::Rejected { status: 422, .. }) => {
                        let again = c.membership(login).await.map_err(|e| explain(e, org, &doing))?;
                        joined_of(again.into(), true).ok_or_else(|| {
                            StepError::permanent(format!(
                                "GitHub refused to invite {login} to {org} (422: {}) and shows neither a membership nor an invitation for them; check the person in the organisation's People page, then replay this run",
                                e.message()
                            ))
                        })
                    }
                    Err(e) => Err(explain(e, org, &format!("invite {login}"))),
                }
            })
            .await
    }

    async fn invite_email(
        &self,
        steps: &mut Steps,
        email: &EmployeeEmail,
        role: OrgRole,
        team_ids: &[i64],
    ) -> Result<Joined, StepError> {
        let c = &self.client;
        let org = self.org();
        steps
            .run("invite_email", |attempt| async move {
                let doing = "list the organisation's pending invitations";
                let pending = |invitations: Vec<Invitation>, ours: bool| {
                    invitations.into_iter().find(|i| i.email_is(email.as_str())).map(|i| {
                        if ours {
                            Joined::Invited { invitation_id: Some(i.id), adopted: true }
                        } else {
                            Joined::Pending { role: role_name(&i.role) }
                        }
                    })
                };
                let invitations = c.pending_invitations(0).await.map_err(|e| explain(e, org, doing))?;
                if let Some(found) = pending(invitations, attempt.in_doubt) {
                    return Ok(found);
                }
                match c.create_invitation(&Invitee::Email(email.as_str()), role, team_ids).await {
                    Ok(inv) => Ok(Joined::Invited { invitation_id: Some(inv.id), adopted: false }),
                    Err(e @ HttpError::Rejected { status: 422, .. }) => {
                        let again = c.pending_invitations(0).await.map_err(|e| explain(e, org, doing))?;
                        pending(again, true).ok_or_else(|| {
                            StepError::permanent(format!(
                                "GitHub refused to invite {email} to {org} (422: {}): most likely the address belongs to a GitHub account that is already a member; send the joiner again with apps.github.login (their GitHub login) so lifecycle can converge that membership",
                                e.message()
                            ))
                        })
                    }
                    Err(e) => Err(explain(e, org, &format!("invite {email}"))),
                }
            })
            .await
    }

    /// Mover: an active member's role (when given) and teams (when given) converged.
    pub(super) async fn mover(&self, app: &GithubApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        let org = self.org();
        let login = app.login.as_deref().ok_or_else(|| StepError::permanent("a mover needs apps.github.login"))?;
        let teams = match &app.teams {
            Some(slugs) => Some(self.resolve_teams(slugs).await?),
            None => None,
        };
        let c = &self.client;
        let found: Found = steps
            .read(format!("find_member:{login}"), |_| async move {
                c.membership(login).await.map(Found::from).map_err(|e| explain(e, org, &format!("look {login} up")))
            })
            .await?;
        match found {
            Found::Absent => Err(StepError::permanent(not_a_member(login, org))),
            Found::Pending { .. } => Err(StepError::needs_person(not_accepted(login, org))),
            Found::Active { role } => self.converge(steps, login, role, wanted_role(app), teams.as_deref()).await,
        }
    }

    /// An active member's role, then teams: each wanted team joined (read first: GitHub's PUT
    /// would demote a maintainer), each managed team not wanted left. A role change a person
    /// must make does not stop the teams; it ends the run `needs_manual_action` after them.
    async fn converge(
        &self,
        steps: &mut Steps,
        login: &str,
        current: OrgRole,
        wanted: Option<OrgRole>,
        teams: Option<&[Team]>,
    ) -> Result<Outcome, StepError> {
        let c = &self.client;
        let org = self.org();
        let mut done = Vec::new();
        let mut blocked = None;
        match wanted {
            Some(w) if w == current => done.push(format!("role {} kept", w.as_str())),
            None => done.push(format!("role {} kept", current.as_str())),
            Some(w) => match self.role_block(login, current, w).await? {
                Some(why) => blocked = Some(why),
                None => {
                    let new = w.membership_role().expect("role_block refuses billing_manager");
                    steps
                        .run(format!("set_role:{login}:{new}"), |_| async move {
                            match c.set_role(login, new).await {
                                Ok(_) => Ok(()),
                                Err(HttpError::Forbidden { message, .. }) if message.contains("last owner") => {
                                    Err(StepError::needs_person(last_owner(login, org)))
                                }
                                Err(e) => Err(explain(e, org, &format!("make {login} {new} of {org}"))),
                            }
                        })
                        .await?;
                    done.push(format!("role changed from {} to {new}", current.as_str()));
                }
            },
        }
        if let Some(wanted) = teams {
            let (mut added, mut kept, mut left) = (Vec::new(), Vec::new(), Vec::new());
            for t in wanted {
                let slug = t.slug.as_str();
                let change: TeamChange = steps
                    .run(format!("add_team:{slug}"), |_| async move {
                        let doing = format!("add {login} to team {slug}");
                        if c.team_membership(slug, login).await.map_err(|e| explain(e, org, &doing))?.is_some() {
                            return Ok(TeamChange::AlreadyIn);
                        }
                        c.add_to_team(slug, login).await.map_err(|e| explain(e, org, &doing))?;
                        Ok(TeamChange::Added)
                    })
                    .await?;
                match change {
                    TeamChange::Added => added.push(slug),
                    _ => kept.push(slug),
                }
            }
            for slug in self.managed.iter().filter(|m| !wanted.iter().any(|t| t.slug.eq_ignore_ascii_case(m))) {
                let slug = slug.as_str();
                let change: TeamChange = steps
                    .run(format!("remove_team:{slug}"), |_| async move {
                        match c.remove_from_team(slug, login).await {
                            Ok(true) => Ok(TeamChange::Removed),
                            Ok(false) => Ok(TeamChange::NotIn),
                            Err(e) => Err(explain(e, org, &format!("remove {login} from team {slug}"))),
                        }
                    })
                    .await?;
                if matches!(change, TeamChange::Removed) {
                    left.push(slug);
                }
            }
            done.push(format!(
                "teams: added to {}, already in {}, out of managed teams {}",
                list_or_none(&added),
                list_or_none(&kept),
                list_or_none(&left)
            ));
        } else {
            done.push("teams left as they are".into());
        }
        let summary = format!("{login} is an active member of {org}: {}", done.join("; "));
        Ok(match blocked {
            Some(why) => Outcome::needs_person(format!("{summary}. {why}"), Some(Access::Active)),
            None => Outcome::done(summary, Access::Active),
        })
    }

    /// Why a role change is a person's to make, if it is: `billing_manager` for a member (only
    /// an invitation grants it), or a demotion of the token's own user or the last owner.
    pub(super) async fn role_block(
        &self,
        login: &str,
        current: OrgRole,
        wanted: OrgRole,
    ) -> Result<Option<String>, StepError> {
        let org = self.org();
        if wanted == OrgRole::BillingManager {
            return Ok(Some(format!(
                "{login} is already a member of {org} (as {}), and GitHub grants billing_manager only through an invitation: make them a billing manager in the organisation's settings (People), then replay this run",
                current.as_str()
            )));
        }
        if current != OrgRole::Admin {
            return Ok(None);
        }
        if login.eq_ignore_ascii_case(&self.me().await?) {
            return Ok(Some(own_user(login, org, "demoted")));
        }
        if self.is_last_admin(login).await? {
            return Ok(Some(last_owner(login, org)));
        }
        Ok(None)
    }

    /// Whether `login` is the organisation's only owner (orgs/list-members `role=admin`).
    pub(super) async fn is_last_admin(&self, login: &str) -> Result<bool, StepError> {
        let admins =
            self.client.members(true, 0).await.map_err(|e| explain(e, self.org(), "list the organisation's owners"))?;
        Ok(admins.len() <= 1 && admins.iter().all(|a| a.login.eq_ignore_ascii_case(login)))
    }
}

/// What the invitation step makes of a look-up: a member or an invitation (ours when an
/// earlier attempt is in doubt), or `None` to invite.
fn joined_of(found: Found, in_doubt: bool) -> Option<Joined> {
    match found {
        Found::Active { role } => Some(Joined::Member { role }),
        Found::Pending { .. } if in_doubt => Some(Joined::Invited { invitation_id: None, adopted: true }),
        Found::Pending { role } => Some(Joined::Pending { role: role.as_str().into() }),
        Found::Absent => None,
    }
}

/// The event's role (validated at intake).
pub(super) fn wanted_role(app: &GithubApp) -> Option<OrgRole> {
    app.role.as_deref().and_then(OrgRole::parse)
}

/// An invitation's role as events name it (`direct_member` is `member`).
pub(super) fn role_name(invitation_role: &str) -> String {
    match OrgRole::of_invitation(invitation_role) {
        Ok(r) => r.as_str().to_string(),
        Err(other) => other,
    }
}

fn slugs_or_none(teams: &[Team]) -> String {
    if teams.is_empty() {
        "none".into()
    } else {
        teams.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>().join(", ")
    }
}

pub(super) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

pub(super) fn not_a_member(login: &str, org: &str) -> String {
    format!(
        "{login} is not a member of {org} (nor invited): a mover changes an existing member; send a joiner to invite them"
    )
}

pub(super) fn not_accepted(login: &str, org: &str) -> String {
    format!(
        "{login} has not accepted their invitation to {org} yet, so their role and teams cannot be changed; replay this run once they have"
    )
}

pub(super) fn last_owner(login: &str, org: &str) -> String {
    format!("{login} is the last owner of {org}, whom GitHub will not remove or demote: make someone else an owner first, then replay this run")
}

pub(super) fn own_user(login: &str, org: &str, what: &str) -> String {
    format!(
        "{login} is the token's own user (vendors.github.token): if they were {what}, lifecycle would lock itself out of {org}; do it in the organisation's settings, after giving lifecycle another owner's token"
    )
}

pub(super) fn outside_collaborator(login: &str, org: &str) -> String {
    format!(
        "{login} is an outside collaborator on {org}'s repositories; send the leaver again with remove_outside_collaborator: true, or remove them in the org's settings"
    )
}

/// What went wrong, for a person: credentials and permissions say what to fix.
pub(super) fn explain(e: HttpError, org: &str, doing: &str) -> StepError {
    match &e {
        HttpError::Unauthorized { message, .. } => StepError::permanent(format!(
            "GitHub rejected the configured token while trying to {doing} (401: {message}): set a valid token of an owner of {org} in vendors.github.token, then replay this run"
        )),
        HttpError::Forbidden { message, .. } if message.contains("SAML") => StepError::permanent(format!(
            "GitHub refused to {doing} (403: {message}): the token is not authorised for {org}'s SAML single sign-on; authorise it (the token's Configure SSO), then replay this run"
        )),
        HttpError::Forbidden { message, .. } => StepError::permanent(format!(
            "GitHub refused to {doing} (403: {message}): the configured token must belong to an owner of {org} (classic token: admin:org scope; fine-grained: the organisation's Members permission, read and write); fix vendors.github.token, then replay this run"
        )),
        HttpError::NotFound { message, .. } => StepError::permanent(format!(
            "GitHub answered 404 when trying to {doing} ({message}): the organisation {org} does not exist or the token cannot see it; check vendors.github.org and the token"
        )),
        _ => StepError::from(e).context(doing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::VendorKind;

    #[test]
    fn an_in_doubt_invitation_found_pending_is_ours() {
        assert!(matches!(
            joined_of(Found::Pending { role: OrgRole::Member }, true),
            Some(Joined::Invited { adopted: true, .. })
        ));
        assert!(
            matches!(joined_of(Found::Pending { role: OrgRole::Admin }, false), Some(Joined::Pending { role }) if role == "admin")
        );
        assert!(matches!(joined_of(Found::Active { role: OrgRole::Member }, true), Some(Joined::Member { .. })));
        assert!(joined_of(Found::Absent, true).is_none());
    }

    #[test]
    fn invitation_roles_read_as_event_roles() {
        assert_eq!(role_name("direct_member"), "member");
        assert_eq!(role_name("admin"), "admin");
        assert_eq!(role_name("hiring_manager"), "hiring_manager");
    }

    #[test]
    fn errors_say_what_to_fix() {
        let e = |e| match explain(e, "acme", "invite ada") {
            StepError::Permanent { message } => message,
            other => panic!("{other:?}"),
        };
        let v = VendorKind::Github;
        assert!(e(HttpError::Unauthorized { vendor: v, message: "Bad credentials".into() })
            .contains("vendors.github.token"));
        let saml = e(HttpError::Forbidden {
            vendor: v,
            message: "Resource protected by organization SAML enforcement.".into(),
        });
        assert!(saml.contains("single sign-on"), "{saml}");
        let rights =
            e(HttpError::Forbidden { vendor: v, message: "You must be an admin to create an invitation.".into() });
        assert!(rights.contains("owner of acme"), "{rights}");
        let limited =
            explain(HttpError::RateLimited { vendor: v, retry_after: Some(Duration::from_secs(60)) }, "acme", "x");
        assert!(matches!(limited, StepError::Transient { retry_after: Some(_), .. }), "{limited:?}");
    }
}
