//! Operators at work: dead runs made on purpose with the simulator (an
//! unknown Pipedrive role, a 403 on the deactivation after the deals were
//! reassigned), then fixed and replayed with `lifecycle-ctl` and the admin
//! API, one at a time and as a filtered set; discarded; refused when a later
//! run overtook them; every action in the audit log.

use lifecycle_domain::RunState;
use lifecycle_e2e::sim::actions;
use lifecycle_e2e::stack::{pipedrive_joiner, pipedrive_leaver, ADMIN_PASSWORD, ADMIN_USER};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Runs the event and waits for its only run to end; returns (run id, state).
async fn run_to_end(stack: &Stack, event: &Value) -> (String, RunState) {
    let accepted = stack.accept(event).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs.len(), 1);
    (runs[0].id.clone(), runs[0].state)
}

/// A joiner whose Pipedrive role does not exist (yet): dead at once.
async fn dead_joiner(stack: &Stack, id: &str, email: &str, role: &str) -> String {
    let (run_id, state) = run_to_end(stack, &pipedrive_joiner(id, email, role)).await;
    assert_eq!(state, RunState::Dead, "an unknown role kills the joiner\n{}", stack.logs());
    run_id
}

/// A leaver owning `deals` open deals, whose deactivation gets one 403 after
/// the deals were reassigned: dead, with the deals already moved.
async fn dead_leaver(stack: &Stack, id: &str, email: &str, deals: usize) -> String {
    let deals: Vec<Value> =
        (0..deals).map(|i| json!({"title": format!("{email} deal {i}"), "owner_email": email})).collect();
    stack.sim_seed(json!({"pipedrive": {"users": [{"name": "Leaving Person", "email": email}], "deals": deals}})).await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "PUT", "path": "/api/v1/users/*", "kind": "status", "status": 403, "count": 1})).await;
    let (run_id, state) = run_to_end(stack, &pipedrive_leaver(id, email, Some("grace@example.com"))).await;
    assert_eq!(state, RunState::Dead, "a 403 on the deactivation kills the leaver\n{}", stack.logs());
    run_id
}

async fn state_of(stack: &Stack, run_id: &str) -> lifecycle_store::runs::Run {
    lifecycle_store::runs::get(&stack.store, run_id).await.unwrap().expect("the run exists")
}

async fn wait_state(stack: &Stack, run_id: &str, want: RunState) -> lifecycle_store::runs::Run {
    lifecycle_e2e::eventually(WAIT, &format!("run {run_id} to be {want}"), || async {
        let r = state_of(stack, run_id).await;
        (r.state == want).then_some(r)
    })
    .await
}

fn count(state: &Value, action: &str) -> usize {
    actions(state, "pipedrive").iter().filter(|a| *a == action).count()
}

async fn ctl_replay_resumes_a_dead_leaver_at_the_failed_step_without_reassigning_deals_again(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ops-ctl-one")).await;
    let run_id = dead_leaver(&stack, "E-1", "leaver@example.com", 2).await;
    let before = stack.sim_state().await;
    assert_eq!(count(&before, "deal.update"), 2, "both deals moved before the deactivation failed");
    assert_eq!(count(&before, "user.deactivate"), 0);

    // It is listed, in a table and as JSON, with the vendor's reason.
    let list = stack.ctl(&["dead", "list"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.contains(&run_id) && list.stdout.contains("403"), "{}", list.stdout);
    let listed = stack.ctl(&["dead", "list", "--json", "--vendor", "pipedrive"]).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["run_id"], run_id.as_str());

    // The timeline shows where it failed.
    let shown = stack.ctl(&["runs", "show", &run_id, "--json"]).await.json();
    let deactivate = shown["steps"].as_array().unwrap().iter().find(|s| s["key"] == "deactivate").unwrap();
    assert_eq!(deactivate["status"], "failed");
    assert!(deactivate["last_error"].as_str().unwrap().contains("403"), "{deactivate}");

    // The fault is used up: the vendor has recovered. Replay.
    let replay = stack.ctl(&["dead", "replay", &run_id, "--reason", "Pipedrive permissions fixed"]).await;
    assert_eq!(replay.code, 0, "{replay:?}");
    assert!(replay.stdout.contains("replayed"), "{}", replay.stdout);
    let run = wait_state(&stack, &run_id, RunState::Succeeded).await;
    assert_eq!(run.access.map(|a| a.as_str()), Some("deactivated"));
    assert_eq!(run.replays, 1);

    // Completed steps were not repeated: no deal moved twice, one deactivation.
    let after = stack.sim_state().await;
    assert_eq!(
        count(&after, "deal.update"),
        2,
        "the replay reassigned deals again: {:?}",
        actions(&after, "pipedrive")
    );
    assert_eq!(count(&after, "user.deactivate"), 1);
    for d in after["pipedrive"]["deals"].as_array().unwrap() {
        assert_eq!(d["owner_history"].as_array().unwrap().len(), 2, "each deal changed owner exactly once: {d}");
    }
    let journal = lifecycle_store::steps::load(&stack.store, &run_id).await.unwrap();
    for s in journal.iter().filter(|s| s.key.starts_with("reassign_deal:") || s.key == "find_user") {
        assert_eq!(s.attempts, 1, "step {} ran again on replay", s.key);
    }
    assert_eq!(journal.iter().find(|s| s.key == "deactivate").unwrap().attempts, 2);
    // The outcome counts the deals this run moved, before the replay too.
    assert!(run.outcome.as_deref().unwrap().starts_with("reassigned 2 open deal(s)"), "{:?}", run.outcome);
    // Each step keeps the position it first ran at.
    let mut positions: Vec<i32> = journal.iter().map(|s| s.position).collect();
    positions.dedup();
    assert_eq!(
        positions.len(),
        journal.len(),
        "positions are distinct: {:?}",
        journal.iter().map(|s| (&s.key, s.position)).collect::<Vec<_>>()
    );

    // Audited: who, what, why, and what it was before.
    let audit = stack.ctl(&["audit", "list", "--run", &run_id, "--json"]).await.json();
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], "ctl:tester");
    assert_eq!(entries[0]["action"], "run.replay");
    assert_eq!(entries[0]["reason"], "Pipedrive permissions fixed");
    assert_eq!(entries[0]["details"]["state_before"], "dead");
    assert!(entries[0]["details"]["outcome_before"].as_str().unwrap().contains("403"));

    // A succeeded run is not replayed (4); an unknown one is not found (3).
    let again = stack.ctl(&["dead", "replay", &run_id]).await;
    assert_eq!(again.code, 4, "{again:?}");
    assert!(again.stderr.contains("succeeded"), "{}", again.stderr);
    assert_eq!(stack.ctl(&["dead", "replay", "no-such-run"]).await.code, 3);
    assert!(stack.ctl(&["dead", "list", "--json"]).await.json().as_array().unwrap().is_empty());
}

async fn ctl_replays_the_filtered_dead_runs_refuses_overtaken_ones_and_discards(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ops-ctl-all")).await;
    let a = dead_joiner(&stack, "E-A", "a@example.com", "Astronaut").await;
    let b = dead_joiner(&stack, "E-B", "b@example.com", "Astronaut").await;
    // d's joiner died, then d left: the leaver ran (nothing to remove), so
    // replaying the joiner now would re-create the account of someone gone.
    let d = dead_joiner(&stack, "E-D", "d@example.com", "Astronaut").await;
    let (_, leaver_state) = run_to_end(&stack, &pipedrive_leaver("E-D", "d@example.com", None)).await;
    assert_eq!(leaver_state, RunState::Succeeded);
    // Outside the filter: a leaver.
    let l = dead_leaver(&stack, "E-L", "l@example.com", 1).await;

    stack.sim_seed(json!({"pipedrive": {"roles": [{"name": "Astronaut"}]}})).await;

    // A dry run changes nothing.
    let dry = stack.ctl(&["dead", "replay", "--all", "--workflow", "joiner", "--dry-run", "--json"]).await;
    let summary = dry.json();
    assert_eq!(summary["selected"], 3, "{summary}");
    assert_eq!(summary["would_replay"].as_array().unwrap().len(), 2, "{summary}");
    for id in [&a, &b, &d, &l] {
        assert_eq!(state_of(&stack, id).await.state, RunState::Dead);
    }
    // Without a terminal to confirm on, --yes is required.
    let unconfirmed = stack.ctl(&["dead", "replay", "--all", "--workflow", "joiner"]).await;
    assert_eq!(unconfirmed.code, 2, "{unconfirmed:?}");
    assert!(unconfirmed.stderr.contains("--yes"), "{}", unconfirmed.stderr);
    assert_eq!(state_of(&stack, &a).await.state, RunState::Dead);

    let bulk = stack
        .ctl(&["dead", "replay", "--all", "--workflow", "joiner", "--vendor", "pipedrive", "--since", "1h", "--yes"])
        .await;
    assert_eq!(bulk.code, 4, "some were refused: {bulk:?}");
    assert!(bulk.stdout.contains("replayed 2, refused 1, failed 0"), "{}", bulk.stdout);
    assert!(bulk.stdout.contains(&d) && bulk.stdout.contains("discard"), "the refusal says why: {}", bulk.stdout);
    for id in [&a, &b] {
        let run = wait_state(&stack, id, RunState::Succeeded).await;
        assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    }
    assert_eq!(state_of(&stack, &d).await.state, RunState::Dead, "the overtaken joiner stays dead");
    assert_eq!(state_of(&stack, &l).await.state, RunState::Dead, "outside the filter");
    let sim = stack.sim_state().await;
    assert!(lifecycle_e2e::sim::pd_users(&sim, "d@example.com").is_empty(), "no account for the leaver");
    assert_eq!(lifecycle_e2e::sim::pd_users(&sim, "a@example.com").len(), 1);

    // Replaying the overtaken one alone: refused, exit 4, suggesting a discard.
    let one = stack.ctl(&["dead", "replay", &d]).await;
    assert_eq!(one.code, 4, "{one:?}");
    assert!(one.stderr.contains("later run") && one.stderr.contains("discard"), "{}", one.stderr);

    // Discard it: a reason is required; it leaves the list; shown on request.
    assert_eq!(stack.ctl(&["dead", "discard", &d, "--reason", " "]).await.code, 2);
    let discarded =
        stack.ctl(&["dead", "discard", &d, "--reason", "superseded by the leaver", "--actor", "ctl:oncall"]).await;
    assert_eq!(discarded.code, 0, "{discarded:?}");
    let listed = stack.ctl(&["dead", "list", "--json"]).await.json();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [l.as_str()]);
    let all = stack.ctl(&["dead", "list", "--include-discarded", "--json"]).await.json();
    let d_row = all.as_array().unwrap().iter().find(|r| r["run_id"] == d.as_str()).expect("shown on request");
    assert_eq!(d_row["discard_reason"], "superseded by the leaver");
    assert_eq!(d_row["state"], "dead");
    assert_eq!(stack.ctl(&["dead", "discard", &d, "--reason", "again"]).await.code, 4);
    assert_eq!(stack.ctl(&["dead", "replay", &d]).await.code, 4, "a discarded run is not replayed");

    let audit = stack.ctl(&["audit", "list", "--json"]).await.json();
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.iter().filter(|e| e["action"] == "run.replay").count(), 2, "{audit}");
    let discard = entries.iter().find(|e| e["action"] == "run.discard").unwrap();
    assert_eq!(discard["actor"], "ctl:oncall");
    assert_eq!(discard["target_id"], d.as_str());
    assert_eq!(discard["reason"], "superseded by the leaver");
}

async fn admin_api_replays_one_and_a_filtered_set_discards_and_refuses(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ops-api")).await;

    // Its own listener, its own credentials; not on the intake listener.
    assert_ne!(stack.admin_url, stack.producer_url);
    let anon = stack.http.get(format!("{}/api/v1/runs", stack.admin_url)).send().await.unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert!(anon.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let wrong = stack
        .http
        .get(format!("{}/api/v1/runs", stack.admin_url))
        .basic_auth(ADMIN_USER, Some("not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let on_intake = stack
        .http
        .get(format!("{}/api/v1/runs", stack.producer_url))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(on_intake.status().as_u16(), 404, "the intake listener does not serve the admin API");

    // One: a leaver whose deactivation got a 403; the vendor recovered.
    let leaver = dead_leaver(&stack, "E-L", "l@example.com", 2).await;
    let (status, ctype, body) = stack.admin_post(&format!("/api/v1/dead/{leaver}/replay"), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("application/json"));
    assert_eq!(body["published"], true);
    assert_eq!(body["state_before"], "dead");
    wait_state(&stack, &leaver, RunState::Succeeded).await;
    let sim = stack.sim_state().await;
    assert_eq!(count(&sim, "deal.update"), 2, "no deal reassigned twice: {:?}", actions(&sim, "pipedrive"));
    assert_eq!(count(&sim, "user.deactivate"), 1);
    let (_, detail) = stack.admin_get(&format!("/api/v1/runs/{leaver}")).await;
    let deactivate = detail["steps"].as_array().unwrap().iter().find(|s| s["key"] == "deactivate").unwrap();
    let statuses: Vec<&str> =
        deactivate["history"].as_array().unwrap().iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "succeeded"], "{deactivate}");

    // A filtered set: two joiners; a mover (another workflow) stays out.
    let x = dead_joiner(&stack, "E-X", "x@example.com", "Astronaut").await;
    let y = dead_joiner(&stack, "E-Y", "y@example.com", "Astronaut").await;
    let mover = json!({"type": "mover", "employee": {"id": "E-Z", "email": "z@example.com"}, "apps": {"pipedrive": {"role": "Astronaut"}}});
    let (m, m_state) = run_to_end(&stack, &mover).await;
    assert_eq!(m_state, RunState::Dead);
    let (_, dead) = stack.admin_get("/api/v1/dead?vendor=pipedrive").await;
    assert_eq!(dead.as_array().unwrap().len(), 3, "{dead}");
    // A typo in a filter is a 400 problem naming the field, not an empty list.
    let (status, bad) = stack.admin_get("/api/v1/runs?vendor=myspace").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["detail"].as_str().unwrap().contains("vendor"), "{bad}");

    stack.sim_seed(json!({"pipedrive": {"roles": [{"name": "Astronaut"}]}})).await;
    let (status, _, summary) = stack
        .admin_post("/api/v1/dead/replay", &json!({"workflow": "joiner", "since": "1h", "reason": "role created"}))
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["selected"], 2, "{summary}");
    assert_eq!(summary["replayed"].as_array().unwrap().len(), 2);
    assert_eq!(summary["message"], "replayed 2, refused 0, failed 0");
    for id in [&x, &y] {
        wait_state(&stack, id, RunState::Succeeded).await;
    }
    assert_eq!(state_of(&stack, &m).await.state, RunState::Dead, "the mover was outside the filter");

    // Discard: a reason is required; then it leaves the dead list and cannot be replayed.
    let (status, ctype, problem) = stack.admin_post(&format!("/api/v1/dead/{m}/discard"), &json!({})).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(ctype, "application/problem+json");
    let (status, _, body) =
        stack.admin_post(&format!("/api/v1/dead/{m}/discard"), &json!({"reason": "HR sent the wrong role"})).await;
    assert_eq!(status, 200, "{body}");
    let (_, dead) = stack.admin_get("/api/v1/dead").await;
    assert!(dead.as_array().unwrap().is_empty(), "{dead}");
    let (_, dead) = stack.admin_get("/api/v1/dead?include_discarded=true").await;
    assert_eq!(dead[0]["run_id"], m.as_str());
    let (status, ctype, problem) = stack.admin_post(&format!("/api/v1/dead/{m}/replay"), &json!({})).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(ctype, "application/problem+json");
    assert!(problem["detail"].as_str().unwrap().contains("discarded"), "{problem}");
    let (status, _, _) = stack.admin_post("/api/v1/dead/no-such-run/replay", &json!({})).await;
    assert_eq!(status, 404);

    // Counts, one person's apps, the audit log.
    let (_, counts) = stack.admin_get("/api/v1/counts").await;
    let pd = counts["vendors"].as_array().unwrap().iter().find(|v| v["vendor"] == "pipedrive").unwrap();
    assert_eq!(pd["counts"]["succeeded"], 3, "{counts}");
    assert_eq!(pd["counts"]["discarded"], 1);
    assert_eq!(pd["counts"]["dead"], 0);
    let (_, person) = stack.admin_get("/api/v1/employees/E-X").await;
    assert_eq!(person["email"], "x@example.com");
    assert_eq!(person["apps"][0]["status"], "joined", "{person}");
    let (_, person) = stack.admin_get("/api/v1/employees/l@example.com").await;
    assert_eq!(person["apps"][0]["status"], "removed", "{person}");
    let (_, person) = stack.admin_get("/api/v1/employees/z@example.com").await;
    assert_eq!(person["apps"][0]["status"], "failed", "{person}");
    let (_, audit) = stack.admin_get("/api/v1/audit").await;
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 4, "three replays and a discard: {audit}");
    assert!(entries.iter().all(|e| e["actor"] == "admin:admin"));
    let discard = entries.iter().find(|e| e["action"] == "run.discard").unwrap();
    assert_eq!(discard["reason"], "HR sent the wrong role");
    assert!(entries.iter().filter(|e| e["action"] == "run.replay").any(|e| e["reason"] == "role created"));
}

async fn without_a_password_the_admin_listener_stays_off_and_the_intake_works(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ops-nopw").env("LIFECYCLE_ADMIN__PASSWORD", "")).await;
    assert!(stack.admin_url.is_empty(), "the admin listener started without a password");
    let log = stack.producer.as_ref().unwrap().log_text();
    assert!(log.contains("admin.password is not set"), "a clear error: {log}");
    let (_, state) = run_to_end(&stack, &pipedrive_joiner("E-1", "ada@example.com", "Sales Rep")).await;
    assert_eq!(state, RunState::Succeeded);
}

async fn a_replay_stands_when_the_broker_is_unreachable_and_the_sweeper_publishes_it(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ops-nobroker")).await;
    let run_id = dead_leaver(&stack, "E-1", "leaver@example.com", 1).await;
    // The ctl cannot reach RabbitMQ (nothing listens there); the workers can.
    let replay = stack
        .ctl_with_env(&["dead", "replay", &run_id], &[("LIFECYCLE_BROKER__URL", "amqp://guest:guest@127.0.0.1:9/%2f")])
        .await;
    assert_eq!(replay.code, 0, "the replay stands: {replay:?}");
    assert!(replay.stdout.contains("RabbitMQ could not be reached") && replay.stdout.contains("sweeper"), "{replay:?}");
    let run = state_of(&stack, &run_id).await;
    assert_eq!((run.state, run.replays), (RunState::Queued, 1));
    // The worker's sweeper publishes it once it is overdue.
    wait_state(&stack, &run_id, RunState::Succeeded).await;
    assert_eq!(count(&stack.sim_state().await, "deal.update"), 1, "the deal moved once");
}

/// Scheduled runs, for operators: `runs list --state scheduled` and `runs
/// upcoming` (by day, in a time zone) show them; `runs cancel` cancels one
/// (audited); the admin API shows the same view and cancels a whole event;
/// the console's Upcoming page lists them; a started run cannot be cancelled.
async fn operators_see_upcoming_runs_and_cancel_them(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "ops-upcoming")).await;
    let tomorrow = chrono::Utc::now() + chrono::Duration::hours(30);
    let mut leaver = pipedrive_leaver("E-1", "later@example.com", None);
    leaver["effective_at"] = json!(tomorrow.to_rfc3339());
    let first = stack.accept(&leaver).await;
    assert_eq!(first["runs"][0]["state"], "scheduled", "{first}");
    let run_id = first["runs"][0]["run_id"].as_str().unwrap().to_string();
    let mut other = pipedrive_leaver("E-2", "other@example.com", None);
    other["effective_at"] = json!((tomorrow + chrono::Duration::hours(1)).to_rfc3339());
    let second = stack.accept(&other).await;
    let second_event = second["event_id"].as_str().unwrap().to_string();

    let listed = stack.ctl(&["runs", "list", "--state", "scheduled", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(listed.json().as_array().unwrap().len(), 2);
    let upcoming = stack.ctl(&["runs", "upcoming", "--days", "3", "--tz", "America/New_York", "--json"]).await;
    assert_eq!(upcoming.code, 0, "{upcoming:?}");
    let view = upcoming.json();
    assert_eq!((view["total"].as_u64(), view["time_zone"].as_str()), (Some(2), Some("America/New_York")), "{view}");
    let starts = view["by_day"][0]["runs"][0]["starts_at"].as_str().unwrap();
    assert!(starts.ends_with("-05:00") || starts.ends_with("-04:00"), "New York time: {starts}");
    let bad = stack.ctl(&["runs", "upcoming", "--tz", "Mars/Olympus_Mons"]).await;
    assert_eq!(bad.code, 2, "an unknown time zone is a usage error: {bad:?}");

    // One run, by ctl: cancelled and audited.
    let cancelled = stack.ctl(&["runs", "cancel", &run_id, "--reason", "HR withdrew it", "--json"]).await;
    assert_eq!(cancelled.code, 0, "{cancelled:?}");
    assert_eq!(cancelled.json()["cancelled"], json!([run_id]));
    let r = state_of(&stack, &run_id).await;
    assert_eq!(r.state, RunState::Cancelled);
    assert!(r.outcome.as_deref().unwrap_or_default().contains("HR withdrew it"), "{:?}", r.outcome);
    let again = stack.ctl(&["runs", "cancel", &run_id, "--reason", "twice"]).await;
    assert_eq!(again.code, 4, "a cancelled run cannot be cancelled again: {again:?}");
    let audit = stack.ctl(&["audit", "list", "--run", &run_id, "--json"]).await.json();
    assert_eq!(audit[0]["action"], "run.cancel", "{audit}");

    // The console lists what is left; the admin API cancels the other event.
    let page = stack
        .http
        .get(format!("{}/upcoming?tz=Europe/Berlin", stack.admin_url))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let other_run = second["runs"][0]["run_id"].as_str().unwrap();
    assert!(html.contains(other_run) && html.contains("Europe/Berlin") && !html.contains(&run_id), "{html}");
    let (status, body) = stack.admin_get("/api/v1/upcoming?days=3").await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(1)), "{body}");
    let (status, _, body) =
        stack.admin_post(&format!("/api/v1/events/{second_event}/cancel"), &json!({"reason": "rehired"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"cancelled": [other_run], "started": []}));
    assert_eq!(state_of(&stack, other_run).await.state, RunState::Cancelled);
    let (_, body) = stack.admin_get("/api/v1/upcoming").await;
    assert_eq!(body["total"], 0, "{body}");

    // A run that already ran is reported, not touched.
    let (done, state) = run_to_end(&stack, &pipedrive_joiner("E-3", "now@example.com", "Sales Rep")).await;
    assert_eq!(state, RunState::Succeeded);
    let refused = stack.ctl(&["runs", "cancel", &done, "--reason", "too late"]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert_eq!(state_of(&stack, &done).await.state, RunState::Succeeded);
}

both_databases!(
    operators_see_upcoming_runs_and_cancel_them,
    a_replay_stands_when_the_broker_is_unreachable_and_the_sweeper_publishes_it,
    ctl_replay_resumes_a_dead_leaver_at_the_failed_step_without_reassigning_deals_again,
    ctl_replays_the_filtered_dead_runs_refuses_overtaken_ones_and_discards,
    admin_api_replays_one_and_a_filtered_set_discards_and_refuses,
    without_a_password_the_admin_listener_stays_off_and_the_intake_works,
);
