//! What the Calendly organization holds and what a run would do there, from reads only: the
//! directory for reconcile, the access an event asks for, and the plan of a workflow.
//!
//! The directory is every membership (`GET /organization_memberships?organization=<URI>`) and
//! every pending invitation (`GET /organizations/{uuid}/invitations?status=pending`), 100 a
//! page, the most Calendly serves. Requests: `max(1, ceil(M / 100))` + `max(1, ceil(I / 100))`
//! for M members and I pending invitations, plus one `GET /users/me` when the worker holds no
//! organization younger than `catalog_max_age`. At 60 a minute (the client's limiter spends
//! 95 % of it) a 5,000-member organization takes about a minute; a 429 (another worker on the
//! same token) closes the client's gate for `X-RateLimit-Reset` seconds and the page is asked
//! for again.
//!
//! `access` is always empty and `desired_access` is `None`: roles cannot be set through the
//! REST API (an event names none), so membership is all there is to compare. Protected: the
//! owner (the API cannot remove them) and the token's own user (removing them would cut
//! lifecycle off).

use super::client::{Cursor, Invitation, Membership, Organization, Page};
use super::workflows::{explain, owner_message, Calendly, Joined};
use crate::adapter::Staffing;
use crate::http::{patiently, HttpError};
use lifecycle_domain::apps::CalendlyApp;
use lifecycle_domain::EmployeeEmail;
use lifecycle_engine::inspect::{Account, AccountStatus, Plan, Progress};
use lifecycle_engine::{RunSpec, StepError};
use std::collections::BTreeSet;

/// How many 429s in a row one directory request may meet before the read gives up (the
/// client's gate waits out Calendly's `X-RateLimit-Reset` before each new attempt).
const PATIENCE: u32 = 10;

pub(super) async fn directory(cal: &Calendly, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
    let org = cal.organization().await?;
    match read_all(cal, &org, progress).await {
        // The cached organization may be stale (the token's user moved): ask once more.
        Err(e) if e.is_not_found() => {
            cal.organization.invalidate().await;
            let fresh = cal.organization().await?;
            if fresh.uri == org.uri {
                return Err(explain(e, "list the organization's members"));
            }
            read_all(cal, &fresh, progress).await.map_err(|e| explain(e, "list the organization's members"))
        }
        other => other.map_err(|e| explain(e, "list the organization's members and invitations")),
    }
}

async fn read_all(cal: &Calendly, org: &Organization, progress: &dyn Progress) -> Result<Vec<Account>, HttpError> {
    let c = &cal.client;
    let mut accounts = Vec::new();
    let mut cursor = Cursor::new("/organization_memberships");
    while let Some(token) = cursor.next_token()? {
        let page: Page<Membership> =
            patiently(PATIENCE, HttpError::is_rate_limited, || c.membership_page(org, token.as_deref())).await?;
        accounts.extend(page.items.into_iter().map(|m| member(m, org)));
        progress.accounts_read(accounts.len());
        cursor.advance(page.next)?;
    }
    let mut cursor = Cursor::new("/organizations/{uuid}/invitations");
    while let Some(token) = cursor.next_token()? {
        let page: Page<Invitation> =
            patiently(PATIENCE, HttpError::is_rate_limited, || c.pending_invitation_page(org, token.as_deref()))
                .await?;
        accounts.extend(page.items.into_iter().filter(Invitation::is_pending).map(invited));
        progress.accounts_read(accounts.len());
        cursor.advance(page.next)?;
    }
    Ok(accounts)
}

fn member(m: Membership, org: &Organization) -> Account {
    let email = m.user.email.as_deref().map(str::to_lowercase);
    let protected = if m.is_owner() {
        Some(
            "the owner of the Calendly organization: Calendly does not let the owner be removed through its API (transfer ownership first)"
                .to_string(),
        )
    } else if m.user.uri.is_some() && m.user.uri == org.token_user {
        Some("the user whose personal access token lifecycle uses (vendors.calendly.token): removing them would cut lifecycle off from the organization".to_string())
    } else {
        None
    };
    Account {
        name: m.user.name.clone().or_else(|| email.clone()).unwrap_or_else(|| m.uri.clone()),
        vendor_id: m.uri,
        email,
        login: None,
        status: AccountStatus::Active,
        access: BTreeSet::new(),
        protected,
    }
}

fn invited(i: Invitation) -> Account {
    let email = i.email.to_lowercase();
    Account {
        vendor_id: i.uri,
        name: email.clone(),
        email: Some(email),
        login: None,
        status: AccountStatus::Invited,
        access: BTreeSet::new(),
        protected: None,
    }
}

/// Nothing to compare: an event names no role (the REST API cannot set one), and the
/// workflows converge membership only.
pub(super) fn desired_access(app: &CalendlyApp) -> Option<BTreeSet<String>> {
    let _ = app;
    None
}

pub(super) async fn plan(cal: &Calendly, flow: Staffing, run: &RunSpec) -> Result<Plan, StepError> {
    let email = &run.input.employee.email;
    match flow {
        Staffing::Joiner | Staffing::Mover => join(cal, email).await,
        Staffing::Leaver => leave(cal, email).await,
    }
}

/// As `Calendly::join`: a member stays, a pending invitation is not sent again, anyone else
/// is invited.
async fn join(cal: &Calendly, email: &EmployeeEmail) -> Result<Plan, StepError> {
    let mut plan = Plan::new();
    let found = match cal.look(email).await {
        Ok((_, found)) => found,
        Err(e) => return plan.stopped_by(e),
    };
    match found {
        None => {
            plan.act(
                "invite",
                format!(
                    "invite {email} to the Calendly organization: Calendly e-mails them an invitation, and they become a member (taking a seat) only when they accept it"
                ),
            );
        }
        Some(Joined::Member { membership_uuid, role }) => {
            plan.note(format!(
                "{email} is already a member of the Calendly organization (membership {membership_uuid}, role {role}); nothing to do"
            ));
        }
        Some(Joined::Invited { invitation_uuid, since, .. }) => {
            plan.note(format!(
                "an invitation for {email} is already pending{} (invitation {invitation_uuid}); none would be sent again",
                since.map(|s| format!(" since {s}")).unwrap_or_default()
            ));
        }
    }
    Ok(plan)
}

/// As `Calendly::leave`: the membership removed (never the owner's), or the pending invitation
/// revoked.
async fn leave(cal: &Calendly, email: &EmployeeEmail) -> Result<Plan, StepError> {
    let mut plan = Plan::new();
    let found = match cal.look(email).await {
        Ok((_, found)) => found,
        Err(e) => return plan.stopped_by(e),
    };
    match found {
        None => {
            plan.note(format!("{email} has no Calendly membership and no pending invitation; nothing to remove"));
        }
        Some(Joined::Member { membership_uuid, role }) if role.eq_ignore_ascii_case("owner") => {
            return Ok(plan.needs_person(owner_message(email, &membership_uuid)));
        }
        Some(Joined::Member { membership_uuid, role }) => {
            plan.act(
                format!("remove_membership:{membership_uuid}"),
                format!(
                    "remove {email} (role {role}) from the Calendly organization (membership {membership_uuid}); their Calendly account and its data remain"
                ),
            );
        }
        Some(Joined::Invited { invitation_uuid, .. }) => {
            plan.act(
                format!("revoke_invitation:{invitation_uuid}"),
                format!(
                    "revoke the pending Calendly invitation of {email} (invitation {invitation_uuid}); they never became a member"
                ),
            );
        }
    }
    Ok(plan)
}
