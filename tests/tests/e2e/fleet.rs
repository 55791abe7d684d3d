//! Lanes spread over a fleet of workers (issue 29), over real processes: three
//! workers hold two lanes each (the lane leases in the database, and each
//! worker's `lifecycle_lanes_held`), every lane held by exactly one; a wave at
//! every vendor runs on all three; a worker killed with `kill -9` has its lanes
//! taken by the other two within the lane lease's bound, and the wave ends
//! once, no account twice.
//!
//! SQLite only: the leases' SQL is tested on both databases in process
//! (`shared/ops/tests/lanes.rs`); what is tested here is the worker.

use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::lanes::{now_ms, post_wave, unexpected_ends, wave_email, wave_joiner, wave_seed, worker_index};
use lifecycle_e2e::sim::list;
use lifecycle_e2e::{eventually, Backend, Stack, StackOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const WORKERS: usize = 3;
const PEOPLE: usize = 24;
/// The production defaults (`worker.lane_lease`, `worker.lane_interval`): a dead worker's lanes
/// are free 10 s after its last renewal at the latest and taken within a round after that.
const LANE_TAKEOVER: Duration = Duration::from_secs(10 + 2 + 2);

/// Lane → live holder, from the lease table.
async fn holders(stack: &Stack) -> BTreeMap<String, Option<String>> {
    lifecycle_ops::lanes::holders(&stack.store, chrono::Utc::now())
        .await
        .expect("reading the lane leases")
        .into_iter()
        .map(|h| (h.lane, h.holder))
        .collect()
}

/// Holder → how many lanes, when every lane is held by one of `workers` and each holds
/// between `min` and `max`.
fn spread(
    table: &BTreeMap<String, Option<String>>,
    workers: usize,
    min: usize,
    max: usize,
) -> Option<BTreeMap<String, usize>> {
    if table.len() != VendorKind::ALL.len() || table.values().any(Option::is_none) {
        return None;
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for h in table.values().flatten() {
        *counts.entry(h.clone()).or_default() += 1;
    }
    (counts.len() == workers && counts.values().all(|n| (min..=max).contains(n))).then_some(counts)
}

fn metrics_url(stack: &Stack, i: usize) -> String {
    let log = stack.workers[i].as_ref().expect("the worker runs").log_text();
    log.lines()
        .find_map(|l| l.strip_prefix("worker metrics on "))
        .expect("the worker printed its metrics address")
        .trim()
        .to_string()
}

/// The sum of a metric's samples (every label set) in a worker's `/metrics`.
async fn metric(stack: &Stack, url: &str, name: &str) -> f64 {
    let text = stack.http.get(url).send().await.expect("the worker answers").text().await.expect("a body");
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_the_lanes_and_a_killed_workers_lanes_move_to_the_others() {
    let mut opts = StackOptions::new(Backend::Sqlite, "fleet-lanes")
        .workers(WORKERS)
        .sim_arg("--no-rate-limits")
        .env("LIFECYCLE_WORKER__LEASE", "15s");
    for v in ["PIPEDRIVE", "CALENDLY", "CIRCLECI"] {
        opts = opts
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__REQUESTS"), "100000")
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__PER"), "1s");
    }
    let mut stack = Stack::start(opts).await;

    // Settled: each worker holds exactly ⌈6/3⌉ = 2 lanes, every lane one holder.
    let settled = eventually(Duration::from_secs(30), "three workers holding two lanes each", || async {
        spread(&holders(&stack).await, WORKERS, 2, 2)
    })
    .await;
    eprintln!("lanes held: {settled:?}");
    let urls: Vec<String> = (0..WORKERS).map(|i| metrics_url(&stack, i)).collect();
    for url in &urls {
        assert_eq!(metric(&stack, url, "lifecycle_lanes_held").await, 2.0, "{url}");
    }

    // A wave at every vendor, each call slowed so that runs are in flight when a worker dies.
    let vendors: Vec<&str> = VendorKind::ALL.iter().map(|v| v.as_str()).collect();
    stack.sim_seed(wave_seed(PEOPLE, &["circleci", "github"])).await;
    for v in ["pipedrive", "crowdstrike", "jira", "calendly", "github"] {
        stack
            .sim_fault(serde_json::json!({"vendor": v, "kind": "latency", "latency_ms": 150, "count": 1_000_000}))
            .await;
    }
    let events: Vec<serde_json::Value> = (0..PEOPLE).map(|i| wave_joiner(i, &vendors)).collect();
    post_wave(&stack, &events, 8).await;

    // Every worker runs some of the wave (its own lanes' runs).
    eventually(Duration::from_secs(60), "every worker to have finished runs", || async {
        let mut all = true;
        for url in &urls {
            all &= metric(&stack, url, "lifecycle_runs_finished_total").await > 0.0;
        }
        all.then_some(())
    })
    .await;

    // Kill -9 the worker holding the most running runs (any, if none runs right now).
    let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
    for r in stack.runs().await.into_iter().filter(|r| r.state == RunState::Running) {
        *by_owner.entry(r.lease_owner.unwrap_or_default()).or_default() += 1;
    }
    let before = holders(&stack).await;
    let victim_id = by_owner
        .iter()
        .filter(|(w, _)| before.values().any(|h| h.as_deref() == Some(w.as_str())))
        .max_by_key(|(_, n)| **n)
        .map(|(w, _)| w.clone())
        .unwrap_or_else(|| before.values().flatten().next().unwrap().clone());
    let victim = worker_index(&stack, &victim_id).unwrap_or_else(|| panic!("no worker of this stack is {victim_id}"));
    let lanes_of_victim: BTreeSet<String> =
        before.iter().filter(|(_, h)| h.as_deref() == Some(victim_id.as_str())).map(|(l, _)| l.clone()).collect();
    stack.kill9_worker(victim);
    let killed_at = now_ms();
    eprintln!("killed {victim_id} holding lanes {lanes_of_victim:?} and {by_owner:?} running runs");

    // Its lanes pass to the two others: every lane held by one of them, at most ⌈6/2⌉ = 3 each.
    let after = eventually(LANE_TAKEOVER + Duration::from_secs(2), "the killed worker's lanes to move", || async {
        spread(&holders(&stack).await, WORKERS - 1, 3, 3)
    })
    .await;
    let moved_ms = now_ms() - killed_at;
    eprintln!("lanes held {moved_ms} ms after the kill: {after:?}");
    assert!(!after.contains_key(&victim_id));
    assert!(
        moved_ms <= LANE_TAKEOVER.as_millis() as i64,
        "the killed worker's lanes moved after {moved_ms} ms (bound {LANE_TAKEOVER:?})"
    );
    for (i, url) in urls.iter().enumerate() {
        if i != victim {
            assert_eq!(metric(&stack, url, "lifecycle_lanes_held").await, 3.0, "{url}");
        }
    }

    // The wave ends once: every run as its vendor's do, no account twice.
    let runs = stack.wait_all(Duration::from_secs(120)).await;
    assert_eq!(runs.len(), PEOPLE * vendors.len());
    let bad: Vec<_> = unexpected_ends(&runs).iter().map(|r| (r.vendor, r.state, r.last_error.clone())).collect();
    assert!(bad.is_empty(), "{bad:?}");
    let state = stack.sim_state().await;
    for (vendor, action) in [
        ("pipedrive", "user.create"),
        ("crowdstrike", "user.create"),
        ("jira", "user.create"),
        ("calendly", "invitation.create"),
    ] {
        let n = list(&state, vendor, "log").into_iter().filter(|e| e["action"] == action).count();
        assert_eq!(n, PEOPLE, "{vendor} {action} once per person");
    }
    for i in 0..PEOPLE {
        let email = wave_email(i);
        let n = list(&state, "calendly", "invitations")
            .into_iter()
            .filter(|x| x["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(&email)))
            .count();
        assert_eq!(n, 1, "{email} invited once to Calendly");
    }
}
