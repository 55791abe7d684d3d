//! The three-node RabbitMQ cluster of `scripts/cluster` (lc1..lc3@localhost on
//! 127.0.0.1:5681..5683), for the fault tests in `tests/tests/cluster.rs`: start
//! it when it is down, find which node leads a queue, kill, pause and restart
//! nodes, and a wave of five-vendor joiners posted and checked through it.
//!
//! The machine's own RabbitMQ (5672) is not touched: the stacks here are given
//! the cluster's addresses (`LIFECYCLE_BROKER__ADDRESSES`).

use crate::lanes::{end_state, wave_email, wave_joiner};
use crate::stack::{Stack, StackOptions, INTAKE_TOKEN};
use crate::Backend;
use lifecycle_domain::{RunState, VendorKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const NODES: [usize; 3] = [1, 2, 3];

/// The five vendors of a wave (GitHub needs its accounts seeded first, and adds nothing here).
pub const VENDORS: [&str; 5] = ["pipedrive", "crowdstrike", "jira", "calendly", "circleci"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dir() -> PathBuf {
    std::env::var_os("LIFECYCLE_CLUSTER_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target/cluster"))
}

pub fn port(n: usize) -> u16 {
    5680 + n as u16
}

pub fn addresses() -> String {
    NODES.map(|n| format!("127.0.0.1:{}", port(n))).join(",")
}

pub fn node_url(n: usize) -> String {
    format!("amqp://guest:guest@127.0.0.1:{}/%2f", port(n))
}

/// `scripts/cluster <args>`: its standard output; panics (with its output) when it fails.
pub fn script(args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts/cluster")).args(args).output().expect("running scripts/cluster");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "scripts/cluster {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Starts the nodes that are down (all three the first time), waits until each takes AMQP
/// connections, and heals what a previous fault left partitioned (see [`heal`]).
pub async fn ensure_up() {
    let t = Instant::now();
    tokio::task::spawn_blocking(|| script(&["start"])).await.unwrap();
    wait_healthy(Duration::from_secs(120)).await;
    heal().await;
    eprintln!("cluster up in {:?}", t.elapsed());
}

/// `scripts/cluster heal`: restarts the application of nodes that still record a partition
/// (RabbitMQ 3.10 keeps the sides apart after a pause until then); says what it did.
pub async fn heal() -> String {
    let out = tokio::task::spawn_blocking(|| script(&["heal"])).await.unwrap();
    eprint!("{out}");
    out
}

/// Whether node `n` completes an AMQP handshake (it is booted and not paused by pause_minority).
pub async fn answers(n: usize) -> bool {
    let conn =
        tokio::time::timeout(Duration::from_secs(3), lifecycle_broker::connect(node_url(n), "e2e-cluster-probe"));
    match conn.await {
        Ok(Ok(c)) => {
            let _ = c.close(200, "probe".into()).await;
            true
        }
        _ => false,
    }
}

/// Waits until every node answers.
pub async fn wait_healthy(timeout: Duration) {
    crate::eventually(timeout, "every cluster node to answer AMQP", || async {
        for n in NODES {
            if !answers(n).await {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// The Erlang VM's pid of node `n`, from its pid file.
pub fn pid(n: usize) -> u32 {
    let f = dir().join(format!("lc{n}/beam.pid"));
    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).trim().parse().expect("a pid")
}

pub fn signal(n: usize, sig: &str) {
    crate::lanes::signal(pid(n), sig);
}

/// Each queue's leader node (1..3) and member count, by name (`rabbitmqctl list_queues`: seconds).
pub fn queues() -> BTreeMap<String, (usize, usize)> {
    let json: Value = serde_json::from_str(&script(&["queues"])).expect("scripts/cluster queues prints JSON");
    let node = |v: &Value| -> usize {
        let s = v.as_str().unwrap_or_default();
        s.strip_prefix("lc").and_then(|r| r.split('@').next()).and_then(|d| d.parse().ok()).unwrap_or(0)
    };
    json.as_array()
        .expect("a list of queues")
        .iter()
        .map(|q| {
            let members = q["members"].as_array().map_or(0, Vec::len);
            (q["name"].as_str().unwrap_or_default().to_string(), (node(&q["leader"]), members))
        })
        .collect()
}

/// A stack (simulator, producer, two workers, SQLite) whose processes know all three nodes,
/// with every budget high enough that only the broker sets the pace.
pub async fn stack(name: &str) -> Stack {
    let mut opts = StackOptions::new(Backend::Sqlite, name)
        .workers(2)
        .sim_arg("--no-rate-limits")
        // The cluster's own: these tests run while the machine's broker is being restarted.
        .broker(&node_url(1))
        // Any node: the addresses below replace its host and port.
        .env("LIFECYCLE_BROKER__URL", &node_url(1))
        .env("LIFECYCLE_BROKER__ADDRESSES", &addresses());
    for v in ["PIPEDRIVE", "CALENDLY", "CIRCLECI"] {
        opts = opts
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__REQUESTS"), "100000")
            .env(&format!("LIFECYCLE_VENDORS__{v}__RATE_LIMIT__PER"), "1s");
    }
    Stack::start(opts).await
}

/// What the poster saw: every event's final status, and how many attempts it took in all.
#[derive(Debug, Default)]
pub struct Posted {
    pub accepted: usize,
    pub attempts: usize,
    /// Non-202 answers and failed requests that were retried, by what they were.
    pub retried: BTreeMap<String, usize>,
}

/// Posts person `0..people`'s joiner, `at_once` at a time, each under its own Idempotency-Key;
/// a 503 or a request that failed is sent again with the same key after a pause, as a real
/// client does. Any other answer than 202 or 503 fails the test.
pub async fn post_wave(stack: &Stack, people: usize, at_once: usize) -> Posted {
    let next = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let post_one = |i: usize| {
        let (attempts, retried) = (attempts.clone(), retried.clone());
        let body = wave_joiner(i, &VENDORS);
        let key = format!("{}-joiner-{i}", stack.namespace);
        let http = stack.http.clone();
        let url = format!("{}/v1/events", stack.producer_url);
        async move {
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                attempts.fetch_add(1, Ordering::Relaxed);
                let r =
                    http.post(&url).bearer_auth(INTAKE_TOKEN).header("Idempotency-Key", &key).json(&body).send().await;
                let why = match r {
                    Ok(r) if r.status().as_u16() == 202 => return,
                    Ok(r) if r.status().as_u16() == 503 => "503".to_string(),
                    Ok(r) => {
                        let status = r.status();
                        panic!("event {i} answered {status}: {}", r.text().await.unwrap_or_default())
                    }
                    Err(e) => format!("request failed: {}", if e.is_timeout() { "timeout" } else { "connection" }),
                };
                *retried.lock().unwrap().entry(why).or_default() += 1;
                assert!(Instant::now() < deadline, "event {i} not accepted within 180 s");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let workers = (0..at_once).map(|_| {
        let next = next.clone();
        let post_one = &post_one;
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= people {
                    break;
                }
                post_one(i).await;
            }
        }
    });
    futures::future::join_all(workers).await;
    let retried = retried.lock().unwrap().clone();
    Posted { accepted: people, attempts: attempts.load(Ordering::Relaxed), retried }
}

/// Runs not yet ended (queued, running, retrying), by vendor.
pub async fn open_by_vendor(stack: &Stack) -> BTreeMap<VendorKind, usize> {
    let mut open = BTreeMap::new();
    for r in stack.runs().await {
        if matches!(r.state, RunState::Queued | RunState::Running | RunState::RetryScheduled) {
            *open.entry(r.vendor).or_default() += 1;
        }
    }
    open
}

/// Waits until `fraction` of `total` runs have ended, so that a fault comes mid-wave.
pub async fn wait_ended(stack: &Stack, total: usize, fraction: f64) {
    crate::eventually(Duration::from_secs(300), "part of the wave to end", || async {
        let open = lifecycle_store::runs::count_unfinished(&stack.store).await.expect("counting runs") as usize;
        let existing = stack.count("runs").await as usize;
        (existing >= total / 4 && existing.saturating_sub(open) as f64 >= total as f64 * fraction).then_some(())
    })
    .await;
}

/// The checks every wave ends with: each event's five runs exist and ended once in their
/// vendor's end state, each person has one account at each vendor that makes one, and each
/// vendor's create happened once per person. Returns when the last run ended (Unix ms).
pub async fn check_wave(stack: &Stack, people: usize) -> i64 {
    let runs = stack.wait_all(Duration::from_secs(600)).await;
    assert_eq!(runs.len(), people * VENDORS.len(), "one run per person and vendor, none lost");
    let bad: Vec<String> = runs
        .iter()
        .filter(|r| r.state != end_state(r.vendor.as_str()))
        .take(10)
        .map(|r| format!("{} {} {:?} {:?} {:?}", r.id, r.vendor, r.state, r.outcome, r.last_error))
        .collect();
    assert!(bad.is_empty(), "runs that did not end as they should: {bad:?}");
    let mut per_person: BTreeMap<(String, VendorKind), usize> = BTreeMap::new();
    for r in &runs {
        *per_person.entry((r.person_key.clone(), r.vendor)).or_default() += 1;
    }
    assert!(per_person.values().all(|n| *n == 1), "a person has two runs at a vendor");

    let state = stack.sim_state().await;
    let accounts = |vendor: &str, key: &str, field: &str| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for x in crate::sim::list(&state, vendor, key) {
            if let Some(e) = x[field].as_str() {
                *m.entry(e.to_lowercase()).or_default() += 1;
            }
        }
        m
    };
    for (vendor, key, field, action) in [
        ("pipedrive", "users", "email", "user.create"),
        ("crowdstrike", "users", "username", "user.create"),
        ("jira", "users", "emailAddress", "user.create"),
        ("calendly", "invitations", "email", "invitation.create"),
    ] {
        let seen = accounts(vendor, key, field);
        for i in 0..people {
            let n = seen.get(&wave_email(i)).copied().unwrap_or(0);
            assert_eq!(n, 1, "{vendor}: {} has {n} accounts", wave_email(i));
        }
        let creates = crate::sim::list(&state, vendor, "log").into_iter().filter(|e| e["action"] == action).count();
        assert_eq!(creates, people, "{vendor}: {action} done once per person");
    }
    runs.iter().filter_map(|r| r.finished_at).map(|f| f.timestamp_millis()).max().expect("ended runs")
}

/// What a fault test prints and BENCHMARKS.md records.
pub fn report(fault: &str, started_ms: i64, fault_ms: Option<i64>, ended_ms: i64, posted: &Posted) {
    let after = fault_ms.map_or("-".to_string(), |f| format!("{:.1} s", (ended_ms - f) as f64 / 1000.0));
    eprintln!(
        "CLUSTER WAVE fault={fault} wave={:.1}s fault_to_end={after} posts={} (retried {:?})",
        (ended_ms - started_ms) as f64 / 1000.0,
        posted.attempts,
        posted.retried
    );
}
