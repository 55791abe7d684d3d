//! What the benchmarks share: the stack's options, the events they post, posting them, and reading a process' CPU and memory.

use futures::StreamExt;
use lifecycle_domain::VendorKind;
use lifecycle_e2e::{Stack, StackOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(crate) fn unlimited(mut opts: StackOptions, vendors: &[&str]) -> StackOptions {
    opts = opts.sim_arg("--no-rate-limits").env("RUST_LOG", "warn");
    // Only these have a client-side budget; CrowdStrike and Jira pace on 429s alone.
    for v in vendors.iter().filter(|v| lifecycle_e2e::lanes::has_rate_limit(v)) {
        let upper = v.to_uppercase();
        opts = opts
            .env(&format!("LIFECYCLE_VENDORS__{upper}__RATE_LIMIT__REQUESTS"), "10000000")
            .env(&format!("LIFECYCLE_VENDORS__{upper}__RATE_LIMIT__PER"), "1s");
    }
    opts
}

/// A joiner touching `vendors`, of the contract's shape.
pub fn joiner(i: usize, vendors: &[&str]) -> Value {
    let mut apps = serde_json::Map::new();
    for v in vendors {
        let Ok(kind) = v.parse::<VendorKind>() else { continue };
        let app = match kind {
            VendorKind::Pipedrive => json!({"role": "Sales Rep"}),
            VendorKind::Crowdstrike => json!({"roles": ["falcon_analyst"]}),
            VendorKind::Jira => json!({"products": ["jira-software"], "groups": [lifecycle_e2e::lanes::JIRA_GROUP]}),
            VendorKind::Calendly => json!({}),
            // A login, which the run names in a person's steps (it ends needs_manual_action).
            VendorKind::Circleci => json!({"login": format!("bench-{i}-gh")}),
            // No login (the bench's people have no GitHub account): invited by e-mail.
            VendorKind::Github => json!({"role": "member"}),
        };
        apps.insert(v.to_string(), app);
    }
    json!({
        "type": "joiner",
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": {"id": format!("B-{i}"), "email": format!("bench{i}@example.com"), "given_name": "Bench", "family_name": format!("Person {i}")},
        "apps": apps
    })
}

/// The vendors of a `--vendors` list (`all`: every one), in `VendorKind::ALL`'s order; an
/// unknown name is an error, not silently dropped.
pub(crate) fn vendor_list(spec: &str) -> anyhow::Result<Vec<&'static str>> {
    if spec.trim() == "all" {
        return Ok(VendorKind::ALL.map(VendorKind::as_str).to_vec());
    }
    let mut chosen = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        chosen.push(name.parse::<VendorKind>()?);
    }
    anyhow::ensure!(!chosen.is_empty(), "--vendors: no vendor in {spec:?}");
    Ok(VendorKind::ALL.into_iter().filter(|v| chosen.contains(v)).map(VendorKind::as_str).collect())
}

/// Posts `events` with `clients` concurrent clients; returns the wall time.
pub(crate) async fn post_all(stack: &Stack, events: Vec<Value>, clients: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let results: Vec<u16> = futures::stream::iter(events.iter().enumerate())
        .map(|(i, e)| async move { stack.post_event(e, &format!("bench-{i}")).await.status().as_u16() })
        .buffer_unordered(clients)
        .collect()
        .await;
    let refused = results.iter().filter(|s| **s != 202).count();
    anyhow::ensure!(refused == 0, "{refused} events were not accepted");
    Ok(started.elapsed())
}

/// The CPU time (user + system) a process has used, in ms, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks of 1/100 s: Linux's
/// USER_HZ on every architecture we run on).
pub(crate) fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After ')': field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    (ticks(11) + ticks(12)) * 10
}

/// The process' peak resident set (VmHWM), in MB.
pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    rss_mb(pid, "VmHWM:")
}

/// A memory line of `/proc/<pid>/status` (`VmRSS:` now, `VmHWM:` the peak), in MB.
pub(crate) fn rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// What the figures were measured on.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("# machine: {cores} cores ({cpu}), {mem:.0} GiB RAM; {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_lists_follow_the_domains_names_and_refuse_a_typo() {
        assert_eq!(vendor_list("all").unwrap(), VendorKind::ALL.map(VendorKind::as_str).to_vec());
        assert_eq!(vendor_list("circleci, pipedrive").unwrap(), vec!["pipedrive", "circleci"]);
        assert!(vendor_list("pipedrive,circlci").unwrap_err().to_string().contains("circlci"));
        assert!(vendor_list(",").is_err());
    }
}
