//! What Falcon holds and what a run would do there, from reads only: the directory for
//! reconcile, the access an event asks for, and the plan of a workflow.
//!
//! The directory is the guide's "bulk list all users and their roles" on the current API: the
//! user ids from queryUserV1, 500 a page, each page's users from one retrieveUsersGETV1, then
//! each user's direct grants from CombinedUserRolesV2 (roles are not part of the user, and no
//! operation lists them for many users at once). Requests: `2 * ceil(N / 500)` (at least one
//! page; no user read for an empty one) + `N`, plus a token when none is held.
//! Falcon publishes no budget; a 429 closes the client's gate until `X-RateLimit-RetryAfter`
//! and the same request is sent again then, so a tenant larger than one window's budget is
//! read across windows instead of failing.
//!
//! `access` holds role ids, exactly as events name them (`falcon_analyst`): a joiner or mover
//! grants exactly `apps.crowdstrike.roles` and revokes the rest. Nothing is protected: the
//! credential is an API client, not a user, and the API shows no owner account.

use super::client::{Client, BATCH, MAX_PAGES};
use super::wire::{Error, User};
use super::workflows::{difference, names, no_user_to_move, vanished, CrowdStrike};
use crate::adapter::Staffing;
use crate::http::patiently;
use lifecycle_domain::apps::CrowdstrikeApp;
use lifecycle_domain::EmployeeEmail;
use lifecycle_engine::inspect::{Account, AccountStatus, Plan, Progress};
use lifecycle_engine::{RunSpec, StepError};
use std::collections::BTreeSet;

/// How many 429s in a row one directory request may meet before the read gives up.
const PATIENCE: u32 = 20;
/// Accounts between two progress reports.
const PROGRESS_EVERY: usize = 100;

/// The value, or the plan ended where the run would end with this error (a permanent error or
/// a person's task); any other error (Falcon busy or down) is returned: it says nothing about
/// the run.
macro_rules! or_stop {
    ($plan:ident, $answer:expr) => {
        match $answer {
            Ok(v) => v,
            Err(e) => return $plan.stopped_by(StepError::from(e)),
        }
    };
}

pub(super) async fn directory(cs: &CrowdStrike, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
    let c = &cs.client;
    let mut uids: Vec<String> = Vec::new();
    let mut last = false;
    for _ in 0..MAX_PAGES {
        let page = patiently(PATIENCE, rate_limited, || c.user_uid_page(uids.len())).await?;
        uids.extend(page.uids);
        if page.last {
            last = true;
            break;
        }
    }
    if !last {
        return Err(super::client::too_many_pages().into());
    }
    uids.dedup();
    let mut accounts = Vec::with_capacity(uids.len());
    for batch in uids.chunks(BATCH) {
        let users = patiently(PATIENCE, rate_limited, || c.users(batch)).await?;
        let mut reported = accounts.len();
        for user in users {
            // Deleted since the listing: not an account any more.
            let Some(roles) = patiently(PATIENCE, rate_limited, || c.user_roles(&user.uuid)).await? else {
                continue;
            };
            accounts.push(account(user, roles));
            // Progress every hundred accounts (a role read each), and at the end of a batch.
            if accounts.len() % PROGRESS_EVERY == 0 {
                progress.accounts_read(accounts.len());
                reported = accounts.len();
            }
        }
        if accounts.len() != reported {
            progress.accounts_read(accounts.len());
        }
    }
    Ok(accounts)
}

fn account(user: User, roles: Vec<String>) -> Account {
    let present = |n: &Option<String>| n.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    let name = match (present(&user.first_name).as_deref(), present(&user.last_name).as_deref()) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(n), None) | (None, Some(n)) => n.to_string(),
        (None, None) => user.uid.clone(),
    };
    Account {
        vendor_id: user.uuid,
        email: Some(user.uid.to_lowercase()),
        login: None,
        name,
        status: AccountStatus::Active,
        access: roles.into_iter().collect(),
        protected: None,
    }
}

/// A 429 from Falcon: the client closed its gate until `X-RateLimit-RetryAfter` (ms since the
/// epoch), so
/// [`patiently`] sends the same read again after it.
fn rate_limited(e: &Error) -> bool {
    e.status() == Some(429)
}

/// The role ids, as the joiner and the mover converge them.
pub(super) fn desired_access(app: &CrowdstrikeApp) -> Option<BTreeSet<String>> {
    Some(app.roles.iter().cloned().collect())
}

pub(super) async fn plan(
    cs: &CrowdStrike,
    flow: Staffing,
    run: &RunSpec,
    app: &CrowdstrikeApp,
) -> Result<Plan, StepError> {
    let email = &run.input.employee.email;
    match flow {
        Staffing::Joiner => joiner(cs, run, app).await,
        Staffing::Mover => mover(cs, email, app).await,
        Staffing::Leaver => leaver(&cs.client, email).await,
    }
}

/// As `CrowdStrike::joiner`: the roles checked, then the user found or created, then its roles.
async fn joiner(cs: &CrowdStrike, run: &RunSpec, app: &CrowdstrikeApp) -> Result<Plan, StepError> {
    let mut plan = Plan::new();
    let c = &cs.client;
    let email = &run.input.employee.email;
    let wanted = or_stop!(plan, cs.check_roles(&app.roles).await);
    let (first, last) = names(run);
    let Some(uid) = or_stop!(plan, c.find_user(email).await) else {
        plan.act(
            "ensure_user",
            format!(
                "create CrowdStrike Falcon user {email} ({first} {last}); Falcon emails them an invitation to set a password"
            ),
        );
        if !wanted.is_empty() {
            plan.act("grant_roles", format!("grant the new user role(s) {}", wanted.join(", ")));
        }
        return Ok(plan);
    };
    plan.note(format!("found existing CrowdStrike Falcon user {uid} ({email})"));
    let Some(user) = or_stop!(plan, c.get_user(&uid).await) else {
        return plan.stopped_by(vanished(&uid, email));
    };
    let same = user.first_name.as_deref() == Some(first.as_str()) && user.last_name.as_deref() == Some(last.as_str());
    if same {
        plan.note(format!("its names are already {first} {last}"));
    } else {
        plan.act(
            "update_names",
            format!(
                "rename user {uid} from {} {} to {first} {last}",
                user.first_name.as_deref().unwrap_or("(none)"),
                user.last_name.as_deref().unwrap_or("(none)")
            ),
        );
    }
    let Some(current) = or_stop!(plan, c.user_roles(&uid).await) else {
        return plan.stopped_by(vanished(&uid, email));
    };
    roles(&mut plan, &uid, &wanted, &current);
    Ok(plan)
}

/// As `CrowdStrike::mover`: the roles checked, the user and its roles read, the difference
/// granted and revoked.
async fn mover(cs: &CrowdStrike, email: &EmployeeEmail, app: &CrowdstrikeApp) -> Result<Plan, StepError> {
    let mut plan = Plan::new();
    let wanted = or_stop!(plan, cs.check_roles(&app.roles).await);
    let Some((uid, current)) = or_stop!(plan, find(&cs.client, email).await) else {
        return Ok(plan.needs_person(no_user_to_move(email)));
    };
    plan.note(format!("found CrowdStrike Falcon user {uid} ({email})"));
    roles(&mut plan, &uid, &wanted, &current);
    Ok(plan)
}

/// As `CrowdStrike::leaver`: every role revoked, then the user deleted.
async fn leaver(c: &Client, email: &EmployeeEmail) -> Result<Plan, StepError> {
    let mut plan = Plan::new();
    let Some((uid, roles)) = or_stop!(plan, find(c, email).await) else {
        plan.note(format!("no CrowdStrike Falcon user has the username {email}; nothing to remove"));
        return Ok(plan);
    };
    plan.note(format!("found CrowdStrike Falcon user {uid} ({email})"));
    if !roles.is_empty() {
        plan.act(
            "revoke_roles",
            format!("revoke role(s) {} from user {uid} first, so the audit trail keeps them", roles.join(", ")),
        );
    }
    plan.act("delete_user", format!("delete user {uid} ({email}): immediate and irreversible"));
    Ok(plan)
}

/// The `find_user` step's reads: the uid, then its roles; `None` when absent (or deleted
/// between the two).
async fn find(c: &Client, email: &EmployeeEmail) -> Result<Option<(String, Vec<String>)>, Error> {
    let Some(uid) = c.find_user(email).await? else {
        return Ok(None);
    };
    Ok(c.user_roles(&uid).await?.map(|roles| (uid, roles)))
}

/// The `grant_roles` and `revoke_roles` steps `apply_roles` would run.
fn roles(plan: &mut Plan, uid: &str, wanted: &[String], current: &[String]) {
    let (grant, revoke) = difference(wanted, current);
    if grant.is_empty() && revoke.is_empty() {
        let held = if current.is_empty() { "no roles".to_string() } else { current.join(", ") };
        plan.note(format!("user {uid} already holds exactly {held}"));
        return;
    }
    if !grant.is_empty() {
        plan.act("grant_roles", format!("grant user {uid} role(s) {}", grant.join(", ")));
    }
    if !revoke.is_empty() {
        plan.act("revoke_roles", format!("revoke role(s) {} from user {uid}", revoke.join(", ")));
    }
}
