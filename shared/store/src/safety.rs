//! The blast-radius guard: thresholds on destructive work (leavers) over a
//! sliding window, overall and per vendor (`[safety]` in the settings).
//!
//! The decision is made here, in the transaction that makes a destructive run
//! due (an event's runs stored `queued`, a `scheduled` run whose time came):
//! each admitted run is a row in `safety_admissions`, and a run that would
//! cross a threshold counted over those rows is stored `held` instead (not
//! started, no outbox row, nothing at the vendor) until an operator releases
//! or cancels it. Counting in the database makes the limit one for a fleet of
//! producers and workers and survives their restarts; admissions are
//! serialised (PostgreSQL: a transaction-scoped advisory lock; SQLite has one
//! writer), so concurrent admissions never exceed a threshold.
//!
//! A released run is not counted: its admission is the operator's (audited),
//! and counting it would hold the next leavers behind a batch already judged.

use crate::entity::{run, safety_admission};
use crate::Result;
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, Statement,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// At most `count` admissions within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u64,
    pub window: Duration,
}

/// The thresholds in force. The default has none: nothing is ever held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    /// Leavers at all vendors together.
    pub leavers: Option<Limit>,
    /// Leavers at one vendor.
    pub vendor_leavers: BTreeMap<VendorKind, Limit>,
    /// The approval rules (`[approval]`), judged in the same transactions:
    /// a matching run awaits an approver (see [`crate::approvals`]).
    pub approvals: crate::approvals::Gate,
}

/// Destructive work: a leaver removes a person's access (deactivates,
/// removes roles). Reconcile's fixes that remove access are leaver events too,
/// so they count the same. Joiners, movers and deal reassignments never count
/// and are never held.
pub fn is_destructive(w: Workflow) -> bool {
    w == Workflow::Leaver
}

impl Guard {
    pub fn is_off(&self) -> bool {
        self.leavers.is_none() && self.vendor_leavers.is_empty()
    }

    fn limits(&self, vendor: VendorKind) -> impl Iterator<Item = (Option<VendorKind>, Limit)> + '_ {
        self.leavers.map(|l| (None, l)).into_iter().chain(self.vendor_leavers.get(&vendor).map(|l| (Some(vendor), *l)))
    }
}

/// A run about to become due: its id, vendor and workflow.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub run_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
}

/// Decides, for each candidate in order, whether it is admitted (recorded in
/// `safety_admissions`) or held (true). Call inside the transaction that
/// stores the candidates' new state, after its first write (SQLite: see
/// `events::insert_all`), and after any per-person lock (the guard's lock is
/// taken last, so two transactions never wait on each other in turn).
pub(crate) async fn admit(
    txn: &impl ConnectionTrait,
    guard: &Guard,
    candidates: &[Candidate],
    now: DateTime<Utc>,
) -> Result<Vec<bool>> {
    let mut held = vec![false; candidates.len()];
    if guard.is_off() || !candidates.iter().any(|c| is_destructive(c.workflow)) {
        return Ok(held);
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        // One lock for every guarded admission: the overall threshold spans vendors.
        txn.execute(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended('lifecycle-safety-admissions', 0))",
        ))
        .await?;
    }
    // Admitted so far in each limit's window (None: every vendor).
    let mut used: BTreeMap<Option<VendorKind>, u64> = BTreeMap::new();
    let mut admitted = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if !is_destructive(c.workflow) {
            continue;
        }
        let mut over = false;
        for (scope, limit) in guard.limits(c.vendor) {
            let n = match used.get(&scope) {
                Some(n) => *n,
                None => {
                    let n = admitted_since(txn, scope, now - chrono_of(limit.window)).await?;
                    used.insert(scope, n);
                    n
                }
            };
            over |= n >= limit.count;
        }
        if over {
            held[i] = true;
            continue;
        }
        for (scope, _) in guard.limits(c.vendor) {
            *used.entry(scope).or_default() += 1;
        }
        admitted.push(safety_admission::ActiveModel {
            run_id: Set(c.run_id.clone()),
            vendor: Set(c.vendor),
            workflow: Set(c.workflow),
            admitted_at: Set(now),
        });
    }
    if !admitted.is_empty() {
        safety_admission::Entity::insert_many(admitted).exec_without_returning(txn).await?;
    }
    Ok(held)
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

async fn admitted_since(db: &impl ConnectionTrait, vendor: Option<VendorKind>, since: DateTime<Utc>) -> Result<u64> {
    let mut q = safety_admission::Entity::find()
        .filter(safety_admission::Column::Workflow.eq(Workflow::Leaver))
        .filter(safety_admission::Column::AdmittedAt.gt(since));
    if let Some(v) = vendor {
        q = q.filter(safety_admission::Column::Vendor.eq(v));
    }
    Ok(q.count(db).await?)
}

/// How many destructive runs were admitted since `since` (at `vendor`, or at all).
pub async fn admitted(db: &impl ConnectionTrait, vendor: Option<VendorKind>, since: DateTime<Utc>) -> Result<u64> {
    admitted_since(db, vendor, since).await
}

/// Releases a held run: `queued`, due now, with a new dispatch sequence and
/// its outbox row (the relay publishes it). Not counted against the window.
/// Returns the sequence, or None when it was no longer held.
pub async fn release(db: &impl ConnectionTrait, run_id: &str) -> Result<Option<i64>> {
    let now = Utc::now();
    // The update first: on SQLite a transaction must write before it reads
    // (see `events::insert_all`).
    let res = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::Queued))
        .col_expr(run::Column::DispatchSeq, Expr::col(run::Column::DispatchSeq).add(1))
        .col_expr(run::Column::NextAttemptAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .filter(run::Column::Id.eq(run_id))
        .filter(run::Column::State.eq(RunState::Held))
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Ok(None);
    }
    Ok(Some(crate::outbox::enqueue(db, run_id, now, "released").await?))
}

/// Cancels a held run, saying by whom. False when it was no longer held.
pub async fn cancel(db: &impl ConnectionTrait, run_id: &str, by: &str) -> Result<bool> {
    let now = Utc::now();
    let res = run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(RunState::Cancelled))
        .col_expr(
            run::Column::Outcome,
            Expr::value(format!("cancelled by {by} while held by the blast-radius guard; nothing was done")),
        )
        .col_expr(run::Column::BlockedBy, Expr::value(Option::<String>::None))
        .col_expr(run::Column::FinishedAt, Expr::value(now))
        .col_expr(run::Column::UpdatedAt, Expr::value(now))
        .col_expr(run::Column::DispatchSeq, Expr::col(run::Column::DispatchSeq).add(1))
        .filter(run::Column::Id.eq(run_id))
        .filter(run::Column::State.eq(RunState::Held))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
