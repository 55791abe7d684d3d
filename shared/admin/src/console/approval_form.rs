//! Approve / Reject on the run page of a run awaiting approval
//! (`[approval]`): the page shows what made it need approval, who may decide
//! and the deadline, with one CSRF-bound form per decision (the token names
//! the decision and the run). A notification's link (`console_url` + the run
//! page) leads here. The decision is `lifecycle_ops::approvals`, as from the
//! ctl and the API: once, by a configured approver, audited.

use super::{check_token, when, PageError};
use crate::{AdminState, FormAction};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::post;
use axum::{Form, Router};
use lifecycle_domain::RunState;
use lifecycle_ops::approvals;
use lifecycle_ops::OpsError;
use serde::Deserialize;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/runs/{id}/approve", post(do_approve)).route("/runs/{id}/reject", post(do_reject))
}

/// What the run page shows of a run's approval.
pub struct ApprovalBox {
    pub rule: String,
    pub approvers: String,
    pub deadline: String,
    pub escalated: bool,
    /// Still awaiting: the forms are shown.
    pub awaiting: bool,
    /// Once decided: "approved by admin:alice: CFO asked".
    pub decision: String,
    pub csrf_approve: String,
    pub csrf_reject: String,
}

/// The run's approval box, if it ever awaited approval.
pub async fn approval_box(s: &AdminState, run_id: &str) -> Result<Option<ApprovalBox>, OpsError> {
    let Some(a) = approvals::of_run(&s.db, run_id).await? else { return Ok(None) };
    let decision = match &a.decision {
        Some(d) => {
            let by = a.decided_by.as_deref().unwrap_or("?");
            match a.reason.as_deref() {
                Some(why) => format!("{d} by {by}: {why}"),
                None => format!("{d} by {by}"),
            }
        }
        None => String::new(),
    };
    Ok(Some(ApprovalBox {
        rule: a.rule,
        approvers: a.approvers.join(", "),
        deadline: when(a.deadline_at),
        escalated: a.escalated_at.is_some(),
        awaiting: a.decision.is_none() && a.run.state == RunState::AwaitingApproval,
        decision,
        csrf_approve: s.csrf.issue(&s.username, FormAction::Approve, run_id),
        csrf_reject: s.csrf.issue(&s.username, FormAction::Reject, run_id),
    }))
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn do_approve(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, PageError> {
    check_token(&s, &headers, &form.csrf, FormAction::Approve, &id)?;
    approvals::approve(&s.db, &id, &s.actor(), Some(form.reason.as_str())).await?;
    Ok(Redirect::to(&format!("/runs/{id}?done=approved")))
}

async fn do_reject(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, PageError> {
    check_token(&s, &headers, &form.csrf, FormAction::Reject, &id)?;
    approvals::reject(&s.db, &s.publisher, &id, &s.actor(), &form.reason).await?;
    Ok(Redirect::to(&format!("/runs/{id}?done=rejected")))
}
