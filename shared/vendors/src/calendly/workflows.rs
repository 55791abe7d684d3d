//! Calendly joiner, mover and leaver workflows, as journaled steps.
//!
//! Membership is all there is to grant (roles cannot be set through the REST API):
//! - joiner and mover: the person ends a member (`active`) or with a pending
//!   invitation (`invited`), invited at most once;
//! - leaver: their membership is removed (`removed`), or their pending
//!   invitation revoked (`absent`: they never were a member); the owner is left
//!   to a person.
//!
//! Requests per run, with the organization's URI in the worker's cache (one
//! `GET /users/me` more when it is not), whatever the organization's size:
//! - joiner and mover: 3 for someone new (`GET /organization_memberships?email=`,
//!   `GET /organizations/{uuid}/invitations?email=&status=pending`, `POST` the
//!   invitation): the API's minimum when looking before inviting; 2 when an
//!   invitation is already pending, 1 for a member;
//! - leaver: 2 for a member (the filtered membership look-up, `DELETE` it: its 204
//!   is the proof, nothing is read back); 3 for a pending invitation (both
//!   look-ups, `DELETE` the invitation); 2 for someone absent; 1 for the owner.

use super::client::{Client, Invitation, Organization};
use crate::catalog::Cached;
use crate::http::HttpError;
use lifecycle_domain::EmployeeEmail;
use lifecycle_engine::{Access, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub struct Calendly {
    pub(super) client: Client,
    /// The token's organization (`GET /users/me`), kept for `catalog_max_age`.
    pub(super) organization: Cached<Organization>,
}

/// Where a joiner or mover left the person.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum Joined {
    Member {
        membership_uuid: String,
        role: String,
    },
    Invited {
        invitation_uuid: String,
        /// We sent it (in this step, or in an earlier attempt whose answer was lost).
        sent_by_us: bool,
        /// An earlier, in-doubt attempt had already sent it.
        #[serde(default)]
        adopted: bool,
        #[serde(default)]
        since: Option<String>,
    },
}

/// What a leaver has at Calendly, looked up once per run.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "found", rename_all = "snake_case")]
enum Found {
    Member {
        membership_uuid: String,
        role: String,
    },
    Invited {
        invitation_uuid: String,
        #[serde(default)]
        since: Option<String>,
    },
    Nobody,
}

#[derive(Debug, Serialize, Deserialize)]
struct Removed {
    membership_uuid: String,
    /// It was already gone before this run removed it (someone did in Calendly).
    already_gone: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Revocation {
    /// Revoked now, or by an earlier attempt whose answer was lost (`adopted`).
    Revoked { invitation_uuid: String, adopted: bool },
    /// The person declined it meanwhile: nothing left to revoke.
    Declined { invitation_uuid: String },
    /// The person accepted it meanwhile: their new membership was removed instead.
    AcceptedThenRemoved { invitation_uuid: String, membership_uuid: String },
}

impl Calendly {
    /// The token's organization, from the worker's copy (one `GET /users/me` when it has none
    /// younger than `catalog_max_age`). Plain code, not a step: it changes nothing at Calendly
    /// and a retry may as well ask the cache again.
    pub(super) async fn organization(&self) -> Result<Arc<Organization>, StepError> {
        let c = &self.client;
        self.organization
            .get(|| async move {
                match c.organization().await.map_err(|e| explain(e, "read the token's user (/users/me)"))? {
                    Ok(org) => Ok(org),
                    Err(me) => Err(StepError::permanent(format!(
                        "the configured Calendly token belongs to {}, who is in no Calendly organization: set vendors.calendly.token to a personal access token of an owner or admin of the organization, then replay this run",
                        me.email.as_deref().unwrap_or(&me.uri)
                    ))),
                }
            })
            .await
    }

    /// The person's membership, else their pending invitation: two filtered requests at most
    /// (one when they are a member), whatever the organization's size. A 404 to these can
    /// only be about the organization (the token's user moved since it was cached): it is
    /// fetched again once, and the lookup repeated with it if it changed.
    pub(super) async fn look(&self, email: &EmployeeEmail) -> Result<(Arc<Organization>, Option<Joined>), StepError> {
        let c = &self.client;
        let org = self.organization().await?;
        let doing = format!("look {email} up among the organization's members and invitations");
        match look_for_member_or_invitation(c, &org, email).await {
            Ok(found) => Ok((org, found)),
            Err(e) if e.is_not_found() => {
                self.organization.invalidate().await;
                let fresh = self.organization().await?;
                if fresh.uri == org.uri {
                    return Err(explain(e, &doing));
                }
                let found = look_for_member_or_invitation(c, &fresh, email).await.map_err(|e| explain(e, &doing))?;
                Ok((fresh, found))
            }
            Err(e) => Err(explain(e, &doing)),
        }
    }

    /// Joiner and mover: a member stays a member; otherwise the person is
    /// invited, unless an invitation is already pending. Calendly only makes
    /// them a member when they accept the email.
    ///
    /// One step: the look-up happens inside it, before the invitation, on every attempt
    /// (so an attempt in doubt always looks before inviting again).
    pub(super) async fn join(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let joined: Joined = steps
            .run("invite", |attempt| async move {
                let (org, found) = self.look(email).await?;
                if let Some(found) = found {
                    // In doubt, a pending invitation is most likely the one the last attempt sent.
                    return Ok(if attempt.in_doubt { adopt(found) } else { found });
                }
                match c.invite(&org, email).await {
                    Ok(inv) => Ok(Joined::Invited {
                        invitation_uuid: inv.uuid()?.to_string(),
                        sent_by_us: true,
                        adopted: false,
                        since: inv.created_at,
                    }),
                    // Calendly refuses the address (its 400 naming `email`; a 409 is read the
                    // same way): most likely invited or joined since we looked, so adopt that.
                    Err(e @ HttpError::Rejected { status: 400 | 409, .. }) => {
                        match look_for_member_or_invitation(c, &org, email)
                            .await
                            .map_err(|e| explain(e, &format!("look {email} up again")))?
                        {
                            Some(found) => Ok(found),
                            None => Err(StepError::permanent(format!(
                                "Calendly refused to invite {email} ({}) and shows neither a membership nor a pending invitation for them; check the person in Calendly, then replay this run",
                                e.message()
                            ))),
                        }
                    }
                    Err(e) => Err(explain(e, &format!("invite {email}"))),
                }
            })
            .await?;
        Ok(match joined {
            Joined::Member { membership_uuid, role } => Outcome::done(
                format!(
                    "{email} is already a member of the Calendly organization (membership {membership_uuid}, role {role}); nothing to do"
                ),
                Access::Active,
            ),
            Joined::Invited { invitation_uuid, sent_by_us: true, .. } => Outcome::done(
                format!(
                    "invited {email} to the Calendly organization (invitation {invitation_uuid}): invited, pending acceptance; they become a member when they accept the emailed invitation"
                ),
                Access::Invited,
            ),
            Joined::Invited { invitation_uuid, since, .. } => Outcome::done(
                format!(
                    "an invitation for {email} was already pending{} (invitation {invitation_uuid}), so none was sent again: invited, pending acceptance",
                    since.map(|s| format!(" since {s}")).unwrap_or_default()
                ),
                Access::Invited,
            ),
        })
    }

    /// Leaver: remove the membership (never the owner's), or revoke a pending invitation.
    ///
    /// What the person has is a journaled read (`find_person`): the step after it is keyed
    /// by the id it found, and a retry must meet the same key and know what was there, to
    /// tell "removed by our lost attempt" from "never a member".
    pub(super) async fn leave(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let found: Found = steps
            .read("find_person", |_| async move {
                Ok(match self.look(email).await?.1 {
                    Some(Joined::Member { membership_uuid, role }) => Found::Member { membership_uuid, role },
                    Some(Joined::Invited { invitation_uuid, since, .. }) => Found::Invited { invitation_uuid, since },
                    None => Found::Nobody,
                })
            })
            .await?;

        match found {
            Found::Nobody => Ok(Outcome::done(
                format!("{email} has no Calendly membership and no pending invitation; nothing to remove"),
                Access::Absent,
            )),
            Found::Member { membership_uuid, role } if role.eq_ignore_ascii_case("owner") => {
                Ok(Outcome::needs_person(owner_message(email, &membership_uuid), Some(Access::Active)))
            }
            Found::Member { membership_uuid, .. } => {
                let removed = self.remove(steps, email, &membership_uuid).await?;
                let what = if removed.already_gone { "found already removed" } else { "removed" };
                Ok(Outcome::done(
                    format!(
                        "{what} {email} from the Calendly organization (membership {membership_uuid}); their Calendly account itself remains, as Calendly does not delete accounts through its API"
                    ),
                    Access::Removed,
                ))
            }
            Found::Invited { invitation_uuid, .. } => {
                let uuid = invitation_uuid.as_str();
                let revoked: Revocation = steps
                    .run(format!("revoke_invitation:{uuid}"), |attempt| async move {
                        let org = self.organization().await?;
                        let org_ref = &*org;
                        match c.revoke_invitation(org_ref, uuid).await {
                            Ok(()) => Ok(Revocation::Revoked { invitation_uuid: uuid.to_string(), adopted: false }),
                            // Not pending any more: look at what it became.
                            Err(e @ (HttpError::NotFound { .. } | HttpError::Rejected { status: 400, .. })) => {
                                match c.find_invitation(org_ref, email, uuid).await? {
                                    // Revoked invitations leave the listings.
                                    None => Ok(Revocation::Revoked {
                                        invitation_uuid: uuid.to_string(),
                                        adopted: attempt.in_doubt,
                                    }),
                                    Some(i) if i.status.eq_ignore_ascii_case("declined") => {
                                        Ok(Revocation::Declined { invitation_uuid: uuid.to_string() })
                                    }
                                    Some(i) if i.status.eq_ignore_ascii_case("accepted") => {
                                        remove_after_acceptance(c, org_ref, email, uuid).await
                                    }
                                    Some(_) => Err(explain(e, &format!("revoke the invitation of {email}"))),
                                }
                            }
                            Err(e) => Err(explain(e, &format!("revoke the invitation of {email}"))),
                        }
                    })
                    .await?;
                Ok(match revoked {
                    Revocation::Revoked { .. } => Outcome::done(
                        format!(
                            "revoked the pending Calendly invitation of {email} (invitation {invitation_uuid}); they had not accepted it, so they never were a member"
                        ),
                        Access::Absent,
                    ),
                    Revocation::Declined { .. } => Outcome::done(
                        format!("{email} declined their Calendly invitation (invitation {invitation_uuid}); nothing to remove"),
                        Access::Absent,
                    ),
                    Revocation::AcceptedThenRemoved { membership_uuid, .. } => Outcome::done(
                        format!(
                            "{email} accepted their Calendly invitation while it was being revoked; removed their new membership {membership_uuid} instead (their Calendly account itself remains)"
                        ),
                        Access::Removed,
                    ),
                })
            }
        }
    }

    /// Deletes the membership (a 404 means it is already gone). Calendly's 204 is the proof:
    /// no read-back after it.
    async fn remove(&self, steps: &mut Steps, email: &EmployeeEmail, uuid: &str) -> Result<Removed, StepError> {
        let c = &self.client;
        steps
            .run(format!("remove_membership:{uuid}"), |attempt| async move {
                match c.remove_membership(uuid).await {
                    Ok(()) => Ok(Removed { membership_uuid: uuid.to_string(), already_gone: false }),
                    // Gone: removed by our in-doubt attempt, or by someone in Calendly.
                    Err(e) if e.is_not_found() => {
                        Ok(Removed { membership_uuid: uuid.to_string(), already_gone: !attempt.in_doubt })
                    }
                    // The person became the owner since we looked.
                    Err(HttpError::Forbidden { message, .. }) if message.to_lowercase().contains("owner") => {
                        Err(StepError::needs_person(owner_message(email, uuid)))
                    }
                    Err(e) => Err(explain(e, &format!("remove {email} from the organization"))),
                }
            })
            .await
    }
}

/// A membership, or else a pending invitation, for `email`: one or two requests, each
/// filtered by Calendly on the address.
async fn look_for_member_or_invitation(
    c: &Client,
    org: &Organization,
    email: &EmployeeEmail,
) -> Result<Option<Joined>, HttpError> {
    if let Some(m) = c.find_membership(org, email).await? {
        return Ok(Some(Joined::Member { membership_uuid: m.uuid()?.to_string(), role: m.role.clone() }));
    }
    let pending: Option<Invitation> = c.find_pending_invitation(org, email).await?;
    Ok(match pending {
        Some(i) => Some(Joined::Invited {
            invitation_uuid: i.uuid()?.to_string(),
            sent_by_us: false,
            adopted: false,
            since: i.created_at,
        }),
        None => None,
    })
}

/// What an in-doubt invitation attempt finds: most likely its own invitation.
fn adopt(found: Joined) -> Joined {
    match found {
        Joined::Invited { invitation_uuid, since, .. } => {
            Joined::Invited { invitation_uuid, sent_by_us: true, adopted: true, since }
        }
        member => member,
    }
}

/// The invitation was accepted while we revoked it: the person is now a member; remove them.
async fn remove_after_acceptance(
    c: &Client,
    org: &Organization,
    email: &EmployeeEmail,
    invitation_uuid: &str,
) -> Result<Revocation, StepError> {
    let Some(m) = c.find_membership(org, email).await? else {
        // Accepted, then removed by someone else: nothing left.
        return Ok(Revocation::Revoked { invitation_uuid: invitation_uuid.to_string(), adopted: true });
    };
    let membership_uuid = m.uuid()?.to_string();
    if m.is_owner() {
        return Err(StepError::needs_person(owner_message(email, &membership_uuid)));
    }
    match c.remove_membership(&membership_uuid).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(explain(e, &format!("remove {email} from the organization"))),
    }
    Ok(Revocation::AcceptedThenRemoved { invitation_uuid: invitation_uuid.to_string(), membership_uuid })
}

pub(super) fn owner_message(email: &EmployeeEmail, membership_uuid: &str) -> String {
    format!(
        "{email} is the owner of the Calendly organization (membership {membership_uuid}), and Calendly does not let the owner be removed through its API: in Calendly, transfer the organization's ownership to another member, then replay this run to remove them"
    )
}

/// What went wrong, for a person: credentials and permissions say what to fix.
pub(super) fn explain(e: HttpError, doing: &str) -> StepError {
    match &e {
        HttpError::Unauthorized { .. } => StepError::permanent(format!(
            "Calendly rejected the configured token while trying to {doing} (401): the personal access token is invalid or was revoked; set a valid one in vendors.calendly.token, then replay this run"
        )),
        // The definition's other 403s on invitations (PostOrganizationsUUIDInvitations,
        // RevokeUsersOrganizationInvitation) are not about the token: say what they are about.
        HttpError::Forbidden { message, .. } if message.to_lowercase().contains("scim") => {
            StepError::permanent(format!(
                "Calendly refused to {doing} (403: {message}): this organization is provisioned through SCIM, so its members are invited and removed in the identity provider, not through Calendly's API; do it there"
            ))
        }
        HttpError::Forbidden { message, .. }
            if message.contains("seats purchased") || message.contains("invitations allotted") =>
        {
            StepError::permanent(format!(
                "Calendly refused to {doing} (403: {message}): the organization has no seat left for another invitation; add seats (or free one) in Calendly's billing, then replay this run"
            ))
        }
        HttpError::Forbidden { message, .. } => StepError::permanent(format!(
            "Calendly refused to {doing} (403: {message}): the configured token must belong to an owner or admin of the organization; set such a personal access token in vendors.calendly.token, then replay this run"
        )),
        _ => StepError::from(e).context(doing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::VendorKind;

    fn forbidden(message: &str) -> String {
        let e = HttpError::Forbidden { vendor: VendorKind::Calendly, message: message.into() };
        match explain(e, "invite ada@example.com") {
            StepError::Permanent { message } => message,
            other => panic!("{other:?}"),
        }
    }

    /// The definition's 403 messages for an invitation, each explained as what it is.
    #[test]
    fn each_403_says_what_to_fix() {
        let seats = forbidden("You already sent all the invitations you're allotted based upon the number of seats purchased with your account. Please purchase more seats to send more invitations.");
        assert!(seats.contains("no seat left"), "{seats}");
        let trial = forbidden("You already sent all the invitations allotted to you with a trial account.");
        assert!(trial.contains("no seat left"), "{trial}");
        let scim = forbidden("You cannot perform this action for an organization with SCIM enabled.");
        assert!(scim.contains("identity provider") && !scim.contains("vendors.calendly.token"), "{scim}");
        let rights = forbidden("You do not have permission");
        assert!(rights.contains("owner or admin") && rights.contains("vendors.calendly.token"), "{rights}");
    }
}
