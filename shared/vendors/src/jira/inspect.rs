//! Jira read-only: the site's directory (for reconcile), the access an event asks for, and
//! what a run would do now (a plan). Nothing here writes, at Jira, at the SCIM directory or in
//! a journal.
//!
//! Directory requests, for U accounts `GET /users/search` lists (every type, active, inactive
//! and previously deleted), G groups and m_g members of group g: `GET /users/search`
//! ⌊U/1000⌋ + 1 (a plain array: a full page means ask again), `GET /group/bulk` ⌈G/1000⌉ (at
//! least 1), `GET /group/member` max(1, ⌈m_g/50⌉) per group with an id (50 is the definition's
//! maximum page), and `GET /myself` once per connector (docs/vendors/jira.md, "Reconcile and
//! plan"). Group memberships are read per group, not per user: a site has far fewer groups
//! than people. A 429 is waited out (its `Retry-After`) and the page asked again.

use super::client::User;
use super::groups::{addressable, current_groups, resolve_groups, GroupChanges, GroupInfo};
use super::messages::{
    cannot_reactivate, directory_names_another, lacks_products, list_or_none, no_user_to_move, nobody_to_remove,
    only_hidden_matches,
};
use super::workflows::{joiner_summary, How, Identity, Jira, Reach, UserRef, Via};
use crate::adapter::Staffing;
use lifecycle_domain::apps::JiraApp;
use lifecycle_engine::inspect::{tagged, Account, AccountStatus, Plan, Progress};
use lifecycle_engine::{RunSpec, StepError};
use std::collections::{BTreeSet, HashMap};

/// The groups `app` asks for, as `group:<groupId>`. Products are left out: Jira grants them
/// only when it creates a user and no workflow converges them afterwards (a mover could not
/// repair a product drift), and reading them costs a request per user.
pub(super) fn access_asked(app: &JiraApp) -> BTreeSet<String> {
    tagged("group", &app.groups)
}

impl Jira {
    /// Every person `GET /users/search` lists (app and customer accounts are not people and
    /// are left out), deactivated and previously deleted ones included (both read inactive),
    /// with their groups as `access`.
    pub(super) async fn read_directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        let c = &self.client;
        let me = self
            .seen
            .me
            .get_or_try_init(|| async { c.myself().await.map(|u| u.account_id) })
            .await
            .map_err(|e| StepError::from(e).context("read the credential's own account (GET /myself)"))?
            .clone();
        let mut people = 0;
        let users = c
            .all_users(|page| {
                people += page.iter().filter(|u| u.is_person()).count();
                progress.accounts_read(people);
            })
            .await
            .map_err(|e| StepError::from(e).context("list the site's users"))?;
        // Read afresh, not from the workflows' cache: a group made by hand since must be seen.
        let groups = c.all_groups_patiently().await.map_err(|e| StepError::from(e).context("read Jira's groups"))?;
        let mut access: HashMap<String, BTreeSet<String>> = HashMap::new();
        // A group Jira answers with a null `groupId` cannot be named in `access` (nor changed
        // by any workflow): its members are not read.
        for id in groups.iter().filter_map(|g| g.id()) {
            let members = c
                .group_members(id)
                .await
                .map_err(|e| StepError::from(e).context(&format!("list the members of group {id}")))?;
            for m in members {
                access.entry(m.account_id).or_default().insert(format!("group:{id}"));
            }
        }
        Ok(users
            .into_iter()
            .filter(User::is_person)
            .map(|u| {
                let groups = access.remove(&u.account_id).unwrap_or_default();
                account(u, groups, &me)
            })
            .collect())
    }

    /// What `run` would do now. Mirrors `Vendor::run` step by step, with the same reads and
    /// the same messages where it would stop.
    pub(super) async fn plan_run(&self, flow: Staffing, run: &RunSpec, app: &JiraApp) -> Result<Plan, StepError> {
        match flow {
            Staffing::Joiner => self.plan_joiner(run, app).await,
            Staffing::Mover => self.plan_mover(run, app).await,
            Staffing::Leaver => self.plan_leaver(run).await,
        }
    }

    async fn plan_joiner(&self, run: &RunSpec, app: &JiraApp) -> Result<Plan, StepError> {
        let mut plan = Plan::new();
        let groups = match resolve_groups(&self.client, &self.groups, &app.groups).await {
            Ok(groups) => groups,
            Err(e) => return plan.stopped_by(e),
        };
        let email = &run.input.employee.email;
        let (user, via, directory) = match self.identify(email, Reach::BeforeCreate).await? {
            Identity::Found { user, via, directory } => (user, via, directory),
            found => {
                let name = run.input.employee.display_name();
                let mut text = format!(
                    "create Jira user {email} ({name}) with products {}; Jira sends the invitation",
                    list_or_none(&app.products)
                );
                if let Identity::Hidden(people) = found {
                    text.push_str(&format!(
                        " ({} account(s) that hide their address also match the search: if one of them is this person, Jira answers with it (nothing is created) or refuses and a person must act)",
                        people.len()
                    ));
                }
                plan.act("ensure_user", text);
                // The simulator's create puts the user in no group; real Jira may put it in a
                // product's default group, which the run then finds there and does not add.
                for g in &groups {
                    plan.act(format!("add_group:{}", g.id), format!("add the new user to group {}", g.label()));
                }
                return Ok(plan);
            }
        };
        let aid = user.account_id.clone();
        let how = if user.active {
            plan.note(format!("found Jira user {} ({email}), active", user.label()));
            if via == Via::Search {
                How::Found
            } else {
                How::FoundInDirectory
            }
        } else {
            // As `adopt`: reactivated through the directory when it manages the account.
            let managed = match (&self.scim, directory) {
                (Some(_), Some(answer)) => answer,
                (Some(scim), None) => scim.find_by_user_name(email).await?,
                (None, _) => None,
            }
            .filter(|su| su.account_id() == Some(aid.as_str()));
            let Some(su) = managed else {
                return Ok(plan.needs_person(cannot_reactivate(email, &aid, self.scim.is_some())));
            };
            plan.act(
                "ensure_user",
                format!(
                    "reactivate Jira user {aid} ({email}) through the SCIM directory (PATCH /Users/{} active=true)",
                    su.id
                ),
            );
            How::Reactivated
        };
        // The run reads the user's groups and products in one request.
        let Some(full) = self.client.get_user(&aid, "groups,applicationRoles").await? else {
            return Err(StepError::transient(format!(
                "Jira does not show user {aid} ({email}) any more; plan again later"
            )));
        };
        let current: Vec<GroupInfo> = match full.groups.as_ref().and_then(|g| g.complete()) {
            Some(listed) => addressable(listed).0,
            None => current_groups(&self.client, &aid).await?.0,
        };
        let have: Vec<&str> = full.application_roles.iter().flat_map(|r| &r.items).map(|r| r.key.as_str()).collect();
        let missing: Vec<String> = app.products.iter().filter(|p| !have.contains(&p.as_str())).cloned().collect();
        let mut changes = GroupChanges::default();
        self.plan_adds(&mut plan, &mut changes, &aid, &groups, &current);
        if !missing.is_empty() {
            let user = UserRef { account_id: aid, how, hidden_matches: 0, groups_at_creation: None };
            let summary = joiner_summary(&user, email, &app.products, &changes);
            return Ok(plan.needs_person(lacks_products(&summary, &missing)));
        }
        Ok(plan)
    }

    async fn plan_mover(&self, run: &RunSpec, app: &JiraApp) -> Result<Plan, StepError> {
        let mut plan = Plan::new();
        let groups = match resolve_groups(&self.client, &self.groups, &app.groups).await {
            Ok(groups) => groups,
            Err(e) => return plan.stopped_by(e),
        };
        let email = &run.input.employee.email;
        let user = match self.identify(email, Reach::Everywhere).await? {
            Identity::Found { user, .. } => user,
            Identity::Absent => return Ok(plan.needs_person(no_user_to_move(email))),
            Identity::Hidden(people) => return Ok(plan.needs_person(only_hidden_matches(email, &people))),
        };
        let state = if user.active { "active" } else { "deactivated" };
        plan.note(format!("found Jira user {} ({email}), {state}", user.label()));
        let (current, _) = current_groups(&self.client, &user.account_id).await?;
        self.plan_adds(&mut plan, &mut GroupChanges::default(), &user.account_id, &groups, &current);
        for extra in current.iter().filter(|g| !groups.iter().any(|w| w.id == g.id)) {
            plan.act(
                format!("remove_group:{}", extra.id),
                format!("remove user {} from group {}", user.account_id, extra.label()),
            );
        }
        Ok(plan)
    }

    async fn plan_leaver(&self, run: &RunSpec) -> Result<Plan, StepError> {
        let mut plan = Plan::new();
        let email = &run.input.employee.email;
        let user = match self.identify(email, Reach::Everywhere).await? {
            Identity::Found { user, .. } => user,
            Identity::Absent => {
                plan.note(nobody_to_remove(email));
                return Ok(plan);
            }
            Identity::Hidden(people) => return Ok(plan.needs_person(only_hidden_matches(email, &people))),
        };
        let aid = user.account_id.as_str();
        let state = if user.active { "active" } else { "deactivated" };
        plan.note(format!("found Jira user {} ({email}), {state}", user.label()));
        for g in current_groups(&self.client, aid).await?.0 {
            plan.act(format!("remove_group:{}", g.id), format!("remove user {aid} from group {}", g.label()));
        }
        if let Some(scim) = &self.scim {
            if let Some(su) = scim.find_by_user_name(email).await? {
                if su.account_id() != Some(aid) {
                    return Ok(plan.needs_person(directory_names_another(email, su.account_id(), aid)));
                }
                if su.active {
                    plan.act(
                        "deactivate_in_directory",
                        format!("then deactivate {email} through the SCIM directory (PATCH /Users/{} active=false): inactive, not deleted", su.id),
                    );
                } else {
                    plan.note(format!("the SCIM directory's user {} is already inactive", su.id));
                }
                return Ok(plan);
            }
        }
        let why = if self.scim.is_some() {
            "the SCIM directory does not manage this account"
        } else {
            "no SCIM directory is configured; if an identity provider manages the account, Jira refuses and a person must act"
        };
        plan.act(
            "remove_site_access",
            format!("then remove {email}'s site access with DELETE /user ({why}); the Atlassian account remains"),
        );
        Ok(plan)
    }

    /// An `add_group` action for each wanted group the user is not in (as `converge_groups`).
    fn plan_adds(
        &self,
        plan: &mut Plan,
        changes: &mut GroupChanges,
        account_id: &str,
        wanted: &[GroupInfo],
        current: &[GroupInfo],
    ) {
        for g in wanted {
            if current.iter().any(|have| have.id == g.id) {
                plan.note(format!("user {account_id} is already in group {}", g.label()));
                changes.kept.push(g.label());
            } else {
                plan.act(format!("add_group:{}", g.id), format!("add user {account_id} to group {}", g.label()));
                changes.added.push(g.label());
            }
        }
    }
}

/// A person as reconcile sees them.
fn account(u: User, groups: BTreeSet<String>, me: &str) -> Account {
    let email = u.email_address.as_deref().map(str::to_lowercase);
    let name = u
        .display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| email.clone())
        .unwrap_or_else(|| u.account_id.clone());
    let protected = (u.account_id == me).then(|| {
        "the API credential's own account (lifecycle's site admin): Jira refuses to remove it, and every Jira run needs it"
            .to_string()
    });
    Account {
        vendor_id: u.account_id,
        email,
        login: None,
        name,
        status: if u.active { AccountStatus::Active } else { AccountStatus::Deactivated },
        access: groups,
        protected,
    }
}
