//! lifecycle on a three-node RabbitMQ cluster (`scripts/cluster`), under faults: a wave of
//! 1,000 five-vendor joiners (5,000 runs) while the busiest lane's leader is killed, while a
//! node is paused past the heartbeat, and while all three restart one after the other. Each
//! wave must end with every run ended once as its vendor's runs end, one account per person
//! at each vendor, every event accepted (a 503 or a refused connection is retried with the
//! same Idempotency-Key, as a client would, and counted), none lost.
//!
//! One database is enough (SQLite): what is under test is the broker side, and the
//! database's own faults are another suite's. The producer and both workers are given all
//! three addresses. Run one at a time (`--test-threads 1`): each test's faults hit the
//! whole cluster. `scripts/test` starts the cluster when it is down and stops it after;
//! run alone, a test starts it and leaves it running. `LIFECYCLE_CLUSTER_PEOPLE` makes
//! the waves smaller for a quick look. Each test prints a `CLUSTER WAVE` line with its
//! timings (BENCHMARKS.md, "RabbitMQ cluster under faults").

use lifecycle_e2e::cluster::{self, VENDORS};
use lifecycle_e2e::lanes::now_ms;
use lifecycle_e2e::Stack;
use std::time::Duration;

fn people() -> usize {
    std::env::var("LIFECYCLE_CLUSTER_PEOPLE").ok().and_then(|p| p.parse().ok()).unwrap_or(1000)
}

/// Posted at once: enough to keep the intake busy, few enough that it answers each quickly.
const AT_ONCE: usize = 16;

/// A whole cluster, and a stack on it whose lanes, delay tiers and dead-letter queue are
/// quorum queues with a replica on each node; returns each lane's leader node by vendor.
async fn setup(name: &str) -> (Stack, std::collections::BTreeMap<String, usize>) {
    cluster::ensure_up().await;
    let stack = cluster::stack(name).await;
    let topology = lifecycle_broker::Topology::new(stack.namespace.clone());
    // The producer and the workers declare the topology as they start, the workers maybe after
    // the stack is up.
    let queues = lifecycle_e2e::eventually(Duration::from_secs(60), "the topology declared", || async {
        let queues = tokio::task::spawn_blocking(cluster::queues).await.unwrap();
        topology.queues().iter().all(|q| queues.contains_key(q)).then_some(queues)
    })
    .await;
    for q in topology.queues() {
        let (leader, members) =
            queues.get(&q).copied().unwrap_or_else(|| panic!("queue {q} was not declared on the cluster"));
        assert_eq!(members, 3, "{q} has a replica on each node (leader lc{leader})");
    }
    let leaders = VENDORS
        .iter()
        .map(|v| {
            let vendor: lifecycle_domain::VendorKind = v.parse().unwrap();
            (v.to_string(), queues[&topology.lane_queue(vendor)].0)
        })
        .collect();
    eprintln!("lane leaders: {leaders:?}");
    (stack, leaders)
}

/// The node leading the lane with the most runs not yet ended.
async fn busiest_lanes_leader(stack: &Stack, leaders: &std::collections::BTreeMap<String, usize>) -> (String, usize) {
    let open = cluster::open_by_vendor(stack).await;
    let (vendor, n) = open.iter().max_by_key(|(_, n)| **n).map(|(v, n)| (v.to_string(), *n)).expect("open runs");
    eprintln!("open runs by vendor: {open:?}; busiest {vendor} ({n}) led by lc{}", leaders[&vendor]);
    (vendor.clone(), leaders[&vendor])
}

async fn blocking(args: &'static [&'static str]) -> String {
    tokio::task::spawn_blocking(move || cluster::script(args)).await.unwrap()
}

async fn finish(stack: &Stack, fault: &str, started: i64, fault_at: Option<i64>, posted: cluster::Posted) {
    assert_eq!(posted.accepted, people(), "every event answered 202");
    let ended = cluster::check_wave(stack, people()).await;
    cluster::report(fault, started, fault_at, ended, &posted);
    // The next test starts with all three nodes serving, in one cluster.
    cluster::wait_healthy(Duration::from_secs(120)).await;
    cluster::heal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_with_no_fault() {
    let (stack, _) = setup("cluster-nofault").await;
    let started = now_ms();
    let posted = cluster::post_wave(&stack, people(), AT_ONCE).await;
    finish(&stack, "none", started, None, posted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busiest_lanes_leader_killed_mid_wave_loses_nothing() {
    let (stack, leaders) = setup("cluster-kill9").await;
    let started = now_ms();
    let total = people() * VENDORS.len();
    let fault = async {
        cluster::wait_ended(&stack, total, 0.2).await;
        let (_, node) = busiest_lanes_leader(&stack, &leaders).await;
        cluster::signal(node, "KILL");
        let at = now_ms();
        eprintln!("killed lc{node} (kill -9) {:.1} s into the wave", (at - started) as f64 / 1000.0);
        // Down long enough for every client of it to have moved to the others.
        tokio::time::sleep(Duration::from_secs(10)).await;
        blocking(&["start"]).await;
        eprintln!("lc{node} back {:.1} s after the kill", (now_ms() - at) as f64 / 1000.0);
        at
    };
    let (posted, at) = tokio::join!(cluster::post_wave(&stack, people(), AT_ONCE), fault);
    finish(&stack, "kill -9 of the busiest lane's leader", started, Some(at), posted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_the_heartbeat_loses_nothing() {
    let (stack, leaders) = setup("cluster-pause").await;
    let started = now_ms();
    let total = people() * VENDORS.len();
    let fault = async {
        cluster::wait_ended(&stack, total, 0.2).await;
        let (_, node) = busiest_lanes_leader(&stack, &leaders).await;
        cluster::signal(node, "STOP");
        let at = now_ms();
        eprintln!("paused lc{node} (SIGSTOP) {:.1} s into the wave", (at - started) as f64 / 1000.0);
        // Past the AMQP heartbeat (5 s: clients drop it after 10 s) and net_ticktime (10 s:
        // the other nodes declare it down, and elect new leaders for its queues).
        tokio::time::sleep(Duration::from_secs(20)).await;
        cluster::signal(node, "CONT");
        eprintln!("resumed lc{node}");
        at
    };
    let (posted, at) = tokio::join!(cluster::post_wave(&stack, people(), AT_ONCE), fault);
    finish(&stack, "SIGSTOP of the busiest lane's leader for 20 s", started, Some(at), posted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_all_three_nodes_loses_nothing() {
    let (stack, _) = setup("cluster-rolling").await;
    let started = now_ms();
    let total = people() * VENDORS.len();
    let fault = async {
        cluster::wait_ended(&stack, total, 0.1).await;
        let at = now_ms();
        for (n, args) in [(1, &["stop-node", "1"]), (2, &["stop-node", "2"]), (3, &["stop-node", "3"])] {
            let t = now_ms();
            blocking(args).await;
            blocking(&["start"]).await;
            cluster::wait_healthy(Duration::from_secs(120)).await;
            eprintln!("restarted lc{n} in {:.1} s", (now_ms() - t) as f64 / 1000.0);
        }
        eprintln!("rolling restart done in {:.1} s", (now_ms() - at) as f64 / 1000.0);
        at
    };
    let (posted, at) = tokio::join!(cluster::post_wave(&stack, people(), AT_ONCE), fault);
    finish(&stack, "rolling restart of lc1, lc2, lc3", started, Some(at), posted).await;
}
