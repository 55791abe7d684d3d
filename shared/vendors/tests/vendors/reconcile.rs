//! Reconcile end to end in process, vendor by vendor: hand-made drift in the
//! simulator (a leaver's account back, a joiner's account gone, access changed
//! by hand, a service account), one pass that finds exactly that, a fix whose
//! runs repair it, and a second pass that finds nothing but the service account.
//! The journal and the findings share the harness's in-memory database.

use crate::common::*;
use lifecycle_config::ReconcileSettings;
use lifecycle_engine::harness::Attempted;
use lifecycle_ops::reconcile::{self, FindingView, FixSummary, PassReport};
use lifecycle_store::reconcile::FindingFilter;
use lifecycle_vendor_sim::registry::VendorSim;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One pass over the world's vendor; `allow`: the accounts to leave alone.
pub async fn pass(w: &World, allow: &[&str]) -> PassReport {
    let settings = ReconcileSettings { allowlist: allow.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    reconcile::reconcile(w.harness.db(), &*w.connector, &settings, "test", None, &|_: usize| {})
        .await
        .expect("the pass reads the vendor")
        .expect("an operator's pass always runs")
}

/// (kind, account) of each open finding, sorted.
pub fn found(report: &PassReport) -> BTreeSet<(String, String)> {
    report.findings.iter().map(|f| (f.kind.clone(), f.account.clone())).collect()
}

pub fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(k, a)| (k.to_string(), a.to_string())).collect()
}

/// `--fix` as a dry run, then for real, then each fix's run executed to its end.
pub async fn fix_and_run(w: &World) -> (FixSummary, Vec<Attempted>) {
    let db = w.harness.db();
    let schedule = lifecycle_config::ScheduleSettings::default();
    let all = FindingFilter::default();
    let events_before = lifecycle_store::events::count(db).await.unwrap();
    let dry = reconcile::fix(db, &schedule, &all, None, "test", true, |_| {}).await.unwrap();
    assert!(dry.fixed.iter().all(|f| f.event_id.is_none()), "a dry run makes no event");
    assert_eq!(lifecycle_store::events::count(db).await.unwrap(), events_before, "a dry run writes nothing");
    let done = reconcile::fix(db, &schedule, &all, None, "test", false, |_| {}).await.unwrap();
    assert_eq!(
        done.fixed.iter().map(|f| &f.finding_id).collect::<Vec<_>>(),
        dry.fixed.iter().map(|f| &f.finding_id).collect::<Vec<_>>(),
        "the fix does what its dry run said"
    );
    let mut attempts = Vec::new();
    for f in &done.fixed {
        let run_id = f.run_id.as_deref().expect("each fix made a run");
        attempts.push(w.harness.retry(&*w.connector, run_id).await);
    }
    let again = reconcile::fix(db, &schedule, &all, None, "test", false, |_| {}).await.unwrap();
    assert!(again.fixed.is_empty(), "a finding is fixed once: {:?}", again.fixed);
    (done, attempts)
}

fn finding<'a>(report: &'a PassReport, kind: &str) -> &'a FindingView {
    report.findings.iter().find(|f| f.kind == kind).unwrap_or_else(|| panic!("a {kind} finding in {report:?}"))
}

/// The users of the simulator's default Pipedrive fixture, and its admin.
const PD_FIXTURE: [&str; 2] = ["admin@sim.example", "grace@example.com"];

async fn pd(w: &World, method: reqwest::Method, path: &str, body: Value) {
    let url = format!("{}{path}?api_token=pd-admin-token", w.sim.base_url(w.sim_vendor()));
    let r = reqwest::Client::new().request(method, url).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

fn pd_user_id(w: &World, email: &str) -> i64 {
    let users = w.sim.sim.lock().tenants.pipedrive.snapshot()["users"].clone();
    users.as_array().unwrap().iter().find(|u| u["email"] == email).expect("the user exists")["id"].as_i64().unwrap()
}

#[tokio::test]
async fn pipedrive_drift_is_found_fixed_and_gone() {
    let w = World::new(VendorKind::Pipedrive).await;
    let sales = json!({ "role": "Sales Rep" });
    for who in ["ada", "kate", "lin", "alan"] {
        w.start(&event("joiner", &format!("{who}@example.com"), VendorKind::Pipedrive, sales.clone())).await.outcome();
    }
    w.start(&event("leaver", "alan@example.com", VendorKind::Pipedrive, json!({}))).await.outcome();
    assert_eq!(found(&pass(&w, &PD_FIXTURE).await), set(&[]), "lifecycle's own work is no finding");

    // By hand: the leaver reactivated, a joiner deactivated (Pipedrive deletes no
    // user), a role changed, and a service account added.
    pd(
        &w,
        reqwest::Method::PUT,
        &format!("/users/{}", pd_user_id(&w, "alan@example.com")),
        json!({"active_flag": true}),
    )
    .await;
    pd(
        &w,
        reqwest::Method::PUT,
        &format!("/users/{}", pd_user_id(&w, "kate@example.com")),
        json!({"active_flag": false}),
    )
    .await;
    pd(&w, reqwest::Method::POST, "/roles/2/assignments", json!({"user_id": pd_user_id(&w, "lin@example.com")})).await;
    w.seed(json!({"users": [{"name": "Backup Bot", "email": "backup-bot@example.com", "role": "Admin"}]}));

    let first = pass(&w, &PD_FIXTURE).await;
    assert_eq!(
        found(&first),
        set(&[
            ("drifted", "lin@example.com"),
            ("missing", "kate@example.com"),
            ("orphaned", "alan@example.com"),
            ("unmanaged", "backup-bot@example.com"),
        ])
    );
    let drifted = finding(&first, "drifted");
    assert!(drifted.detail.contains("lacks: Sales Rep; extra: Sales Manager"), "{}", drifted.detail);

    let (fix, attempts) = fix_and_run(&w).await;
    assert_eq!(fix.skipped.len(), 1, "the unmanaged account is left for a person: {:?}", fix.skipped);
    let workflows: BTreeSet<String> = fix.fixed.iter().map(|f| f.workflow.to_string()).collect();
    assert_eq!(workflows, ["joiner", "leaver", "mover"].map(String::from).into());
    for a in &attempts {
        assert!(!a.outcome().needs_person, "{}", a.outcome().summary);
    }

    let second = pass(&w, &PD_FIXTURE).await;
    assert_eq!(found(&second), set(&[("unmanaged", "backup-bot@example.com")]));
    let allowed = pass(&w, &[PD_FIXTURE[0], PD_FIXTURE[1], "backup-bot@*"]).await;
    assert_eq!(found(&allowed), set(&[]));
    let resolved = lifecycle_store::reconcile::findings(
        w.harness.db(),
        &FindingFilter { include_resolved: true, ..Default::default() },
    )
    .await
    .unwrap();
    assert!(resolved.iter().all(|f| f.resolved_at.is_some()), "every finding was seen gone");
    assert_eq!(resolved.iter().filter(|f| f.fix_event_id.is_some()).count(), 3, "three fixed by their event");
}
