//! Edit and replay: a dead run's input corrected where the fix is in the data,
//! checked as the intake checks it, kept beside the original, audited, and
//! replayed; one run or every dead run matching a filter.
//!
//! The operations are tested on both databases without processes (dead runs
//! made in the store directly); one end-to-end test takes a Pipedrive joiner
//! that died on a typo'd role through `lifecycle-ctl runs edit --replay` to
//! one account at the simulator with the right role.

use lifecycle_broker::{Publisher, Topology};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_e2e::stack::pipedrive_joiner;
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions, TestDb};
use lifecycle_ops::edit::{self, EditError, EditFilter};
use lifecycle_store::audit::{self, AuditFilter};
use lifecycle_store::events::{self, NewEvent, NewRun};
use lifecycle_store::runs::{self, Finish, RunFilter};
use lifecycle_store::{steps, Db};
use serde_json::{json, Map, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A dead run of `vendor`'s joiner with `app` as its request, dead with
/// `error`; with `done_step`, a step that succeeded before it died.
async fn dead_run(db: &Db, n: usize, vendor: VendorKind, app: Value, error: &str, done_step: Option<&str>) -> String {
    let email = format!("p{n}@example.com");
    let mut app = app;
    app["vendor"] = json!(vendor.as_str());
    let input = json!({
        "event_type": "joiner",
        "employee": {"id": format!("E-{n}"), "email": email, "given_name": "Ada", "family_name": "Lovelace"},
        "app": app,
    });
    let ev = NewEvent {
        id: format!("ev-{n}"),
        source: "intake".into(),
        idempotency_key: format!("k-{n}"),
        payload_hash: format!("h-{n}"),
        event_type: "joiner".into(),
        employee_id: Some(format!("E-{n}")),
        employee_email: Some(email.clone()),
        payload: "{}".into(),
        response_status: 202,
        response_body: "{}".into(),
        traceparent: None,
    };
    let id = format!("run-{n}");
    let run = NewRun {
        id: id.clone(),
        vendor,
        workflow: Workflow::Joiner,
        person_key: email,
        input: input.to_string(),
        occurred_at: None,
        effective_at: None,
        start_at: None,
    };
    events::accept(db, ev, vec![run], None, |_| String::new()).await.unwrap();
    let run = runs::get(db, &id).await.unwrap().unwrap();
    assert!(runs::claim(db, &run, run.dispatch_seq, "w1", Duration::from_secs(60)).await.unwrap());
    if let Some(key) = done_step {
        let begun = steps::begin(db, &id, "w1", key, 1, None, 1).await.unwrap();
        steps::finish(db, &begun, "w1", Some("{\"user_id\":7}"), None, 3).await.unwrap();
    }
    let dead = Finish { state: RunState::Dead, outcome: error, access: None, last_error: Some(error) };
    assert!(runs::finish(db, &id, "w1", dead).await.unwrap());
    id
}

/// A publisher whose broker is not there: a replay stands unpublished (the
/// sweeper publishes it), which is all these tests need.
fn no_broker() -> Publisher {
    Publisher::new("amqp://guest:guest@127.0.0.1:1/%2f", "test", Topology::new("edits"), Duration::from_secs(1))
}

fn set(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn typo(role: &str) -> String {
    format!("Pipedrive has no role named \"{role}\" (roles: Sales Rep, Sales Manager); create it in Pipedrive or fix the event, then replay")
}

async fn edits_are_checked_as_the_intake_checks_kept_audited_and_bulk_previewed(backend: Backend) {
    let tdb = TestDb::new(backend).await;
    let db = tdb.connect().await;
    let p = no_broker();
    let pd = dead_run(&db, 1, VendorKind::Pipedrive, json!({"role": "Sales Rep."}), &typo("Sales Rep."), None).await;
    let cs =
        dead_run(&db, 2, VendorKind::Crowdstrike, json!({"roles": ["falcon_analyt"]}), "no role", Some("ensure_user"))
            .await;

    // Refused with the intake's field names; nothing written.
    let refused = |r: Result<edit::Edited, EditError>| match r {
        Err(EditError::Fields { errors, .. }) => errors.into_iter().map(|e| e.field).collect::<Vec<_>>(),
        other => panic!("expected field errors, got {other:?}"),
    };
    let bad = edit::edit(&db, &p, &pd, &set(json!({"role": "  "})), "ops:alice", None, false).await;
    assert_eq!(refused(bad), ["apps.pipedrive.role"]);
    let bad = edit::edit(&db, &p, &pd, &set(json!({"rol": "Sales Rep"})), "ops:alice", None, false).await;
    assert_eq!(refused(bad), ["apps.pipedrive.rol"]);
    let bad = edit::edit(&db, &p, &cs, &set(json!({"roles": []})), "ops:alice", None, false).await;
    assert_eq!(refused(bad), ["apps.crowdstrike.roles"]);
    let bad =
        edit::edit(&db, &p, &pd, &set(json!({"successor_email": "not an address"})), "ops:alice", None, false).await;
    assert_eq!(refused(bad), ["successor_email"]);
    let person =
        edit::edit(&db, &p, &pd, &set(json!({"employee.email": "x@example.com"})), "ops:alice", None, false).await;
    assert!(matches!(person, Err(EditError::Ops(lifecycle_ops::OpsError::Invalid(_)))), "{person:?}");
    let same = edit::edit(&db, &p, &pd, &set(json!({"role": "Sales Rep."})), "ops:alice", None, false).await;
    assert!(matches!(same, Err(EditError::Ops(lifecycle_ops::OpsError::Invalid(_)))), "nothing changes: {same:?}");
    assert!(lifecycle_store::edits::list(&db, &pd).await.unwrap().is_empty());
    assert!(audit::list(&db, &AuditFilter::default()).await.unwrap().is_empty());

    // An edit: the input becomes the edited one, the original is kept, the audit names both.
    let e = edit::edit(
        &db,
        &p,
        &cs,
        &set(json!({"roles": "falcon_analyst, falcon_console_guest"})),
        "ops:alice",
        Some("typo"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(e.changed, ["app.roles"]);
    let run = runs::get(&db, &cs).await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Dead, "not replayed unless asked");
    let input: Value = serde_json::from_str(&run.input).unwrap();
    assert_eq!(input["app"]["roles"], json!(["falcon_analyst", "falcon_console_guest"]));
    let kept = lifecycle_store::edits::list(&db, &cs).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].actor, "ops:alice");
    assert!(kept[0].before.contains("falcon_analyt\"") && kept[0].after.contains("falcon_console_guest"));
    let detail = lifecycle_ops::run_detail(&db, &cs).await.unwrap();
    assert_eq!(detail.edits[0].before["app"]["roles"], json!(["falcon_analyt"]), "the original input is shown");
    let entries = audit::list(&db, &AuditFilter { target_id: Some(cs.clone()), ..Default::default() }).await.unwrap();
    assert_eq!((entries.len(), entries[0].action.as_str(), entries[0].actor.as_str()), (1, "run.edit", "ops:alice"));
    let details: Value = serde_json::from_str(entries[0].details.as_deref().unwrap()).unwrap();
    assert_eq!(details["before"]["app"]["roles"], json!(["falcon_analyt"]));
    assert_eq!(details["after"]["app"]["roles"], json!(["falcon_analyst", "falcon_console_guest"]));
    // The step that succeeded is kept, to be looked at again (not answered from the journal).
    let journal = steps::load(&db, &cs).await.unwrap();
    assert_eq!((journal[0].key.as_str(), journal[0].status), ("ensure_user", lifecycle_store::edits::EDITED));
    assert_eq!(steps::history(&journal[0]).len(), 1, "its history is intact");

    // Only dead runs are edited.
    let done = dead_run(&db, 3, VendorKind::Pipedrive, json!({"role": "Sales Rep."}), &typo("Sales Rep."), None).await;
    lifecycle_ops::replay(&db, &p, &done, "ops:alice", None).await.unwrap();
    let queued = edit::edit(&db, &p, &done, &set(json!({"role": "Sales Rep"})), "ops:alice", None, false).await;
    assert!(matches!(queued, Err(EditError::Ops(lifecycle_ops::OpsError::Refused(_)))), "{queued:?}");

    // Bulk: every Pipedrive run that died on "Sales Rep.": a preview (count, sample), then the edit.
    let other = dead_run(&db, 4, VendorKind::Pipedrive, json!({"role": "Sales Rep."}), &typo("Sales Rep."), None).await;
    dead_run(&db, 5, VendorKind::Pipedrive, json!({"role": "Sales Mgr"}), &typo("Sales Mgr"), None).await;
    let f = EditFilter {
        runs: RunFilter { vendor: Some(VendorKind::Pipedrive), ..Default::default() },
        error_contains: Some("sales rep.".into()),
    };
    let selected = edit::select(&db, &f).await.unwrap();
    assert_eq!(selected.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [pd.as_str(), other.as_str()]);
    let changes = set(json!({"role": "Sales Rep"}));
    let preview = edit::edit_all(&db, &p, selected.clone(), &changes, "ops:bob", None, true, true, |_| {}).await;
    assert_eq!((preview.selected, preview.would_edit.len(), preview.sample.len()), (2, 2, 2));
    assert!(preview.sample[0].change.contains("\"Sales Rep.\" -> \"Sales Rep\""), "{:?}", preview.sample);
    assert!(preview.edited.is_empty());
    assert!(runs::get(&db, &pd).await.unwrap().unwrap().input.contains("Sales Rep."), "a preview writes nothing");

    let applied = edit::edit_all(&db, &p, selected, &changes, "ops:bob", Some("HR typo"), true, false, |_| {}).await;
    assert_eq!((applied.edited.len(), applied.refused.len(), applied.failed.len()), (2, 0, 0), "{applied:?}");
    for id in [&pd, &other] {
        let r = runs::get(&db, id).await.unwrap().unwrap();
        assert_eq!((r.state, r.replays), (RunState::Queued, 1), "edited and replayed");
        let input: Value = serde_json::from_str(&r.input).unwrap();
        assert_eq!(input["app"]["role"], "Sales Rep");
        let actions: Vec<String> =
            audit::list(&db, &AuditFilter { target_id: Some(id.to_string()), ..Default::default() })
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect();
        assert_eq!(actions, ["run.replay", "run.edit"], "newest first");
    }
    assert!(edit::select(&db, &f).await.unwrap().is_empty(), "none left dead on \"Sales Rep.\"");
}

/// A Pipedrive joiner dead on a typo'd role, edited and replayed with the
/// ctl: one account at the simulator, with the right role; the audit shows
/// the old and the new input.
async fn a_pipedrive_joiner_dead_on_a_typod_role_is_edited_and_replayed(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "edit-replay")).await;
    let accepted = stack.accept(&pipedrive_joiner("E-1", "ada@example.com", "Sales Rep.")).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Dead, "an unknown role kills the joiner\n{}", stack.logs());
    let run_id = runs[0].id.clone();

    // Invalid: refused with the intake's field name (exit 2), nothing changed.
    let bad = stack.ctl(&["runs", "edit", &run_id, "--set", "rol=Sales Rep"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("apps.pipedrive.rol"), "{}", bad.stderr);

    let edited = stack
        .ctl(&["runs", "edit", &run_id, "--set", "role=Sales Rep", "--replay", "--reason", "HR typo", "--json"])
        .await;
    assert_eq!(edited.code, 0, "{edited:?}");
    assert_eq!(edited.json()["changed"], json!(["app.role"]));
    let run = lifecycle_e2e::eventually(WAIT, "the edited run to succeed", || async {
        let r = runs::get(&stack.store, &run_id).await.unwrap().unwrap();
        r.state.is_terminal().then_some(r).filter(|r| r.state != RunState::Dead || r.replays > 0)
    })
    .await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}\n{}", run.outcome, stack.logs());

    let state = stack.sim_state().await;
    let users: Vec<&Value> = state["pipedrive"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case("ada@example.com")))
        .collect();
    assert_eq!(users.len(), 1, "one account: {users:?}");
    let role = state["pipedrive"]["roles"].as_array().unwrap().iter().find(|r| r["name"] == "Sales Rep").unwrap();
    assert_eq!(users[0]["role_id"], role["id"]);
    let creates = lifecycle_e2e::sim::actions(&state, "pipedrive").iter().filter(|a| *a == "user.create").count();
    assert_eq!(creates, 1);

    let audit = stack.ctl(&["audit", "list", "--run", &run_id, "--json"]).await.json();
    let edit = audit.as_array().unwrap().iter().find(|e| e["action"] == "run.edit").expect("the edit is audited");
    assert_eq!(edit["actor"], "ctl:tester");
    assert_eq!(edit["reason"], "HR typo");
    assert_eq!(edit["details"]["before"]["app"]["role"], "Sales Rep.");
    assert_eq!(edit["details"]["after"]["app"]["role"], "Sales Rep");
    let shown = stack.ctl(&["runs", "show", &run_id, "--json"]).await.json();
    assert_eq!(shown["edits"][0]["before"]["app"]["role"], "Sales Rep.", "the original input is kept");
    assert_eq!(shown["input"]["app"]["role"], "Sales Rep");
}

both_databases!(
    edits_are_checked_as_the_intake_checks_kept_audited_and_bulk_previewed,
    a_pipedrive_joiner_dead_on_a_typod_role_is_edited_and_replayed,
);
