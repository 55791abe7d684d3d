//! The command line: the subcommands, their arguments, and a vendor budget's `VENDOR=REQUESTS/WINDOW` syntax.

use clap::{Parser, Subcommand, ValueEnum};
use lifecycle_domain::VendorKind;
use lifecycle_e2e::Backend;

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
    pub vendor: VendorKind,
    pub requests: u32,
    pub window_ms: u64,
}

/// `calendly=300/1m`, `pipedrive=80/2s`, `jira=50/500ms`.
pub fn parse_limit(s: &str) -> Result<Limit, String> {
    let (vendor, budget) = s.split_once('=').ok_or("expected VENDOR=REQUESTS/WINDOW")?;
    let vendor = vendor.trim().to_lowercase();
    let vendor = vendor.parse::<VendorKind>().map_err(|e| e.to_string())?;
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
    /// `database.group_commit` of the producer and the worker: `--group-commit false`
    /// measures each write committing alone (the before of issue 29).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub group_commit: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
    Both,
}

impl Db {
    pub(crate) fn backends(self) -> Vec<Backend> {
        match self {
            Db::Sqlite => vec![Backend::Sqlite],
            Db::Postgres => vec![Backend::Postgres],
            Db::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_their_window_unit() {
        let l = parse_limit("calendly=300/1m").unwrap();
        assert_eq!(l, Limit { vendor: VendorKind::Calendly, requests: 300, window_ms: 60_000 });
        assert_eq!(parse_limit("Pipedrive=80/2s").unwrap().window_ms, 2000);
        assert_eq!(parse_limit("jira=50/500ms").unwrap().window_ms, 500);
        assert!(parse_limit("slack=1/1s").is_err());
        assert!(parse_limit("jira=0/1s").is_err());
        assert!(parse_limit("jira=5/1h").is_err());
        assert!(parse_limit("jira").is_err());
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
