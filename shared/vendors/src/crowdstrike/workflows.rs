//! CrowdStrike Falcon joiner, mover and leaver workflows, as journaled steps.
//!
//! Roles converge the same way for a joiner and a mover: `plan_roles` records what the user
//! holds, `grant_roles` grants what is missing in one request, `revoke_role:<id>` removes each
//! extra role, and `verify_roles` reads the roles back (repairing a difference it finds) so
//! that a user is never reported done without its roles.

use super::client::{Client, Error};
use lifecycle_domain::apps::{AppRequest, CrowdstrikeApp};
use lifecycle_domain::{EmployeeEmail, Workflow};
use lifecycle_engine::{Access, Connector, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub struct CrowdStrike {
    pub(super) client: Client,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserRef {
    uid: String,
    #[serde(default)]
    created: bool,
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
    role: String,
    /// True when the role was already gone (an earlier attempt revoked it).
    #[serde(default)]
    adopted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Verified {
    uid: String,
    roles: Vec<String>,
    #[serde(default)]
    repaired: bool,
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
    /// The read-back found the roles changed since the plan, and put them right.
    repaired: bool,
}

#[async_trait::async_trait]
impl Connector for CrowdStrike {
    async fn execute(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let app = match &run.input.app {
            AppRequest::Crowdstrike(app) => app.clone(),
            other => {
                return Err(StepError::permanent(format!(
                    "a {} request reached the CrowdStrike connector",
                    other.vendor()
                )))
            }
        };
        match run.workflow {
            Workflow::Joiner => self.joiner(run, &app, steps).await,
            Workflow::Mover => self.mover(run, &app, steps).await,
            Workflow::Leaver => self.leaver(run, steps).await,
            Workflow::ReassignDeals => {
                Err(StepError::permanent("reassign_deals is a Pipedrive workflow; CrowdStrike has nothing to do"))
            }
        }
    }
}

impl CrowdStrike {
    /// Roles validated first (an unknown role fails before anything is created), then the
    /// user (found or created), then its roles, then a read-back.
    async fn joiner(&self, run: &RunSpec, app: &CrowdstrikeApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let wanted = self.validate_roles(&app.roles, steps).await?;
        let (first, last) = names(run);
        let (f, l) = (first.as_str(), last.as_str());
        let user: UserRef = steps
            .run("ensure_user", |_| async move {
                // Looked up on every attempt: an attempt whose answer was lost may have created it.
                if let Some(u) = c.find_user(email).await? {
                    return Ok(UserRef { uid: u.uid, created: false });
                }
                match c.create_user(email, f, l).await {
                    Ok(u) => Ok(UserRef { uid: u.uid, created: true }),
                    // Created meanwhile (by someone else, or a lost answer): adopt it.
                    Err(e) if matches!(e.status(), Some(400 | 409)) => match c.find_user(email).await? {
                        Some(u) => Ok(UserRef { uid: u.uid, created: false }),
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
        if !user.created {
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
        }
        let changes = self.converge_roles(steps, &uid, email, &wanted).await?;
        let what = if user.created {
            format!(
                "created CrowdStrike Falcon user {uid} ({email}); Falcon emailed them an invitation to set a password"
            )
        } else {
            format!("found existing CrowdStrike Falcon user {uid} ({email})")
        };
        Ok(Outcome::done(format!("{what}; {}", describe_roles(&wanted, &changes)), Access::Active))
    }

    async fn mover(&self, run: &RunSpec, app: &CrowdstrikeApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let wanted = self.validate_roles(&app.roles, steps).await?;
        let found: Option<UserRef> = steps
            .run("find_user", |_| async move {
                Ok(c.find_user(email).await?.map(|u| UserRef { uid: u.uid, created: false }))
            })
            .await?;
        let Some(user) = found else {
            return Ok(Outcome::needs_person(
                format!("no CrowdStrike Falcon user has the username {email}, so there are no roles to change; send a joiner event to create the account"),
                Some(Access::Absent),
            ));
        };
        let changes = self.converge_roles(steps, &user.uid, email, &wanted).await?;
        Ok(Outcome::done(
            format!("CrowdStrike Falcon user {} ({email}): {}", user.uid, describe_roles(&wanted, &changes)),
            Access::Active,
        ))
    }

    /// Every role revoked (the audit trail), then the user deleted — immediate and
    /// irreversible — then checked gone.
    async fn leaver(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let found: Option<UserRef> = steps
            .run("find_user", |_| async move {
                Ok(c.find_user(email).await?.map(|u| UserRef { uid: u.uid, created: false }))
            })
            .await?;
        let Some(user) = found else {
            return Ok(Outcome::done(
                format!("no CrowdStrike Falcon user has the username {email}; nothing to remove"),
                Access::Absent,
            ));
        };
        let uid = user.uid.as_str();
        let roles: Vec<String> =
            steps.run("list_roles", |_| async move { Ok(c.user_roles(uid).await?.unwrap_or_default()) }).await?;
        for role in &roles {
            let r = role.as_str();
            steps.run(format!("revoke_role:{role}"), |attempt| revoke(c, uid, r, attempt.in_doubt)).await?;
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
        steps
            .run("verify_deleted", |_| async move {
                if c.get_user(uid).await?.is_some() {
                    return Err(StepError::transient(format!(
                        "verification: CrowdStrike Falcon user {uid} still exists after its deletion; checking again later"
                    )));
                }
                Ok(true)
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

    /// Role ids are case-sensitive: each must be exactly one of the tenant's, or the run is
    /// dead before anything is created.
    async fn validate_roles(&self, wanted: &[String], steps: &mut Steps) -> Result<Vec<String>, StepError> {
        let c = &self.client;
        let wanted = wanted.to_vec();
        steps
            .run("validate_roles", |_| async move {
                let known = c.role_ids().await?;
                let unknown: Vec<String> = wanted
                    .iter()
                    .filter(|w| !known.contains(w))
                    .map(|w| match known.iter().find(|k| k.eq_ignore_ascii_case(w)) {
                        Some(k) => format!("\"{w}\" (did you mean \"{k}\"? role ids are case-sensitive)"),
                        None => format!("\"{w}\""),
                    })
                    .collect();
                if !unknown.is_empty() {
                    return Err(StepError::permanent(format!(
                        "CrowdStrike Falcon has no role with the id {} (this tenant's roles: {}); nothing was created. Fix apps.crowdstrike.roles and send the event again, or create the role in Falcon and replay this run",
                        unknown.join(", "),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )));
                }
                Ok(wanted)
            })
            .await
    }

    /// Makes the user's roles exactly `wanted`.
    async fn converge_roles(
        &self,
        steps: &mut Steps,
        uid: &str,
        email: &EmployeeEmail,
        wanted: &[String],
    ) -> Result<RoleChanges, StepError> {
        let c = &self.client;
        let plan: RolePlan = steps
            .run("plan_roles", |_| async move {
                let Some(current) = c.user_roles(uid).await? else {
                    return Err(vanished(uid, email));
                };
                let (grant, revoke) = difference(wanted, &current);
                Ok(RolePlan { current, grant, revoke })
            })
            .await?;
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
                        c.grant_roles(uid, &missing).await?;
                    }
                    Ok(Granted { uid: uid.to_string(), granted: missing, adopted })
                })
                .await?;
            granted = g.granted.into_iter().chain(g.adopted).collect();
        }
        for role in &plan.revoke {
            let r = role.as_str();
            steps.run(format!("revoke_role:{role}"), |attempt| revoke(c, uid, r, attempt.in_doubt)).await?;
        }
        let v: Verified = steps
            .run("verify_roles", |_| async move {
                let current = c.user_roles(uid).await?.ok_or_else(|| vanished(uid, email))?;
                let (missing, extra) = difference(wanted, &current);
                if missing.is_empty() && extra.is_empty() {
                    return Ok(Verified { uid: uid.to_string(), roles: current, repaired: false });
                }
                // Changed since the plan (someone in the console, a racing run): repair once.
                if !missing.is_empty() {
                    c.grant_roles(uid, &missing).await?;
                }
                for r in &extra {
                    revoke(c, uid, r, true).await?;
                }
                let current = c.user_roles(uid).await?.ok_or_else(|| vanished(uid, email))?;
                let (missing, extra) = difference(wanted, &current);
                if missing.is_empty() && extra.is_empty() {
                    return Ok(Verified { uid: uid.to_string(), roles: current, repaired: true });
                }
                Err(StepError::transient(format!(
                    "verification: CrowdStrike Falcon user {uid} has roles [{}] instead of [{}]; checking again later",
                    current.join(", "),
                    wanted.join(", ")
                )))
            })
            .await?;
        Ok(RoleChanges { granted, revoked: plan.revoke, repaired: v.repaired })
    }
}

/// Revokes one role; a role already gone (by an earlier attempt, or with its user) is adopted.
async fn revoke(c: &Client, uid: &str, role: &str, in_doubt: bool) -> Result<Revoked, StepError> {
    let done = |adopted| Revoked { uid: uid.to_string(), role: role.to_string(), adopted };
    if in_doubt {
        match c.user_roles(uid).await? {
            Some(current) if current.iter().any(|r| r == role) => {}
            _ => return Ok(done(true)),
        }
    }
    match c.revoke_role(uid, role).await {
        Ok(()) => Ok(done(false)),
        Err(e) if e.is_not_found() => Ok(done(true)),
        // Falcon refuses to revoke a role the user does not hold: look before calling it a failure.
        Err(e @ Error::Http(_)) if e.status() == Some(400) => match c.user_roles(uid).await? {
            Some(current) if current.iter().any(|r| r == role) => Err(e.into()),
            _ => Ok(done(true)),
        },
        Err(e) => Err(e.into()),
    }
}

/// (in `wanted` but not `current`, in `current` but not `wanted`), each sorted.
fn difference(wanted: &[String], current: &[String]) -> (Vec<String>, Vec<String>) {
    let w: BTreeSet<&String> = wanted.iter().collect();
    let c: BTreeSet<&String> = current.iter().collect();
    (w.difference(&c).map(|s| s.to_string()).collect(), c.difference(&w).map(|s| s.to_string()).collect())
}

fn vanished(uid: &str, email: &EmployeeEmail) -> StepError {
    StepError::permanent(format!(
        "CrowdStrike Falcon user {uid} ({email}) was deleted while this run was working on it; check in the Falcon console what happened, then send the event again"
    ))
}

/// First and last name for Falcon, which requires both.
fn names(run: &RunSpec) -> (String, String) {
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
    if changes.repaired {
        parts.push("put right roles changed by someone else meanwhile".to_string());
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
        let c = RoleChanges { granted: s(&["falcon_analyst"]), revoked: s(&["falcon_admin"]), repaired: false };
        assert_eq!(
            describe_roles(&s(&["falcon_analyst"]), &c),
            "granted falcon_analyst, revoked falcon_admin (now roles falcon_analyst)"
        );
        let none = RoleChanges { granted: vec![], revoked: vec![], repaired: false };
        assert_eq!(describe_roles(&s(&["x"]), &none), "already had roles x");
    }
}
