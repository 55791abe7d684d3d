//! Approvals (`[approval]`, see `lifecycle_store::approvals`): listing the runs
//! awaiting an approver, approving or rejecting one (once, by a configured
//! approver, audited with who and why), and the periodic pass that escalates
//! once and ends undecided runs `rejected` at their deadline. Shared by
//! `lifecycle-ctl approvals`, the admin API and the console.

use crate::views::RunSummary;
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_broker::Publisher;
use lifecycle_config::{ApprovalSettings, Settings};
use lifecycle_domain::RunState;
use lifecycle_store::approvals::{self as store, Decision, Gate, Rule};
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::entity::approval;
use lifecycle_store::runs;
use lifecycle_store::safety::Guard;
use lifecycle_store::{Db, StoreError};
use serde::Serialize;
use serde_json::json;

pub const ACTION_APPROVE: &str = "approval.approve";
pub const ACTION_REJECT: &str = "approval.reject";
pub const ACTION_EXPIRE: &str = "approval.expire";
pub const ACTION_ESCALATE: &str = "approval.escalate";

/// The store's rules from the settings (checked at start-up).
pub fn gate(s: &ApprovalSettings) -> Gate {
    Gate {
        rules: s
            .effective()
            .into_iter()
            .map(|r| Rule {
                vendor: r.vendor,
                workflows: r.workflows,
                field: r.field,
                values: r.values,
                approvers: r.approvers,
                deadline: r.deadline,
                escalate_to: r.escalate_to,
                escalate_after: r.escalate_after,
            })
            .collect(),
    }
}

/// What decides in the transaction that makes a run due: the blast-radius
/// guard (`[safety]`) and the approval rules (`[approval]`).
pub fn guard(s: &Settings) -> Guard {
    Guard { approvals: gate(&s.approval), ..crate::safety::guard(&s.safety) }
}

/// A run awaiting approval, as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub run: RunSummary,
    /// What made it need approval ("pipedrive joiner, role = Admin").
    pub rule: String,
    /// Who may decide now (the escalation group once escalated).
    pub approvers: Vec<String>,
    pub requested_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub escalate_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    /// Set once decided: `approved`, `rejected` or `expired`, by whom and why.
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

impl ApprovalView {
    fn new(run: runs::Run, a: approval::Model) -> Self {
        ApprovalView {
            run: RunSummary::from(run),
            approvers: store::deciders(&a),
            rule: a.rule,
            requested_at: a.requested_at,
            deadline_at: a.deadline_at,
            escalate_at: a.escalate_at,
            escalated_at: a.escalated_at,
            decision: a.decision,
            decided_by: a.decided_by,
            decided_at: a.decided_at,
            reason: a.reason,
        }
    }
}

/// Runs awaiting approval, oldest first.
pub async fn list(db: &Db) -> Result<Vec<ApprovalView>, OpsError> {
    Ok(store::open(db).await?.into_iter().map(|(r, a)| ApprovalView::new(r, a)).collect())
}

/// A run's approval (awaiting or decided), if it ever needed one.
pub async fn of_run(db: &Db, run_id: &str) -> Result<Option<ApprovalView>, OpsError> {
    let Some(a) = store::get(db, run_id).await? else { return Ok(None) };
    let Some(r) = runs::get(db, run_id).await? else { return Ok(None) };
    Ok(Some(ApprovalView::new(r, a)))
}

/// The operator's name in an actor: `admin:alice` and `ctl:alice` are `alice`.
fn name_of(actor: &str) -> &str {
    actor.split_once(':').map_or(actor, |(_, name)| name)
}

/// Whether `actor` may decide: named among `deciders` (bare, or as the actor itself).
pub fn may_decide(deciders: &[String], actor: &str) -> bool {
    deciders.iter().any(|d| d == actor || d == name_of(actor))
}

/// Approves a run awaiting approval: it becomes `queued` with its outbox row
/// (the relay publishes it) and is not judged again by the guard.
pub async fn approve(db: &Db, run_id: &str, actor: &str, reason: Option<&str>) -> Result<ApprovalView, OpsError> {
    decide(db, None, run_id, actor, Decision::Approved, reason.map(str::trim).filter(|r| !r.is_empty())).await
}

/// Rejects a run awaiting approval: it ends `rejected`, saying by whom and
/// why; what waited behind it is woken.
pub async fn reject(
    db: &Db,
    publisher: &Publisher,
    run_id: &str,
    actor: &str,
    reason: &str,
) -> Result<ApprovalView, OpsError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OpsError::Invalid("say why the run is rejected (a reason is required)".into()));
    }
    decide(db, Some(publisher), run_id, actor, Decision::Rejected, Some(reason)).await
}

async fn decide(
    db: &Db,
    publisher: Option<&Publisher>,
    run_id: &str,
    actor: &str,
    decision: Decision,
    reason: Option<&str>,
) -> Result<ApprovalView, OpsError> {
    let run = runs::get(db, run_id).await?.ok_or_else(|| OpsError::NotFound(format!("no run {run_id}")))?;
    let Some(a) = store::get(db, run_id).await? else {
        return Err(OpsError::Refused(format!("run {run_id} is {} and never awaited approval", run.state)));
    };
    if let Some(d) = &a.decision {
        return Err(OpsError::Refused(format!(
            "run {run_id} was {d} already by {} at {}: a run is decided once",
            a.decided_by.as_deref().unwrap_or("?"),
            a.decided_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        )));
    }
    if run.state != RunState::AwaitingApproval {
        return Err(OpsError::Refused(format!("run {run_id} is {}: it no longer awaits approval", run.state)));
    }
    let deciders = store::deciders(&a);
    if !may_decide(&deciders, actor) {
        let group = if a.escalated_at.is_some() { "its escalation group" } else { "its approvers" };
        return Err(OpsError::Forbidden(format!(
            "{actor} may not decide run {run_id}: {group} are {}",
            deciders.join(", ")
        )));
    }
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    if !store::decide(&txn, run_id, decision, actor, reason).await? {
        // Another approver (or the deadline, or a newer event) came first.
        drop(txn);
        let now = store::get(db, run_id).await?;
        let by = now.as_ref().and_then(|a| a.decided_by.clone()).unwrap_or_else(|| "a newer event".into());
        return Err(OpsError::Refused(format!("run {run_id} was decided meanwhile (by {by}): a run is decided once")));
    }
    audit::record(
        &txn,
        NewEntry {
            actor,
            action: if decision == Decision::Approved { ACTION_APPROVE } else { ACTION_REJECT },
            target_kind: "run",
            target_id: run_id,
            reason,
            details: Some(json!({
                "rule": a.rule, "vendor": run.vendor, "workflow": run.workflow,
                "approvers": deciders, "escalated": a.escalated_at.is_some(),
            })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    tracing::info!(run_id, actor, decision = decision.as_str(), "approval decided");
    if let Some(p) = publisher {
        lifecycle_engine::wake_next(
            &lifecycle_store::engine::Storage::new(db.clone()),
            p,
            run.vendor,
            &run.person_key,
            run.seq,
        )
        .await;
    }
    of_run(db, run_id).await?.ok_or_else(|| OpsError::NotFound(format!("no run {run_id}")))
}

/// What one deadline pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadlinePass {
    pub escalated: Vec<String>,
    pub expired: Vec<String>,
}

/// Escalates (once) the approvals whose `escalate_after` has come and ends
/// `rejected` the runs no one decided by their deadline; each audited with
/// the system as actor. Runs in the worker beside the scheduler; several
/// workers may run it at once: each change is a conditional update.
pub async fn enforce_deadlines(db: &Db, publisher: &Publisher) -> Result<DeadlinePass, OpsError> {
    let now = Utc::now();
    let (escalate, expire) = store::due(db, now).await?;
    let mut out = DeadlinePass::default();
    for a in escalate {
        let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
        if !store::escalate(&txn, &a.run_id, now).await? {
            continue;
        }
        let to: Vec<String> = serde_json::from_str(&a.escalate_to).unwrap_or_default();
        audit::record(
            &txn,
            NewEntry {
                actor: store::DEADLINE_ACTOR,
                action: ACTION_ESCALATE,
                target_kind: "run",
                target_id: &a.run_id,
                reason: Some("no decision before escalate_after"),
                details: Some(json!({ "rule": a.rule, "escalate_to": to })),
            },
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)?;
        tracing::warn!(run_id = %a.run_id, escalate_to = ?to, "approval escalated");
        out.escalated.push(a.run_id);
    }
    for a in expire {
        let why = format!("no decision by {}", a.deadline_at.to_rfc3339());
        let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
        if !store::decide(&txn, &a.run_id, Decision::Expired, store::DEADLINE_ACTOR, Some(&why)).await? {
            continue;
        }
        audit::record(
            &txn,
            NewEntry {
                actor: store::DEADLINE_ACTOR,
                action: ACTION_EXPIRE,
                target_kind: "run",
                target_id: &a.run_id,
                reason: Some(&why),
                details: Some(json!({ "rule": a.rule })),
            },
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)?;
        tracing::warn!(run_id = %a.run_id, "approval expired: run rejected");
        if let Some(r) = runs::get(db, &a.run_id).await? {
            lifecycle_engine::wake_next(
                &lifecycle_store::engine::Storage::new(db.clone()),
                publisher,
                r.vendor,
                &r.person_key,
                r.seq,
            )
            .await;
        }
        out.expired.push(a.run_id);
    }
    Ok(out)
}
