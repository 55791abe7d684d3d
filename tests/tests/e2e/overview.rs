//! The overview counts what it shows, on both databases: with runs in every
//! state (from `RunState::ALL`, so a state added later is covered too), every
//! state has its column and each total is the sum of its columns.

use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_e2e::{both_databases, Backend, TestDb};
use lifecycle_ops::overview::{columns, Group, DISCARDED};
use lifecycle_store::entity::run;
use lifecycle_store::events::{self, NewEvent, NewRun};
use lifecycle_store::Db;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// Stores one run at `vendor` for a person of its own and puts it in `state`
/// (as the engine would have, step by step); returns its id.
async fn run_in(db: &Db, vendor: VendorKind, state: RunState, n: usize) -> String {
    let key = format!("{vendor}-{state}-{n}");
    let email = format!("{key}@example.com");
    let (event_id, run_id) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let ev = NewEvent {
        id: event_id,
        source: "hr".into(),
        idempotency_key: key.clone(),
        payload_hash: key,
        event_type: "joiner".into(),
        employee_id: None,
        employee_email: Some(email.clone()),
        payload: "{}".into(),
        response_status: 202,
        response_body: "{}".into(),
        traceparent: None,
    };
    let new = NewRun {
        id: run_id.clone(),
        vendor,
        workflow: Workflow::Joiner,
        person_key: email,
        input: "{}".into(),
        occurred_at: None,
        effective_at: None,
        start_at: None,
    };
    events::accept(db, ev, vec![new], None, |_| String::new()).await.unwrap();
    run::Entity::update_many()
        .col_expr(run::Column::State, Expr::value(state))
        .filter(run::Column::Id.eq(run_id.as_str()))
        .exec(db)
        .await
        .unwrap();
    run_id
}

async fn every_state_has_its_column_and_totals_are_their_sums(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    // Pipedrive: one run per state, two dead ones of which one is discarded;
    // Jira: two per state.
    for state in RunState::ALL {
        run_in(&db, VendorKind::Pipedrive, state, 0).await;
        run_in(&db, VendorKind::Jira, state, 0).await;
        run_in(&db, VendorKind::Jira, state, 1).await;
    }
    let discarded = run_in(&db, VendorKind::Pipedrive, RunState::Dead, 1).await;
    assert!(lifecycle_store::runs::discard(&db, &discarded, "test").await.unwrap());

    let counts = lifecycle_ops::counts(&db).await.unwrap();
    assert_eq!(counts.columns, columns());
    let names: Vec<&str> = counts.columns.iter().map(|c| c.name).collect();
    for s in RunState::ALL {
        assert!(names.contains(&s.as_str()), "{s} has a column: {names:?}");
    }
    for v in &counts.vendors {
        let keys: Vec<&str> = v.counts.keys().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "{}: every column, nothing else", v.vendor);
        assert_eq!(v.total, names.iter().map(|c| v.counts[*c]).sum::<i64>(), "{}", v.vendor);
        assert_eq!(v.total, v.groups.values().sum::<i64>(), "{}", v.vendor);
    }
    for s in RunState::ALL {
        assert_eq!(counts.get(VendorKind::Pipedrive, s.as_str()), 1, "{s}");
        assert_eq!(counts.get(VendorKind::Jira, s.as_str()), 2, "{s}");
        assert_eq!(counts.get(VendorKind::Github, s.as_str()), 0, "{s}");
    }
    assert_eq!(counts.get(VendorKind::Pipedrive, DISCARDED), 1);
    assert_eq!(counts.get(VendorKind::Jira, DISCARDED), 0);

    let states = RunState::ALL.len() as i64;
    let row = |v: VendorKind| counts.vendors.iter().find(|r| r.vendor == v).unwrap();
    assert_eq!(row(VendorKind::Pipedrive).total, states + 1);
    assert_eq!(row(VendorKind::Jira).total, 2 * states);
    assert_eq!(row(VendorKind::Github).total, 0);
    assert_eq!(counts.total, 3 * states + 1, "every run stored");
    assert_eq!(counts.total, names.iter().map(|c| counts.total_of(c)).sum::<i64>());
    assert_eq!(counts.total, counts.group_totals.values().sum::<i64>());
    let waiting = RunState::ALL.iter().filter(|s| Group::of(**s) == Group::Waiting).count() as i64;
    assert_eq!(counts.group_totals[Group::Waiting.as_str()], 3 * waiting);
    assert_eq!(row(VendorKind::Pipedrive).groups[Group::AtWork.as_str()], 1, "running");

    // The admin API's JSON: what it had (counts, totals, total), and the columns.
    let json = serde_json::to_value(&counts).unwrap();
    let pd = json["vendors"].as_array().unwrap().iter().find(|v| v["vendor"] == "pipedrive").unwrap();
    assert_eq!((pd["counts"]["dead"].as_i64(), pd["counts"]["discarded"].as_i64()), (Some(1), Some(1)), "{json}");
    assert_eq!(pd["counts"]["scheduled"], 1, "{json}");
    assert_eq!(json["total"], 3 * states + 1);
    assert_eq!(json["columns"][0], serde_json::json!({"name": "scheduled", "group": "waiting"}));
}

both_databases!(every_state_has_its_column_and_totals_are_their_sums);
