//! CrowdStrike Falcon joiner, mover and leaver workflows, as journaled steps.
//!
//! Requests per run (the role catalogue cached, the token held; a cold worker adds one token
//! request, and one catalogue request for a joiner or mover):
//! - joiner of someone new: find by login address (queryUserV1), create (createUserV1), grant
//!   the roles (userRolesActionV1) (3; a new user holds no roles, so there is nothing to read
//!   first);
//! - joiner of someone who already has an account: find, read the names (retrieveUsersGETV1)
//!   and correct them (updateUserV1), read the roles (CombinedUserRolesV2), grant what is
//!   missing, revoke what is extra in one request;
//! - mover: find and read the roles, grant what is missing, revoke what is extra (4 when both;
//!   userRolesActionV1 takes one action a request);
//! - leaver: find and read the roles, revoke them all in one request, delete (deleteUserV1) (4).
//!
//! A role action names the tenant's CID, which the client learns from the answers it already
//! gets (the created user, the user's grants, a user read); only a worker that has seen none
//! yet reads the user once to learn it (a mover of someone who holds no role, first thing
//! after a start).
//!
//! A 2xx grant, revoke or delete is the proof that it happened: nothing is read back. A step
//! whose earlier attempt is in doubt looks at the vendor before it writes again. Journal
//! outputs keep their field names: `uid` is the Falcon user's id (its `uuid` at the API), as it
//! always held, so a run journaled before resumes.

use super::client::Client;
use super::wire::Error;
use crate::catalog::Cached;
use lifecycle_domain::apps::CrowdstrikeApp;
use lifecycle_domain::EmployeeEmail;
use lifecycle_engine::{Access, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub struct CrowdStrike {
    pub(super) client: Client,
    /// queriesRolesV1 `GET /user-management/queries/roles/v1`, kept for `catalog_max_age`.
    pub(super) roles: Cached<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserRef {
    uid: String,
    #[serde(default)]
    created: bool,
}

/// A user found by login address, with the roles it held when the run looked.
#[derive(Debug, Serialize, Deserialize)]
struct Found {
    uid: String,
    roles: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RolePlan {
    /// What the user held when the run looked.
    current: Vec<String>,
    grant: Vec<String>,
    revoke: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Granted {
    uid: String,
    granted: Vec<String>,
    /// Roles an earlier, in-doubt attempt had already granted.
    #[serde(default)]
    adopted: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Revoked {
    uid: String,
    revoked: Vec<String>,
    /// Roles already gone (an earlier attempt, or someone else, revoked them).
    #[serde(default)]
    adopted: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Changed {
    uid: String,
    changed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Deleted {
    uid: String,
    /// True when the user was already gone (an earlier attempt deleted it).
    #[serde(default)]
    adopted: bool,
}

/// What role convergence did.
struct RoleChanges {
    granted: Vec<String>,
    revoked: Vec<String>,
}

impl CrowdStrike {
    /// Roles validated first (an unknown role fails before anything is created), then the
    /// user (found or created), then its roles.
    pub(super) async fn joiner(
        &self,
        run: &RunSpec,
        app: &CrowdstrikeApp,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let wanted = self.validate_roles(&app.roles, steps).await?;
        let (first, last) = names(run);
        let (f, l) = (first.as_str(), last.as_str());
        let user: UserRef = steps
            .run("ensure_user", |_| async move {
                // Looked up on every attempt: an attempt whose answer was lost may have created it.
                if let Some(uid) = c.find_user(email).await? {
                    return Ok(UserRef { uid, created: false });
                }
                match c.create_user(email, f, l).await {
                    Ok(u) => Ok(UserRef { uid: u.uuid, created: true }),
                    // Created meanwhile (by someone else, or a lost answer): adopt it.
                    Err(e) if matches!(e.status(), Some(400 | 409)) => match c.find_user(email).await? {
                        Some(uid) => Ok(UserRef { uid, created: false }),
                        None => Err(StepError::permanent(format!(
                            "CrowdStrike refused to create the user {email} ({}) and no such user exists; check the address, then replay this run",
                            e.message()
                        ))),
                    },
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        let uid = user.uid.clone();
        let plan = if user.created {
            // Falcon creates a user with no roles: everything wanted is to grant.
            let (grant, revoke) = difference(&wanted, &[]);
            RolePlan { current: Vec::new(), grant, revoke }
        } else {
            let u = uid.as_str();
            steps
                .run("update_names", |_| async move {
                    let Some(current) = c.get_user(u).await? else {
                        return Err(vanished(u, email));
                    };
                    let same = current.first_name.as_deref() == Some(f) && current.last_name.as_deref() == Some(l);
                    if !same {
                        c.update_names(u, f, l).await?;
                    }
                    Ok(Changed { uid: u.to_string(), changed: !same })
                })
                .await?;
            let wanted = wanted.as_slice();
            steps
                .read("plan_roles", |_| async move {
                    let current = c.user_roles(u).await?.ok_or_else(|| vanished(u, email))?;
                    let (grant, revoke) = difference(wanted, &current);
                    Ok(RolePlan { current, grant, revoke })
                })
                .await?
        };
        let changes = self.apply_roles(steps, &uid, email, plan).await?;
        let what = if user.created {
            format!(
                "created CrowdStrike Falcon user {uid} ({email}); Falcon emailed them an invitation to set a password"
            )
        } else {
            format!("found existing CrowdStrike Falcon user {uid} ({email})")
        };
        Ok(Outcome::done(format!("{what}; {}", describe_roles(&wanted, &changes)), Access::Active))
    }

    pub(super) async fn mover(
        &self,
        run: &RunSpec,
        app: &CrowdstrikeApp,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError> {
        let email = &run.input.employee.email;
        let wanted = self.validate_roles(&app.roles, steps).await?;
        let Some(user) = self.find_user(steps, email).await? else {
            return Ok(Outcome::needs_person(no_user_to_move(email), Some(Access::Absent)));
        };
        let (grant, revoke) = difference(&wanted, &user.roles);
        let plan = RolePlan { current: user.roles, grant, revoke };
        let changes = self.apply_roles(steps, &user.uid, email, plan).await?;
        Ok(Outcome::done(
            format!("CrowdStrike Falcon user {} ({email}): {}", user.uid, describe_roles(&wanted, &changes)),
            Access::Active,
        ))
    }

    /// Every role revoked (the audit trail), then the user deleted — immediate and
    /// irreversible.
    pub(super) async fn leaver(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let Some(user) = self.find_user(steps, email).await? else {
            return Ok(Outcome::done(
                format!("no CrowdStrike Falcon user has the username {email}; nothing to remove"),
                Access::Absent,
            ));
        };
        let uid = user.uid.as_str();
        let roles = user.roles;
        if !roles.is_empty() {
            let r = roles.as_slice();
            steps.run("revoke_roles", |attempt| revoke(c, uid, r, attempt.in_doubt)).await?;
        }
        let deleted: Deleted = steps
            .run("delete_user", |attempt| async move {
                if attempt.in_doubt && c.get_user(uid).await?.is_none() {
                    return Ok(Deleted { uid: uid.to_string(), adopted: true });
                }
                match c.delete_user(uid).await {
                    Ok(()) => Ok(Deleted { uid: uid.to_string(), adopted: false }),
                    // Gone already: deleted by an earlier attempt, or by someone in the console.
                    Err(e) if e.is_not_found() => Ok(Deleted { uid: uid.to_string(), adopted: true }),
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        let revoked = if roles.is_empty() {
            "held no roles".to_string()
        } else {
            format!("revoked role(s) {}", roles.join(", "))
        };
        let what = if deleted.adopted {
            "and the user is gone (deleted by an earlier attempt whose answer was lost, or in the console)"
        } else {
            "then deleted the user"
        };
        Ok(Outcome::done(format!("CrowdStrike Falcon user {uid} ({email}): {revoked}, {what}"), Access::Removed))
    }

    /// The user with this login address and the roles it holds (two requests), recorded so that
    /// a retry works on what this run saw.
    async fn find_user(&self, steps: &mut Steps, email: &EmployeeEmail) -> Result<Option<Found>, StepError> {
        let c = &self.client;
        steps
            .read("find_user", |_| async move {
                let Some(uid) = c.find_user(email).await? else {
                    return Ok(None);
                };
                // Deleted between the two requests: as good as absent.
                Ok(c.user_roles(&uid).await?.map(|roles| Found { uid, roles }))
            })
            .await
    }

    /// Role ids are case-sensitive: each must be exactly one of the tenant's, or the run is
    /// dead before anything is created. From the cached catalogue (no journal step: nothing
    /// to record); a role missing from it is looked for once in a fresh copy first.
    ///
    /// Checked before the run's first step only: once a step has succeeded the roles passed
    /// this check, and the grant's own answer judges a role deleted since.
    async fn validate_roles(&self, wanted: &[String], steps: &Steps) -> Result<Vec<String>, StepError> {
        if !steps.completed("").is_empty() {
            return Ok(wanted.to_vec());
        }
        self.check_roles(wanted).await
    }

    /// The check itself, shared with the plan: every wanted id is one of the tenant's, or the
    /// error the run dies with.
    pub(super) async fn check_roles(&self, wanted: &[String]) -> Result<Vec<String>, StepError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let c = &self.client;
        let load = || c.role_ids();
        let all_known = |known: &Vec<String>| wanted.iter().all(|w| known.contains(w)).then_some(());
        if self.roles.find(load, all_known).await?.is_some() {
            return Ok(wanted.to_vec());
        }
        // Just fetched by `find`: no request.
        let known = self.roles.get(load).await?;
        let unknown: Vec<String> = wanted
            .iter()
            .filter(|w| !known.contains(w))
            .map(|w| match known.iter().find(|k| k.eq_ignore_ascii_case(w)) {
                Some(k) => format!("\"{w}\" (did you mean \"{k}\"? role ids are case-sensitive)"),
                None => format!("\"{w}\""),
            })
            .collect();
        Err(StepError::permanent(format!(
            "CrowdStrike Falcon has no role with the id {} (this tenant's roles: {}); nothing was created. Fix apps.crowdstrike.roles and send the event again, or create the role in Falcon and replay this run",
            unknown.join(", "),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )))
    }

    /// Grants what the plan lacks (one request), then revokes what it has too many of (one).
    async fn apply_roles(
        &self,
        steps: &mut Steps,
        uid: &str,
        email: &EmployeeEmail,
        plan: RolePlan,
    ) -> Result<RoleChanges, StepError> {
        let c = &self.client;
        let catalogue = &self.roles;
        let mut granted = Vec::new();
        if !plan.grant.is_empty() {
            let to_grant = plan.grant.as_slice();
            let g: Granted = steps
                .run("grant_roles", |attempt| async move {
                    let mut missing = to_grant.to_vec();
                    let mut adopted = Vec::new();
                    if attempt.in_doubt {
                        // The last attempt may have landed: grant only what is still missing.
                        let current = c.user_roles(uid).await?.ok_or_else(|| vanished(uid, email))?;
                        (adopted, missing) = to_grant.iter().cloned().partition(|r| current.contains(r));
                    }
                    if !missing.is_empty() {
                        if let Err(e) = c.grant_roles(uid, &missing).await {
                            if e.status() == Some(400) {
                                // A role deleted in Falcon since the catalogue was read: the next
                                // run reads the catalogue afresh.
                                catalogue.invalidate().await;
                            }
                            return Err(e.into());
                        }
                    }
                    Ok(Granted { uid: uid.to_string(), granted: missing, adopted })
                })
                .await?;
            granted = g.granted.into_iter().chain(g.adopted).collect();
        }
        if !plan.revoke.is_empty() {
            let r = plan.revoke.as_slice();
            steps.run("revoke_roles", |attempt| revoke(c, uid, r, attempt.in_doubt)).await?;
        }
        Ok(RoleChanges { granted, revoked: plan.revoke })
    }
}

/// Revokes `roles` in one request; roles already gone (an earlier attempt, someone in the
/// console, or the user deleted) are adopted.
async fn revoke(c: &Client, uid: &str, roles: &[String], in_doubt: bool) -> Result<Revoked, StepError> {
    let done = |revoked: Vec<String>, adopted: Vec<String>| Revoked { uid: uid.to_string(), revoked, adopted };
    let held = |current: Option<Vec<String>>| -> (Vec<String>, Vec<String>) {
        let current = current.unwrap_or_default();
        roles.iter().cloned().partition(|r| current.contains(r))
    };
    let (todo, adopted) = if in_doubt { held(c.user_roles(uid).await?) } else { (roles.to_vec(), Vec::new()) };
    if todo.is_empty() {
        return Ok(done(todo, adopted));
    }
    match c.revoke_roles(uid, &todo).await {
        Ok(()) => Ok(done(todo, adopted)),
        Err(e) if e.is_not_found() => Ok(done(Vec::new(), roles.to_vec())),
        // Falcon refuses the whole request when one role is not held: look, then revoke what
        // is still held.
        Err(e @ Error::Http(_)) if e.status() == Some(400) => {
            let (still, gone) = held(c.user_roles(uid).await?);
            if gone.is_empty() {
                return Err(e.into());
            }
            if !still.is_empty() {
                c.revoke_roles(uid, &still).await?;
            }
            Ok(done(still, gone))
        }
        Err(e) => Err(e.into()),
    }
}

/// (in `wanted` but not `current`, in `current` but not `wanted`), each sorted.
pub(super) fn difference(wanted: &[String], current: &[String]) -> (Vec<String>, Vec<String>) {
    let w: BTreeSet<&String> = wanted.iter().collect();
    let c: BTreeSet<&String> = current.iter().collect();
    (w.difference(&c).map(|s| s.to_string()).collect(), c.difference(&w).map(|s| s.to_string()).collect())
}

pub(super) fn vanished(uid: &str, email: &EmployeeEmail) -> StepError {
    StepError::permanent(format!(
        "CrowdStrike Falcon user {uid} ({email}) was deleted while this run was working on it; check in the Falcon console what happened, then send the event again"
    ))
}

/// What a mover of someone without an account ends with: a person's task.
pub(super) fn no_user_to_move(email: &EmployeeEmail) -> String {
    format!(
        "no CrowdStrike Falcon user has the username {email}, so there are no roles to change; send a joiner event to create the account"
    )
}

/// First and last name for Falcon, which requires both.
pub(super) fn names(run: &RunSpec) -> (String, String) {
    let e = &run.input.employee;
    let local = e.email.as_str().split('@').next().unwrap_or_default().to_string();
    match (&e.given_name, &e.family_name) {
        (Some(g), Some(f)) => (g.clone(), f.clone()),
        (Some(n), None) | (None, Some(n)) => (n.clone(), n.clone()),
        (None, None) => (local.clone(), local),
    }
}

fn describe_roles(wanted: &[String], changes: &RoleChanges) -> String {
    let roles = if wanted.is_empty() { "no roles".to_string() } else { format!("roles {}", wanted.join(", ")) };
    let mut parts = Vec::new();
    if !changes.granted.is_empty() {
        parts.push(format!("granted {}", changes.granted.join(", ")));
    }
    if !changes.revoked.is_empty() {
        parts.push(format!("revoked {}", changes.revoked.join(", ")));
    }
    if parts.is_empty() {
        format!("already had {roles}")
    } else {
        format!("{} (now {roles})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn difference_is_exact_and_case_sensitive() {
        let (grant, revoke) =
            difference(&s(&["falcon_admin", "detection_monitor"]), &s(&["Falcon_Admin", "detection_monitor"]));
        assert_eq!(grant, s(&["falcon_admin"]));
        assert_eq!(revoke, s(&["Falcon_Admin"]));
    }

    #[test]
    fn summaries_say_what_changed() {
        let c = RoleChanges { granted: s(&["falcon_analyst"]), revoked: s(&["falcon_admin"]) };
        assert_eq!(
            describe_roles(&s(&["falcon_analyst"]), &c),
            "granted falcon_analyst, revoked falcon_admin (now roles falcon_analyst)"
        );
        let none = RoleChanges { granted: vec![], revoked: vec![] };
        assert_eq!(describe_roles(&s(&["x"]), &none), "already had roles x");
    }
}
