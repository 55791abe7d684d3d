//! Reconcile, plan and re-check through the operator's command line, over
//! real processes: Pipedrive drift made by hand at the simulator, found by
//! `lifecycle-ctl reconcile` (a pass the worker carries out), turned into runs
//! by `--fix --yes` that the worker carries out, and gone on the next pass; a plan that writes nothing
//! anywhere; a CircleCI joiner that waited for a person, whose re-check says it cannot confirm
//! (CircleCI publishes no member read), and CircleCI refused as not reconcilable. (Each vendor's
//! own drift is tested in process, in `shared/vendors/tests/vendors/reconcile.rs`.)

use lifecycle_domain::RunState;
use lifecycle_e2e::sim::pd_users;
use lifecycle_e2e::stack::{pipedrive_joiner, pipedrive_leaver, PIPEDRIVE_TOKEN};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn run_to_end(stack: &Stack, event: &Value) -> lifecycle_store::runs::Run {
    let accepted = stack.accept(event).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs.len(), 1);
    runs.into_iter().next().unwrap()
}

/// A change made by hand through Pipedrive's own API.
async fn by_hand(stack: &Stack, method: reqwest::Method, path: &str, body: Value) {
    let url = format!("{}/pipedrive/api/v1{path}", stack.sim_url);
    let r = stack.http.request(method, url).header("x-api-token", PIPEDRIVE_TOKEN).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

async fn pd_id(stack: &Stack, email: &str) -> i64 {
    let state = stack.sim_state().await;
    pd_users(&state, email)[0]["id"].as_i64().unwrap()
}

fn kinds(out: &Value) -> BTreeSet<(String, String)> {
    out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().to_string(), f["account"].as_str().unwrap().to_string()))
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(k, a)| (k.to_string(), a.to_string())).collect()
}

async fn ctl_reconciles_fixes_and_finds_nothing_after(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "reconcile-ctl")
            // The fixture's own users: known and wanted.
            .env("LIFECYCLE_RECONCILE__ALLOWLIST", r#"["admin@sim.example", "grace@example.com"]"#),
    )
    .await;
    for (id, who) in [("E-1", "ada"), ("E-2", "kate"), ("E-3", "lin"), ("E-4", "alan")] {
        let run = run_to_end(&stack, &pipedrive_joiner(id, &format!("{who}@example.com"), "Sales Rep")).await;
        assert_eq!(run.state, RunState::Succeeded, "{}", stack.logs());
    }
    let left = run_to_end(&stack, &pipedrive_leaver("E-4", "alan@example.com", Some("grace@example.com"))).await;
    assert_eq!(left.state, RunState::Succeeded);

    let clean = stack.ctl(&["reconcile", "--vendor", "pipedrive", "--json"]).await;
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert_eq!(kinds(&clean.json()), set(&[]), "lifecycle's own work is no finding");
    // The ctl asked; the worker read Pipedrive, through its own client and limiter.
    assert_eq!(stack.count("reconcile_requests").await, 1);
    assert!(stack.logs().contains("reconciled on request"), "{}", stack.logs());

    // By hand: the leaver reactivated, a joiner deactivated, a role changed, a service account.
    by_hand(
        &stack,
        reqwest::Method::PUT,
        &format!("/users/{}", pd_id(&stack, "alan@example.com").await),
        json!({"active_flag": true}),
    )
    .await;
    by_hand(
        &stack,
        reqwest::Method::PUT,
        &format!("/users/{}", pd_id(&stack, "kate@example.com").await),
        json!({"active_flag": false}),
    )
    .await;
    by_hand(
        &stack,
        reqwest::Method::POST,
        "/roles/2/assignments",
        json!({"user_id": pd_id(&stack, "lin@example.com").await}),
    )
    .await;
    stack.sim_seed(json!({"pipedrive": {"users": [{"name": "Backup Bot", "email": "backup-bot@example.com"}]}})).await;

    let found = stack.ctl(&["reconcile", "--vendor", "pipedrive", "--json"]).await;
    assert_eq!(found.code, 0, "{}", found.stderr);
    let found = found.json();
    let drift = set(&[
        ("drifted", "lin@example.com"),
        ("missing", "kate@example.com"),
        ("orphaned", "alan@example.com"),
        ("unmanaged", "backup-bot@example.com"),
    ]);
    assert_eq!(kinds(&found), drift);
    assert_eq!(found["passes"][0]["accounts"], 7, "5 people, the admin, the bot");

    // The table for people says the same.
    let table = stack.ctl(&["reconcile", "--vendor", "pipedrive", "--stored"]).await;
    for account in ["lin@example.com", "kate@example.com", "alan@example.com", "backup-bot@example.com"] {
        assert!(table.stdout.contains(account), "{}", table.stdout);
    }

    // --fix alone is a dry run: nothing is written.
    let events_before = stack.count("events").await;
    let dry = stack.ctl(&["reconcile", "--stored", "--fix", "--json"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.json()["fix"]["fixed"].as_array().unwrap().len(), 3);
    assert_eq!(stack.count("events").await, events_before, "a dry run makes no event");

    let fixed = stack.ctl(&["reconcile", "--stored", "--fix", "--yes", "--json"]).await;
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let fix = fixed.json()["fix"].clone();
    let made: BTreeSet<String> =
        fix["fixed"].as_array().unwrap().iter().map(|f| f["workflow"].as_str().unwrap().to_string()).collect();
    assert_eq!(made, ["joiner", "leaver", "mover"].map(String::from).into());
    assert_eq!(fix["skipped"][0]["account"], "backup-bot@example.com");
    for f in fix["fixed"].as_array().unwrap() {
        let runs = stack.wait_event(f["event_id"].as_str().unwrap(), WAIT).await;
        assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0], stack.logs());
    }
    let audit = stack.ctl(&["audit", "list", "--json"]).await.json();
    let fixes = audit.as_array().unwrap().iter().filter(|e| e["action"] == "reconcile.fix").count();
    assert_eq!(fixes, 3, "each fix audited: {audit}");

    // Read from the ctl's own process this time (for when no worker runs): the same finding.
    let after = stack.ctl(&["reconcile", "--vendor", "pipedrive", "--here", "--json"]).await.json();
    assert_eq!(stack.count("reconcile_requests").await, 2, "--here asks no worker");
    assert_eq!(kinds(&after), set(&[("unmanaged", "backup-bot@example.com")]));
    let state = stack.sim_state().await;
    assert_eq!(pd_users(&state, "alan@example.com")[0]["active_flag"], false);
    assert_eq!(pd_users(&state, "kate@example.com")[0]["active_flag"], true);
}

/// A plan reads and writes nothing: no event, no run, no write at the simulator;
/// the CLI and `POST /v1/plans` answer the same.
async fn plans_write_nothing_anywhere(backend: Backend) {
    // The intake token with the `plans` scope (default off).
    let tokens = format!(r#"[{{token="{}", plans=true}}]"#, lifecycle_e2e::stack::INTAKE_TOKEN);
    let stack =
        Stack::start(StackOptions::new(backend, "plan").env("LIFECYCLE_PRODUCER__INTAKE_TOKENS", &tokens)).await;
    let joiner = pipedrive_joiner("E-9", "zed@example.com", "Sales Rep");
    let file = std::env::temp_dir().join(format!("lifecycle-plan-{}.json", std::process::id()));
    std::fs::write(&file, joiner.to_string()).unwrap();
    let calls_before = stack.sim_calls("pipedrive").await.len();
    let cli = stack.ctl(&["plan", file.to_str().unwrap(), "--json"]).await;
    std::fs::remove_file(&file).ok();
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    let plan = cli.json();
    let actions = &plan["vendors"][0]["actions"];
    assert_eq!(actions[0]["step"], "ensure_user", "{plan}");
    assert!(actions[0]["text"].as_str().unwrap().contains("zed@example.com"), "{plan}");

    let http = stack
        .http
        .post(format!("{}/v1/plans", stack.producer_url))
        .bearer_auth(lifecycle_e2e::stack::INTAKE_TOKEN)
        .json(&joiner)
        .send()
        .await
        .unwrap();
    assert_eq!(http.status().as_u16(), 200);
    let via_http: Value = http.json().await.unwrap();
    assert_eq!(via_http["vendors"][0]["actions"], *actions);

    let calls = stack.sim_calls("pipedrive").await;
    assert!(calls.len() > calls_before, "the plans read Pipedrive");
    assert!(calls[calls_before..].iter().all(|c| c["method"] == "GET"), "only reads: {:?}", &calls[calls_before..]);
    assert_eq!(stack.count("events").await, 0, "no event");
    assert_eq!(stack.count("runs").await, 0, "no run");

    let bad = stack
        .http
        .post(format!("{}/v1/plans", stack.producer_url))
        .bearer_auth(lifecycle_e2e::stack::INTAKE_TOKEN)
        .json(&json!({"type": "joiner", "employee": {"id": "E-1", "email": "not-an-address"}, "apps": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert!(problem.to_string().contains("employee.email"), "{problem}");
}

/// CircleCI's API publishes no member operation: the joiner waits for a person, and a re-check
/// cannot see what they did, even once the member is there; it ends as the run did, naming who
/// asked and saying why. And `lifecycle-ctl reconcile --vendor circleci` is refused, saying why,
/// with no pass and no request to CircleCI.
async fn circleci_rechecks_cannot_confirm_and_circleci_is_not_reconcilable(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "recheck")).await;
    let joiner = json!({
        "type": "joiner",
        "employee": {"id": "E-7", "email": "nia@example.com", "given_name": "Nia", "family_name": "Okafor"},
        "apps": {"circleci": {"login": "nia-gh"}}
    });
    let run = run_to_end(&stack, &joiner).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", stack.logs());

    // A person invited nia-gh and she accepted (the simulator plays the web app).
    stack
        .sim_seed(json!({"circleci": {"users": [{"login": "nia-gh"}], "memberships": [{"org": "gh/sim-org", "login": "nia-gh"}]}}))
        .await;
    let calls_before = stack.sim_calls("circleci").await.len();
    let rechecked = stack.ctl(&["runs", "recheck", &run.id, "--wait", "30s", "--json"]).await;
    assert_eq!(rechecked.code, 0, "{}", rechecked.stderr);
    let ended = &rechecked.json()["ended"][0];
    assert_eq!(ended["state"], "needs_manual_action", "no published read can confirm it: {ended}");
    let outcome = ended["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("still needed after a re-check ctl:tester asked for"), "{ended}");
    assert!(outcome.contains("a re-check of this run cannot see the change"), "{ended}");
    assert_eq!(stack.sim_calls("circleci").await.len(), calls_before, "the worker asked CircleCI nothing new");
    let audit = stack.ctl(&["audit", "list", "--run", &run.id, "--json"]).await.json();
    let rechecks = audit.as_array().unwrap().iter().filter(|e| e["action"] == "run.recheck").count();
    assert_eq!(rechecks, 1, "{audit}");

    let reconciled = stack.ctl(&["reconcile", "--vendor", "circleci", "--json"]).await;
    assert_ne!(reconciled.code, 0, "CircleCI cannot be reconciled: {}", reconciled.stdout);
    assert!(reconciled.stderr.contains("circleci is not reconcilable"), "{}", reconciled.stderr);
    assert!(
        reconciled.stderr.contains("publishes no operation that lists an organization's members"),
        "{}",
        reconciled.stderr
    );
    assert_eq!(stack.count("reconcile_passes").await, 0, "no pass recorded");
    assert_eq!(stack.sim_calls("circleci").await.len(), calls_before, "nothing read at CircleCI");
}

/// A re-check closes a run once a person has done what it asked: Pipedrive's last active admin
/// leaving stops for a person; a re-check before anything changed keeps it waiting, saying so;
/// once another admin exists (made in Pipedrive, here by the simulator's seed) a re-check runs the
/// leaver to its end and names who asked. Two `run.recheck` audit entries; a succeeded run is not
/// re-checked again.
async fn a_recheck_closes_a_last_admins_leaver_once_another_admin_exists(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "recheck-admin")).await;
    let leaver = json!({
        "type": "leaver",
        "employee": {"id": "E-9", "email": "admin@sim.example", "given_name": "Sim", "family_name": "Admin"},
        "successor_email": "grace@example.com",
        "apps": {"pipedrive": {}}
    });
    let run = run_to_end(&stack, &leaver).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{}", stack.logs());
    assert!(run.outcome.as_deref().unwrap_or_default().contains("last active admin"), "{:?}", run.outcome);

    let early = stack.ctl(&["runs", "recheck", &run.id, "--wait", "30s", "--json"]).await;
    assert_eq!(early.code, 0, "{}", early.stderr);
    let ended = &early.json()["ended"][0];
    assert_eq!(ended["state"], "needs_manual_action", "{ended}");
    assert!(
        ended["outcome"].as_str().unwrap().starts_with("still needed after a re-check ctl:tester asked for"),
        "{ended}"
    );

    // Someone made another company admin in Pipedrive.
    stack
        .sim_seed(json!({"pipedrive": {"users": [
            {"name": "Lee Admin", "email": "lee@example.com", "access": [{"app": "sales"}, {"app": "global", "admin": true}]}
        ]}}))
        .await;
    let done = stack.ctl(&["runs", "recheck", &run.id, "--wait", "30s", "--json"]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let ended = &done.json()["ended"][0];
    assert_eq!(ended["state"], "succeeded", "{ended}");
    assert!(ended["outcome"].as_str().unwrap().contains("(confirmed by a re-check ctl:tester asked for)"), "{ended}");
    let audit = stack.ctl(&["audit", "list", "--run", &run.id, "--json"]).await.json();
    let rechecks = audit.as_array().unwrap().iter().filter(|e| e["action"] == "run.recheck").count();
    assert_eq!(rechecks, 2, "{audit}");

    let again = stack.ctl(&["runs", "recheck", &run.id]).await;
    assert_eq!(again.code, 4, "a succeeded run is not re-checked: {}", again.stderr);
}

/// GitHub knows its members by login (no address): a leaver's membership given back by hand is
/// tied to the person through their leaver's login, found orphaned, and removed again by the fix.
async fn a_github_membership_re_added_by_hand_is_found_orphaned_and_removed(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "reconcile-github")).await;
    stack
        .sim_seed(json!({"github": {"users": [{"login": "kim-gh", "name": "Kim"}], "members": [{"login": "kim-gh"}]}}))
        .await;
    let leaver = json!({
        "type": "leaver",
        "employee": {"id": "E-21", "email": "kim@example.com"},
        "apps": {"github": {"login": "kim-gh"}}
    });
    let left = run_to_end(&stack, &leaver).await;
    assert_eq!(left.state, RunState::Succeeded, "{:?}\n{}", left.outcome, stack.logs());
    let is_member =
        |state: &Value| state["github"]["members"].as_array().unwrap().iter().any(|m| m["login"] == "kim-gh");
    assert!(!is_member(&stack.sim_state().await));

    // An owner adds Kim back in the organisation's settings.
    stack.sim_seed(json!({"github": {"members": [{"login": "kim-gh"}]}})).await;
    let found = stack.ctl(&["reconcile", "--vendor", "github", "--kind", "orphaned", "--json"]).await;
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(kinds(&found.json()), set(&[("orphaned", "kim-gh")]), "{}", found.stdout);

    let fixed = stack
        .ctl(&["reconcile", "--vendor", "github", "--kind", "orphaned", "--stored", "--fix", "--yes", "--json"])
        .await;
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    let fix = fixed.json()["fix"].clone();
    let made = fix["fixed"].as_array().unwrap();
    assert_eq!(made.len(), 1, "{fix}");
    assert_eq!(made[0]["workflow"], "leaver");
    let runs = stack.wait_event(made[0]["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0], stack.logs());
    assert!(!is_member(&stack.sim_state().await), "removed again");

    let after = stack.ctl(&["reconcile", "--vendor", "github", "--kind", "orphaned", "--json"]).await;
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_eq!(kinds(&after.json()), set(&[]));
}

both_databases!(ctl_reconciles_fixes_and_finds_nothing_after);
both_databases!(a_github_membership_re_added_by_hand_is_found_orphaned_and_removed);
both_databases!(a_recheck_closes_a_last_admins_leaver_once_another_admin_exists);

mod sqlite_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plans_write_nothing_anywhere() {
        super::plans_write_nothing_anywhere(lifecycle_e2e::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn circleci_rechecks_cannot_confirm_and_circleci_is_not_reconcilable() {
        super::circleci_rechecks_cannot_confirm_and_circleci_is_not_reconcilable(lifecycle_e2e::Backend::Sqlite).await
    }
}
