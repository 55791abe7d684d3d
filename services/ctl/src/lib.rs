//! `lifecycle-ctl`: what an operator does from a terminal.
//!
//! Tables by default, `--json` on every listing for scripts. Exit codes:
//! 0 success, 1 error (database unreachable, bad configuration; in `dead
//! replay --all`: some replays failed), 2 usage, 3 not found, 4 refused (the
//! operation does not apply to that run; in `dead replay --all`: some were
//! refused), 5 timed out (`runs wait`), 6 some runs did not succeed (`runs wait`).

/// `println!` that stops quietly when the reader has gone away (`| head`,
/// `| grep -m1`): a closed pipe is the reader's choice, not our failure.
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            panic!("writing to stdout: {e}");
        }
    }};
}

mod approvals;
mod dead;
mod edit;
mod held;
mod hris;
mod output;
mod pushes;
mod reconcile;
pub mod settings_doc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use lifecycle_config::Settings;
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_ops::query::runs::RunFilter;
use lifecycle_ops::{query, OpsError};
use std::io::Write;
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NOT_FOUND: i32 = 3;
pub const EXIT_REFUSED: i32 = 4;
pub const EXIT_TIMEOUT: i32 = 5;
/// `runs wait`: every matching run ended, but not all succeeded.
pub const EXIT_NOT_ALL_SUCCEEDED: i32 = 6;

/// Operate lifecycle: migrations, runs, events, dead letters.
///
/// Reads the same configuration as the services (a TOML file and LIFECYCLE_*
/// environment variables); --database-url overrides the database.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file (default: $LIFECYCLE_CONFIG, else ./lifecycle.toml if present).
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Database URL, overriding the configuration (e.g. sqlite://lifecycle.db?mode=rwc).
    #[arg(long, global = true, env = "LIFECYCLE_DATABASE__URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Who is acting, for the audit log (default: ctl:<OS user>).
    #[arg(long, global = true, env = "LIFECYCLE_CTL_ACTOR")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply pending database migrations (or list them with --status).
    Migrate {
        /// Only show applied and pending migrations.
        #[arg(long)]
        status: bool,
    },
    /// List and inspect runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Dead runs: list, replay (one, or all matching a filter), discard.
    #[command(subcommand)]
    Dead(dead::DeadCommand),
    /// Runs the blast-radius guard ([safety]) held past a threshold: list, release, cancel.
    #[command(subcommand)]
    Held(held::HeldCommand),
    /// Runs awaiting an approver ([approval]): list, approve, reject (once, audited).
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// HR systems' deliveries: list (those that need a person, with why), show, retry.
    #[command(subcommand)]
    Hr(hris::HrCommand),
    /// Big SCIM group writes' fan-outs to their members' events: list, watch one with progress.
    #[command(subcommand)]
    Pushes(pushes::PushesCommand),
    /// Inspect received events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The audit log of operator actions: who, what, when, why.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// What vendors reported that lifecycle did not do (webhooks): users added
    /// outside an HR joiner, deactivated or deleted by hand.
    #[command(subcommand)]
    Drift(DriftCommand),
    /// RabbitMQ: queue depths, and removing a namespace's topology.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Compare each vendor's accounts with what HR said: orphaned (left, still active), missing
    /// (joined, no account now), drifted (other roles or groups than asked), unmanaged (named by no
    /// event). Reads the vendors within their budgets; --fix turns findings into runs.
    Reconcile(reconcile::ReconcileArgs),
    /// What each vendor's workflow would do for an event right now, from reads only: nothing is
    /// written at any vendor or in the database.
    Plan(reconcile::PlanArgs),
    /// Print the settings reference, generated from the config types: every key of every
    /// binary with its environment variable, type, default and meaning.
    Settings {
        /// The Markdown page (docs/operators/settings.md).
        #[arg(long, conflicts_with = "json_schema", required_unless_present = "json_schema")]
        markdown: bool,
        /// One JSON Schema of the whole configuration file (for an editor's TOML support).
        #[arg(long)]
        json_schema: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BrokerCommand {
    /// Declare the topology (idempotent) and show each queue's depth and consumers.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Delete every queue and exchange of the configured namespace (messages included).
    Teardown {
        /// Required: this deletes messages.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List runs, newest first.
    List(ListArgs),
    /// Show one run with its step timeline (every attempt, its duration, vendor ids, error).
    Show {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Scheduled runs starting in the next days, by day, in a time zone.
    Upcoming {
        /// How many days ahead.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// IANA time zone for the days and times (default: $TZ, else UTC).
        #[arg(long, env = "TZ", default_value = "UTC")]
        tz: String,
        #[arg(long)]
        json: bool,
    },
    /// Run a needs_manual_action run's workflow again (one, or with --all every one matching the
    /// filters): once a person has done what it asked, it ends succeeded, naming who re-checked;
    /// else it says what is still missing. Audited.
    Recheck(reconcile::RecheckArgs),
    /// Correct a dead run's input (the vendor's fields, or successor_email), or with --all every
    /// dead run matching the filters (and --error-contains), checked as the intake checks an event;
    /// --replay puts it back to work. The original input and each edit are kept. Audited.
    Edit(edit::EditArgs),
    /// Cancel a run that has not started (scheduled, or queued and not yet claimed). Audited.
    Cancel {
        run_id: String,
        /// Why (required; kept with the run and in the audit log).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Wait until every matching run has ended (exit 0: all succeeded, 6: some did not, 5: timed out).
    Wait {
        #[command(flatten)]
        filter: ListArgs,
        /// Give up after this long (e.g. 90s, 5m).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Show an event's payload (credentials redacted) and its runs.
    Show {
        event_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel an event's runs that have not started; says which had. Audited.
    Cancel {
        event_id: String,
        /// Why (required; kept with the runs and in the audit log).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List operator actions, newest first.
    List {
        /// Only actions on this run (or other target id).
        #[arg(long)]
        run: Option<String>,
        /// Only this actor (e.g. ctl:alice, admin:admin).
        #[arg(long = "by")]
        by: Option<String>,
        /// At or after: RFC 3339 or an age (2h, 3d).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DriftCommand {
    /// List drift, newest first.
    List {
        /// Only this vendor (webhooks come from pipedrive).
        #[arg(long, value_enum)]
        vendor: Option<VendorKind>,
        /// Only this kind: user_added_outside_hr, user_deactivated_outside, user_reactivated_outside, user_deleted.
        #[arg(long, value_enum)]
        kind: Option<lifecycle_domain::DriftKind>,
        /// Only this person's e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Detected at or after: RFC 3339 or an age (2h, 3d).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Only runs in this state (repeatable).
    #[arg(long = "state", value_name = "STATE", value_enum)]
    pub states: Vec<RunState>,
    /// Only this vendor.
    #[arg(long, value_enum)]
    pub vendor: Option<VendorKind>,
    /// Only this workflow.
    #[arg(long, value_enum)]
    pub workflow: Option<Workflow>,
    /// Only this person: their e-mail address or HR employee id.
    #[arg(long)]
    pub employee: Option<String>,
    /// Only runs of this event.
    #[arg(long)]
    pub event: Option<String>,
    /// Created at or after: RFC 3339 (2026-11-22T09:00:00Z) or an age (2h, 3d).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Created before: RFC 3339 or an age.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// At most this many runs.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ListArgs {
    pub fn filter(&self) -> RunFilter {
        RunFilter {
            states: self.states.clone(),
            vendor: self.vendor,
            workflow: self.workflow,
            employee: self.employee.clone(),
            event_id: self.event.clone(),
            since: self.since,
            until: self.until,
            discarded: None,
            limit: Some(self.limit),
        }
    }
}

/// RFC 3339, or an age meaning "that long ago" (`90m`, `2h`, `7d`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    lifecycle_ops::filter::parse_time(s)
}

/// `ctl:<OS user>`, unless `--actor` says otherwise.
pub fn actor(cli_actor: Option<&str>) -> String {
    if let Some(a) = cli_actor.map(str::trim).filter(|a| !a.is_empty()) {
        return a.to_string();
    }
    let user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(os_user)
        .unwrap_or_else(|| "unknown".into());
    format!("ctl:{user}")
}

/// The name of the process' user from the password database, for shells
/// (cron, tmux, sudo -E) that do not set USER.
#[cfg(unix)]
fn os_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    std::fs::read_to_string("/etc/passwd").ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    })
}

#[cfg(not(unix))]
fn os_user() -> Option<String> {
    None
}

/// A command's result when it is not plain success.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    NotAllSucceeded(String),
    /// Wrong flags or input: exit 2, like clap's own usage errors.
    #[error("{0}")]
    Usage(String),
    /// `dead replay --all`: some runs were refused (exit 4) or failed (exit 1).
    #[error("{message}")]
    Partial { message: String, code: i32 },
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(()) => EXIT_OK,
        Err(e) if e.downcast_ref::<Exit>().is_some() => {
            let code = match e.downcast_ref::<Exit>() {
                Some(Exit::Timeout(_)) => EXIT_TIMEOUT,
                Some(Exit::Usage(_)) => EXIT_USAGE,
                Some(Exit::Partial { code, .. }) => *code,
                _ => EXIT_NOT_ALL_SUCCEEDED,
            };
            eprintln!("{e}");
            code
        }
        Err(e) => {
            let code = match e.downcast_ref::<OpsError>() {
                Some(OpsError::NotFound(_)) => EXIT_NOT_FOUND,
                Some(OpsError::Refused(_) | OpsError::Forbidden(_)) => EXIT_REFUSED,
                Some(OpsError::Invalid(_)) => EXIT_USAGE,
                _ => EXIT_ERROR,
            };
            eprintln!("error: {e:#}");
            code
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    // Documents the configuration: reads none.
    if let Command::Settings { markdown, .. } = cli.command {
        if markdown {
            print!("{}", settings_doc::markdown());
        } else {
            out!("{}", serde_json::to_string_pretty(&settings_doc::json_schema())?);
        }
        return Ok(());
    }
    let mut settings = Settings::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(url) = &cli.database_url {
        settings.database.url = lifecycle_config::Secret::new(url.clone());
    }
    lifecycle_telemetry::init_logging(&settings.log.format);
    if let Command::Broker(cmd) = &cli.command {
        return broker(&settings, cmd).await;
    }
    // A plan writes nothing, not even to the database: it needs none.
    if let Command::Plan(args) = cli.command {
        return reconcile::plan(&settings, args).await;
    }
    let db =
        lifecycle_ops::db::connect(settings.database.url.expose(), 4).await.context("connecting to the database")?;
    let actor = actor(cli.actor.as_deref());
    match cli.command {
        Command::Migrate { status } => {
            if !status {
                lifecycle_ops::db::migrate(&db).await.context("applying migrations")?;
            }
            let (applied, pending) = lifecycle_ops::db::migration_status(&db).await?;
            for m in &applied {
                out!("applied  {m}");
            }
            for m in &pending {
                out!("pending  {m}");
            }
            if !status {
                out!("database is up to date ({} migrations)", applied.len());
            }
        }
        Command::Runs(RunsCommand::List(args)) => {
            let runs = lifecycle_ops::list_runs(&db, &args.filter()).await?;
            output::runs(&runs, args.json);
        }
        Command::Runs(RunsCommand::Show { run_id, json }) => {
            let detail = lifecycle_ops::run_detail(&db, &run_id).await?;
            output::run_detail(&detail, json);
        }
        Command::Runs(RunsCommand::Wait { filter, timeout }) => {
            let f = filter.filter();
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let runs = lifecycle_ops::list_runs(&db, &f).await?;
                let open = runs.iter().filter(|r| !r.state.is_terminal()).count();
                if open == 0 && !runs.is_empty() {
                    output::runs(&runs, filter.json);
                    let failed = runs.iter().filter(|r| r.state != RunState::Succeeded).count();
                    if failed > 0 {
                        return Err(Exit::NotAllSucceeded(format!(
                            "{failed} of {} run(s) did not succeed",
                            runs.len()
                        ))
                        .into());
                    }
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    output::runs(&runs, filter.json);
                    return Err(Exit::Timeout(format!(
                        "{open} run(s) still unfinished after {}",
                        humantime::format_duration(timeout)
                    ))
                    .into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
        Command::Events(EventsCommand::Show { event_id, json }) => {
            let detail = lifecycle_ops::event_detail(&db, &event_id).await?;
            output::event_detail(&detail, json);
        }
        Command::Events(EventsCommand::Cancel { event_id, reason, json }) => {
            let publisher = dead::publisher(&settings);
            let c = lifecycle_ops::cancel_event(&db, &publisher, &event_id, &actor, &reason).await?;
            publisher.close().await;
            output::cancelled(&c, json);
        }
        Command::Runs(RunsCommand::Cancel { run_id, reason, json }) => {
            let publisher = dead::publisher(&settings);
            let c = lifecycle_ops::cancel_run(&db, &publisher, &run_id, &actor, &reason).await?;
            publisher.close().await;
            output::cancelled(&c, json);
        }
        Command::Runs(RunsCommand::Upcoming { days, tz, json }) => {
            let view = lifecycle_ops::upcoming(&db, days, &tz).await?;
            output::upcoming(&view, json);
        }
        Command::Dead(cmd) => return dead::execute(&settings, &db, &actor, cmd).await,
        Command::Held(cmd) => return held::execute(&db, &actor, cmd).await,
        Command::Hr(cmd) => return hris::execute(&db, &actor, cmd).await,
        Command::Pushes(cmd) => return pushes::execute(&db, cmd).await,
        Command::Approvals(cmd) => return approvals::execute(&settings, &db, &actor, cmd).await,
        Command::Audit(AuditCommand::List { run, by, since, limit, json }) => {
            let filter = query::audit::AuditFilter { target_id: run, actor: by, since, limit: Some(limit) };
            let entries = lifecycle_ops::audit_log(&db, &filter).await?;
            output::audit(&entries, json);
        }
        Command::Drift(DriftCommand::List { vendor, kind, email, since, limit, json }) => {
            let filter = query::audit::DriftFilter { vendor, kind, email, since, limit: Some(limit) };
            let rows = lifecycle_ops::list_drift(&db, &filter).await?;
            output::drift(&rows, json);
        }
        Command::Runs(RunsCommand::Edit(args)) => return edit::execute(&settings, &db, &actor, args).await,
        Command::Runs(RunsCommand::Recheck(args)) => return reconcile::recheck(&settings, &db, &actor, args).await,
        Command::Reconcile(args) => return reconcile::reconcile(&settings, &db, &actor, args).await,
        Command::Plan(_) => unreachable!("handled before connecting to the database"),
        Command::Broker(_) => unreachable!("handled before connecting to the database"),
        Command::Settings { .. } => unreachable!("handled before loading the configuration"),
    }
    Ok(())
}

async fn broker(settings: &Settings, cmd: &BrokerCommand) -> anyhow::Result<()> {
    use lifecycle_broker::lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
    use lifecycle_broker::lapin::types::FieldTable;
    let topology = lifecycle_broker::Topology::new(settings.broker.namespace.clone());
    let conn = lifecycle_broker::connect(
        lifecycle_broker::Endpoints::new(settings.broker.url.expose(), &settings.broker.addresses),
        "lifecycle-ctl",
    )
    .await?;
    let ch = conn.create_channel().await?;
    match cmd {
        BrokerCommand::Status { json } => {
            topology.declare(&ch).await?;
            let mut rows = Vec::new();
            for q in topology.queues() {
                let passive = QueueDeclareOptions { passive: true, ..Default::default() };
                let info = ch.queue_declare(q.as_str().into(), passive, FieldTable::default()).await?;
                rows.push(output::QueueRow {
                    queue: q,
                    messages: info.message_count(),
                    consumers: info.consumer_count(),
                });
            }
            output::queues(&rows, *json);
        }
        BrokerCommand::Teardown { yes } => {
            anyhow::ensure!(
                *yes,
                "this deletes every queue of namespace '{}' and its messages: add --yes",
                topology.namespace()
            );
            for q in topology.queues() {
                ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await?;
            }
            for e in topology.exchanges() {
                ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()).await?;
            }
            // Deleting what does not exist is not an error in RabbitMQ.
            for q in topology.legacy_queues() {
                ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await?;
            }
            for e in topology.legacy_exchanges() {
                ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()).await?;
            }
            out!("deleted the queues and exchanges of namespace '{}'", topology.namespace());
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_is_the_os_user_unless_named() {
        assert_eq!(actor(Some("ctl:oncall")), "ctl:oncall");
        assert!(actor(None).starts_with("ctl:"));
        assert!(actor(Some("  ")).starts_with("ctl:"));
        #[cfg(target_os = "linux")]
        assert!(os_user().is_some_and(|u| !u.is_empty()), "the password database names this process' user");
    }

    #[test]
    fn replay_takes_an_id_or_all_but_not_both() {
        assert!(Cli::try_parse_from(["lifecycle-ctl", "dead", "replay", "r1"]).is_ok());
        assert!(Cli::try_parse_from(["lifecycle-ctl", "dead", "replay", "--all", "--vendor", "jira"]).is_ok());
        assert!(Cli::try_parse_from(["lifecycle-ctl", "dead", "replay"]).is_err());
        assert!(Cli::try_parse_from(["lifecycle-ctl", "dead", "replay", "r1", "--all"]).is_err());
        assert!(Cli::try_parse_from(["lifecycle-ctl", "dead", "discard", "r1"]).is_err(), "a reason is required");
    }

    /// States, vendors and workflows are typed flags: clap refuses a name
    /// that does not exist (exit 2, listing the names that do).
    #[test]
    fn filter_flags_take_only_names_that_exist() {
        let cli = Cli::try_parse_from([
            "lifecycle-ctl",
            "runs",
            "list",
            "--state",
            "needs_manual_action",
            "--state",
            "dead",
            "--vendor",
            "circleci",
            "--workflow",
            "reassign_deals",
        ])
        .unwrap();
        let Command::Runs(RunsCommand::List(args)) = cli.command else { panic!("runs list") };
        let f = args.filter();
        assert_eq!(f.states, [RunState::NeedsManualAction, RunState::Dead]);
        assert_eq!((f.vendor, f.workflow), (Some(VendorKind::Circleci), Some(Workflow::ReassignDeals)));

        for bad in [
            ["runs", "list", "--state", "bogus"],
            ["runs", "wait", "--vendor", "myspace"],
            ["dead", "list", "--workflow", "hire"],
            ["drift", "list", "--vendor", "Pipedrive"],
        ] {
            let err = Cli::try_parse_from(std::iter::once("lifecycle-ctl").chain(bad)).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad:?}");
            assert_eq!(err.exit_code(), EXIT_USAGE, "{bad:?}");
        }
    }
}
