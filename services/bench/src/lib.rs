//! The benchmarks. Each starts the real release binaries (simulator,
//! producer, worker) through the end-to-end harness, on a fresh database and
//! broker namespace, drives them, and prints its figures.
//!
//! - `throughput`: N joiners touching every vendor, the simulator's rate
//!   limits off: events/s accepted, steps/s completed, latency from intake to
//!   run end (p50/p95/p99), the worker's peak RSS; on SQLite and PostgreSQL.
//!   A run is done when it ends as its vendor's do: CircleCI's end
//!   `needs_manual_action` (its API publishes no member operation: a person
//!   acts), after 2 requests per worker cold and none warm;
//! - `broker`: the same number of messages through a bare lapin loop
//!   (publisher confirms, manual acks): the ceiling we are measured against;
//! - `ratelimit`: Pipedrive joiners against the simulator's 80 requests per
//!   2 s: the achieved request rate as a fraction of the limit, and the 429s;
//! - `memory`: the worker's peak RSS while it works through N queued runs;
//! - `layoff`: leavers at every vendor, the simulator's limits on: for each
//!   vendor, the time until its last account is gone, in one wave with the
//!   others and alone (CircleCI removes nobody: its time is its last run's
//!   end, `needs_manual_action`, the removal handed to a person);
//! - `reconcile`: `lifecycle-ctl reconcile` of a large tenant, per vendor;
//!   a vendor whose API cannot list its accounts (CircleCI) is refused by
//!   lifecycle itself, and shown as skipped with lifecycle's reason;
//! - `fleet`: 1, 2 and 4 workers on one Pipedrive credential, the simulator's
//!   limit on: the request rate against the budget, and the 429s;
//! - `scheduled`: N Pipedrive leavers whose runs are all `scheduled` for the
//!   same moment a few seconds ahead: the worker's RSS before and after, and
//!   how late each run was released by the scheduler and started by the worker.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks over the real binaries, broker and databases (build with --release first)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Joiners through producer, RabbitMQ and worker, rate limits off (CircleCI's runs end
    /// needs_manual_action: its API cannot add a member).
    Throughput(ThroughputArgs),
    /// A bare lapin publish-with-confirms / consume-with-acks loop.
    Broker {
        #[arg(long, default_value_t = 2000)]
        messages: usize,
    },
    /// Pipedrive joiners against the simulator's 80 requests per 2 s.
    Ratelimit {
        #[arg(long, default_value_t = 500)]
        events: usize,
    },
    /// The worker's peak RSS while it works through this many queued runs.
    Memory {
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
    },
    /// Everything above with the defaults, then a summary (not `layoff` and `fleet`).
    All(ThroughputArgs),
    /// Leavers at every vendor, the simulator's limits on: for each vendor, the time until its
    /// last account is gone (CircleCI: until its last run handed the removal to a person), in one
    /// wave with the others, beside a wave of that vendor alone.
    Layoff(LayoffArgs),
    /// Workers sharing one Pipedrive credential, the simulator enforcing 80 requests per 2 s:
    /// the request rate against the budget and the 429s, for each number of workers.
    Fleet(FleetArgs),
    /// Reconcile of a tenant of this many people at every vendor, the simulator's limits on: per
    /// vendor, the time `lifecycle-ctl reconcile` took, its requests and the 429s it earned.
    /// Vendors lifecycle refuses as not reconcilable (CircleCI: no member list) are skipped, with
    /// the reason.
    Reconcile {
        #[arg(long, default_value_t = 5000)]
        people: usize,
    },
    /// Pipedrive leavers all scheduled (`effective_at`) for one moment a few seconds ahead: the
    /// worker's RSS before and after, and how late the runs were released and started.
    Scheduled(ScheduledArgs),
}

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Every event is posted before the moment they are due: that moment is --due-in seconds after \
the first post (default 10 s + 1 s per 250 runs: posting 10,000 took 9 s on SQLite on a busy 2-core machine). A run posted \
after it would start at once, not be scheduled: the benchmark stops with an error then; raise --due-in.")]
pub struct ScheduledArgs {
    /// Scheduled runs; several (comma-separated) measure each on a fresh stack, e.g. 1000,10000.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    pub runs: Vec<usize>,
    /// Databases to run on.
    #[arg(long, value_enum, default_value_t = Db::Sqlite)]
    pub db: Db,
    /// Seconds from the first post to the moment every run is due.
    #[arg(long)]
    pub due_in: Option<u64>,
}

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Each vendor's documented limit is the default (Pipedrive 80 per 2 s, Calendly 60 per minute, \
CircleCI 1000 per minute, GitHub 80 per minute (its secondary limit on writes); the simulator's CrowdStrike 6000 \
per minute and Jira 100 per second). Calendly needs \
at least 3 requests per leaver (measured at 200 people; more pages of its directory at 1,000), so at 60 per minute \
1,000 leavers take most of an hour per wave, and it runs twice (in the wave, and alone): scale with --people, or \
raise its budget with --limit, e.g. `--people 200 --limit calendly=600/1m`. CircleCI publishes no member API: its \
leavers end needs_manual_action, each worker asking it 2 requests cold and none warm, and nothing is removed; its \
row is the time until its last run ended so (marked *), and its budget never matters.")]
pub struct LayoffArgs {
    /// Leavers in the wave; each has an account at every vendor of --vendors.
    #[arg(long, default_value_t = 1000)]
    pub people: usize,
    /// Vendors (comma-separated), or "all".
    #[arg(long, default_value = "all")]
    pub vendors: String,
    /// A vendor's budget instead of its documented one, at the simulator and in the worker:
    /// VENDOR=REQUESTS/WINDOW, the window in ms, s or m (`calendly=300/1m`). Repeatable.
    #[arg(long = "limit", value_parser = parse_limit)]
    pub limits: Vec<Limit>,
    /// Only the combined wave, not each vendor alone.
    #[arg(long)]
    pub no_alone: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct FleetArgs {
    /// Pipedrive joiners in each wave.
    #[arg(long, default_value_t = 500)]
    pub joiners: usize,
    /// Numbers of workers to measure, comma-separated. Every worker gets the same
    /// configuration (the defaults): nothing depends on how many there are.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub workers: Vec<usize>,
}

/// A vendor's budget: `requests` per `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub vendor: String,
    pub requests: u32,
    pub window_ms: u64,
}

/// `calendly=300/1m`, `pipedrive=80/2s`, `jira=50/500ms`.
pub fn parse_limit(s: &str) -> Result<Limit, String> {
    let (vendor, budget) = s.split_once('=').ok_or("expected VENDOR=REQUESTS/WINDOW")?;
    let vendor = vendor.trim().to_lowercase();
    let vendor = vendor.parse::<VendorKind>().map_err(|e| e.to_string())?.as_str().to_string();
    let (requests, window) = budget.split_once('/').ok_or("expected REQUESTS/WINDOW, e.g. 300/1m")?;
    let requests: u32 = requests.trim().parse().map_err(|_| format!("{requests:?} is not a number of requests"))?;
    let window = window.trim();
    let (number, unit) = window.split_at(window.find(|c: char| !c.is_ascii_digit()).unwrap_or(window.len()));
    let number: u64 = number.parse().map_err(|_| format!("{window:?} is not a window like 2s or 1m"))?;
    let window_ms = match unit {
        "ms" => number,
        "s" | "" => number * 1000,
        "m" => number * 60_000,
        _ => return Err(format!("{window:?}: the window's unit is ms, s or m")),
    };
    if requests == 0 || window_ms == 0 {
        return Err("requests and window must be positive".into());
    }
    Ok(Limit { vendor, requests, window_ms })
}

#[derive(clap::Args, Debug, Clone)]
pub struct ThroughputArgs {
    /// Joiner events to send.
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// Databases to run on.
    #[arg(long, value_enum, default_value_t = Db::Both)]
    pub db: Db,
    /// Concurrent HTTP clients posting events.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Vendors each event touches (comma-separated), or "all".
    #[arg(long, default_value = "all")]
    pub vendors: String,
    /// Runs each worker executes at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Queue every run first (no worker running), then start the worker and
    /// time it alone working through them: the worker's own rate and CPU per
    /// run, without the intake on the same cores.
    #[arg(long)]
    pub preload: bool,
    /// `database.max_connections` of the producer and the worker (unset: their
    /// default, 1 on SQLite and 16 on PostgreSQL).
    #[arg(long)]
    pub max_connections: Option<u32>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
    Both,
}

impl Db {
    fn backends(self) -> Vec<Backend> {
        match self {
            Db::Sqlite => vec![Backend::Sqlite],
            Db::Postgres => vec![Backend::Postgres],
            Db::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The binaries next to this one (target/release).
    if std::env::var_os("LIFECYCLE_BIN_DIR").is_none() {
        let dir = std::env::current_exe()?.parent().context("the bench lives in a directory")?.to_path_buf();
        std::env::set_var("LIFECYCLE_BIN_DIR", dir);
    }
    println!("{}", machine());
    match cli.command {
        Command::Throughput(args) => {
            for backend in args.db.backends() {
                throughput(&args, backend).await?.print();
            }
        }
        Command::Broker { messages } => broker(messages).await?.print(),
        Command::Ratelimit { events } => ratelimit(events).await?.print(),
        Command::Memory { runs } => memory(runs).await?.print(),
        Command::All(args) => {
            let mut results = Vec::new();
            for backend in args.db.backends() {
                let t = throughput(&args, backend).await?;
                t.print();
                results.push(t);
            }
            // The same number of messages as our runs moved (one per run).
            let messages = results.iter().map(|t| t.runs).max().unwrap_or(args.events);
            let b = broker(messages).await?;
            b.print();
            for t in &results {
                println!(
                    "{:?}: {:.0} runs/s completed = {:.1} % of the bare broker loop's {:.0} messages/s",
                    t.backend,
                    t.runs_per_s,
                    100.0 * t.runs_per_s / b.per_s,
                    b.per_s
                );
            }
            ratelimit(500).await?.print();
            memory(10_000).await?.print();
        }
        Command::Layoff(args) => layoff(&args).await?.print(),
        Command::Fleet(args) => fleet(&args).await?.print(),
        Command::Reconcile { people } => reconcile(people).await?.print(),
        Command::Scheduled(args) => {
            let mut rows = Vec::new();
            for backend in args.db.backends() {
                for &n in &args.runs {
                    let row = scheduled(n, backend, args.due_in).await?;
                    row.print();
                    rows.push(row);
                }
            }
            Scheduled::summary(&rows);
        }
    }
    Ok(())
}

// ---- throughput ----

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
    fn print(&self) {
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

fn unlimited(mut opts: StackOptions, vendors: &[&str]) -> StackOptions {
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
fn vendor_list(spec: &str) -> anyhow::Result<Vec<&'static str>> {
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
async fn post_all(stack: &Stack, events: Vec<Value>, clients: usize) -> anyhow::Result<Duration> {
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

pub async fn throughput(args: &ThroughputArgs, backend: Backend) -> anyhow::Result<Throughput> {
    use lifecycle_e2e::lanes::{end_state, unexpected_ends};
    // CircleCI stays in: a run's end is what the benchmark waits for, and CircleCI's end,
    // needs_manual_action after its two cached reads, is its vendor's whole work. Nothing is
    // seeded for it: no membership changes how its joiners end.
    let vendors = vendor_list(&args.vendors)?;
    let mut opts = unlimited(StackOptions::new(backend, "bench-throughput"), &vendors)
        .workers(if args.preload { 0 } else { 1 })
        .env("LIFECYCLE_WORKER__CONCURRENCY", &args.concurrency.to_string())
        .env("LIFECYCLE_BROKER__PREFETCH", &args.concurrency.to_string());
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

/// The CPU time (user + system) a process has used, in ms, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks of 1/100 s: Linux's
/// USER_HZ on every architecture we run on).
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After ')': field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    (ticks(11) + ticks(12)) * 10
}

use sea_orm::EntityTrait;

// ---- the broker's own limit ----

pub struct BrokerBaseline {
    pub messages: usize,
    pub seconds: f64,
    pub per_s: f64,
}

impl BrokerBaseline {
    fn print(&self) {
        println!("\n## bare broker loop (publisher confirms, manual acks, quorum queue)");
        println!("messages          {} in {:.2} s = {:.0} messages/s", self.messages, self.seconds, self.per_s);
    }
}

/// Publishes `n` persistent messages with confirms (pipelined in batches of
/// 200, like the relay) to a quorum queue while a consumer with prefetch 64
/// acknowledges them one by one; measures until the last ack.
pub async fn broker(n: usize) -> anyhow::Result<BrokerBaseline> {
    use lifecycle_broker::lapin::options::*;
    use lifecycle_broker::lapin::types::{AMQPValue, FieldTable};
    use lifecycle_broker::lapin::BasicProperties;
    let url = lifecycle_e2e::amqp_url();
    let queue = format!("bench-broker-{}", uuid::Uuid::new_v4().simple());
    let pub_conn = lifecycle_broker::connect(&url, "bench-publisher").await?;
    let con_conn = lifecycle_broker::connect(&url, "bench-consumer").await?;
    let pch = pub_conn.create_channel().await?;
    let cch = con_conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    pch.queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    pch.confirm_select(ConfirmSelectOptions::default()).await?;
    cch.basic_qos(64, BasicQosOptions::default()).await?;
    let mut consumer = cch
        .basic_consume(queue.as_str().into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let payload = br#"{"run_id":"01a2067f-332c-7697-8652-7d923aa8ae19","dispatch_seq":0}"#;

    let started = Instant::now();
    let consume = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let d = consumer.next().await.expect("the consumer stays open").expect("a delivery");
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
            got += 1;
        }
    });
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for _ in chunk {
            let c = pch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            confirms.push(c);
        }
        for c in confirms {
            c.await?;
        }
    }
    consume.await?;
    let seconds = started.elapsed().as_secs_f64();
    pch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    let _ = pub_conn.close(200, "done".into()).await;
    let _ = con_conn.close(200, "done".into()).await;
    Ok(BrokerBaseline { messages: n, seconds, per_s: n as f64 / seconds })
}

// ---- rate-limit efficiency ----

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
    fn print(&self) {
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

// ---- reconcile: a large tenant within each vendor's budget ----

pub struct ReconcileRow {
    pub vendor: &'static str,
    pub accounts: u64,
    pub seconds: f64,
    pub requests: u64,
    pub rate_limited: u64,
}

/// A vendor lifecycle refused to reconcile (its API cannot list accounts): nothing was read.
pub struct Skipped {
    pub vendor: &'static str,
    /// lifecycle's own words (`lifecycle-ctl reconcile`'s error).
    pub reason: String,
    /// Requests the refusal cost at the vendor (0 expected).
    pub requests: u64,
}

pub struct Reconcile {
    pub people: usize,
    pub rows: Vec<ReconcileRow>,
    pub skipped: Vec<Skipped>,
}

impl Reconcile {
    fn print(&self) {
        println!("\n## reconcile: {} people at each vendor, simulator limits on, lifecycle-ctl reconcile", self.people);
        println!("{:<12} {:>9} {:>9} {:>9} {:>6}", "vendor", "accounts", "seconds", "requests", "429s");
        for r in &self.rows {
            println!("{:<12} {:>9} {:>9.1} {:>9} {:>6}", r.vendor, r.accounts, r.seconds, r.requests, r.rate_limited);
        }
        for s in &self.skipped {
            println!("{:<12} skipped, {} requests: {}", s.vendor, s.requests, s.reason);
        }
    }
}

/// The "… is not reconcilable: why" error of a `lifecycle-ctl reconcile` that lifecycle refused,
/// from its JSON (`failed[].error`) or its standard error.
fn not_reconcilable(out: &lifecycle_e2e::ops::CtlOutput) -> Option<String> {
    const REFUSED: &str = " is not reconcilable: ";
    let from_json = serde_json::from_str::<Value>(&out.stdout).ok().and_then(|j| {
        j["failed"]
            .as_array()?
            .iter()
            .find_map(|f| f["error"].as_str().filter(|e| e.contains(REFUSED)).map(str::to_string))
    });
    let error = from_json.or_else(|| out.stderr.lines().find(|l| l.contains(REFUSED)).map(str::to_string))?;
    Some(error[error.find(REFUSED)? + REFUSED.len()..].trim().to_string())
}

pub async fn reconcile(people: usize) -> anyhow::Result<Reconcile> {
    use lifecycle_e2e::lanes::wave_seed;
    let vendors = VendorKind::ALL.map(VendorKind::as_str);
    let stack = Stack::start(StackOptions::new(Backend::Sqlite, "bench-reconcile").env("RUST_LOG", "warn")).await;
    eprintln!("reconcile: seeding {people} people at each vendor");
    stack.sim_seed(wave_seed(people, &vendors)).await;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for vendor in vendors {
        let before = stack.sim_state().await[vendor]["counters"].clone();
        let started = Instant::now();
        let out = stack.ctl(&["reconcile", "--vendor", vendor, "--json"]).await;
        let seconds = started.elapsed().as_secs_f64();
        let after = stack.sim_state().await[vendor]["counters"].clone();
        let delta = |k: &str| after[k].as_u64().unwrap_or(0).saturating_sub(before[k].as_u64().unwrap_or(0));
        if out.code != 0 {
            // Refused by lifecycle, not failed: nothing to time. Which vendors are is the
            // connector's answer (CircleCI today), not a list kept here.
            let reason =
                not_reconcilable(&out).with_context(|| format!("reconcile of {vendor} failed: {}", out.stderr))?;
            eprintln!("reconcile: {vendor} skipped, lifecycle says it is not reconcilable");
            skipped.push(Skipped { vendor, reason, requests: delta("requests") });
            continue;
        }
        let json = out.json();
        rows.push(ReconcileRow {
            vendor,
            accounts: json["passes"][0]["accounts"].as_u64().unwrap_or(0),
            seconds,
            requests: delta("requests"),
            rate_limited: delta("rate_limited"),
        });
        eprintln!("reconcile: {vendor} done in {seconds:.1} s");
    }
    Ok(Reconcile { people, rows, skipped })
}

// ---- layoff: each vendor at its own pace ----

/// One wave's figures for one vendor.
#[derive(Debug, Clone)]
pub struct VendorWave {
    /// From the first post until the vendor's last account was gone; where lifecycle removes
    /// nobody (`handed_over`), until its last run ended handing the removal to a person.
    pub last_gone_s: f64,
    /// The vendor's leavers end `needs_manual_action` and nothing is removed (CircleCI).
    pub handed_over: bool,
    pub requests: u64,
    pub rate_limited: u64,
}

pub struct Layoff {
    pub people: usize,
    pub vendors: Vec<&'static str>,
    pub limits: Vec<Limit>,
    pub wave: std::collections::BTreeMap<String, VendorWave>,
    pub alone: std::collections::BTreeMap<String, VendorWave>,
    pub wave_s: f64,
    /// Runs that did not end as their vendor's do (`lanes::end_state`).
    pub unexpected: usize,
}

impl Layoff {
    fn print(&self) {
        println!("\n## layoff: {} leavers x {}, the simulator's limits on", self.people, self.vendors.join(" + "));
        if self.limits.is_empty() {
            println!("budgets           each vendor's documented limit");
        } else {
            let l: Vec<String> =
                self.limits.iter().map(|l| format!("{} {} per {} ms", l.vendor, l.requests, l.window_ms)).collect();
            println!("budgets changed   {} (the others: documented)", l.join(", "));
        }
        println!("whole wave        {:.1} s from the first post to the last run's end", self.wave_s);
        println!(
            "{:<12} {:>9} {:>6} {:>18} {:>10} {:>11} {:>8}",
            "vendor", "requests", "429s", "last gone (wave)", "alone", "wave/alone", "<= 1.2x"
        );
        for v in &self.vendors {
            let w = &self.wave[*v];
            let name = if w.handed_over { format!("{v}*") } else { v.to_string() };
            match self.alone.get(*v) {
                // A vendor alone that was done at once (no time to compare with) has no ratio.
                Some(a) if a.last_gone_s > 0.0 => {
                    let ratio = w.last_gone_s / a.last_gone_s;
                    println!(
                        "{:<12} {:>9} {:>6} {:>16.1} s {:>8.1} s {:>10.2}x {:>8}",
                        name,
                        w.requests,
                        w.rate_limited,
                        w.last_gone_s,
                        a.last_gone_s,
                        ratio,
                        if ratio <= 1.2 { "met" } else { "MISSED" }
                    );
                }
                Some(a) => println!(
                    "{:<12} {:>9} {:>6} {:>16.1} s {:>8.1} s {:>11} {:>8}",
                    name, w.requests, w.rate_limited, w.last_gone_s, a.last_gone_s, "-", "-"
                ),
                None => println!("{:<12} {:>9} {:>6} {:>16.1} s", name, w.requests, w.rate_limited, w.last_gone_s),
            }
        }
        if self.vendors.iter().any(|v| self.wave[*v].handed_over) {
            println!(
                "* removes nobody (its API publishes no member operation): its leavers end needs_manual_action with a \
person's steps, and its time is until the last of them ended so"
            );
        }
        if self.unexpected > 0 {
            println!("WARNING           {} runs did not end as their vendor's should", self.unexpected);
        }
    }
}

/// The stack options that apply `limits` in the worker (vendors with a client-side budget).
fn with_limits(mut opts: StackOptions, limits: &[Limit]) -> StackOptions {
    for l in limits.iter().filter(|l| lifecycle_e2e::lanes::has_rate_limit(&l.vendor)) {
        let upper = l.vendor.to_uppercase();
        opts = opts
            .env(&format!("LIFECYCLE_VENDORS__{upper}__RATE_LIMIT__REQUESTS"), &l.requests.to_string())
            .env(&format!("LIFECYCLE_VENDORS__{upper}__RATE_LIMIT__PER"), &format!("{}ms", l.window_ms));
    }
    opts
}

/// One wave of `people` leavers at `vendors` on a fresh stack; per vendor, when its last account went.
async fn leaver_wave(
    people: usize,
    vendors: &[&str],
    limits: &[Limit],
) -> anyhow::Result<(std::collections::BTreeMap<String, VendorWave>, f64, usize)> {
    use lifecycle_e2e::lanes::{
        end_state, gone_action, mutation_times, now_ms, unexpected_ends, wave_leaver, wave_seed,
    };
    let opts = with_limits(StackOptions::new(Backend::Sqlite, "bench-layoff").env("RUST_LOG", "warn"), limits);
    let stack = Stack::start(opts).await;
    // GitHub's simulator keeps GitHub's own limits (per hour, and writes per minute), which have
    // no request window to set: there a --limit is the worker's budget only.
    for l in limits.iter().filter(|l| l.vendor != "github") {
        stack
            .sim_config(json!({ l.vendor.as_str(): {"rate_limit": {"requests": l.requests, "window_ms": l.window_ms}}}))
            .await;
    }
    stack.sim_seed(wave_seed(people, vendors)).await;
    let events: Vec<Value> = (0..people).map(|i| wave_leaver(i, vendors)).collect();
    eprintln!("layoff: {people} leavers at {}", vendors.join(" + "));
    let started_ms = now_ms();
    let started = Instant::now();
    post_all(&stack, events, 32).await?;
    let runs = stack.wait_all(Duration::from_secs(6 * 3600)).await;
    let wave_s = started.elapsed().as_secs_f64();
    let state = stack.sim_state().await;
    let mut out = std::collections::BTreeMap::new();
    for v in vendors {
        let done: Vec<i64> = match gone_action(v) {
            Some(action) => {
                let gone = mutation_times(&state, v, action);
                anyhow::ensure!(gone.len() == people, "{v}: {} of {people} accounts gone", gone.len());
                gone
            }
            // CircleCI stays in the wave (its lane is one of those sharing the worker), but no
            // account ever goes: what marks its leaver done is the run's end, a person's task
            // (needs_manual_action). Its log must show no mutation.
            None => {
                let mutations = lifecycle_e2e::sim::list(&state, v, "log").len();
                anyhow::ensure!(mutations == 0, "{v}: {mutations} mutations, where lifecycle changes nothing");
                let mut ended: Vec<i64> = runs
                    .iter()
                    .filter(|r| r.vendor.as_str() == *v && r.state == end_state(v))
                    .filter_map(|r| r.finished_at.map(|f| f.timestamp_millis()))
                    .collect();
                ended.sort_unstable();
                anyhow::ensure!(
                    ended.len() == people,
                    "{v}: {} of {people} leavers ended {}",
                    ended.len(),
                    end_state(v)
                );
                ended
            }
        };
        out.insert(
            v.to_string(),
            VendorWave {
                last_gone_s: (done.last().copied().unwrap_or(started_ms) - started_ms) as f64 / 1000.0,
                handed_over: gone_action(v).is_none(),
                requests: state[v]["counters"]["requests"].as_u64().unwrap_or(0),
                rate_limited: state[v]["counters"]["rate_limited"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok((out, wave_s, unexpected_ends(&runs).len()))
}

pub async fn layoff(args: &LayoffArgs) -> anyhow::Result<Layoff> {
    let vendors = vendor_list(&args.vendors)?;
    let (wave, wave_s, mut unexpected) = leaver_wave(args.people, &vendors, &args.limits).await?;
    let mut alone = std::collections::BTreeMap::new();
    if !args.no_alone {
        for v in &vendors {
            let (one, _, bad) = leaver_wave(args.people, &[*v], &args.limits).await?;
            unexpected += bad;
            alone.extend(one);
        }
    }
    Ok(Layoff { people: args.people, vendors, limits: args.limits.clone(), wave, alone, wave_s, unexpected })
}

// ---- fleet: one credential, several workers ----

pub struct FleetRow {
    pub workers: usize,
    pub calls: usize,
    pub busy: lifecycle_e2e::lanes::BusyRate,
    pub busiest_window: usize,
    pub rate_limited: u64,
    pub wave_s: f64,
    pub not_succeeded: usize,
}

pub struct Fleet {
    pub joiners: usize,
    pub rows: Vec<FleetRow>,
}

impl Fleet {
    fn print(&self) {
        println!(
            "\n## fleet: {} Pipedrive joiners, workers sharing one credential, the simulator enforcing 80 requests / 2 s",
            self.joiners
        );
        println!("(rate: requests answered in the whole 2 s windows between the first and the last call, per second)");
        println!(
            "{:>7} {:>8} {:>10} {:>12} {:>10} {:>14} {:>6} {:>8}",
            "workers", "calls", "wave", "rate", "of 40/s", "busiest window", "429s", ">= 90%"
        );
        for r in &self.rows {
            let fraction = r.busy.per_s / 40.0;
            println!(
                "{:>7} {:>8} {:>8.1} s {:>10.1}/s {:>9.1}% {:>11} / 80 {:>6} {:>8}",
                r.workers,
                r.calls,
                r.wave_s,
                r.busy.per_s,
                100.0 * fraction,
                r.busiest_window,
                r.rate_limited,
                if fraction >= 0.9 && r.rate_limited == 0 { "met" } else { "MISSED" }
            );
            if r.not_succeeded > 0 {
                println!("WARNING: {} runs did not succeed with {} workers", r.not_succeeded, r.workers);
            }
        }
    }
}

pub async fn fleet(args: &FleetArgs) -> anyhow::Result<Fleet> {
    use lifecycle_e2e::lanes::{busiest_window, busy_rate, wave_joiner};
    let mut rows = Vec::new();
    for &n in &args.workers {
        anyhow::ensure!(n >= 1, "--workers: at least one");
        let stack =
            Stack::start(StackOptions::new(Backend::Sqlite, "bench-fleet").env("RUST_LOG", "warn").workers(n)).await;
        let events: Vec<Value> = (0..args.joiners).map(|i| wave_joiner(i, &["pipedrive"])).collect();
        eprintln!("fleet: {} Pipedrive joiners, {n} workers", args.joiners);
        let started = Instant::now();
        post_all(&stack, events, 32).await?;
        let runs = stack.wait_all(Duration::from_secs(3600)).await;
        let wave_s = started.elapsed().as_secs_f64();
        let calls = stack.sim_calls("pipedrive").await;
        let state = stack.sim_state().await;
        rows.push(FleetRow {
            workers: n,
            calls: calls.len(),
            busy: busy_rate(&calls, 2000),
            busiest_window: busiest_window(&calls, 2000),
            rate_limited: state["pipedrive"]["counters"]["rate_limited"].as_u64().unwrap_or(0),
            wave_s,
            not_succeeded: runs.iter().filter(|r| r.state != RunState::Succeeded).count(),
        });
    }
    Ok(Fleet { joiners: args.joiners, rows })
}

// ---- scheduled runs ----

/// The minimum, the 50th and 95th percentiles and the maximum of `v`, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Spread {
        if v.is_empty() {
            return Spread { min: f64::NAN, p50: f64::NAN, p95: f64::NAN, max: f64::NAN };
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        Spread { min: v[0], p50: pct(0.5), p95: pct(0.95), max: v[v.len() - 1] }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "min {:.3} s, p50 {:.3} s, p95 {:.3} s, max {:.3} s", self.min, self.p50, self.p95, self.max)
    }
}

pub struct Scheduled {
    pub backend: Backend,
    pub runs: usize,
    /// From the first post to the last 202.
    pub post_s: f64,
    /// From the last 202 to the moment every run was due.
    pub margin_s: f64,
    /// The worker's resident set (VmRSS) once started, idle; with every run
    /// scheduled, just before they were due; once every run had ended.
    pub rss_idle_mb: f64,
    pub rss_waiting_mb: f64,
    pub rss_after_mb: f64,
    /// The worker's peak resident set (VmHWM) over the whole measurement.
    pub rss_peak_mb: f64,
    /// Due (`effective_at`) to released by the scheduler (moved to `queued`,
    /// then published): each run's `late_ms` in the worker's log.
    pub released: Spread,
    /// How many runs the worker's log says the scheduler released.
    pub released_logged: usize,
    /// Due to claimed by the worker (`started_at`): the release, the broker, and the queue of runs due together.
    pub started: Spread,
    /// Due to the last run's end.
    pub all_done_s: f64,
    /// `lifecycle_schedule_lateness_seconds` on the worker's /metrics: count and mean.
    pub histogram_count: u64,
    pub histogram_mean_s: f64,
    /// Its cumulative buckets: (upper bound, observations at or below).
    pub histogram_buckets: Vec<(String, u64)>,
    pub not_succeeded: usize,
    pub deactivated: usize,
}

impl Scheduled {
    fn print(&self) {
        println!("\n## scheduled: {} Pipedrive leavers due at one moment, on {:?}", self.runs, self.backend);
        println!(
            "posting           {:.1} s; the last 202 came {:.1} s before they were all due",
            self.post_s, self.margin_s
        );
        println!(
            "worker RSS        idle {:.1} MB, all scheduled {:.1} MB, all done {:.1} MB (peak {:.1} MB)",
            self.rss_idle_mb, self.rss_waiting_mb, self.rss_after_mb, self.rss_peak_mb
        );
        println!("due -> released   {} ({} runs in the worker's log)", self.released, self.released_logged);
        println!("due -> started    {}", self.started);
        println!("due -> all ended  {:.1} s", self.all_done_s);
        println!(
            "histogram         lifecycle_schedule_lateness_seconds: {} observations, mean {:.3} s",
            self.histogram_count, self.histogram_mean_s
        );
        let buckets: Vec<String> =
            self.histogram_buckets.iter().filter(|(_, n)| *n > 0).map(|(le, n)| format!("<= {le} s: {n}")).collect();
        println!("                  buckets (cumulative, the non-empty ones) {}", buckets.join(", "));
        println!("accounts gone     {} of {}", self.deactivated, self.runs);
        if self.not_succeeded > 0 {
            println!("WARNING           {} runs did not succeed", self.not_succeeded);
        }
    }

    fn summary(rows: &[Scheduled]) {
        if rows.len() < 2 {
            return;
        }
        println!("\n## scheduled: side by side");
        println!(
            "{:<9} {:>7} {:>22} {:>24} {:>24} {:>10}",
            "db", "runs", "RSS idle/sched/after", "released p50/p95/max", "started p50/p95/max", "peak RSS"
        );
        for r in rows {
            println!(
                "{:<9} {:>7} {:>6.1}/{:>6.1}/{:>6.1} MB {:>6.2}/{:>6.2}/{:>6.2} s {:>6.2}/{:>6.2}/{:>6.2} s {:>7.1} MB",
                format!("{:?}", r.backend),
                r.runs,
                r.rss_idle_mb,
                r.rss_waiting_mb,
                r.rss_after_mb,
                r.released.p50,
                r.released.p95,
                r.released.max,
                r.started.p50,
                r.started.p95,
                r.started.max,
                r.rss_peak_mb
            );
        }
    }
}

/// A Pipedrive leaver for `bench{i}@example.com`, due at `effective_at`.
fn scheduled_leaver(i: usize, effective_at: &str) -> Value {
    json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "effective_at": effective_at,
        "employee": {"id": format!("B-{i}"), "email": format!("bench{i}@example.com")},
        "apps": {"pipedrive": {}}
    })
}

/// A histogram's cumulative buckets on a Prometheus text page (one label set).
fn histogram_buckets(page: &str, name: &str) -> Vec<(String, u64)> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_string();
            let n = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((le, n))
        })
        .collect()
}

/// A log line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, then a final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `name=value` in a log line.
fn field_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split_whitespace().next()
}

/// The sum and count of a histogram on a Prometheus text page (all its label sets).
fn histogram_sum_count(page: &str, name: &str) -> (f64, u64) {
    let value = |suffix: &str| -> f64 {
        page.lines()
            .filter(|l| l.starts_with(&format!("{name}{suffix}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (value("_sum"), value("_count") as u64)
}

pub async fn scheduled(runs: usize, backend: Backend, due_in: Option<u64>) -> anyhow::Result<Scheduled> {
    anyhow::ensure!(runs >= 1, "--runs: at least one");
    let stack = Stack::start(
        unlimited(StackOptions::new(backend, "bench-scheduled"), &["pipedrive"])
            .env("LIFECYCLE_WORKER__CONCURRENCY", "64")
            .env("LIFECYCLE_BROKER__PREFETCH", "64")
            .env("LIFECYCLE_DATABASE__MAX_CONNECTIONS", "4")
            // The sweeper as configured by default (the test stacks look every
            // second and republish after 3 s): a backlog of runs due together
            // is not republished while the worker works through it.
            .env("LIFECYCLE_WORKER__SWEEP_INTERVAL", "10s")
            .env("LIFECYCLE_WORKER__SWEEP_GRACE", "30s")
            // Each release is logged with its lateness.
            .env("RUST_LOG", "warn,lifecycle_engine::scheduler=info"),
    )
    .await;
    let worker = stack.workers[0].as_ref().context("the worker runs")?;
    let pid = worker.child.id();
    let metrics_url = worker
        .log_text()
        .lines()
        .find_map(|l| l.strip_prefix("worker metrics on "))
        .map(|u| u.trim().to_string())
        .context("the worker printed its metrics address")?;
    // Every leaver has an account to deactivate.
    for chunk in (0..runs).collect::<Vec<_>>().chunks(1000) {
        let users: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"name": format!("Bench {i}"), "email": format!("bench{i}@example.com")}))
            .collect();
        stack.sim_seed(json!({"pipedrive": {"users": users}})).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle_mb = rss_mb(pid, "VmRSS:");

    let due_in = Duration::from_secs(due_in.unwrap_or(10 + runs as u64 / 250));
    let first_post = chrono::Utc::now();
    let due = first_post + chrono::Duration::from_std(due_in)?;
    let effective_at = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    eprintln!("scheduled ({backend:?}): posting {runs} Pipedrive leavers, all due at {effective_at}");
    let events: Vec<Value> = (0..runs).map(|i| scheduled_leaver(i, &effective_at)).collect();
    let post = post_all(&stack, events, 32).await?;
    let margin = due - chrono::Utc::now();
    let counts = lifecycle_store::runs::counts(&stack.store).await?;
    let waiting: i64 = counts.iter().filter(|(s, _, _)| *s == RunState::Scheduled).map(|(_, _, n)| n).sum();
    let waiting = waiting as usize;
    anyhow::ensure!(
        waiting == runs && margin > chrono::Duration::milliseconds(500),
        "posting took {:.1} s, too close to the due time ({} of {runs} runs scheduled): raise --due-in",
        post.as_secs_f64(),
        waiting
    );
    // Just before they are due: the worker holds nothing for them.
    tokio::time::sleep((margin - chrono::Duration::milliseconds(300)).to_std().unwrap_or_default()).await;
    let rss_waiting_mb = rss_mb(pid, "VmRSS:");

    let ended = stack.wait_all(Duration::from_secs(1800)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_mb = rss_mb(pid, "VmRSS:");
    let rss_peak_mb = rss_mb(pid, "VmHWM:");
    let page = stack.http.get(&metrics_url).send().await?.text().await?;
    let (sum, count) = histogram_sum_count(&page, "lifecycle_schedule_lateness_seconds");
    let histogram_buckets = histogram_buckets(&page, "lifecycle_schedule_lateness_seconds");

    let secs = |d: chrono::Duration| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let due_of = |r: &lifecycle_store::entity::run::Model| r.effective_at.unwrap_or(r.next_attempt_at);
    let log = stack.workers[0].as_ref().context("the worker runs")?.log_text();
    let released_ms: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("scheduled run is due: started"))
        .filter_map(|l| field_value(&strip_ansi(l), "late_ms")?.parse::<f64>().ok())
        .collect();
    let released_logged = released_ms.len();
    let released = Spread::of(released_ms.into_iter().map(|ms| ms / 1000.0).collect());
    let started = Spread::of(ended.iter().filter_map(|r| Some(secs(r.started_at? - due_of(r)))).collect());
    let last_end = ended.iter().filter_map(|r| r.finished_at).max().context("runs ended")?;
    let state = stack.sim_state().await;
    let deactivated =
        lifecycle_e2e::sim::actions(&state, "pipedrive").iter().filter(|a| *a == "user.deactivate").count();
    Ok(Scheduled {
        backend,
        runs,
        post_s: post.as_secs_f64(),
        margin_s: secs(margin),
        rss_idle_mb,
        rss_waiting_mb,
        rss_after_mb,
        rss_peak_mb,
        released,
        released_logged,
        started,
        all_done_s: secs(last_end - due),
        histogram_count: count,
        histogram_mean_s: if count > 0 { sum / count as f64 } else { f64::NAN },
        histogram_buckets,
        not_succeeded: ended.iter().filter(|r| r.state != RunState::Succeeded).count(),
        deactivated,
    })
}

// ---- memory ----

pub struct Memory {
    pub runs: usize,
    pub queued_peak: u64,
    pub peak_rss_mb: f64,
    pub drain_s: f64,
}

impl Memory {
    fn print(&self) {
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

/// The process' peak resident set (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    rss_mb(pid, "VmHWM:")
}

/// A memory line of `/proc/<pid>/status` (`VmRSS:` now, `VmHWM:` the peak), in MB.
fn rss_mb(pid: u32, field: &str) -> f64 {
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
    fn limits_parse_with_their_window_unit() {
        let l = parse_limit("calendly=300/1m").unwrap();
        assert_eq!(l, Limit { vendor: "calendly".into(), requests: 300, window_ms: 60_000 });
        assert_eq!(parse_limit("Pipedrive=80/2s").unwrap().window_ms, 2000);
        assert_eq!(parse_limit("jira=50/500ms").unwrap().window_ms, 500);
        assert!(parse_limit("slack=1/1s").is_err());
        assert!(parse_limit("jira=0/1s").is_err());
        assert!(parse_limit("jira=5/1h").is_err());
        assert!(parse_limit("jira").is_err());
    }

    #[test]
    fn vendor_lists_follow_the_domains_names_and_refuse_a_typo() {
        assert_eq!(vendor_list("all").unwrap(), VendorKind::ALL.map(VendorKind::as_str).to_vec());
        assert_eq!(vendor_list("circleci, pipedrive").unwrap(), vec!["pipedrive", "circleci"]);
        assert!(vendor_list("pipedrive,circlci").unwrap_err().to_string().contains("circlci"));
        assert!(vendor_list(",").is_err());
    }

    #[test]
    fn a_refused_reconcile_gives_lifecycles_reason() {
        let ctl = |code, stdout: &str, stderr: &str| lifecycle_e2e::ops::CtlOutput {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        let json = r#"{"passes":[],"failed":[{"vendor":"circleci","error":"circleci is not reconcilable: no member list. Review by hand"}]}"#;
        assert_eq!(not_reconcilable(&ctl(1, json, "")).as_deref(), Some("no member list. Review by hand"));
        let stderr = "circleci: circleci is not reconcilable: no member list\n";
        assert_eq!(not_reconcilable(&ctl(1, "", stderr)).as_deref(), Some("no member list"));
        // Any other failure is not a refusal: the benchmark stops on it.
        let failed = r#"{"passes":[],"failed":[{"vendor":"jira","error":"could not read jira's accounts: 503"}]}"#;
        assert_eq!(not_reconcilable(&ctl(1, failed, "jira: could not read jira's accounts: 503")), None);
    }

    #[test]
    fn release_lateness_is_read_from_a_coloured_log_line() {
        let line = "\u{1b}[2m2026-11-30T01:36:07.2Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mlifecycle_engine::scheduler\u{1b}[0m\u{1b}[2m:\u{1b}[0m scheduled run is due: started \u{1b}[3mrun_id\u{1b}[0m\u{1b}[2m=\u{1b}[0m01a2 \u{1b}[3mlate_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m1112";
        assert_eq!(field_value(&strip_ansi(line), "late_ms"), Some("1112"));
        assert_eq!(field_value("a late_ms=7 b=1", "late_ms"), Some("7"));
        assert_eq!(field_value("a b=1", "late_ms"), None);
    }

    #[test]
    fn the_new_subcommands_parse() {
        let cli = Cli::try_parse_from(["lifecycle-bench", "fleet", "--workers", "1,2", "--joiners", "50"]).unwrap();
        match cli.command {
            Command::Fleet(a) => assert_eq!((a.workers, a.joiners), (vec![1, 2], 50)),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "lifecycle-bench",
            "layoff",
            "--people",
            "100",
            "--limit",
            "calendly=600/1m",
            "--limit",
            "pipedrive=160/2s",
        ])
        .unwrap();
        match cli.command {
            Command::Layoff(a) => assert_eq!((a.people, a.limits.len(), a.no_alone), (100, 2, false)),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["lifecycle-bench", "scheduled"]).unwrap();
        match cli.command {
            Command::Scheduled(a) => assert_eq!((a.runs, a.db, a.due_in), (vec![10_000], Db::Sqlite, None)),
            other => panic!("{other:?}"),
        }
        let cli =
            Cli::try_parse_from(["lifecycle-bench", "scheduled", "--runs", "1000,10000", "--due-in", "90"]).unwrap();
        match cli.command {
            Command::Scheduled(a) => assert_eq!((a.runs, a.due_in), (vec![1000, 10_000], Some(90))),
            other => panic!("{other:?}"),
        }
    }
}
