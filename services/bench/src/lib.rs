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

mod broker;
mod cli;
mod fleet;
mod harness;
mod layoff;
mod memory;
mod ratelimit;
mod reconcile;
mod scheduled;
mod throughput;

pub use broker::{broker, BrokerBaseline};
pub use cli::{parse_limit, Cli, Command, Db, FleetArgs, LayoffArgs, Limit, ScheduledArgs, ThroughputArgs};
pub use fleet::{fleet, Fleet, FleetRow};
pub use harness::{joiner, machine};
pub use layoff::{layoff, Layoff, VendorWave};
pub use memory::{memory, Memory};
pub use ratelimit::{ratelimit, RateLimit};
pub use reconcile::{reconcile, Reconcile, ReconcileRow, Skipped};
pub use scheduled::{scheduled, Scheduled, Spread};
pub use throughput::{throughput, Throughput};

use anyhow::Context;

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
