//! `memory`: the worker's peak RSS while it works through N queued runs.

use crate::harness::{joiner, peak_rss_mb, post_all, unlimited};
use anyhow::Context;
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Memory {
    pub runs: usize,
    pub queued_peak: u64,
    pub peak_rss_mb: f64,
    pub drain_s: f64,
}

impl Memory {
    pub(crate) fn print(&self) {
        println!("\n## worker memory with {} runs queued", self.runs);
        println!("queue depth       {} messages waiting when the worker started", self.queued_peak);
        println!(
            "worker peak RSS   {:.1} MB (VmHWM) while working through them in {:.1} s",
            self.peak_rss_mb, self.drain_s
        );
    }
}

pub async fn memory(runs: usize) -> anyhow::Result<Memory> {
    let mut stack =
        Stack::start(unlimited(StackOptions::new(Backend::Sqlite, "bench-memory").workers(0), &["pipedrive"])).await;
    let list: Vec<Value> = (0..runs).map(|i| joiner(i, &["pipedrive"])).collect();
    eprintln!("memory: queueing {runs} runs with no worker running");
    post_all(&stack, list, 64).await?;
    let store = stack.store.clone();
    lifecycle_e2e::eventually(Duration::from_secs(600), "the outbox to drain into the queue", || {
        let store = store.clone();
        async move { (lifecycle_store::outbox::lag(&store).await.ok()?.0 == 0).then_some(()) }
    })
    .await;
    let queued = queue_depth(&stack).await?;
    let started = Instant::now();
    let i = stack.start_worker();
    let pid = stack.workers[i].as_ref().context("the worker runs")?.child.id();
    stack.wait_all(Duration::from_secs(3600)).await;
    Ok(Memory { runs, queued_peak: queued, peak_rss_mb: peak_rss_mb(pid), drain_s: started.elapsed().as_secs_f64() })
}

async fn queue_depth(stack: &Stack) -> anyhow::Result<u64> {
    use lifecycle_broker::lapin::options::QueueDeclareOptions;
    use lifecycle_broker::lapin::types::FieldTable;
    let topology = lifecycle_broker::Topology::new(stack.namespace.clone());
    let conn = lifecycle_broker::connect(&lifecycle_e2e::amqp_url(), "bench-depth").await?;
    let ch = conn.create_channel().await?;
    let mut depth = 0;
    for lane in topology.lane_queues() {
        let q = ch
            .queue_declare(
                lane.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        depth += q.message_count() as u64;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(depth)
}
