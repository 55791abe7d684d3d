//! Reconcile passes and their findings. A finding stays open while passes
//! keep seeing it (its `first_seen_at` says since when) and is resolved by
//! the first pass that no longer does.

use crate::entity::{event, reconcile_finding as finding, reconcile_pass as pass, reconcile_request as request, run};
use crate::runs::Run;
use crate::Result;
use chrono::{DateTime, Utc};
use lifecycle_domain::{FindingKind, RunState, VendorKind, Workflow};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
    TransactionTrait,
};
use std::collections::HashMap;

pub use finding::Model as Finding;
pub use pass::Model as Pass;
pub use request::Model as Request;

/// Starts a pass. With a `slot` (a scheduled pass's window), None when
/// another worker has already taken that slot.
pub async fn begin_pass(
    db: &impl ConnectionTrait,
    vendor: VendorKind,
    slot: Option<&str>,
    requested_by: &str,
) -> Result<Option<Pass>> {
    let model = Pass {
        id: uuid::Uuid::now_v7().to_string(),
        vendor,
        slot: slot.map(str::to_string),
        requested_by: requested_by.to_string(),
        started_at: Utc::now(),
        finished_at: None,
        accounts: None,
        findings: None,
        error: None,
    };
    let active = pass::ActiveModel {
        id: Set(model.id.clone()),
        vendor: Set(vendor),
        slot: Set(model.slot.clone()),
        requested_by: Set(model.requested_by.clone()),
        started_at: Set(model.started_at),
        ..Default::default()
    };
    match pass::Entity::insert(active).exec_without_returning(db).await {
        Ok(_) => Ok(Some(model)),
        Err(e) if slot.is_some() && matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Ends a pass: what it read and found, or why it stopped.
pub async fn finish_pass(
    db: &impl ConnectionTrait,
    id: &str,
    accounts: Option<usize>,
    findings: Option<usize>,
    error: Option<&str>,
) -> Result<()> {
    pass::Entity::update_many()
        .col_expr(pass::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(pass::Column::Accounts, Expr::value(accounts.map(|n| n as i32)))
        .col_expr(pass::Column::Findings, Expr::value(findings.map(|n| n as i32)))
        .col_expr(pass::Column::Error, Expr::value(error.map(str::to_string)))
        .filter(pass::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The latest passes, newest first.
pub async fn passes(db: &impl ConnectionTrait, vendor: Option<VendorKind>, limit: u64) -> Result<Vec<Pass>> {
    let mut q = pass::Entity::find();
    if let Some(v) = vendor {
        q = q.filter(pass::Column::Vendor.eq(v));
    }
    Ok(q.order_by_desc(pass::Column::StartedAt).limit(limit).all(db).await?)
}

/// Asks the workers for a pass over `vendor`.
pub async fn request_pass(db: &impl ConnectionTrait, vendor: VendorKind, requested_by: &str) -> Result<Request> {
    let model = Request {
        id: uuid::Uuid::now_v7().to_string(),
        vendor,
        requested_by: requested_by.to_string(),
        requested_at: Utc::now(),
        claimed_by: None,
        claimed_at: None,
        pass_id: None,
        finished_at: None,
        error: None,
    };
    request::Entity::insert(request::ActiveModel {
        id: Set(model.id.clone()),
        vendor: Set(vendor),
        requested_by: Set(model.requested_by.clone()),
        requested_at: Set(model.requested_at),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(model)
}

/// Takes the oldest open request for one of `vendors` for `owner`: one nobody
/// holds, or one whose claim is older than `stale` (its worker died mid-read).
/// A conditional update: of two workers, one wins.
pub async fn claim_request(
    db: &impl ConnectionTrait,
    vendors: &[VendorKind],
    owner: &str,
    stale: chrono::Duration,
) -> Result<Option<Request>> {
    let now = Utc::now();
    let cutoff = now - stale;
    let claimable =
        sea_orm::Condition::any().add(request::Column::ClaimedBy.is_null()).add(request::Column::ClaimedAt.lt(cutoff));
    let candidates = request::Entity::find()
        .filter(request::Column::FinishedAt.is_null())
        .filter(request::Column::Vendor.is_in(vendors.iter().copied()))
        .filter(claimable)
        .order_by_asc(request::Column::RequestedAt)
        .limit(8)
        .all(db)
        .await?;
    for r in candidates {
        let mut taken = request::Entity::update_many()
            .col_expr(request::Column::ClaimedBy, Expr::value(owner))
            .col_expr(request::Column::ClaimedAt, Expr::value(now))
            .filter(request::Column::Id.eq(&r.id))
            .filter(request::Column::FinishedAt.is_null());
        // Still as we saw it: nobody took it (or re-took the stale claim) meanwhile.
        taken = match r.claimed_at {
            None => taken.filter(request::Column::ClaimedAt.is_null()),
            Some(at) => taken.filter(request::Column::ClaimedAt.eq(at)),
        };
        if taken.exec(db).await?.rows_affected == 1 {
            return Ok(Some(Request { claimed_by: Some(owner.to_string()), claimed_at: Some(now), ..r }));
        }
    }
    Ok(None)
}

/// Ends a request: the pass it ran (if it got that far), or why not.
pub async fn finish_request(
    db: &impl ConnectionTrait,
    id: &str,
    pass_id: Option<&str>,
    error: Option<&str>,
) -> Result<()> {
    request::Entity::update_many()
        .col_expr(request::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(request::Column::PassId, Expr::value(pass_id.map(str::to_string)))
        .col_expr(request::Column::Error, Expr::value(error.map(str::to_string)))
        .filter(request::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn get_request(db: &impl ConnectionTrait, id: &str) -> Result<Option<Request>> {
    Ok(request::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// The open (unfinished) requests for `vendor`: one is enough; a second
/// would read the directory twice for nothing.
pub async fn open_requests(db: &impl ConnectionTrait, vendor: VendorKind) -> Result<Vec<Request>> {
    Ok(request::Entity::find()
        .filter(request::Column::Vendor.eq(vendor))
        .filter(request::Column::FinishedAt.is_null())
        .order_by_asc(request::Column::RequestedAt)
        .all(db)
        .await?)
}

pub async fn get_pass(db: &impl ConnectionTrait, id: &str) -> Result<Option<Pass>> {
    Ok(pass::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// What a pass saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub kind: FindingKind,
    pub account_key: String,
    pub vendor_account_id: Option<String>,
    pub person_key: Option<String>,
    pub detail: String,
}

/// Records what a pass over `vendor` saw, in one transaction: a finding seen
/// again keeps its first sighting (and its fix, if one was made) and takes
/// the new detail; a new one is opened; an open one not seen is resolved.
/// Returns the vendor's open findings.
pub async fn record<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    vendor: VendorKind,
    seen: Vec<Seen>,
    at: DateTime<Utc>,
) -> Result<Vec<Finding>> {
    let txn = crate::begin_write(db).await?;
    let open = finding::Entity::find()
        .filter(finding::Column::Vendor.eq(vendor))
        .filter(finding::Column::ResolvedAt.is_null())
        .all(&txn)
        .await?;
    let mut open: HashMap<(FindingKind, String), Finding> =
        open.into_iter().map(|f| ((f.kind, f.account_key.clone()), f)).collect();
    let mut new = Vec::new();
    for s in seen {
        match open.remove(&(s.kind, s.account_key.clone())) {
            Some(f) => {
                finding::Entity::update_many()
                    .col_expr(finding::Column::LastSeenAt, Expr::value(at))
                    .col_expr(finding::Column::Detail, Expr::value(s.detail))
                    .col_expr(finding::Column::VendorAccountId, Expr::value(s.vendor_account_id))
                    .col_expr(finding::Column::PersonKey, Expr::value(s.person_key))
                    .filter(finding::Column::Id.eq(f.id))
                    .exec(&txn)
                    .await?;
            }
            None => new.push(finding::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                vendor: Set(vendor),
                kind: Set(s.kind),
                account_key: Set(s.account_key),
                vendor_account_id: Set(s.vendor_account_id),
                person_key: Set(s.person_key),
                detail: Set(s.detail),
                first_seen_at: Set(at),
                last_seen_at: Set(at),
                ..Default::default()
            }),
        }
    }
    // Inserted in chunks: SQLite caps the variables of one statement.
    for chunk in new.chunks(500) {
        finding::Entity::insert_many(chunk.to_vec()).exec_without_returning(&txn).await?;
    }
    let gone: Vec<String> = open.into_values().map(|f| f.id).collect();
    for chunk in gone.chunks(500) {
        finding::Entity::update_many()
            .col_expr(finding::Column::ResolvedAt, Expr::value(at))
            .filter(finding::Column::Id.is_in(chunk.to_vec()))
            .exec(&txn)
            .await?;
    }
    let now_open = finding::Entity::find()
        .filter(finding::Column::Vendor.eq(vendor))
        .filter(finding::Column::ResolvedAt.is_null())
        .order_by_asc(finding::Column::Kind)
        .order_by_asc(finding::Column::AccountKey)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(now_open)
}

#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub vendor: Option<VendorKind>,
    pub kind: Option<FindingKind>,
    /// Also the findings later passes no longer saw.
    pub include_resolved: bool,
    pub limit: Option<u64>,
}

/// Open findings (and resolved ones if asked), by vendor, kind and account.
pub async fn findings(db: &impl ConnectionTrait, f: &FindingFilter) -> Result<Vec<Finding>> {
    let mut q = finding::Entity::find();
    if let Some(v) = f.vendor {
        q = q.filter(finding::Column::Vendor.eq(v));
    }
    if let Some(k) = f.kind {
        q = q.filter(finding::Column::Kind.eq(k));
    }
    if !f.include_resolved {
        q = q.filter(finding::Column::ResolvedAt.is_null());
    }
    Ok(q.order_by_asc(finding::Column::Vendor)
        .order_by_asc(finding::Column::Kind)
        .order_by_asc(finding::Column::AccountKey)
        .limit(f.limit)
        .all(db)
        .await?)
}

pub async fn finding(db: &impl ConnectionTrait, id: &str) -> Result<Option<Finding>> {
    Ok(finding::Entity::find_by_id(id.to_string()).one(db).await?)
}

/// Notes the event a fix made for an open finding. False when the finding
/// is resolved or was fixed meanwhile (someone else's fix won).
pub async fn mark_fixed(db: &impl ConnectionTrait, id: &str, event_id: &str, actor: &str) -> Result<bool> {
    let res = finding::Entity::update_many()
        .col_expr(finding::Column::FixEventId, Expr::value(event_id))
        .col_expr(finding::Column::FixedBy, Expr::value(actor))
        .col_expr(finding::Column::FixedAt, Expr::value(Utc::now()))
        .filter(finding::Column::Id.eq(id))
        .filter(finding::Column::ResolvedAt.is_null())
        .filter(finding::Column::FixEventId.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// The newest event about `person_key` (a lower-cased address) received
/// after `since`, leaving out those of `except_source` (reconcile's own
/// fixes): whether the person changed since a pass judged them. Served by
/// the index on `received_at`: events after a recent pass are few.
pub async fn event_since(
    db: &impl ConnectionTrait,
    person_key: &str,
    since: DateTime<Utc>,
    except_source: &str,
) -> Result<Option<event::Model>> {
    Ok(event::Entity::find()
        .filter(event::Column::ReceivedAt.gt(since))
        .filter(event::Column::EmployeeEmail.eq(person_key))
        .filter(event::Column::Source.ne(except_source))
        .order_by_desc(event::Column::ReceivedAt)
        .limit(1)
        .one(db)
        .await?)
}

/// Each person's latest joiner, mover or leaver run in force, at `vendor`
/// (or at any vendor). Pipedrive's `reassign_deals` is left out: it follows
/// a deactivation someone made in Pipedrive, not what HR said.
pub async fn latest_runs(db: &impl ConnectionTrait, vendor: Option<VendorKind>) -> Result<Vec<Run>> {
    let mut latest = Query::select();
    latest.expr(Expr::col(run::Column::Seq).max()).from(run::Entity);
    // In force: not one that never ran (superseded, cancelled) or whose time
    // has not come (scheduled).
    latest.and_where(run::Column::State.is_not_in(RunState::NEVER_RAN));
    latest.and_where(run::Column::State.ne(RunState::Scheduled));
    latest.and_where(run::Column::Workflow.is_in([Workflow::Joiner, Workflow::Mover, Workflow::Leaver]));
    if let Some(v) = vendor {
        latest.and_where(run::Column::Vendor.eq(v));
    }
    latest.group_by_col(run::Column::PersonKey);
    Ok(run::Entity::find().filter(run::Column::Seq.in_subquery(latest.to_owned())).all(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(kind: &str, account: &str, detail: &str) -> Seen {
        Seen {
            kind: kind.parse().unwrap(),
            account_key: account.into(),
            vendor_account_id: None,
            person_key: None,
            detail: detail.into(),
        }
    }

    #[tokio::test]
    async fn a_finding_stays_open_while_seen_and_is_resolved_when_not() {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        let (t1, t2, t3) =
            (Utc::now(), Utc::now() + chrono::Duration::hours(1), Utc::now() + chrono::Duration::hours(2));
        let v = VendorKind::Pipedrive;

        let open =
            record(&db, v, vec![seen("orphaned", "alan@x", "a"), seen("unmanaged", "svc@x", "b")], t1).await.unwrap();
        assert_eq!(open.len(), 2);
        let orphan = open.iter().find(|f| f.kind == FindingKind::Orphaned).unwrap().clone();
        assert!(mark_fixed(&db, &orphan.id, "event-1", "ctl:ops").await.unwrap());
        assert!(!mark_fixed(&db, &orphan.id, "event-2", "ctl:ops").await.unwrap(), "one fix per finding");

        // Seen again, with another detail: the same finding, first seen at t1, its fix kept.
        let open =
            record(&db, v, vec![seen("orphaned", "alan@x", "a2"), seen("unmanaged", "svc@x", "b")], t2).await.unwrap();
        let again = open.iter().find(|f| f.kind == FindingKind::Orphaned).unwrap();
        assert_eq!((again.id.as_str(), again.first_seen_at, again.last_seen_at), (orphan.id.as_str(), t1, t2));
        assert_eq!((again.detail.as_str(), again.fix_event_id.as_deref()), ("a2", Some("event-1")));

        // Not seen: resolved, and out of the open listing; another vendor's untouched.
        record(&db, VendorKind::Jira, vec![seen("missing", "ada@x", "c")], t2).await.unwrap();
        let open = record(&db, v, vec![seen("unmanaged", "svc@x", "b")], t3).await.unwrap();
        assert_eq!(open.iter().map(|f| f.kind).collect::<Vec<_>>(), vec![FindingKind::Unmanaged]);
        let all = findings(&db, &FindingFilter { include_resolved: true, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 3);
        let resolved = all.iter().find(|f| f.id == orphan.id).unwrap();
        assert_eq!(resolved.resolved_at, Some(t3));
        assert!(!mark_fixed(&db, &orphan.id, "event-3", "ctl:ops").await.unwrap(), "a resolved finding is not fixed");
        let jira =
            findings(&db, &FindingFilter { vendor: Some(VendorKind::Jira), ..Default::default() }).await.unwrap();
        assert_eq!(jira.len(), 1);
    }

    #[tokio::test]
    async fn one_worker_of_a_fleet_takes_a_window() {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        let slot = "pipedrive@2026-11-30T00:00:00+00:00";
        let first = begin_pass(&db, VendorKind::Pipedrive, Some(slot), "worker:a").await.unwrap();
        assert!(first.is_some());
        assert!(begin_pass(&db, VendorKind::Pipedrive, Some(slot), "worker:b").await.unwrap().is_none());
        // An operator's passes have no slot: as many as asked for.
        assert!(begin_pass(&db, VendorKind::Pipedrive, None, "ctl:ops").await.unwrap().is_some());
        assert!(begin_pass(&db, VendorKind::Pipedrive, None, "ctl:ops").await.unwrap().is_some());
        finish_pass(&db, &first.unwrap().id, Some(12), Some(1), None).await.unwrap();
        let listed = passes(&db, Some(VendorKind::Pipedrive), 10).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert!(listed.iter().any(|p| p.accounts == Some(12) && p.finished_at.is_some()));
    }

    #[tokio::test]
    async fn a_request_is_carried_out_by_one_worker_and_taken_again_if_it_died() {
        let db = crate::connect("sqlite::memory:", 1).await.unwrap();
        crate::migrate(&db).await.unwrap();
        let minute = chrono::Duration::minutes(1);
        let pd = [VendorKind::Pipedrive];
        let asked = request_pass(&db, VendorKind::Pipedrive, "ctl:ops").await.unwrap();
        assert!(claim_request(&db, &[VendorKind::Jira], "a", minute).await.unwrap().is_none(), "not a worker's vendor");
        let taken = claim_request(&db, &pd, "a", minute).await.unwrap().expect("a takes it");
        assert_eq!((taken.id.as_str(), taken.claimed_by.as_deref()), (asked.id.as_str(), Some("a")));
        assert!(claim_request(&db, &pd, "b", minute).await.unwrap().is_none(), "held by a");
        // a died: once its claim is older than the stale age, b takes it over.
        let retaken = claim_request(&db, &pd, "b", chrono::Duration::zero()).await.unwrap().expect("b takes it over");
        assert_eq!(retaken.claimed_by.as_deref(), Some("b"));
        assert_eq!(open_requests(&db, VendorKind::Pipedrive).await.unwrap().len(), 1);
        finish_request(&db, &asked.id, Some("pass-1"), None).await.unwrap();
        assert!(
            claim_request(&db, &pd, "c", chrono::Duration::zero()).await.unwrap().is_none(),
            "an ended one is done"
        );
        let done = get_request(&db, &asked.id).await.unwrap().unwrap();
        assert_eq!(done.pass_id.as_deref(), Some("pass-1"));
        assert!(done.finished_at.is_some() && open_requests(&db, VendorKind::Pipedrive).await.unwrap().is_empty());
    }
}
