//! What the CircleCI organization holds and what a run would do there, from reads only: the
//! directory for reconcile, the access an event asks for, and the plan of a workflow.
//!
//! The directory is the org's member list (`GET /org/{orgID}/members`), 100 a page, the most
//! CircleCI serves: `max(1, ceil(N / 100))` requests for N members, plus `/me/collaborations`
//! (the org's UUID) and `/me` (the token's owner) when the worker holds neither younger than
//! `catalog_max_age`. At 1,000 a minute (the client's limiter spends 95 % of it) a 5,000-member
//! org is 50 pages, about three seconds. A 429 closes the client's gate (a second: CircleCI
//! names no wait) and the page is asked for again.
//!
//! CircleCI knows people by VCS login, not address: `login` is set (lower-cased: logins are
//! case-insensitive) and `email` is not. `access` is always empty and `desired_access` `None`:
//! the API manages membership only (roles come with a per-member GET the workflows never
//! make, and no event names one). Protected: the token's owner (removing them would lock
//! lifecycle out, as `Circleci::leaver` refuses too). CircleCI has no invitations.

use super::client::{Cursor, Member};
use super::workflows::{login_of, not_a_member, owns_the_token, Circleci};
use crate::http::{patiently, HttpError};
use lifecycle_domain::apps::AppRequest;
use lifecycle_domain::Workflow;
use lifecycle_engine::inspect::{Account, AccountStatus, Plan, Progress};
use lifecycle_engine::{RunSpec, StepError};
use std::collections::BTreeSet;

/// How many 429s in a row one page may meet before the read gives up.
const PATIENCE: u32 = 20;

/// The value, or the plan ended where the run would end with this error (a permanent error or
/// a person's task); any other error (CircleCI busy or down) is returned: it says nothing
/// about the run.
macro_rules! or_stop {
    ($plan:ident, $answer:expr) => {
        match $answer {
            Ok(v) => v,
            Err(e) => return $plan.stopped_by(e),
        }
    };
}

pub(super) async fn directory(ci: &Circleci, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
    let c = &ci.client;
    let org = ci.resolve_org().await?;
    let owner = ci.checked(ci.owner.get(|| c.me()).await, "read the token's owner").await?;
    let mut accounts = Vec::new();
    let mut cursor = Cursor::default();
    while let Some(token) = ci.checked(cursor.next_token(), "list members").await? {
        // After a 429 the client's gate is closed for a second: the same page again after it.
        let read = patiently(PATIENCE, HttpError::is_rate_limited, || c.member_page(&org.org_id, token.as_deref()));
        let page = ci.checked(read.await, "list members").await?;
        accounts.extend(page.items.into_iter().map(|m| {
            let protected = (m.id == owner.id).then(|| {
                "owns the API token lifecycle uses (vendors.circleci.token): removing them would cut lifecycle off from the organization".to_string()
            });
            account(m, protected)
        }));
        progress.accounts_read(accounts.len());
        ci.checked(cursor.advance(page.next_page_token), "list members").await?;
    }
    Ok(accounts)
}

fn account(m: Member, protected: Option<String>) -> Account {
    Account {
        name: m.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| m.login.clone()),
        vendor_id: m.id,
        email: None,
        login: Some(m.login.to_lowercase()),
        status: AccountStatus::Active,
        access: BTreeSet::new(),
        protected,
    }
}

/// Nothing to compare: the workflows converge membership only.
pub(super) fn desired_access(app: &AppRequest) -> Option<BTreeSet<String>> {
    let _ = app;
    None
}

pub(super) async fn plan(ci: &Circleci, run: &RunSpec) -> Result<Plan, StepError> {
    let mut plan = Plan::new();
    let AppRequest::Circleci(app) = &run.input.app else {
        return Ok(plan.dead(format!("a {} request reached the CircleCI connector", run.input.app.vendor())));
    };
    let login = or_stop!(plan, login_of(app));
    let slug = &ci.slug;
    if !matches!(run.workflow, Workflow::Joiner | Workflow::Mover | Workflow::Leaver) {
        return Ok(plan.dead(format!("CircleCI has no {} workflow (it has: joiner, mover, leaver)", run.workflow)));
    }
    let org = or_stop!(plan, ci.resolve_org().await);
    let found = or_stop!(plan, ci.checked(ci.client.find_member(&org.org_id, &login).await, "list members").await);
    match (run.workflow, found) {
        // As `Circleci::ensure_member`: the API cannot add anyone.
        (Workflow::Joiner | Workflow::Mover, None) => {
            return Ok(plan.needs_person(not_a_member(run.workflow, &login, slug)))
        }
        (Workflow::Joiner | Workflow::Mover, Some(m)) => {
            plan.note(format!(
                "{} is already a member of the CircleCI organization {slug} (user {}); nothing to do",
                m.login, m.id
            ));
            if run.workflow == Workflow::Mover {
                plan.note("CircleCI roles are not managed through its API");
            }
        }
        // As `Circleci::leaver`: found, never the token's owner, removed.
        (_, None) => {
            plan.note(format!("{login} is not a member of the CircleCI organization {slug}; nothing to remove"));
        }
        (_, Some(m)) => {
            let owner =
                or_stop!(plan, ci.checked(ci.owner.get(|| ci.client.me()).await, "read the token's owner").await);
            if m.id == owner.id {
                return Ok(plan.needs_person(owns_the_token(&m.login, &m.id, slug)));
            }
            plan.act(
                format!("remove_member:{}", m.id),
                format!(
                    "remove {} (CircleCI user {}) from the CircleCI organization {slug}: immediate, and coming back takes a new invitation from the web app; their personal API tokens are not revoked (a person must)",
                    m.login, m.id
                ),
            );
        }
    }
    Ok(plan)
}
