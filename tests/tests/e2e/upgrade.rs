//! Upgrades (issue 30): the current binaries started on what an older version left behind, its
//! database and its broker topology (`tests/fixtures/upgrade/<rev>/`, made by
//! `scripts/upgrade-fixture <rev>`; docs/engineers/upgrade-test.md). They must migrate the
//! database, accept the old queue declarations, show the old runs as they were, finish the work
//! the old version left waiting, and run the contract's example joiner.

use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::sim::list;
use lifecycle_e2e::stack::contract_joiner;
use lifecycle_e2e::upgrade::Fixture;
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn upgrades_from_each_fixture(backend: Backend) {
    let fixtures = Fixture::all();
    assert!(!fixtures.is_empty(), "no fixture in tests/fixtures/upgrade/ (scripts/upgrade-fixture <rev> makes one)");
    for fixture in &fixtures {
        upgrade_from(fixture, backend).await;
    }
}

async fn upgrade_from(fixture: &Fixture, backend: Backend) {
    let rev = fixture.revision();
    // A binary that cannot migrate the old database exits, and the start fails here.
    let stack = Stack::start(StackOptions::new(backend, &format!("upgrade-{rev}")).upgrade_from(fixture)).await;

    // Declared over the old topology: a queue argument that changed would be refused
    // (PRECONDITION_FAILED), and the producer and the worker would stay unready, their /readyz
    // saying why.
    let worker_metrics = stack.workers[0]
        .as_ref()
        .and_then(|w| w.log_text().lines().find_map(|l| l.strip_prefix("worker metrics on ").map(str::to_string)))
        .expect("the worker's metrics address");
    for base in [stack.producer_url.as_str(), worker_metrics.trim().trim_end_matches("/metrics")] {
        let url = format!("{base}/readyz");
        let ready = lifecycle_e2e::poll(Duration::from_secs(10), || async {
            let r = stack.http.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        if ready.is_none() {
            let body = match stack.http.get(&url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            panic!("{rev}: {url} is not ready after 10 s: {body}");
        }
    }

    // Every current migration applied, the old version's among them.
    let (applied, pending) = lifecycle_store::db::migration_status(&stack.store).await.expect("reading migrations");
    assert!(pending.is_empty(), "{rev}: migrations still pending after the start: {pending:?}");
    for m in fixture.migrations() {
        assert!(applied.contains(&m), "{rev}: the old migration {m} is no longer applied: {applied:?}");
    }
    assert!(applied.len() >= fixture.migrations().len());
    let status = stack.ctl(&["migrate", "--status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!status.stdout.contains("pending"), "{rev}: {}", status.stdout);

    // The old runs, as the admin API lists them now: the same runs, the finished ones in the
    // state the old version left them in.
    let events = fixture.events(backend);
    let waiting: Vec<&str> = ["scheduled", "queued"].iter().map(|k| events[k].as_str().expect("an event id")).collect();
    let (code, listed) = stack.admin_get("/api/v1/runs?limit=1000").await;
    assert_eq!(code, 200, "{listed}");
    let now: BTreeMap<&str, &Value> =
        listed.as_array().expect("a list").iter().map(|r| (r["run_id"].as_str().unwrap(), r)).collect();
    let old_runs = fixture.runs(backend);
    assert!(old_runs.len() >= 14, "{rev}: the fixture has {} runs", old_runs.len());
    for old in &old_runs {
        let id = old["run_id"].as_str().unwrap();
        let run = now.get(id).unwrap_or_else(|| panic!("{rev}: the old run {id} is not listed"));
        let finished = !waiting.contains(&old["event_id"].as_str().unwrap());
        let fields: &[&str] = if finished {
            &["event_id", "vendor", "workflow", "employee_email", "state", "attempts", "access", "outcome"]
        } else {
            // Already taken up by the new worker, perhaps: only what it cannot change.
            &["event_id", "vendor", "workflow", "employee_email"]
        };
        for field in fields {
            assert_eq!(run[field], old[field], "{rev}: run {id}'s {field}");
        }
    }
    // One finished run in full, through ctl: its step timeline reads as it did.
    let old_run = fixture.run(backend);
    let id = old_run["run_id"].as_str().unwrap();
    let shown = stack.ctl(&["runs", "show", id, "--json"]).await.json();
    assert_eq!(shown["state"], old_run["state"]);
    let steps = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["key"].clone(), s["status"].clone(), s["output"].clone()))
            .collect()
    };
    assert!(!steps(&old_run).is_empty());
    assert_eq!(steps(&shown), steps(&old_run), "{rev}: run {id}'s steps");

    // What the old version left waiting runs now: a future-dated joiner, due by now, and one
    // whose message was on the old broker (not carried over: the sweeper publishes it again).
    for event in &waiting {
        let runs = stack.wait_event(event, WAIT).await;
        for r in &runs {
            assert_eq!(r.state, RunState::Succeeded, "{rev}: {:?} / {:?}\n{}", r.outcome, r.last_error, stack.logs());
        }
    }

    // The contract's example joiner: every vendor, one account each.
    let joined = stack.accept(&contract_joiner()).await;
    assert_eq!(joined["runs"].as_array().unwrap().len(), VendorKind::ALL.len(), "{joined}");
    let runs = stack.wait_event(joined["event_id"].as_str().unwrap(), WAIT).await;
    for r in &runs {
        // CircleCI's API cannot invite a member: a person must (docs/vendors/circleci.md).
        let expected = if r.vendor == VendorKind::Circleci { RunState::NeedsManualAction } else { RunState::Succeeded };
        assert_eq!(r.state, expected, "{rev}: {}: {:?} / {:?}\n{}", r.vendor, r.outcome, r.last_error, stack.logs());
    }
    let state = stack.sim_state().await;
    for email in ["ada@example.com", "katherine@example.com", "dorothy@example.com"] {
        let accounts = list(&state, "pipedrive", "users").into_iter().filter(|u| u["email"] == email).count();
        assert_eq!(accounts, 1, "{rev}: Pipedrive accounts of {email}");
    }
}

both_databases!(upgrades_from_each_fixture);
