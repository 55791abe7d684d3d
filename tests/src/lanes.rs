//! Helpers for the lane and fleet tests (`tests/tests/e2e/lanes.rs`) and the
//! `layoff`, `fleet` and `reconcile` benchmarks: waves of people seeded at several vendors,
//! what marks each vendor's run done (the simulator's mutation, or for CircleCI the run's own
//! end state), the request rate of a busy period read from the simulator's call log, and
//! signals to a worker process.
//!
//! Vendors are named as the simulator's state and the events name them (`VendorKind::as_str`);
//! every match below is over [`VendorKind`], so a new vendor fails to compile here until it is
//! given its seed, its event and what ends its runs.

use crate::stack::{call_at_ms, Stack};
use lifecycle_domain::{RunState, VendorKind};
use serde_json::{json, Value};

/// The Jira group every seeded person is in (one of the simulator's default groups).
pub const JIRA_GROUP: &str = "276f955c-63d7-42c8-9520-92d01dca0625";

fn kind(vendor: &str) -> VendorKind {
    vendor.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// The mutation (in the simulator's log) that means a leaver's account at `vendor` is gone, or
/// `None` where lifecycle removes nobody: CircleCI's API publishes no member operation, so its
/// leavers end `needs_manual_action` (a person removes them) and its log never changes.
pub fn gone_action(vendor: &str) -> Option<&'static str> {
    match kind(vendor) {
        VendorKind::Pipedrive => Some("user.deactivate"),
        VendorKind::Crowdstrike => Some("user.delete"),
        VendorKind::Jira => Some("user.delete"),
        VendorKind::Calendly => Some("membership.delete"),
        VendorKind::Circleci => None,
        VendorKind::Github => Some("membership.remove"),
    }
}

/// Whether `vendor` has a client-side budget: a `rate_limit` in its `[vendors.<name>]` table
/// (`LIFECYCLE_VENDORS__<NAME>__RATE_LIMIT__*`), which the others' tables refuse (CrowdStrike and
/// Jira publish none and are paced by their 429s alone).
pub fn has_rate_limit(vendor: &str) -> bool {
    match kind(vendor) {
        VendorKind::Pipedrive | VendorKind::Calendly | VendorKind::Circleci | VendorKind::Github => true,
        VendorKind::Crowdstrike | VendorKind::Jira => false,
    }
}

/// The state a wave's joiner or leaver at `vendor` ends in when all goes well: `succeeded`, but
/// CircleCI's end `needs_manual_action` with a person's steps (no published API adds or removes
/// a member; only the token's own user, never a wave's person, is settled by a read).
pub fn end_state(vendor: &str) -> RunState {
    match kind(vendor) {
        VendorKind::Circleci => RunState::NeedsManualAction,
        VendorKind::Pipedrive
        | VendorKind::Crowdstrike
        | VendorKind::Jira
        | VendorKind::Calendly
        | VendorKind::Github => RunState::Succeeded,
    }
}

/// The runs that did not end as [`end_state`] says their vendor's do.
pub fn unexpected_ends(runs: &[lifecycle_store::entity::run::Model]) -> Vec<&lifecycle_store::entity::run::Model> {
    runs.iter().filter(|r| r.state != end_state(r.vendor.as_str())).collect()
}

pub fn wave_email(i: usize) -> String {
    format!("wave{i}@example.com")
}

pub fn wave_login(i: usize) -> String {
    format!("wave{i}-gh")
}

/// A `/_sim/seed` body giving people `0..people` an account at each of `vendors` (at CircleCI a
/// membership of `gh/sim-org`, standing for what a person did in the web app; at GitHub an
/// account `wave{i}-gh` and its membership of `sim-org`).
pub fn wave_seed(people: usize, vendors: &[&str]) -> Value {
    let mut seed = serde_json::Map::new();
    for v in vendors {
        let body = match kind(v) {
            VendorKind::Pipedrive => json!({"users": (0..people)
                .map(|i| json!({"name": format!("Wave {i}"), "email": wave_email(i), "role": "Sales Rep"}))
                .collect::<Vec<_>>()}),
            VendorKind::Crowdstrike => json!({"users": (0..people)
                .map(|i| json!({"username": wave_email(i), "first_name": "Wave", "last_name": format!("{i}"),
                                "roles": ["falcon_analyst"]}))
                .collect::<Vec<_>>()}),
            VendorKind::Jira => json!({"users": (0..people)
                .map(|i| json!({"emailAddress": wave_email(i), "displayName": format!("Wave {i}"),
                                "products": ["jira-software"], "groups": [JIRA_GROUP]}))
                .collect::<Vec<_>>()}),
            VendorKind::Calendly => json!({"members": (0..people)
                .map(|i| json!({"email": wave_email(i), "name": format!("Wave {i}")}))
                .collect::<Vec<_>>()}),
            VendorKind::Circleci => json!({
                "users": (0..people).map(|i| json!({"login": wave_login(i)})).collect::<Vec<_>>(),
                "memberships": (0..people).map(|i| json!({"org": "gh/sim-org", "login": wave_login(i)})).collect::<Vec<_>>(),
            }),
            VendorKind::Github => json!({
                "users": (0..people).map(|i| json!({"login": wave_login(i), "email": wave_email(i)})).collect::<Vec<_>>(),
                "members": (0..people).map(|i| json!({"login": wave_login(i)})).collect::<Vec<_>>(),
            }),
        };
        seed.insert(v.to_string(), body);
    }
    Value::Object(seed)
}

fn apps(i: usize, vendors: &[&str], joiner: bool) -> Value {
    let mut apps = serde_json::Map::new();
    for v in vendors {
        let app = match (kind(v), joiner) {
            (VendorKind::Pipedrive, true) => json!({"role": "Sales Rep"}),
            (VendorKind::Crowdstrike, true) => json!({"roles": ["falcon_analyst"]}),
            (VendorKind::Jira, true) => json!({"products": ["jira-software"], "groups": [JIRA_GROUP]}),
            (VendorKind::Circleci, _) => json!({"login": wave_login(i)}),
            // The account must exist at GitHub (seeded by `wave_seed`): a joiner's login is looked up.
            (VendorKind::Github, true) => json!({"login": wave_login(i), "role": "member"}),
            (VendorKind::Github, false) => json!({"login": wave_login(i)}),
            (VendorKind::Pipedrive | VendorKind::Crowdstrike | VendorKind::Jira, false) | (VendorKind::Calendly, _) => {
                json!({})
            }
        };
        apps.insert(v.to_string(), app);
    }
    Value::Object(apps)
}

/// Person `i` leaving every one of `vendors`.
pub fn wave_leaver(i: usize, vendors: &[&str]) -> Value {
    json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "employee": {"id": format!("W-{i}"), "email": wave_email(i)},
        "apps": apps(i, vendors, false)
    })
}

/// Person `i` joining every one of `vendors` (at CircleCI, whether seeded a member or not, the run
/// ends `needs_manual_action`: see [`end_state`]; at GitHub the account `wave{i}-gh` must exist,
/// seeded by [`wave_seed`], or the run fails: GitHub has no such user).
pub fn wave_joiner(i: usize, vendors: &[&str]) -> Value {
    json!({
        "type": "joiner",
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": {"id": format!("W-{i}"), "email": wave_email(i), "given_name": "Wave", "family_name": format!("{i}")},
        "apps": apps(i, vendors, true)
    })
}

/// Posts every event, `at_once` at a time; panics on any refusal.
pub async fn post_wave(stack: &Stack, events: &[Value], at_once: usize) {
    for chunk in events.chunks(at_once.max(1)) {
        futures::future::join_all(chunk.iter().map(|e| stack.accept(e))).await;
    }
}

/// When each `action` of `vendor`'s mutation log happened, in Unix milliseconds, oldest first.
pub fn mutation_times(state: &Value, vendor: &str, action: &str) -> Vec<i64> {
    let mut times: Vec<i64> = crate::sim::list(state, vendor, "log")
        .into_iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e["at"].as_str().expect("a log entry has a time"))
                .expect("the log time is RFC 3339")
                .timestamp_millis()
        })
        .collect();
    times.sort_unstable();
    times
}

/// Requests a vendor answered (not 429) during its busy period, per second.
#[derive(Debug, Clone, Copy)]
pub struct BusyRate {
    /// Requests answered (not 429) inside the measured windows.
    pub requests: usize,
    /// Length of the measured windows together.
    pub seconds: f64,
    pub per_s: f64,
    /// Every call in the log, whatever its window or status.
    pub total_calls: usize,
}

/// The request rate of a busy period, from the simulator's call log.
///
/// The simulator counts a budget in fixed windows of `window_ms` aligned to the
/// Unix epoch (Pipedrive: 2 s windows starting on even seconds). The busy period
/// runs from the first call to the last; its first and last windows are only
/// partly busy (the wave began, or ran out of work, inside them), so they are left
/// out: the rate is the number of answered requests in the whole windows between
/// them, divided by those windows' length. A wave shorter than three windows gives
/// no whole window, and a rate of zero.
pub fn busy_rate(calls: &[Value], window_ms: i64) -> BusyRate {
    let mut times: Vec<i64> = calls.iter().filter(|c| c["status"] != 429).map(call_at_ms).collect();
    times.sort_unstable();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return BusyRate { requests: 0, seconds: 0.0, per_s: 0.0, total_calls: calls.len() };
    };
    // The first whole window starts at the first window boundary after the first call; the
    // last whole window ends where the window holding the last call begins.
    let from = (first / window_ms + 1) * window_ms;
    let to = (last / window_ms) * window_ms;
    if to <= from {
        return BusyRate { requests: 0, seconds: 0.0, per_s: 0.0, total_calls: calls.len() };
    }
    let requests = times.iter().filter(|t| **t >= from && **t < to).count();
    let seconds = (to - from) as f64 / 1000.0;
    BusyRate { requests, seconds, per_s: requests as f64 / seconds, total_calls: calls.len() }
}

/// The most answered requests in any one of the simulator's windows (a check that none was
/// over the budget, independent of the simulator's own counting).
pub fn busiest_window(calls: &[Value], window_ms: i64) -> usize {
    let mut counts: std::collections::BTreeMap<i64, usize> = Default::default();
    for c in calls.iter().filter(|c| c["status"] != 429) {
        *counts.entry(call_at_ms(c) / window_ms).or_default() += 1;
    }
    counts.values().copied().max().unwrap_or(0)
}

/// The windows in which the vendor answered 429, each with how many requests it answered in that
/// window and in the one before, and when the window's first answered requests arrived (ms into
/// the window): what a 429 looked like, for an assertion message.
pub fn windows_with_429s(calls: &[Value], window_ms: i64) -> String {
    let mut answered: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    let mut refused: std::collections::BTreeMap<i64, usize> = Default::default();
    for c in calls {
        let at = call_at_ms(c);
        if c["status"] == 429 {
            *refused.entry(at / window_ms).or_default() += 1;
        } else {
            answered.entry(at / window_ms).or_default().push(at % window_ms);
        }
    }
    let mut out = Vec::new();
    for (w, n) in &refused {
        let here = answered.get(w).cloned().unwrap_or_default();
        let before = answered.get(&(w - 1)).map_or(0, Vec::len);
        let mut first = here.clone();
        first.sort_unstable();
        first.truncate(5);
        out.push(format!(
            "window starting {}: {n} x 429, {} answered (first at {first:?} ms), {before} answered in the window before",
            w * window_ms,
            here.len()
        ));
    }
    out.join("; ")
}

/// The process id inside a worker id (`<host>-<pid>-<random>`, the lease owner of its runs).
pub fn worker_pid(worker_id: &str) -> Option<u32> {
    let mut parts = worker_id.rsplitn(3, '-');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Which of the stack's workers is `worker_id` (a run's `lease_owner`).
pub fn worker_index(stack: &Stack, worker_id: &str) -> Option<usize> {
    let pid = worker_pid(worker_id)?;
    stack.workers.iter().position(|w| w.as_ref().is_some_and(|p| p.child.id() == pid))
}

/// The process id of the stack's worker `i`, while it runs.
pub fn pid_of(stack: &Stack, i: usize) -> u32 {
    stack.workers[i].as_ref().expect("the worker runs").child.id()
}

/// Sends `signal` (`STOP`, `CONT`, ...) to a process; panics if `kill` fails.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Wall-clock Unix milliseconds (the simulator, the workers and the tests share this clock).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at_ms: i64, status: u16) -> Value {
        json!({"at": chrono::DateTime::from_timestamp_millis(at_ms).unwrap().to_rfc3339(), "status": status})
    }

    #[test]
    fn busy_rate_counts_whole_windows_only() {
        // Calls every 25 ms from 1_000_000_500 to 1_000_007_500; windows of 2 s.
        let calls: Vec<Value> = (0..=280).map(|k| call(1_000_000_500 + k * 25, 200)).collect();
        let r = busy_rate(&calls, 2000);
        // Whole windows: [1_000_002_000, 1_000_006_000): 4 s, 160 calls.
        assert_eq!(r.seconds, 4.0);
        assert_eq!(r.requests, 160);
        assert_eq!(r.per_s, 40.0);
        assert_eq!(busiest_window(&calls, 2000), 80);
    }

    #[test]
    fn busy_rate_leaves_429s_out() {
        let mut calls: Vec<Value> = (0..=280).map(|k| call(1_000_000_500 + k * 25, 200)).collect();
        calls.push(call(1_000_003_000, 429));
        assert_eq!(busy_rate(&calls, 2000).requests, 160);
    }

    #[test]
    fn a_vendors_runs_end_either_with_a_mutation_or_with_a_person() {
        for v in VendorKind::ALL.map(VendorKind::as_str) {
            match gone_action(v) {
                Some(_) => assert_eq!(end_state(v), RunState::Succeeded, "{v}"),
                None => assert_eq!(end_state(v), RunState::NeedsManualAction, "{v}: removes nobody"),
            }
        }
        assert_eq!(gone_action("circleci"), None, "CircleCI publishes no member removal");
        assert_eq!(gone_action("pipedrive"), Some("user.deactivate"));
        assert!(has_rate_limit("github") && !has_rate_limit("jira"));
    }

    #[test]
    fn every_vendor_lifecycle_knows_is_simulated_under_its_name() {
        // Seeds, call logs and counters are read from the simulator under `VendorKind::as_str`: a
        // new vendor fails here, not in a wave that seeds nothing.
        for v in VendorKind::ALL {
            assert!(lifecycle_vendor_sim::Vendor::from_name(v.as_str()).is_some(), "{v:?} has no simulator");
        }
    }

    #[test]
    fn a_worker_id_names_its_pid() {
        assert_eq!(worker_pid("worker-4242-a1b2c3"), Some(4242));
        assert_eq!(worker_pid("my-host-name-17-ffffff"), Some(17));
        assert_eq!(worker_pid("nonsense"), None);
    }
}
