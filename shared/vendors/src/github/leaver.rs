//! GitHub's leaver: out of the organisation (membership, invitations by login and by e-mail),
//! and outside-collaborator access removed when the event says so; the token's own user and
//! the last owner are left to a person.

use super::client::OrgRole;
use super::workflows::{explain, last_owner, outside_collaborator, own_user, Found, Github};
use crate::http::HttpError;
use lifecycle_domain::apps::GithubApp;
use lifecycle_engine::{Access, Outcome, RunSpec, StepError, Steps};

impl Github {
    /// Leaver: the membership (or invitation by login) removed, invitations by e-mail cancelled,
    /// and outside-collaborator access removed when the event says so.
    pub(super) async fn leaver(&self, run: &RunSpec, app: &GithubApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let org = self.org();
        let email = &run.input.employee.email;
        let mut said = Vec::new();
        let mut removed_any = false;
        let mut found = Found::Absent;
        if let Some(login) = app.login.as_deref() {
            if login.eq_ignore_ascii_case(&self.me().await?) {
                return Ok(Outcome::needs_person(own_user(login, org, "removed"), Some(Access::Active)));
            }
            found = steps
                .read(format!("find_member:{login}"), |_| async move {
                    c.membership(login).await.map(Found::from).map_err(|e| explain(e, org, &format!("look {login} up")))
                })
                .await?;
            if let Found::Active { role: OrgRole::Admin } = found {
                if self.is_last_admin(login).await? {
                    return Ok(Outcome::needs_person(last_owner(login, org), Some(Access::Active)));
                }
            }
            if let Found::Active { role } | Found::Pending { role } = found {
                let gone: bool = steps
                    .run(format!("remove_member:{login}"), |attempt| async move {
                        match c.remove_membership(login).await {
                            Ok(true) => Ok(false),
                            // Gone: removed by our in-doubt attempt, or by someone at GitHub.
                            Ok(false) => Ok(!attempt.in_doubt),
                            Err(HttpError::Forbidden { message, .. }) if message.contains("last owner") => {
                                Err(StepError::needs_person(last_owner(login, org)))
                            }
                            Err(e) => Err(explain(e, org, &format!("remove {login} from {org}"))),
                        }
                    })
                    .await?;
                removed_any = true;
                said.push(match (found, gone) {
                    (Found::Pending { .. }, _) => format!(
                        "cancelled {login}'s pending invitation to {org} (as {}; they had not accepted it)",
                        role.as_str()
                    ),
                    (_, true) => format!("{login} was already gone from {org} (removed at GitHub meanwhile)"),
                    _ => format!(
                        "removed {login} (was {}) from {org}; their forks of the org's private repositories are deleted by GitHub; personal access tokens and SSH keys stay theirs but no longer reach {org}'s resources",
                        role.as_str()
                    ),
                });
            }
        }

        let ids: Vec<i64> = steps
            .read("find_email_invitations", |_| async move {
                let all = c
                    .pending_invitations(0)
                    .await
                    .map_err(|e| explain(e, org, "list the organisation's pending invitations"))?;
                Ok(all.into_iter().filter(|i| i.email_is(email.as_str())).map(|i| i.id).collect())
            })
            .await?;
        for id in ids {
            let cancelled: bool = steps
                .run(format!("cancel_invitation:{id}"), |attempt| async move {
                    match c.cancel_invitation(id).await {
                        Ok(found) => Ok(found || attempt.in_doubt),
                        Err(e) => Err(explain(e, org, &format!("cancel invitation {id}"))),
                    }
                })
                .await?;
            if cancelled {
                removed_any = true;
                said.push(format!("cancelled the pending invitation {id} sent to {email}"));
            } else {
                said.push(format!(
                    "invitation {id} to {email} was no longer pending (cancelled, or accepted meanwhile: check {org}'s People page)"
                ));
            }
        }

        if let (Some(login), Found::Absent) = (app.login.as_deref(), found) {
            let collaborator: bool = steps
                .read(format!("find_outside_collaborator:{login}"), |_| async move {
                    let all = c
                        .outside_collaborators(0)
                        .await
                        .map_err(|e| explain(e, org, "list the organisation's outside collaborators"))?;
                    Ok(all.iter().any(|u| u.login.eq_ignore_ascii_case(login)))
                })
                .await?;
            if collaborator && !app.remove_outside_collaborator {
                said.push(format!("{login} is not a member of {org}"));
                return Ok(Outcome::needs_person(
                    format!("{}. {}", said.join("; "), outside_collaborator(login, org)),
                    Some(Access::Active),
                ));
            }
            if collaborator {
                steps
                    .run(format!("remove_outside_collaborator:{login}"), |_| async move {
                        c.remove_outside_collaborator(login)
                            .await
                            .map_err(|e| explain(e, org, &format!("remove outside collaborator {login}")))
                    })
                    .await?;
                removed_any = true;
                said.push(format!("removed {login} as an outside collaborator from every repository of {org}"));
            } else if said.is_empty() {
                said.push(format!(
                    "{login} is not a member of {org}, has no pending invitation and is no outside collaborator; nothing to remove"
                ));
            }
        }
        if said.is_empty() {
            said.push(format!("no pending invitation to {org} for {email}; nothing to remove"));
        }
        Ok(Outcome::done(said.join("; "), if removed_any { Access::Removed } else { Access::Absent }))
    }
}
