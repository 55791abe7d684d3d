//! Approvals (`[approval]`): runs of chosen vendor × workflow pairs await an
//! approver before they start.
//!
//! The decision that a run must await is made in the transaction that makes
//! it due, beside the blast-radius guard (an event's runs stored `queued`, a
//! `scheduled` run whose time came): it is stored `awaiting_approval` (no
//! outbox row, nothing at the vendor) with a row in `approvals` saying whom it
//! awaits and until when. Approving makes it `queued` with its outbox row;
//! rejecting, or its deadline passing, ends it `rejected`. The decision is
//! taken once: the approval row's `decision` is set by a conditional update,
//! so two approvers deciding at the same moment cannot both win.
//!
//! An awaiting run keeps later runs of the person at the vendor behind it
//! (effects stay in order), but a later event replaces it as it replaces a
//! scheduled run (see `crate::time::arrange`): a leaver never waits behind an
//! unapproved joiner. Leavers never await (refused in the settings, and
//! never matched here either).

use crate::entity::{approval, run};
use crate::Result;
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use std::time::Duration;

/// The actor of decisions nobody took (a deadline passing, an escalation).
pub const DEADLINE_ACTOR: &str = "lifecycle (approval deadline)";

/// One rule: runs of `vendor` × `workflows` (whose app request's `field` is,
/// or contains, one of `values`, if a field is named) await `approvers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub vendor: VendorKind,
    pub workflows: Vec<Workflow>,
    pub field: Option<String>,
    pub values: Vec<String>,
    pub approvers: Vec<String>,
    pub deadline: Duration,
    pub escalate_to: Vec<String>,
    pub escalate_after: Option<Duration>,
}

/// The rules in force; none by default (nothing awaits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    pub rules: Vec<Rule>,
}

impl Rule {
    /// "pipedrive joiner, role = Admin": what made a run need approval.
    fn describe(&self, workflow: Workflow, matched: Option<&str>) -> String {
        match (&self.field, matched) {
            (Some(f), Some(v)) => format!("{} {workflow}, {f} = {v}", self.vendor),
            _ => format!("{} {workflow}", self.vendor),
        }
    }

    /// Whether a run's input matches; Some(the matched value, if a field is named).
    fn matches(&self, input: &Value) -> Option<Option<String>> {
        let Some(field) = &self.field else { return Some(None) };
        // The field of the app request (`app.role`), else of the input itself.
        let v = input.get("app").and_then(|a| a.get(field)).or_else(|| input.get(field))?;
        // Case and surrounding spaces aside: HR's "admin" is the same role.
        let hit = |s: &str| self.values.iter().find(|want| want.trim().eq_ignore_ascii_case(s.trim())).cloned();
        match v {
            Value::String(s) => hit(s).map(Some),
            Value::Array(items) => items.iter().filter_map(Value::as_str).find_map(hit).map(Some),
            _ => None,
        }
    }
}

impl Gate {
    pub fn is_off(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule a run matches, and what it matched on.
    pub fn matching(&self, vendor: VendorKind, workflow: Workflow, input: &str) -> Option<(&Rule, String)> {
        if self.is_off() || workflow == Workflow::Leaver {
            return None;
        }
        let mut parsed: Option<Value> = None;
        for r in self.rules.iter().filter(|r| r.vendor == vendor && r.workflows.contains(&workflow)) {
            let value = parsed.get_or_insert_with(|| serde_json::from_str(input).unwrap_or(Value::Null));
            if let Some(matched) = r.matches(value) {
                return Some((r, r.describe(workflow, matched.as_deref())));
            }
        }
        None
    }
}

/// A run about to become due, as the gate judges it.
pub(crate) struct Candidate<'a> {
    pub run_id: &'a str,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub input: &'a str,
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Decides, for each candidate, whether it must await approval (true), and
/// records whom it awaits. Call in the transaction that stores the runs'
/// state, after its first write (SQLite: see `events::insert_all`).
pub(crate) async fn request(
    txn: &impl ConnectionTrait,
    gate: &Gate,
    candidates: &[Candidate<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<bool>> {
    let mut out = vec![false; candidates.len()];
    if gate.is_off() {
        return Ok(out);
    }
    let mut rows = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let Some((rule, described)) = gate.matching(c.vendor, c.workflow, c.input) else { continue };
        out[i] = true;
        rows.push(approval::ActiveModel {
            run_id: Set(c.run_id.to_string()),
            vendor: Set(c.vendor),
            workflow: Set(c.workflow),
            rule: Set(described),
            approvers: Set(serde_json::to_string(&rule.approvers).expect("names serialize")),
            escalate_to: Set(serde_json::to_string(&rule.escalate_to).expect("names serialize")),
            requested_at: Set(now),
            escalate_at: Set(rule.escalate_after.map(|d| now + chrono_of(d))),
            escalated_at: Set(None),
            deadline_at: Set(now + chrono_of(rule.deadline)),
            decision: Set(None),
            decided_by: Set(None),
            decided_at: Set(None),
            reason: Set(None),
        });
    }
    if !rows.is_empty() {
        // A run made due again (a scheduled run once more) has no older row:
        // each run is judged once, when it first becomes due.
        approval::Entity::insert_many(rows).exec_without_returning(txn).await?;
    }
    Ok(out)
}

/// The approval row of a run, if it ever awaited one.
pub async fn get(db: &impl ConnectionTrait, run_id: &str) -> Result<Option<approval::Model>> {
    Ok(approval::Entity::find_by_id(run_id.to_string()).one(db).await?)
}

/// Whom a run awaits now: the escalation group once escalated, else its approvers.
pub fn deciders(a: &approval::Model) -> Vec<String> {
    let names = if a.escalated_at.is_some() { &a.escalate_to } else { &a.approvers };
    serde_json::from_str(names).unwrap_or_default()
}

/// Runs awaiting approval now with their approval rows, oldest first.
pub async fn open(db: &impl ConnectionTrait) -> Result<Vec<(run::Model, approval::Model)>> {
    let runs = run::Entity::find()
        .filter(run::Column::State.eq(RunState::AwaitingApproval))
        .order_by_asc(run::Column::Seq)
        .all(db)
        .await?;
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let mut rows: std::collections::HashMap<String, approval::Model> = approval::Entity::find()
        .filter(approval::Column::RunId.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.run_id.clone(), a))
        .collect();
    Ok(runs.into_iter().filter_map(|r| rows.remove(&r.id).map(|a| (r, a))).collect())
}

/// How a run's approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Rejected,
    Expired,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
            Decision::Expired => "expired",
        }
    }
}

/// Takes the one decision on a run awaiting approval: its row is marked and
/// the run made `queued` (with its outbox row; the relay publishes it) or
/// `rejected`. Returns false, with nothing changed, when it was decided
/// already or the run no longer awaits (replaced, cancelled). Call inside a
/// transaction; the first statement writes (SQLite: see `events::insert_all`).
pub async fn decide(
    txn: &impl ConnectionTrait,
    run_id: &str,
    decision: Decision,
    by: &str,
    reason: Option<&str>,
) -> Result<bool> {
    let now = Utc::now();
    let awaiting = Query::select()
        .column(run::Column::Id)
        .from(run::Entity)
        .and_where(run::Column::Id.eq(run_id))
        .and_where(run::Column::State.eq(RunState::AwaitingApproval))
        .to_owned();
    let res = approval::Entity::update_many()
        .col_expr(approval::Column::Decision, Expr::value(decision.as_str()))
        .col_expr(approval::Column::DecidedBy, Expr::value(by))
        .col_expr(approval::Column::DecidedAt, Expr::value(now))
        .col_expr(approval::Column::Reason, Expr::value(reason.map(str::to_string)))
        .filter(approval::Column::RunId.eq(run_id))
        .filter(approval::Column::Decision.is_null())
        .filter(approval::Column::RunId.in_subquery(awaiting))
        .exec(txn)
        .await?;
    if res.rows_affected != 1 {
        return Ok(false);
    }
    let update = run::Entity::update_many()
        .col_expr(run::Column::DispatchSeq, Expr::col(run::Column::DispatchSeq).add(1))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(run_id))
        .filter(run::Column::State.eq(RunState::AwaitingApproval));
    let update = match decision {
        Decision::Approved => update
            .col_expr(run::Column::State, Expr::value(RunState::Queued))
            .col_expr(run::Column::NextAttemptAt, Expr::value(now)),
        Decision::Rejected | Decision::Expired => {
            let outcome = match (decision, reason) {
                (Decision::Expired, _) => format!("rejected: {}; nothing was done", reason.unwrap_or("expired")),
                (_, Some(why)) => format!("rejected by {by}: {why}; nothing was done"),
                (_, None) => format!("rejected by {by}; nothing was done"),
            };
            update
                .col_expr(run::Column::State, Expr::value(RunState::Rejected))
                .col_expr(run::Column::Outcome, Expr::value(outcome))
                .col_expr(run::Column::BlockedBy, Expr::value(Option::<String>::None))
                .col_expr(run::Column::FinishedAt, Expr::value(now))
        }
    };
    if update.exec(txn).await?.rows_affected != 1 {
        return Err(crate::StoreError::Corrupt(format!("run {run_id} stopped awaiting approval while it was decided")));
    }
    if decision == Decision::Approved {
        crate::outbox::enqueue(txn, run_id, now, "approved").await?;
    }
    Ok(true)
}

/// Undecided approvals of runs still awaiting, whose escalation or deadline
/// has come by `now`: (escalate, expire).
pub async fn due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<(Vec<approval::Model>, Vec<approval::Model>)> {
    let awaiting = Query::select()
        .column(run::Column::Id)
        .from(run::Entity)
        .and_where(run::Column::State.eq(RunState::AwaitingApproval))
        .to_owned();
    let open = || {
        approval::Entity::find()
            .filter(approval::Column::Decision.is_null())
            .filter(approval::Column::RunId.in_subquery(awaiting.clone()))
            .order_by_asc(approval::Column::RequestedAt)
    };
    let expire = open().filter(approval::Column::DeadlineAt.lte(now)).all(db).await?;
    let escalate = open()
        .filter(approval::Column::EscalatedAt.is_null())
        .filter(approval::Column::EscalateAt.lte(now))
        .filter(approval::Column::DeadlineAt.gt(now))
        .all(db)
        .await?;
    Ok((escalate, expire))
}

/// Escalates an approval once: from now only its escalation group decides.
/// False when it escalated or was decided meanwhile.
pub async fn escalate(db: &impl ConnectionTrait, run_id: &str, now: DateTime<Utc>) -> Result<bool> {
    let res = approval::Entity::update_many()
        .col_expr(approval::Column::EscalatedAt, Expr::value(now))
        .filter(approval::Column::RunId.eq(run_id))
        .filter(approval::Column::Decision.is_null())
        .filter(approval::Column::EscalatedAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
