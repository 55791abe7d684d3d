//! Approvals (`[approval]`): runs of chosen vendor × workflow pairs await an
//! approver in `awaiting_approval`, decided once, audited, with a deadline
//! that escalates once and then rejects.
//!
//! The middle tests (store and ops, both databases, no processes) cover the
//! decision at intake and when a scheduled run comes due, approve and reject,
//! who may decide, the deadline pass and a leaver replacing an awaiting
//! joiner; the end-to-end test shows an approved run reaching the vendor and
//! a rejected one never doing so.

use chrono::Utc;
use lifecycle_broker::{Publisher, Topology};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_e2e::sim::pd_users;
use lifecycle_e2e::stack::{pipedrive_joiner, pipedrive_leaver, ADMIN_PASSWORD, ADMIN_USER};
use lifecycle_e2e::{both_databases, eventually, Backend, Stack, StackOptions, TestDb};
use lifecycle_ops::approvals as ops;
use lifecycle_ops::OpsError;
use lifecycle_store::approvals::{Gate, Rule};
use lifecycle_store::entity::{approval, outbox};
use lifecycle_store::events::{self, NewEvent, NewRun};
use lifecycle_store::safety::Guard;
use lifecycle_store::{runs, time, Db};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn guard() -> Guard {
    let rule = |vendor, field: &str, value: &str| Rule {
        vendor,
        workflows: vec![Workflow::Joiner, Workflow::Mover],
        field: Some(field.into()),
        values: vec![value.into()],
        approvers: vec!["alice".into(), "bob".into()],
        deadline: 2 * HOUR,
        escalate_to: vec![],
        escalate_after: None,
    };
    let mut cs = rule(VendorKind::Crowdstrike, "roles", "falcon_admin");
    cs.escalate_to = vec!["carol".into()];
    cs.escalate_after = Some(HOUR);
    Guard { approvals: Gate { rules: vec![rule(VendorKind::Pipedrive, "role", "Admin"), cs] }, ..Default::default() }
}

fn input(workflow: Workflow, person: &str, app: Value) -> String {
    json!({ "event_type": workflow.as_str(), "employee": { "id": person, "email": person }, "app": app }).to_string()
}

/// Stores one event with one run; returns the run's id and state.
async fn submit(
    db: &Db,
    guard: &Guard,
    vendor: VendorKind,
    workflow: Workflow,
    person: &str,
    app: Value,
    start_at: Option<chrono::DateTime<Utc>>,
) -> (String, RunState) {
    let (event_id, run_id) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let ev = NewEvent {
        id: event_id,
        source: "hr".into(),
        idempotency_key: run_id.clone(),
        payload_hash: run_id.clone(),
        event_type: workflow.as_str().into(),
        employee_id: None,
        employee_email: Some(person.into()),
        payload: "{}".into(),
        response_status: 202,
        response_body: "{}".into(),
        traceparent: None,
    };
    let run = NewRun {
        id: run_id.clone(),
        vendor,
        workflow,
        person_key: person.into(),
        input: input(workflow, person, app),
        occurred_at: Some(Utc::now()),
        effective_at: start_at,
        start_at,
    };
    let events::Accepted::Created { intake, .. } =
        events::accept_guarded(db, ev, vec![run], None, guard, |_| String::new()).await.unwrap()
    else {
        panic!("a new key");
    };
    (run_id, intake.runs[0].state)
}

async fn outbox_rows(db: &Db, run_id: &str) -> Vec<outbox::Model> {
    outbox::Entity::find().filter(outbox::Column::RunId.eq(run_id)).all(db).await.unwrap()
}

/// A publisher whose broker is not there: what it would wake stands for the sweeper.
fn no_broker() -> Publisher {
    Publisher::new("amqp://guest:guest@127.0.0.1:1/%2f", "test", Topology::new("approvals"), Duration::from_secs(1))
}

/// A matching joiner awaits (no outbox row), a non-matching one runs; a list
/// field matches when it contains a value; approve makes it `queued` with its
/// outbox row; reject ends it `rejected` saying who and why; each once, by an
/// approver only, audited.
async fn matching_runs_await_and_are_decided_once(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let g = guard();
    let (pd, cs) = (VendorKind::Pipedrive, VendorKind::Crowdstrike);
    let publisher = no_broker();

    let (plain, state) = submit(
        &db,
        &g,
        pd,
        Workflow::Joiner,
        "rep@example.com",
        json!({"vendor": "pipedrive", "role": "Sales Rep"}),
        None,
    )
    .await;
    assert_eq!(state, RunState::Queued, "a joiner the rules do not name runs");
    assert_eq!(outbox_rows(&db, &plain).await.len(), 1);
    let (admin, state) = submit(
        &db,
        &g,
        pd,
        Workflow::Joiner,
        "boss@example.com",
        json!({"vendor": "pipedrive", "role": "admin"}),
        None,
    )
    .await;
    assert_eq!(state, RunState::AwaitingApproval, "role Admin (any case) awaits");
    assert!(outbox_rows(&db, &admin).await.is_empty(), "nothing is published for an awaiting run");
    let (falcon, state) = submit(
        &db,
        &g,
        cs,
        Workflow::Mover,
        "sec@example.com",
        json!({"vendor": "crowdstrike", "roles": ["falcon_analyst", "falcon_admin"]}),
        None,
    )
    .await;
    assert_eq!(state, RunState::AwaitingApproval, "a list field containing a value awaits");
    // A leaver is never subject to approval, whatever it carries.
    let (_, state) = submit(
        &db,
        &g,
        pd,
        Workflow::Leaver,
        "gone@example.com",
        json!({"vendor": "pipedrive", "role": "Admin"}),
        None,
    )
    .await;
    assert_eq!(state, RunState::Queued);

    let listed = ops::list(&db).await.unwrap();
    assert_eq!(listed.iter().map(|a| a.run.run_id.clone()).collect::<Vec<_>>(), [admin.clone(), falcon.clone()]);
    assert_eq!(listed[0].rule, "pipedrive joiner, role = Admin");
    assert_eq!(listed[0].approvers, ["alice", "bob"]);

    // Not an approver: refused, nothing changes.
    let err = ops::approve(&db, &admin, "admin:mallory", None).await.unwrap_err();
    assert!(matches!(err, OpsError::Forbidden(ref m) if m.contains("alice, bob")), "{err}");
    assert_eq!(runs::get(&db, &admin).await.unwrap().unwrap().state, RunState::AwaitingApproval);

    let approved = ops::approve(&db, &admin, "admin:alice", Some("CFO asked")).await.unwrap();
    assert_eq!((approved.decision.as_deref(), approved.decided_by.as_deref()), (Some("approved"), Some("admin:alice")));
    let r = runs::get(&db, &admin).await.unwrap().unwrap();
    assert_eq!(r.state, RunState::Queued);
    let rows = outbox_rows(&db, &admin).await;
    assert_eq!(rows.iter().map(|o| o.dispatch_seq).collect::<Vec<_>>(), [r.dispatch_seq], "one row, current");
    // Once: a second decision is refused, whichever it is.
    let again = ops::reject(&db, &publisher, &admin, "ctl:bob", "no").await.unwrap_err();
    assert!(matches!(again, OpsError::Refused(ref m) if m.contains("approved already by admin:alice")), "{again}");

    assert!(matches!(ops::reject(&db, &publisher, &falcon, "ctl:bob", " ").await, Err(OpsError::Invalid(_))));
    let rejected = ops::reject(&db, &publisher, &falcon, "ctl:bob", "not during the audit").await.unwrap();
    assert_eq!(rejected.decision.as_deref(), Some("rejected"));
    let r = runs::get(&db, &falcon).await.unwrap().unwrap();
    assert_eq!(r.state, RunState::Rejected);
    assert_eq!(r.outcome.as_deref(), Some("rejected by ctl:bob: not during the audit; nothing was done"));
    assert!(r.finished_at.is_some() && outbox_rows(&db, &falcon).await.is_empty());
    assert!(matches!(ops::approve(&db, &falcon, "ctl:alice", None).await, Err(OpsError::Refused(_))));
    assert!(matches!(ops::approve(&db, &plain, "ctl:alice", None).await, Err(OpsError::Refused(_))), "never awaited");
    assert!(ops::list(&db).await.unwrap().is_empty());

    let audit = lifecycle_store::audit::list(&db, &Default::default()).await.unwrap();
    let entry = |action: &str| audit.iter().find(|e| e.action == action).cloned().unwrap();
    let a = entry(ops::ACTION_APPROVE);
    assert_eq!(
        (a.actor.as_str(), a.target_id.as_str(), a.reason.as_deref()),
        ("admin:alice", admin.as_str(), Some("CFO asked"))
    );
    let rj = entry(ops::ACTION_REJECT);
    assert_eq!((rj.actor.as_str(), rj.reason.as_deref()), ("ctl:bob", Some("not during the audit")));
    assert_eq!(audit.iter().filter(|e| e.action.starts_with("approval.")).count(), 2, "refusals record nothing");
}

/// A scheduled run is judged when it comes due; the deadline pass escalates
/// once (only the escalation group decides then) and rejects at the deadline.
async fn deadlines_escalate_once_then_reject(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let g = guard();
    let publisher = no_broker();
    let cs = VendorKind::Crowdstrike;
    let app = json!({"vendor": "crowdstrike", "roles": ["falcon_admin"]});

    let later = Utc::now() + chrono::Duration::hours(1);
    let (sched, state) = submit(&db, &g, cs, Workflow::Joiner, "s@example.com", app.clone(), Some(later)).await;
    assert_eq!(state, RunState::Scheduled, "judged when due, not before");
    let r = runs::get(&db, &sched).await.unwrap().unwrap();
    let due = time::Due { id: sched.clone(), dispatch_seq: r.dispatch_seq, vendor: cs, workflow: Workflow::Joiner };
    assert_eq!(time::start_due_many(&db, &g, &[due]).await.unwrap(), [time::Started::AwaitingApproval]);
    assert_eq!(runs::get(&db, &sched).await.unwrap().unwrap().state, RunState::AwaitingApproval);
    assert!(outbox_rows(&db, &sched).await.is_empty());
    let (other, _) = submit(&db, &g, cs, Workflow::Joiner, "o@example.com", app, None).await;

    let pass = ops::enforce_deadlines(&db, &publisher).await.unwrap();
    assert!(pass.escalated.is_empty() && pass.expired.is_empty(), "nothing due yet");

    // escalate_after passes for `sched`: escalated once, to carol alone.
    let past = Utc::now() - chrono::Duration::seconds(1);
    approval::Entity::update_many()
        .col_expr(approval::Column::EscalateAt, Expr::value(past))
        .filter(approval::Column::RunId.eq(&sched))
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(ops::enforce_deadlines(&db, &publisher).await.unwrap().escalated, vec![sched.clone()]);
    assert!(ops::enforce_deadlines(&db, &publisher).await.unwrap().escalated.is_empty(), "once");
    let err = ops::approve(&db, &sched, "admin:alice", None).await.unwrap_err();
    assert!(matches!(err, OpsError::Forbidden(ref m) if m.contains("escalation group are carol")), "{err}");

    // Both deadlines pass: both end rejected, saying so; nobody decided.
    approval::Entity::update_many().col_expr(approval::Column::DeadlineAt, Expr::value(past)).exec(&db).await.unwrap();
    let mut expired = ops::enforce_deadlines(&db, &publisher).await.unwrap().expired;
    expired.sort();
    let mut both = vec![sched.clone(), other.clone()];
    both.sort();
    assert_eq!(expired, both);
    for id in &both {
        let r = runs::get(&db, id).await.unwrap().unwrap();
        assert_eq!(r.state, RunState::Rejected);
        assert!(r.outcome.as_deref().unwrap().contains("no decision by"), "{:?}", r.outcome);
    }
    assert!(matches!(ops::approve(&db, &sched, "ctl:carol", None).await, Err(OpsError::Refused(_))), "too late");
    let audit = lifecycle_store::audit::list(&db, &Default::default()).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == ops::ACTION_ESCALATE).count(), 1);
    assert_eq!(audit.iter().filter(|e| e.action == ops::ACTION_EXPIRE).count(), 2);
}

/// A leaver for the person supersedes the awaiting joiner (as it replaces a
/// scheduled one) and runs: it never waits behind an unapproved joiner.
async fn a_leaver_supersedes_an_awaiting_joiner(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = test_db.connect().await;
    let g = guard();
    let pd = VendorKind::Pipedrive;
    let (joiner, state) =
        submit(&db, &g, pd, Workflow::Joiner, "p@example.com", json!({"vendor": "pipedrive", "role": "Admin"}), None)
            .await;
    assert_eq!(state, RunState::AwaitingApproval);
    // A mover the rules do not name waits behind it, as behind any earlier run.
    let (leaver, state) =
        submit(&db, &g, pd, Workflow::Leaver, "p@example.com", json!({"vendor": "pipedrive"}), None).await;
    assert_eq!(state, RunState::Queued);
    assert_eq!(outbox_rows(&db, &leaver).await.len(), 1);
    let j = runs::get(&db, &joiner).await.unwrap().unwrap();
    assert_eq!(j.state, RunState::Superseded, "{:?}", j.outcome);
    let l = runs::get(&db, &leaver).await.unwrap().unwrap();
    assert!(
        runs::earlier_unfinished(&db, l.vendor, &l.person_key, l.seq).await.unwrap().is_none(),
        "nothing holds the leaver back"
    );
    let err = ops::approve(&db, &joiner, "ctl:alice", None).await.unwrap_err();
    assert!(matches!(err, OpsError::Refused(ref m) if m.contains("no longer awaits")), "{err}");
    assert!(ops::enforce_deadlines(&db, &no_broker()).await.unwrap().expired.is_empty());
}

// ---- end to end ----

const WAIT: Duration = Duration::from_secs(60);

/// Pipedrive joiners with role Admin await an approver; the one approved over
/// the admin API gets its account, the one rejected never reaches Pipedrive.
async fn an_approved_run_reaches_the_vendor_and_a_rejected_one_never_does(backend: Backend) {
    let rules = r#"[{vendor="pipedrive", field="role", values=["Admin"], approvers=["admin"], deadline="1h"}]"#;
    let stack = Stack::start(StackOptions::new(backend, "approvals").env("LIFECYCLE_APPROVAL__RULES", rules)).await;
    let yes = stack.accept(&pipedrive_joiner("E-1", "yes@example.com", "Admin")).await;
    let no = stack.accept(&pipedrive_joiner("E-2", "no@example.com", "Admin")).await;
    let rep = stack.accept(&pipedrive_joiner("E-3", "rep@example.com", "Sales Rep")).await;
    let run_of = |body: &Value| body["runs"][0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(yes["runs"][0]["state"], "awaiting_approval", "{yes}");
    assert_eq!(no["runs"][0]["state"], "awaiting_approval", "{no}");
    let (yes, no) = (run_of(&yes), run_of(&no));
    stack.wait_event(rep["event_id"].as_str().unwrap(), WAIT).await;

    let listed: Value = stack
        .http
        .get(format!("{}/api/v1/approvals", stack.admin_url))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["approvals"].as_array().map(Vec::len), Some(2), "{listed}");
    let post = |id: &str, what: &str, body: Value| {
        stack
            .http
            .post(format!("{}/api/v1/runs/{id}/{what}", stack.admin_url))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .json(&body)
            .send()
    };
    // `yes` is approved in the console, from its run page (where a notification's link leads).
    let html = stack
        .http
        .get(format!("{}/runs/{yes}", stack.admin_url))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("pipedrive joiner, role = Admin"), "{html}");
    let form = &html[html.find(r#"id="approve-form""#).expect("an Approve form")..];
    let token = form.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let approve = |csrf: String| {
        stack
            .http
            .post(format!("{}/runs/{yes}/approve", stack.admin_url))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .form(&[("csrf", csrf), ("reason", "CFO asked".to_string())])
            .send()
    };
    assert_eq!(approve(format!("{token}0")).await.unwrap().status(), 403, "a tampered token is refused");
    let done = approve(token).await.unwrap();
    assert_eq!(done.status(), 200, "redirected to the run page");
    assert!(done.text().await.unwrap().contains("approved by admin:admin: CFO asked"));
    assert_eq!(post(&no, "reject", json!({"reason": "not an admin"})).await.unwrap().status(), 200);
    assert_eq!(post(&no, "approve", json!({})).await.unwrap().status(), 409, "decided once");

    let runs = stack.wait_all(WAIT).await;
    let state = stack.sim_state().await;
    let of = |id: &str| runs.iter().find(|r| r.id == id).unwrap().clone();
    assert_eq!(of(&yes).state, RunState::Succeeded, "{}", stack.logs());
    assert_eq!(pd_users(&state, "yes@example.com").len(), 1, "the approved joiner has an account");
    assert_eq!(of(&no).state, RunState::Rejected);
    assert!(pd_users(&state, "no@example.com").is_empty(), "the rejected one never reached Pipedrive");
    let calls = stack.sim_calls("pipedrive").await;
    assert!(!calls.iter().any(|c| c.to_string().contains("no@example.com")), "not even a lookup");

    // A leaver for the approved person runs as usual.
    let gone = stack.accept(&pipedrive_leaver("E-1", "yes@example.com", None)).await;
    assert_eq!(gone["runs"][0]["state"], "queued");
    eventually(WAIT, "the leaver done", || async {
        let runs = stack.runs_of(gone["event_id"].as_str().unwrap()).await;
        runs.iter().all(|r| r.state == RunState::Succeeded).then_some(())
    })
    .await;
}

both_databases!(
    matching_runs_await_and_are_decided_once,
    deadlines_escalate_once_then_reject,
    a_leaver_supersedes_an_awaiting_joiner,
    an_approved_run_reaches_the_vendor_and_a_rejected_one_never_does,
);
