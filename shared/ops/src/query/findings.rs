//! Reconcile findings as the console lists them: with the run each one's fix
//! made, read for the whole page in one query rather than one per finding.

use crate::db::Db;
use crate::reconcile::FindingView;
use crate::OpsError;
use lifecycle_store::entity::run;
use lifecycle_store::runs::Run;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use std::collections::HashMap;

pub use lifecycle_store::reconcile::FindingFilter;

/// Events per query: well under SQLite's and PostgreSQL's limits on bound parameters.
const CHUNK: usize = 500;

/// The first run (by sequence) of each fix event among `findings`, by event
/// id; findings without a fix, or whose event made no run, are absent.
pub async fn fix_runs(db: &Db, findings: &[FindingView]) -> Result<HashMap<String, Run>, OpsError> {
    let mut events: Vec<&str> = findings.iter().filter_map(|f| f.fix_event_id.as_deref()).collect();
    events.sort_unstable();
    events.dedup();
    let mut first: HashMap<String, Run> = HashMap::new();
    for chunk in events.chunks(CHUNK) {
        let runs = run::Entity::find()
            .filter(run::Column::EventId.is_in(chunk.iter().copied()))
            .order_by_asc(run::Column::Seq)
            .all(db)
            .await
            .map_err(lifecycle_store::StoreError::from)?;
        for r in runs {
            first.entry(r.event_id.clone()).or_insert(r);
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use lifecycle_domain::{VendorKind, Workflow};
    use lifecycle_store::events::{self, NewEvent, NewRun};
    use lifecycle_store::testing::{Backend, TestDb};

    fn finding(id: &str, fix_event: Option<&str>) -> FindingView {
        let now = Utc::now();
        FindingView {
            id: id.into(),
            vendor: VendorKind::Pipedrive,
            kind: lifecycle_domain::FindingKind::Orphaned,
            account: format!("{id}@example.com"),
            vendor_account_id: None,
            person: None,
            detail: String::new(),
            first_seen_at: now,
            last_seen_at: now,
            resolved_at: None,
            fix_event_id: fix_event.map(String::from),
            fixed_by: None,
        }
    }

    /// An event with one run per vendor, stored as reconcile's fixes are.
    async fn event(db: &Db, id: &str, vendors: &[VendorKind]) -> Vec<String> {
        let ev = NewEvent {
            id: id.into(),
            source: "reconcile".into(),
            idempotency_key: id.into(),
            payload_hash: id.into(),
            event_type: "employee.terminated".into(),
            employee_id: None,
            employee_email: Some(format!("{id}@example.com")),
            payload: "{}".into(),
            response_status: 202,
            response_body: String::new(),
            traceparent: None,
        };
        let runs = vendors
            .iter()
            .enumerate()
            .map(|(i, &vendor)| NewRun {
                id: format!("{id}-run{i}"),
                vendor,
                workflow: Workflow::Leaver,
                person_key: format!("{id}@example.com"),
                input: "{}".into(),
                occurred_at: None,
                effective_at: None,
                start_at: None,
            })
            .collect::<Vec<_>>();
        let ids = runs.iter().map(|r| r.id.clone()).collect();
        events::accept(db, ev, runs, None, |_| String::new()).await.unwrap();
        ids
    }

    async fn first_run_of_each_fix_event(backend: Backend) {
        let t = TestDb::new(backend).await;
        let db = t.connect().await;
        let a = event(&db, "ev-a", &[VendorKind::Pipedrive, VendorKind::Calendly]).await;
        let b = event(&db, "ev-b", &[VendorKind::Calendly]).await;
        let page = [
            finding("f1", Some("ev-a")),
            finding("f2", Some("ev-b")),
            finding("f3", Some("ev-a")),
            finding("f4", None),
            finding("f5", Some("ev-none")),
        ];
        let found = fix_runs(&db, &page).await.unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        // As the console showed it one finding at a time: the event's first run.
        assert_eq!(found["ev-a"].id, a[0]);
        assert_eq!(found["ev-b"].id, b[0]);
        assert!(fix_runs(&db, &page[3..4]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn first_run_of_each_fix_event_sqlite() {
        first_run_of_each_fix_event(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn first_run_of_each_fix_event_postgres() {
        first_run_of_each_fix_event(Backend::Postgres).await;
    }
}
