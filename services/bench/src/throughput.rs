//! `throughput`: joiners through producer, broker and worker, rate limits off.

use crate::cli::ThroughputArgs;
use crate::harness::{cpu_ms, joiner, peak_rss_mb, post_all, unlimited, vendor_list};
use anyhow::Context;
use lifecycle_domain::RunState;
use lifecycle_e2e::{Backend, Stack, StackOptions};
use sea_orm::EntityTrait;
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Throughput {
    pub backend: Backend,
    pub events: usize,
    pub runs: usize,
    pub steps: usize,
    pub accept_s: f64,
    pub total_s: f64,
    pub events_per_s: f64,
    pub runs_per_s: f64,
    pub steps_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Runs that did not end as their vendor's do (`lanes::end_state`: succeeded, CircleCI's
    /// needs_manual_action).
    pub unexpected: usize,
    /// Vendors of the run whose runs end other than `succeeded` when all is well, with that state.
    pub person_ends: Vec<(String, RunState)>,
    pub worker_peak_rss_mb: f64,
    /// Requests each vendor's simulator served.
    pub vendor_requests: Vec<(String, u64)>,
    /// Runs by final state.
    pub states: Vec<(String, usize)>,
    /// CPU time (user + system) per run over the measurement, in ms: the
    /// worker, the producer (intake and relay; with --preload, only the
    /// relay's tail, if any), the simulator.
    pub cpu_ms_per_run: (f64, f64, f64),
    pub preload: bool,
}

impl Throughput {
    pub(crate) fn print(&self) {
        println!("\n## throughput on {:?}", self.backend);
        println!("events            {} ({} runs, {} steps)", self.events, self.runs, self.steps);
        println!("accepted          {:.0} events/s ({:.1} s to accept all)", self.events_per_s, self.accept_s);
        // No steps at all when every run was CircleCI's (they journal nothing).
        let steps = if self.steps == 0 { "no steps".to_string() } else { format!("{:.0} steps/s", self.steps_per_s) };
        println!(
            "completed         {:.0} runs/s, {steps} ({:.1} s from first post to last run end)",
            self.runs_per_s, self.total_s
        );
        println!("intake -> end     p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms", self.p50_ms, self.p95_ms, self.p99_ms);
        println!("worker peak RSS   {:.1} MB", self.worker_peak_rss_mb);
        let (w, p, sim) = self.cpu_ms_per_run;
        println!(
            "CPU per run       worker {w:.2} ms, producer {p:.2} ms, simulator {sim:.2} ms{}",
            if self.preload { " (runs queued first; the worker timed alone)" } else { "" }
        );
        let reqs: Vec<String> = self.vendor_requests.iter().map(|(v, n)| format!("{v} {n}")).collect();
        println!("vendor requests   {}", reqs.join(", "));
        let states: Vec<String> = self.states.iter().map(|(s, n)| format!("{s} {n}")).collect();
        println!("runs by state     {}", states.join(", "));
        for (vendor, state) in &self.person_ends {
            println!(
                "note              {vendor}'s runs end {state} by design (a person's task: its API cannot add a member); they count as done"
            );
        }
        if self.unexpected > 0 {
            println!("WARNING           {} runs did not end as their vendor's should", self.unexpected);
        }
    }
}

pub async fn throughput(args: &ThroughputArgs, backend: Backend) -> anyhow::Result<Throughput> {
    use lifecycle_e2e::lanes::{end_state, unexpected_ends};
    // CircleCI stays in: a run's end is what the benchmark waits for, and CircleCI's end,
    // needs_manual_action after its two cached reads, is its vendor's whole work. Nothing is
    // seeded for it: no membership changes how its joiners end.
    let vendors = vendor_list(&args.vendors)?;
    let mut opts = unlimited(StackOptions::new(backend, "bench-throughput"), &vendors)
        .workers(if args.preload { 0 } else { 1 })
        .env("LIFECYCLE_WORKER__CONCURRENCY", &args.concurrency.to_string())
        .env("LIFECYCLE_BROKER__PREFETCH", &args.concurrency.to_string())
        .env("LIFECYCLE_DATABASE__GROUP_COMMIT", &args.group_commit.to_string());
    if let Some(n) = args.max_connections {
        opts = opts.env("LIFECYCLE_DATABASE__MAX_CONNECTIONS", &n.to_string());
    }
    let mut stack = Stack::start(opts).await;
    let events: Vec<Value> = (0..args.events).map(|i| joiner(i, &vendors)).collect();
    eprintln!("throughput ({backend:?}): posting {} events touching {:?}", args.events, vendors);
    let producer_pid = stack.producer.as_ref().map(|p| p.child.id()).context("the producer runs")?;
    let sim_pid = stack.sim.child.id();
    let mut started = Instant::now();
    let mut cpu_before = (0, cpu_ms(producer_pid), cpu_ms(sim_pid));
    let accept = post_all(&stack, events, args.clients).await?;
    if args.preload {
        let store = stack.store.clone();
        lifecycle_e2e::eventually(Duration::from_secs(600), "the outbox to drain into the queue", || {
            let store = store.clone();
            async move { (lifecycle_store::outbox::lag(&store).await.ok()?.0 == 0).then_some(()) }
        })
        .await;
        eprintln!("throughput ({backend:?}): every run queued; starting the worker");
        stack.start_worker();
        started = Instant::now();
        cpu_before = (0, cpu_ms(producer_pid), cpu_ms(sim_pid));
    }
    let worker_pid = stack.workers[0].as_ref().map(|p| p.child.id()).context("the worker runs")?;
    let runs = stack.wait_all(Duration::from_secs(1800)).await;
    let total = started.elapsed();
    let cpu_after = (cpu_ms(worker_pid), cpu_ms(producer_pid), cpu_ms(sim_pid));
    let rss = peak_rss_mb(worker_pid);
    let per_run = |after: u64, before: u64| (after - before) as f64 / runs.len().max(1) as f64;
    let cpu_ms_per_run =
        (per_run(cpu_after.0, cpu_before.0), per_run(cpu_after.1, cpu_before.1), per_run(cpu_after.2, cpu_before.2));

    let steps = lifecycle_store::entity::step::Entity::find().all(&stack.store).await?;
    // CircleCI's runs journal no step: with --vendors circleci there are none to time.
    let first = steps.iter().map(|s| s.started_at).min();
    let last = steps.iter().filter_map(|s| s.finished_at).max();
    let steps_per_s = match (first, last) {
        (Some(first), Some(last)) => steps.len() as f64 / ((last - first).num_milliseconds().max(1) as f64 / 1000.0),
        _ => 0.0,
    };

    let sim = stack.sim_state().await;
    let vendor_requests =
        vendors.iter().map(|v| (v.to_string(), sim[v]["counters"]["requests"].as_u64().unwrap_or(0))).collect();
    let mut states: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &runs {
        *states.entry(r.state.to_string()).or_default() += 1;
    }
    let mut latencies: Vec<f64> =
        runs.iter().filter_map(|r| r.finished_at.map(|f| (f - r.created_at).num_milliseconds() as f64)).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Ok(Throughput {
        backend,
        events: args.events,
        runs: runs.len(),
        steps: steps.len(),
        accept_s: accept.as_secs_f64(),
        total_s: total.as_secs_f64(),
        events_per_s: args.events as f64 / accept.as_secs_f64(),
        runs_per_s: runs.len() as f64 / total.as_secs_f64(),
        steps_per_s,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        unexpected: unexpected_ends(&runs).len(),
        person_ends: vendors
            .iter()
            .map(|v| (v.to_string(), end_state(v)))
            .filter(|(_, s)| *s != RunState::Succeeded)
            .collect(),
        worker_peak_rss_mb: rss,
        vendor_requests,
        states: states.into_iter().collect(),
        cpu_ms_per_run,
        preload: args.preload,
    })
}
