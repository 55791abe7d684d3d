//! The simulator under the load the benchmarks put on it: 4,000 requests from 16 clients at once, with
//! rate limits off, each answered and counted once. How fast it serves them is the benchmarks' to
//! measure (BENCHMARKS.md), not a test's: a rate floor here failed on a busy machine.

use std::time::Instant;

use crate::common::{TestSim, ADMIN_TOKEN};
use lifecycle_vendor_sim::Config;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_thousands_of_concurrent_requests_without_rate_limits_and_counts_each() {
    let sim = TestSim::start_with(Config { no_rate_limits: true, ..Config::ephemeral() }).await;
    let deals: Vec<_> =
        (0..50).map(|i| json!({"title": format!("deal {i}"), "owner_email": "grace@example.com"})).collect();
    sim.seed(json!({"pipedrive": {"deals": deals}})).await;

    const WORKERS: usize = 16;
    const PER_WORKER: usize = 250;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let http = sim.http.clone();
        let find = sim.pd_url("/users/find");
        let deals = sim.pd_url("/api/v2/deals");
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WORKER {
                let req = if (w + i) % 2 == 0 {
                    http.get(&find).query(&[("term", "grace"), ("search_by_email", "1")])
                } else {
                    http.get(&deals).query(&[("status", "open")])
                };
                let resp = req.header("x-api-token", ADMIN_TOKEN).send().await.expect("request");
                assert!(resp.status().is_success());
                resp.bytes().await.expect("body");
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let elapsed = started.elapsed();
    let rate = (WORKERS * PER_WORKER) as f64 / elapsed.as_secs_f64();
    eprintln!("{} requests in {elapsed:?}: {rate:.0} req/s", WORKERS * PER_WORKER);
    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["counters"]["requests"], (WORKERS * PER_WORKER) as u64);
}
