//! Pipedrive read-only: the company's directory (for reconcile), the access an event asks for,
//! and what a run would do now (a plan). Nothing here writes, at Pipedrive or in a journal.
//!
//! Directory requests: `GET /api/v1/users` (getUsers: no paging, one request for N users of
//! every state), plus `GET /api/v1/users/me` once per connector (the token's own user, which is
//! protected) and `GET /api/v1/roles` only when the cached catalogue is stale or lacks a role a
//! user holds. Each user carries its `role_id`, so no per-user or per-role read is needed
//! (docs/vendors/pipedrive.md, "Reconcile and plan").

use super::client::{Deal, Role, User};
use super::workflows::{found, no_user_to_move, nobody_to_remove, Pipedrive, PipedriveFlow, RoleChange, RoleRef};
use lifecycle_domain::apps::PipedriveApp;
use lifecycle_engine::inspect::{Account, AccountStatus, Plan, Progress};
use lifecycle_engine::{RunSpec, StepError};
use std::collections::{BTreeMap, BTreeSet};

impl Pipedrive {
    /// Every user, deactivated ones included, with its role's name as `access`.
    pub(super) async fn read_directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        let c = &self.client;
        let owner = *self
            .seen
            .owner
            .get_or_try_init(|| async { c.me().await.map(|u| u.id) })
            .await
            .map_err(|e| StepError::from(e).context("read the token's own user (GET /api/v1/users/me)"))?;
        let users = c
            .list_users_paged(|n| progress.accounts_read(n))
            .await
            .map_err(|e| StepError::from(e).context("list the users"))?;
        let names = self.role_names(&users).await?;
        Ok(users.into_iter().map(|u| account(u, owner, &names)).collect())
    }

    /// The role `app` names, spelt as the catalogue spells it (exactly, else the name that
    /// differs only in case: the choice `resolve_role` makes). `None` without a role (a leaver).
    pub(super) fn access_asked(&self, app: &PipedriveApp) -> Option<BTreeSet<String>> {
        let wanted = app.role.as_ref()?;
        let known = self.seen.role_names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let name = known
            .iter()
            .find(|n| *n == wanted)
            .or_else(|| known.iter().find(|n| n.eq_ignore_ascii_case(wanted)))
            .unwrap_or(wanted);
        Some(BTreeSet::from([name.clone()]))
    }

    /// Role id to name for every role the users hold: the cached catalogue, fetched again once
    /// when a held role is not in it.
    async fn role_names(&self, users: &[User]) -> Result<BTreeMap<i64, String>, StepError> {
        let c = &self.client;
        let held: BTreeSet<i64> = users.iter().filter_map(|u| u.role_id).collect();
        let pick = |roles: &Vec<Role>| held.iter().all(|id| roles.iter().any(|r| r.id == *id)).then(|| names_of(roles));
        let read = |e| StepError::from(e).context("read the roles");
        let names = match self.roles.find(|| c.roles(), pick).await.map_err(read)? {
            Some(names) => names,
            // A role deleted since the listing: shown by its id, which no event names.
            None => names_of(&self.roles.get(|| c.roles()).await.map_err(read)?),
        };
        *self.seen.role_names.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            names.values().cloned().collect();
        Ok(names)
    }

    /// What `run` would do now. Mirrors `Vendor::run` step by step, with the same reads and
    /// the same messages where it would stop.
    pub(super) async fn plan_run(
        &self,
        flow: PipedriveFlow,
        run: &RunSpec,
        app: &PipedriveApp,
    ) -> Result<Plan, StepError> {
        match flow {
            PipedriveFlow::Joiner => self.plan_joiner(run, app).await,
            PipedriveFlow::Mover => self.plan_mover(run, app).await,
            PipedriveFlow::Leaver => self.plan_leaver(run, true).await,
            PipedriveFlow::ReassignDeals => self.plan_leaver(run, false).await,
        }
    }

    async fn plan_joiner(&self, run: &RunSpec, app: &PipedriveApp) -> Result<Plan, StepError> {
        let mut plan = Plan::new();
        let role = match self.resolve_role(app).await {
            Ok(role) => role,
            Err(e) => return plan.stopped_by(e),
        };
        let email = &run.input.employee.email;
        let user_id = match self.client.find_user_by_email(email).await? {
            None => {
                plan.act(
                    "ensure_user",
                    format!(
                        "create Pipedrive user {email} with role {} (id {}); Pipedrive emails them an invitation (they set their own name)",
                        role.name, role.id
                    ),
                );
                plan.act(
                    format!("assign_role:{}", role.id),
                    format!("assign role {} (id {}) to the new user (a new user has no role)", role.name, role.id),
                );
                return Ok(plan);
            }
            Some(u) if !u.active_flag => {
                plan.act("ensure_user", format!("reactivate Pipedrive user {} ({email}), deactivated now", u.id));
                u.id
            }
            Some(u) => {
                plan.note(format!("found Pipedrive user {} ({email}), active", u.id));
                u.id
            }
        };
        self.plan_role(&mut plan, user_id, &role).await?;
        Ok(plan)
    }

    async fn plan_mover(&self, run: &RunSpec, app: &PipedriveApp) -> Result<Plan, StepError> {
        let mut plan = Plan::new();
        let role = match self.resolve_role(app).await {
            Ok(role) => role,
            Err(e) => return plan.stopped_by(e),
        };
        let email = &run.input.employee.email;
        let Some(user) = found(self.client.find_user_by_email(email).await?) else {
            return Ok(plan.needs_person(no_user_to_move(email)));
        };
        let state = if user.active { "active" } else { "deactivated" };
        plan.note(format!("found Pipedrive user {} ({email}), {state}", user.user_id));
        self.plan_role(&mut plan, user.user_id, &role).await?;
        Ok(plan)
    }

    /// The role step of an existing user, from its assignments now (as `converge_role` reads them).
    async fn plan_role(&self, plan: &mut Plan, user_id: i64, role: &RoleRef) -> Result<(), StepError> {
        let c = &self.client;
        let current = c.role_assignments(user_id).await?;
        let roles = self.roles.get(|| c.roles()).await?;
        let wanted = role_label(&roles, role.id);
        let key = format!("assign_role:{}", role.id);
        match RoleChange::of(&current, role.id) {
            RoleChange::Assign => {
                let now: Vec<String> = current.iter().map(|a| role_label(&roles, a.role_id)).collect();
                let from = if now.is_empty() { "no role".to_string() } else { now.join(", ") };
                plan.act(
                    key,
                    format!("assign role {wanted} to user {user_id} (it has {from} now; a user holds one role)"),
                );
            }
            RoleChange::RemoveOthers(extras) if extras.is_empty() => {
                plan.note(format!("user {user_id} already has role {wanted} and no other"));
            }
            RoleChange::RemoveOthers(extras) => {
                let extras: Vec<String> = extras.iter().map(|id| role_label(&roles, *id)).collect();
                plan.act(
                    key,
                    format!("remove role(s) {} from user {user_id}, which has {wanted} beside them", extras.join(", ")),
                );
            }
        }
        Ok(())
    }

    /// A leaver (`deactivate`) or a deactivation webhook's `reassign_deals` (not).
    async fn plan_leaver(&self, run: &RunSpec, deactivate: bool) -> Result<Plan, StepError> {
        let mut plan = Plan::new();
        let c = &self.client;
        let email = &run.input.employee.email;
        let Some(user) = found(c.find_user_by_email(email).await?) else {
            plan.note(nobody_to_remove(email));
            return Ok(plan);
        };
        let user_id = user.user_id;
        let state = if user.active { "active" } else { "deactivated" };
        plan.note(format!("found Pipedrive user {user_id} ({email}), {state}"));
        if deactivate && user.active && user.is_admin {
            match self.check_not_last_admin(email, user_id).await {
                Ok(admins) => plan.note(format!("the user is one of {admins} active admins")),
                Err(e) => return plan.stopped_by(e),
            };
        }
        let deals = c.open_deals(user_id).await.map_err(|e| StepError::from(e).context("list open deals"))?;
        if deals.is_empty() {
            plan.note("no open deals to reassign");
        } else {
            let to = match self.find_successor(run, user_id, deals.len()).await {
                Ok(to) => to,
                Err(e) => return plan.stopped_by(e),
            };
            if let Some(why) = &to.passed_over {
                plan.note(format!("the named successor {why} and is passed over"));
            }
            let receiver = format!("{} {} (user {})", to.source, to.email, to.user_id);
            plan.note(format!("reassign {} open deal(s) to {receiver}", deals.len()));
            for d in &deals {
                plan.act(
                    format!("reassign_deal:{}", d.id),
                    format!("reassign open deal {} to {receiver}", deal_label(d)),
                );
            }
        }
        if deactivate {
            if user.active {
                plan.act("deactivate", format!("then deactivate Pipedrive user {user_id} ({email})"));
            } else {
                plan.note(format!("user {user_id} is already deactivated"));
            }
        }
        Ok(plan)
    }
}

/// A user as reconcile sees it.
fn account(u: User, owner: i64, names: &BTreeMap<i64, String>) -> Account {
    let email = u.email.as_deref().map(str::trim).filter(|e| !e.is_empty()).map(str::to_lowercase);
    let name = u
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| email.clone())
        .unwrap_or_else(|| format!("user {}", u.id));
    let access =
        u.role_id.map(|id| names.get(&id).cloned().unwrap_or_else(|| format!("role id {id}"))).into_iter().collect();
    let protected = if u.id == owner {
        Some(
            "the API token's own user: lifecycle acts through it, and its deactivation would stop every Pipedrive run"
                .to_string(),
        )
    } else if u.has_created_company {
        Some("created the Pipedrive company (its owner)".to_string())
    } else {
        None
    };
    Account {
        vendor_id: u.id.to_string(),
        email,
        login: None,
        name,
        status: if u.active_flag { AccountStatus::Active } else { AccountStatus::Deactivated },
        access,
        protected,
    }
}

fn names_of(roles: &[Role]) -> BTreeMap<i64, String> {
    roles.iter().map(|r| (r.id, r.name.clone())).collect()
}

/// "Sales Rep (id 1)", or the bare id of a role the catalogue lacks.
fn role_label(roles: &[Role], id: i64) -> String {
    match roles.iter().find(|r| r.id == id) {
        Some(r) => format!("{} (id {id})", r.name),
        None => format!("id {id}"),
    }
}

/// "42 (Acme renewal)".
fn deal_label(d: &Deal) -> String {
    match d.title.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => format!("{} ({t})", d.id),
        None => d.id.to_string(),
    }
}
