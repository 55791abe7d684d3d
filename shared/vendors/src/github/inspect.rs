//! What the GitHub organisation holds and what a run would do there, from reads only: the
//! directory for reconcile, the access an event asks for, and the plan of a workflow.
//!
//! Directory requests, for M members, A owners, I pending invitations and T managed teams
//! (m_t members of team t): orgs/list-members `role=all` max(1, ceil(M/100)) and `role=admin`
//! max(1, ceil(A/100)); orgs/list-pending-invitations max(1, ceil(I/100)); with managed teams,
//! orgs/list-invitation-teams once per invitation and teams/list-members-in-org
//! max(1, ceil(m_t/100)) per managed team; `GET /user` when the token's login is not cached.
//! A rate limit is waited out (its `retry-after`, else `x-ratelimit-reset`) and the page asked
//! for again.

use super::client::{Invitation, OrgRole, User};
use super::workflows::{
    explain, last_owner, list_or_none, not_a_member, not_accepted, outside_collaborator, own_user, role_name,
    wanted_role, Found, Github,
};
use crate::adapter::Staffing;
use lifecycle_domain::apps::GithubApp;
use lifecycle_engine::inspect::{Account, AccountStatus, Plan, Progress};
use lifecycle_engine::{RunSpec, StepError};
use std::collections::{BTreeSet, HashMap};

/// How many rate-limit answers in a row one directory request waits out before the read
/// gives up.
const PATIENCE: u32 = 5;

/// `role:<role or member>`, and `team:<slug>` for the event's teams that lifecycle manages.
pub(super) fn desired_access(managed: &[String], app: &GithubApp) -> BTreeSet<String> {
    let role = app.role.as_deref().unwrap_or("member");
    let mut access = BTreeSet::from([format!("role:{role}")]);
    for slug in app.teams.iter().flatten() {
        if managed.iter().any(|m| m.eq_ignore_ascii_case(slug)) {
            access.insert(format!("team:{}", slug.to_lowercase()));
        }
    }
    access
}

pub(super) async fn directory(gh: &Github, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
    let c = &gh.client;
    let org = gh.org();
    let fail = |doing: &'static str| move |e| explain(e, org, doing);
    let me = gh.me().await?;
    let members = c.members(false, PATIENCE).await.map_err(fail("list the organisation's members"))?;
    progress.accounts_read(members.len());
    let admins: BTreeSet<String> = c
        .members(true, PATIENCE)
        .await
        .map_err(fail("list the organisation's owners"))?
        .into_iter()
        .map(|u| u.login.to_lowercase())
        .collect();
    let invitations = c.pending_invitations(PATIENCE).await.map_err(fail("list the pending invitations"))?;
    progress.accounts_read(members.len() + invitations.len());
    let mut teams_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    for slug in &gh.managed {
        let doing = format!("list the members of managed team {slug}");
        for u in c.team_members(slug, PATIENCE).await.map_err(|e| explain(e, org, &doing))? {
            teams_of.entry(u.login.to_lowercase()).or_default().insert(format!("team:{slug}"));
        }
    }
    let mut accounts: Vec<Account> = members
        .into_iter()
        .map(|u| {
            let login = u.login.to_lowercase();
            let admin = admins.contains(&login);
            let mut access = teams_of.remove(&login).unwrap_or_default();
            access.insert(format!("role:{}", if admin { "admin" } else { "member" }));
            let protected = if login == *me {
                Some(format!(
                    "the token's own user (vendors.github.token): removing them would lock lifecycle out of {org}"
                ))
            } else if admin && admins.len() == 1 {
                Some(format!("the last owner of {org}: GitHub will not remove them"))
            } else {
                None
            };
            member(u, login, access, protected)
        })
        .collect();
    for i in invitations {
        let mut access = BTreeSet::from([format!("role:{}", role_name(&i.role))]);
        if !gh.managed.is_empty() && i.team_count != Some(0) {
            let doing = format!("list the teams of invitation {}", i.id);
            for t in c.invitation_teams(i.id, PATIENCE).await.map_err(|e| explain(e, org, &doing))? {
                if gh.managed.iter().any(|m| m.eq_ignore_ascii_case(&t.slug)) {
                    access.insert(format!("team:{}", t.slug.to_lowercase()));
                }
            }
        }
        accounts.push(invited(i, access));
    }
    progress.accounts_read(accounts.len());
    Ok(accounts)
}

fn member(u: User, login: String, access: BTreeSet<String>, protected: Option<String>) -> Account {
    Account {
        vendor_id: u.id.to_string(),
        email: None,
        name: u.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| u.login.clone()),
        login: Some(login),
        status: AccountStatus::Active,
        access,
        protected,
    }
}

fn invited(i: Invitation, access: BTreeSet<String>) -> Account {
    let login = i.login.as_deref().map(str::to_lowercase);
    let email = i.email.as_deref().map(|e| e.trim().to_lowercase());
    Account {
        vendor_id: format!("invitation:{}", i.id),
        name: login.clone().or_else(|| email.clone()).unwrap_or_else(|| format!("invitation {}", i.id)),
        login,
        email,
        status: AccountStatus::Invited,
        access,
        protected: None,
    }
}

pub(super) async fn plan(gh: &Github, flow: Staffing, run: &RunSpec, app: &GithubApp) -> Result<Plan, StepError> {
    let plan = Plan::new();
    match flow {
        Staffing::Joiner => joiner(gh, run, app, plan).await,
        Staffing::Mover => mover(gh, app, plan).await,
        Staffing::Leaver => leaver(gh, run, app, plan).await,
    }
}

async fn look(gh: &Github, login: &str) -> Result<Found, StepError> {
    let org = gh.org();
    gh.client.membership(login).await.map(Found::from).map_err(|e| explain(e, org, &format!("look {login} up")))
}

async fn joiner(gh: &Github, run: &RunSpec, app: &GithubApp, mut plan: Plan) -> Result<Plan, StepError> {
    let org = gh.org();
    let role = wanted_role(app).unwrap_or(OrgRole::Member);
    let teams = match gh.resolve_teams(app.teams.as_deref().unwrap_or_default()).await {
        Ok(t) => t,
        Err(e) => return plan.stopped_by(e),
    };
    let slugs: Vec<&str> = teams.iter().map(|t| t.slug.as_str()).collect();
    let email = &run.input.employee.email;
    let Some(login) = app.login.as_deref() else {
        let invitations = gh
            .client
            .pending_invitations(0)
            .await
            .map_err(|e| explain(e, org, "list the organisation's pending invitations"))?;
        match invitations.iter().find(|i| i.email_is(email.as_str())) {
            Some(i) => {
                plan.note(format!(
                    "{email} is already invited to {org} (invitation {}); none would be sent again",
                    i.id
                ));
            }
            None => {
                plan.act(
                    "invite_email",
                    format!(
                        "invite {email} to {org} by e-mail as {} with teams {}; they become a member when they accept",
                        role.as_str(),
                        list_or_none(&slugs)
                    ),
                );
            }
        }
        return Ok(plan);
    };
    match look(gh, login).await? {
        Found::Absent => {
            if gh.client.user(login).await.map_err(|e| explain(e, org, &format!("look up {login}")))?.is_none() {
                return Ok(plan.dead(format!(
                    "no GitHub user {login}: check apps.github.login (the person's GitHub login), then send the joiner again"
                )));
            }
            plan.act(
                format!("invite:{login}"),
                format!(
                    "invite {login} to {org} as {} with teams {}; they become a member when they accept",
                    role.as_str(),
                    list_or_none(&slugs)
                ),
            );
            Ok(plan)
        }
        Found::Pending { role } => {
            plan.note(format!("{login} is already invited to {org} (as {}); none would be sent again", role.as_str()));
            Ok(plan)
        }
        Found::Active { role: current } => {
            let wanted_teams = app.teams.as_ref().map(|_| teams.as_slice());
            converge(gh, login, current, Some(role), wanted_teams, plan).await
        }
    }
}

async fn mover(gh: &Github, app: &GithubApp, plan: Plan) -> Result<Plan, StepError> {
    let org = gh.org();
    let Some(login) = app.login.as_deref() else { return Ok(plan.dead("a mover needs apps.github.login")) };
    let teams = match &app.teams {
        Some(slugs) => match gh.resolve_teams(slugs).await {
            Ok(t) => Some(t),
            Err(e) => return plan.stopped_by(e),
        },
        None => None,
    };
    match look(gh, login).await? {
        Found::Absent => Ok(plan.dead(not_a_member(login, org))),
        Found::Pending { .. } => Ok(plan.needs_person(not_accepted(login, org))),
        Found::Active { role } => converge(gh, login, role, wanted_role(app), teams.as_deref(), plan).await,
    }
}

/// As `Github::converge`: the role, then each wanted team (read), then each managed team not
/// wanted (a DELETE the run would send; the plan reads the membership to say whether it bites).
async fn converge(
    gh: &Github,
    login: &str,
    current: OrgRole,
    wanted: Option<OrgRole>,
    teams: Option<&[super::client::Team]>,
    mut plan: Plan,
) -> Result<Plan, StepError> {
    let c = &gh.client;
    let org = gh.org();
    plan.note(format!("{login} is an active member of {org} as {}", current.as_str()));
    let mut blocked = None;
    match wanted {
        Some(w) if w != current => match gh.role_block(login, current, w).await? {
            Some(why) => blocked = Some(why),
            None => {
                let new = w.membership_role().unwrap_or("member");
                plan.act(
                    format!("set_role:{login}:{new}"),
                    format!("make {login} {new} of {org} (now {})", current.as_str()),
                );
            }
        },
        _ => {}
    }
    if let Some(wanted) = teams {
        for t in wanted {
            let doing = format!("read {login}'s membership of team {}", t.slug);
            if c.team_membership(&t.slug, login).await.map_err(|e| explain(e, org, &doing))?.is_some() {
                plan.note(format!("{login} is already in team {}", t.slug));
            } else {
                plan.act(format!("add_team:{}", t.slug), format!("add {login} to team {} ({})", t.slug, t.name));
            }
        }
        for slug in gh.managed.iter().filter(|m| !wanted.iter().any(|t| t.slug.eq_ignore_ascii_case(m))) {
            let doing = format!("read {login}'s membership of team {slug}");
            if c.team_membership(slug, login).await.map_err(|e| explain(e, org, &doing))?.is_some() {
                plan.act(format!("remove_team:{slug}"), format!("remove {login} from managed team {slug}"));
            }
        }
    }
    Ok(match blocked {
        Some(why) => plan.needs_person(why),
        None => plan,
    })
}

async fn leaver(gh: &Github, run: &RunSpec, app: &GithubApp, mut plan: Plan) -> Result<Plan, StepError> {
    let c = &gh.client;
    let org = gh.org();
    let email = &run.input.employee.email;
    let mut found = Found::Absent;
    if let Some(login) = app.login.as_deref() {
        if login.eq_ignore_ascii_case(&gh.me().await?) {
            return Ok(plan.needs_person(own_user(login, org, "removed")));
        }
        found = look(gh, login).await?;
        match found {
            Found::Active { role } => {
                if role == OrgRole::Admin && gh.is_last_admin(login).await? {
                    return Ok(plan.needs_person(last_owner(login, org)));
                }
                plan.act(
                    format!("remove_member:{login}"),
                    format!(
                        "remove {login} (now {}) from {org}; GitHub deletes their forks of the org's private repositories, and their tokens and SSH keys no longer reach {org}",
                        role.as_str()
                    ),
                );
            }
            Found::Pending { role } => {
                plan.act(
                    format!("remove_member:{login}"),
                    format!("cancel {login}'s pending invitation to {org} (as {})", role.as_str()),
                );
            }
            Found::Absent => {
                plan.note(format!("{login} is not a member of {org} and has no invitation by login"));
            }
        }
    }
    let invitations =
        c.pending_invitations(0).await.map_err(|e| explain(e, org, "list the organisation's pending invitations"))?;
    for i in invitations.iter().filter(|i| i.email_is(email.as_str())) {
        plan.act(
            format!("cancel_invitation:{}", i.id),
            format!("cancel the pending invitation {} sent to {email}", i.id),
        );
    }
    if let (Some(login), Found::Absent) = (app.login.as_deref(), found) {
        let collaborators = c
            .outside_collaborators(0)
            .await
            .map_err(|e| explain(e, org, "list the organisation's outside collaborators"))?;
        if collaborators.iter().any(|u| u.login.eq_ignore_ascii_case(login)) {
            if !app.remove_outside_collaborator {
                return Ok(plan.needs_person(outside_collaborator(login, org)));
            }
            plan.act(
                format!("remove_outside_collaborator:{login}"),
                format!("remove {login} as an outside collaborator from every repository of {org}"),
            );
        }
    }
    if plan.actions.is_empty() {
        plan.note(format!("nothing of {email} to remove from {org}"));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_access_is_the_role_and_the_managed_teams_asked_for() {
        let managed = vec!["platform".to_string(), "security".to_string()];
        let app = GithubApp {
            login: Some("ada-gh".into()),
            role: None,
            teams: Some(vec!["platform".into(), "sales-eng".into()]),
            remove_outside_collaborator: false,
        };
        assert_eq!(
            desired_access(&managed, &app),
            BTreeSet::from(["role:member".to_string(), "team:platform".to_string()])
        );
        let admin = GithubApp { role: Some("admin".into()), teams: None, ..app };
        assert_eq!(desired_access(&[], &admin), BTreeSet::from(["role:admin".to_string()]));
    }

    #[test]
    fn an_email_invitation_reads_as_an_invited_account() {
        let i: Invitation = serde_json::from_value(serde_json::json!({
            "id": 9, "login": null, "email": "Ada@Example.com", "role": "direct_member", "created_at": "x"
        }))
        .unwrap();
        let a = invited(i, BTreeSet::from(["role:member".to_string()]));
        assert_eq!(
            (a.vendor_id.as_str(), a.email.as_deref(), a.login),
            ("invitation:9", Some("ada@example.com"), None)
        );
        assert_eq!(a.status, AccountStatus::Invited);
    }
}
