//! `ratelimit`: Pipedrive joiners against the simulator's 80 requests per 2 s.

use crate::harness::{joiner, post_all};
use lifecycle_domain::RunState;
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::Value;
use std::time::Duration;

pub struct RateLimit {
    pub events: usize,
    pub requests: usize,
    pub span_s: f64,
    pub rate: f64,
    pub fraction: f64,
    pub rate_limited: u64,
    pub not_succeeded: usize,
}

impl RateLimit {
    pub(crate) fn print(&self) {
        println!("\n## rate-limit efficiency: Pipedrive, simulator enforcing 80 requests / 2 s");
        println!(
            "events            {} joiners, {} Pipedrive requests in {:.1} s",
            self.events, self.requests, self.span_s
        );
        println!("achieved          {:.1} requests/s = {:.1} % of the 40/s limit", self.rate, 100.0 * self.fraction);
        println!("429s              {}", self.rate_limited);
        if self.not_succeeded > 0 {
            println!("WARNING           {} runs did not succeed", self.not_succeeded);
        }
    }
}

pub async fn ratelimit(events: usize) -> anyhow::Result<RateLimit> {
    let stack = Stack::start(
        StackOptions::new(Backend::Sqlite, "bench-ratelimit")
            .env("RUST_LOG", "warn")
            .env("LIFECYCLE_WORKER__CONCURRENCY", "64"),
    )
    .await;
    let list: Vec<Value> = (0..events).map(|i| joiner(i, &["pipedrive"])).collect();
    eprintln!("ratelimit: posting {events} Pipedrive joiners");
    post_all(&stack, list, 32).await?;
    let runs = stack.wait_all(Duration::from_secs(1800)).await;
    let calls = stack.sim_calls("pipedrive").await;
    let first = calls.iter().map(lifecycle_e2e::call_at_ms).min().unwrap_or(0);
    let last = calls.iter().map(lifecycle_e2e::call_at_ms).max().unwrap_or(0);
    let span_s = (last - first).max(1) as f64 / 1000.0;
    let state = stack.sim_state().await;
    let rate = calls.len() as f64 / span_s;
    Ok(RateLimit {
        events,
        requests: calls.len(),
        span_s,
        rate,
        fraction: rate / 40.0,
        rate_limited: state["pipedrive"]["counters"]["rate_limited"].as_u64().unwrap_or(0),
        not_succeeded: runs.iter().filter(|r| r.state != RunState::Succeeded).count(),
    })
}
