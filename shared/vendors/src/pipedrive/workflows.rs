//! Pipedrive joiner, mover, leaver and deal-reassignment workflows, as journaled steps.

use super::client::{Client, Role, RoleAssignment, User};
use super::Seen;
use crate::adapter::Flow;
use crate::catalog::Cached;
use crate::http::HttpError;
use lifecycle_domain::apps::PipedriveApp;
use lifecycle_domain::{EmployeeEmail, Workflow};
use lifecycle_engine::{Access, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};

/// A leaver's deals are re-listed after each pass until none is left; deals
/// that keep appearing after this many passes make the run retry later.
const MAX_DEAL_PASSES: u32 = 10;

pub struct Pipedrive {
    pub(super) client: Client,
    pub(super) fallback_owner: Option<EmployeeEmail>,
    /// `GET /roles`, kept for `catalog_max_age`.
    pub(super) roles: Cached<Vec<Role>>,
    /// What directory reads learnt and keep (the token's own user, the roles' spellings).
    pub(super) seen: Seen,
}

pub(super) struct RoleRef {
    pub(super) id: i64,
    pub(super) name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserRef {
    user_id: i64,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    reactivated: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FoundUser {
    pub(super) user_id: i64,
    pub(super) active: bool,
    /// From `access[]` ([`User::is_admin`]); the name stays for journals already written.
    pub(super) is_admin: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Successor {
    pub(super) user_id: i64,
    pub(super) email: String,
    /// "successor" or "fallback owner".
    pub(super) source: String,
    /// Why the event's successor does not receive the deals, when the
    /// fallback owner does instead ("x@y has no Pipedrive user"). Shown in
    /// the run's outcome and, as this step's output, in its timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) passed_over: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reassigned {
    deal_id: i64,
    to_user_id: i64,
    /// True when an earlier, in-doubt attempt had already done it.
    #[serde(default)]
    adopted: bool,
    /// True when, on a second look, the deal was no longer the leaver's open deal.
    #[serde(default)]
    skipped: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Changed {
    user_id: i64,
    changed: bool,
}

/// Pipedrive's workflows: the three every vendor has, and `reassign_deals`,
/// Pipedrive's own: a user deactivated outside our workflows (a webhook told
/// us) whose open deals still need an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipedriveFlow {
    Joiner,
    Mover,
    Leaver,
    ReassignDeals,
}

impl Flow for PipedriveFlow {
    const WORKFLOWS: &'static [Workflow] =
        &[Workflow::Joiner, Workflow::Mover, Workflow::Leaver, Workflow::ReassignDeals];

    fn of(workflow: Workflow) -> Option<Self> {
        Some(match workflow {
            Workflow::Joiner => PipedriveFlow::Joiner,
            Workflow::Mover => PipedriveFlow::Mover,
            Workflow::Leaver => PipedriveFlow::Leaver,
            Workflow::ReassignDeals => PipedriveFlow::ReassignDeals,
        })
    }
}

impl Pipedrive {
    /// Role first (an unknown role fails before anything is created), then
    /// the user (found, reactivated or created), then the assignment. Three
    /// requests for a new person (find, create, assign): the role catalogue is
    /// cached, and the writes' answers are the proof (no re-reading).
    pub(super) async fn joiner(
        &self,
        run: &RunSpec,
        app: &PipedriveApp,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let role = self.resolve_role(app).await?;
        let user: UserRef = steps
            .run("ensure_user", |_| async move {
                if let Some(u) = c.find_user_by_email(email).await? {
                    if !u.active_flag {
                        c.set_active(u.id, true).await?;
                        return Ok(UserRef { user_id: u.id, created: false, reactivated: true });
                    }
                    return Ok(UserRef { user_id: u.id, created: false, reactivated: false });
                }
                match c.create_user(email).await {
                    Ok(u) => Ok(UserRef { user_id: u.id, created: true, reactivated: false }),
                    // Created meanwhile (by an attempt whose response was lost,
                    // or by someone else): adopt it rather than fail.
                    Err(HttpError::Rejected { status: 400, .. }) => match c.find_user_by_email(email).await? {
                        Some(u) => Ok(UserRef { user_id: u.id, created: false, reactivated: false }),
                        None => Err(StepError::permanent(format!(
                            "Pipedrive refused to create {email} and no such user exists"
                        ))),
                    },
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        let user_id = user.user_id;
        // A user this run created has no role yet: assign without looking.
        self.converge_role(steps, user_id, &role, user.created).await?;
        let what = if user.created {
            "created"
        } else if user.reactivated {
            "reactivated"
        } else {
            "found existing"
        };
        Ok(Outcome::done(format!("{what} Pipedrive user {user_id} ({email}) with role {}", role.name), Access::Active))
    }

    pub(super) async fn mover(
        &self,
        run: &RunSpec,
        app: &PipedriveApp,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let role = self.resolve_role(app).await?;
        let found: Option<FoundUser> =
            steps.read("find_user", |_| async move { Ok(found(c.find_user_by_email(email).await?)) }).await?;
        let Some(user) = found else {
            return Ok(Outcome::needs_person(no_user_to_move(email), Some(Access::Absent)));
        };
        let changed = self.converge_role(steps, user.user_id, &role, false).await?;
        let note = if user.active { "" } else { " (the user is deactivated)" };
        let summary = if changed {
            format!("moved Pipedrive user {} to role {}{note}", user.user_id, role.name)
        } else {
            format!("Pipedrive user {} already had role {}{note}", user.user_id, role.name)
        };
        Ok(Outcome::done(summary, if user.active { Access::Active } else { Access::Deactivated }))
    }

    /// Every open deal goes to the successor before the user is deactivated.
    /// With `deactivate = false` (the user was deactivated in Pipedrive
    /// itself), only the deals are reassigned.
    pub(super) async fn leaver(
        &self,
        run: &RunSpec,
        steps: &mut Steps,
        deactivate: bool,
    ) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let found: Option<FoundUser> =
            steps.read("find_user", |_| async move { Ok(found(c.find_user_by_email(email).await?)) }).await?;
        let Some(user) = found else {
            return Ok(Outcome::done(nobody_to_remove(email), Access::Absent));
        };
        let user_id = user.user_id;

        if deactivate && user.active && user.is_admin {
            steps.read("check_not_last_admin", |_| self.check_not_last_admin(email, user_id)).await?;
        }

        let mut successor: Option<Successor> = steps.recorded("resolve_successor");
        // Deals whose reassignment an earlier attempt began without recording
        // the result: the deal may already have moved (and so no longer be
        // listed). They are checked first, so the journal tells the truth.
        let mut in_doubt: Vec<i64> =
            steps.in_doubt("reassign_deal:").iter().filter_map(|k| k.rsplit(':').next()?.parse().ok()).collect();
        for pass in 1..=MAX_DEAL_PASSES {
            // Re-listed on every attempt, never replayed from the journal: the
            // truth about open deals is what Pipedrive says now.
            let mut deals: Vec<i64> = std::mem::take(&mut in_doubt);
            for d in c.open_deals(user_id).await.map_err(|e| StepError::from(e).context("list open deals"))? {
                if !deals.contains(&d.id) {
                    deals.push(d.id);
                }
            }
            if deals.is_empty() {
                break;
            }
            if pass == MAX_DEAL_PASSES {
                return Err(StepError::transient(format!(
                    "{} open deals still belong to user {user_id} after {MAX_DEAL_PASSES} passes; trying again later",
                    deals.len()
                )));
            }
            let to = match &successor {
                Some(s) => s.user_id,
                None => {
                    let s = self.resolve_successor(run, steps, user_id, deals.len()).await?;
                    let id = s.user_id;
                    successor = Some(s);
                    id
                }
            };
            for deal_id in deals {
                let _: Reassigned = steps
                    .run(format!("reassign_deal:{deal_id}"), |attempt| async move {
                        if attempt.in_doubt {
                            // The last attempt may have landed: look before writing again.
                            let current = c.get_deal(deal_id).await?;
                            if current.owner_id == Some(to) {
                                return Ok(Reassigned { deal_id, to_user_id: to, adopted: true, skipped: false });
                            }
                            if current.owner_id != Some(user_id)
                                || current.is_deleted
                                || current.status.as_deref().is_some_and(|s| s != "open")
                            {
                                // Someone else moved or closed it meanwhile: not ours to change.
                                return Ok(Reassigned { deal_id, to_user_id: to, adopted: false, skipped: true });
                            }
                        }
                        c.set_deal_owner(deal_id, to).await?;
                        Ok(Reassigned { deal_id, to_user_id: to, adopted: false, skipped: false })
                    })
                    .await?;
            }
        }
        // Count from the journal, not this attempt: after a retry or a replay the
        // deals moved earlier are no longer listed, but they were moved by this run.
        let reassigned = steps
            .completed("reassign_deal:")
            .iter()
            .filter_map(|k| steps.recorded::<Reassigned>(k))
            .filter(|r| !r.skipped)
            .count();
        let deals_note = match (&successor, reassigned) {
            (_, 0) => "no open deals to reassign".to_string(),
            (Some(s), n) => {
                let why = s
                    .passed_over
                    .as_ref()
                    .map(|p| format!(": the named successor {p} and was passed over"))
                    .unwrap_or_default();
                format!("reassigned {n} open deal(s) to {} {} (user {}){why}", s.source, s.email, s.user_id)
            }
            (None, n) => format!("reassigned {n} open deal(s)"),
        };
        if !deactivate {
            return Ok(Outcome::done(format!("Pipedrive user {user_id} ({email}): {deals_note}"), Access::Deactivated));
        }

        let seen_active = user.active;
        let change: Changed = steps
            .run("deactivate", |attempt| async move {
                // The find above said whether the user is active; look again
                // only when it said not (it may be a journaled answer from an
                // earlier attempt) or an earlier deactivation is in doubt.
                // Deactivating is idempotent, so an active user is just deactivated.
                if attempt.in_doubt || !seen_active {
                    let u = c.get_user(user_id).await?;
                    if !u.active_flag {
                        return Ok(Changed { user_id, changed: false });
                    }
                }
                match c.set_active(user_id, false).await {
                    // The answer is the user as it now stands: the proof.
                    Ok(u) if !u.active_flag => Ok(Changed { user_id, changed: true }),
                    Ok(_) => Err(StepError::transient(format!(
                        "Pipedrive answered the deactivation of user {user_id} with the user still active; trying again later"
                    ))),
                    Err(e @ HttpError::Rejected { .. }) if e.message().to_lowercase().contains("last admin") => Err(StepError::needs_person(format!(
                        "Pipedrive refused to deactivate {email} (user {user_id}) because they are the last admin: make another user an admin, then replay this run"
                    ))),
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        let what = if change.changed { "deactivated" } else { "was already deactivated" };
        Ok(Outcome::done(format!("{deals_note}, then {what} Pipedrive user {user_id} ({email})"), Access::Deactivated))
    }

    /// The event's role, by name, from the cached catalogue (asked again
    /// once before a name is called unknown). No step: nothing to journal.
    /// A plan calls it too: an unknown role stops both with this message.
    pub(super) async fn resolve_role(&self, app: &PipedriveApp) -> Result<RoleRef, StepError> {
        let Some(wanted) = app.role.clone() else {
            return Err(StepError::permanent("the event names no Pipedrive role (apps.pipedrive.role)"));
        };
        let c = &self.client;
        let pick = |roles: &Vec<Role>| {
            roles
                .iter()
                .find(|r| r.name == wanted)
                .or_else(|| roles.iter().find(|r| r.name.eq_ignore_ascii_case(&wanted)))
                .map(|r| RoleRef { id: r.id, name: r.name.clone() })
        };
        if let Some(role) = self.roles.find(|| c.roles(), pick).await? {
            return Ok(role);
        }
        let roles = self.roles.get(|| c.roles()).await?;
        let known: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
        Err(StepError::permanent(format!(
            "Pipedrive has no role named \"{wanted}\" (roles: {}); create it in Pipedrive or fix the event, then replay",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )))
    }

    /// Makes `role` the user's only role. Returns whether anything changed.
    /// `fresh`: the user was created by this run, so has no role: assign
    /// without listing first. An assignment in doubt (sent, no answer) is
    /// looked at before it is sent again, as every write in doubt is: one
    /// read, and only on that retry.
    async fn converge_role(
        &self,
        steps: &mut Steps,
        user_id: i64,
        role: &RoleRef,
        fresh: bool,
    ) -> Result<bool, StepError> {
        let c = &self.client;
        let role_id = role.id;
        let changed: Changed = steps
            .run(format!("assign_role:{role_id}"), |attempt| async move {
                let look = !fresh || attempt.in_doubt;
                let current = if look { c.role_assignments(user_id).await? } else { Vec::new() };
                match RoleChange::of(&current, role_id) {
                    RoleChange::Assign => {
                        // A user holds one role: assigning moves them to it.
                        if let Err(e) = c.assign_role(role_id, user_id).await {
                            if matches!(e, HttpError::Rejected { status: 404, .. }) {
                                // The role was deleted since the catalogue was read.
                                self.roles.invalidate().await;
                            }
                            return Err(e.into());
                        }
                        Ok(Changed { user_id, changed: true })
                    }
                    // Already there (an earlier attempt in doubt may have put it
                    // there), beside others given by hand: remove those.
                    RoleChange::RemoveOthers(extras) => {
                        for extra in &extras {
                            c.unassign_role(*extra, user_id).await?;
                        }
                        Ok(Changed { user_id, changed: attempt.in_doubt || !extras.is_empty() })
                    }
                }
            })
            .await?;
        Ok(changed.changed)
    }

    /// The successor's active Pipedrive user, else the configured fallback
    /// owner's, saying why the successor was passed over; when neither can
    /// take the deals a person must decide where they go.
    async fn resolve_successor(
        &self,
        run: &RunSpec,
        steps: &mut Steps,
        leaver_id: i64,
        open: usize,
    ) -> Result<Successor, StepError> {
        steps.read("resolve_successor", |_| self.find_successor(run, leaver_id, open)).await
    }

    /// [`resolve_successor`](Self::resolve_successor)'s reads, shared with
    /// the plan: the first candidate with an active user other than the
    /// leaver, or the person's task naming every candidate and why not.
    pub(super) async fn find_successor(
        &self,
        run: &RunSpec,
        leaver_id: i64,
        open: usize,
    ) -> Result<Successor, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let mut tried = Vec::new();
        let mut passed_over = None;
        for (candidate, source) in
            [(run.input.successor_email.as_ref(), "successor"), (self.fallback_owner.as_ref(), "fallback owner")]
        {
            let Some(candidate) = candidate else { continue };
            let why = match c.find_user_by_email(candidate).await? {
                Some(u) if u.active_flag && u.id != leaver_id => {
                    return Ok(Successor {
                        user_id: u.id,
                        email: candidate.to_string(),
                        source: source.into(),
                        passed_over,
                    });
                }
                Some(u) if u.id == leaver_id => format!("is the leaving user (Pipedrive user {})", u.id),
                Some(u) => format!("is deactivated in Pipedrive (user {}) and cannot own deals", u.id),
                None => "has no Pipedrive user".to_string(),
            };
            if source == "successor" {
                passed_over = Some(format!("{candidate} {why}"));
            }
            tried.push(format!("{source} {candidate} {why}"));
        }
        if tried.is_empty() {
            tried.push("the event names no successor and no fallback owner is configured".into());
        }
        Err(StepError::needs_person(format!(
            "{email} owns {open} open Pipedrive deal(s) and nobody can receive them ({}); reassign them in Pipedrive or set vendors.pipedrive.fallback_owner_email, then replay this run. The user was not deactivated.",
            tried.join("; ")
        )))
    }

    /// A leaver may not deactivate the company's last active admin: the
    /// person's task that says so, else how many active admins there are.
    /// One `GET /api/v1/users` (the whole company, one request), only for a leaver who is an
    /// admin; an admin is an active user whose `access[]` says `admin` for `global` or `sales`.
    pub(super) async fn check_not_last_admin(&self, email: &EmployeeEmail, user_id: i64) -> Result<usize, StepError> {
        let admins = self.client.list_users().await?.into_iter().filter(|u| u.active_flag && u.is_admin()).count();
        if admins <= 1 {
            return Err(StepError::needs_person(format!(
                "{email} (Pipedrive user {user_id}) is the company's last active admin and Pipedrive cannot deactivate the last admin: make another user an admin in Pipedrive, then replay this run"
            )));
        }
        Ok(admins)
    }
}

/// What makes a role a user's only role, given the user's assignments now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RoleChange {
    /// Assign it (a user holds one role: that moves them off any other).
    Assign,
    /// The user has it: remove these other roles beside it (none: nothing to do).
    RemoveOthers(Vec<i64>),
}

impl RoleChange {
    pub(super) fn of(current: &[RoleAssignment], role_id: i64) -> Self {
        if current.iter().any(|a| a.role_id == role_id) {
            RoleChange::RemoveOthers(current.iter().map(|a| a.role_id).filter(|r| *r != role_id).collect())
        } else {
            RoleChange::Assign
        }
    }
}

/// A mover's task when the person has no user: there is no role to change.
pub(super) fn no_user_to_move(email: &EmployeeEmail) -> String {
    format!("no Pipedrive user has the address {email}, so there is no role to change; send a joiner event to create the account")
}

/// A leaver of someone without a user: done, nothing to remove.
pub(super) fn nobody_to_remove(email: &EmployeeEmail) -> String {
    format!("no Pipedrive user has the address {email}; nothing to remove")
}

pub(super) fn found(u: Option<User>) -> Option<FoundUser> {
    u.map(|u| FoundUser { user_id: u.id, active: u.active_flag, is_admin: u.is_admin() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipedrive_has_every_workflow_and_reassign_deals_is_its_own() {
        crate::adapter::tests::flow_agrees_with_its_list::<PipedriveFlow>();
        assert_eq!(PipedriveFlow::of(Workflow::ReassignDeals), Some(PipedriveFlow::ReassignDeals));
    }
}
