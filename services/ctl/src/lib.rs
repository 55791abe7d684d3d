//! `lifecycle-ctl`: what an operator does from a terminal.
//!
//! Tables by default, `--json` on every listing for scripts. Exit codes:
//! 0 success, 1 error (database unreachable, bad configuration), 2 usage,
//! 3 not found, 4 refused (the operation does not apply to that run).

mod output;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use lifecycle_config::Settings;
use lifecycle_ops::OpsError;
use lifecycle_store::runs::RunFilter;
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_NOT_FOUND: i32 = 3;
pub const EXIT_REFUSED: i32 = 4;

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
    /// Inspect received events.
    #[command(subcommand)]
    Events(EventsCommand),
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
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Show an event's payload (credentials redacted) and its runs.
    Show {
        event_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Only runs in this state (repeatable): queued, running, retry_scheduled, succeeded, needs_manual_action, dead.
    #[arg(long = "state", value_name = "STATE")]
    pub states: Vec<String>,
    /// Only this vendor: pipedrive, crowdstrike, jira, calendly, circleci.
    #[arg(long)]
    pub vendor: Option<String>,
    /// Only this workflow: joiner, mover, leaver, reassign_deals.
    #[arg(long)]
    pub workflow: Option<String>,
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
    pub fn filter(&self) -> anyhow::Result<RunFilter> {
        for s in &self.states {
            s.parse::<lifecycle_domain::RunState>().map_err(|e| anyhow::anyhow!("--state: {e}"))?;
        }
        if let Some(v) = &self.vendor {
            v.parse::<lifecycle_domain::VendorKind>().map_err(|e| anyhow::anyhow!("--vendor: {e}"))?;
        }
        if let Some(w) = &self.workflow {
            w.parse::<lifecycle_domain::Workflow>().map_err(|e| anyhow::anyhow!("--workflow: {e}"))?;
        }
        Ok(RunFilter {
            states: self.states.clone(),
            vendor: self.vendor.clone(),
            workflow: self.workflow.clone(),
            employee: self.employee.clone(),
            event_id: self.event.clone(),
            since: self.since,
            until: self.until,
            limit: Some(self.limit),
        })
    }
}

/// RFC 3339, or an age meaning "that long ago" (`90m`, `2h`, `7d`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let age =
        humantime::parse_duration(s).map_err(|_| format!("'{s}' is neither an RFC 3339 time nor an age like 2h"))?;
    Ok(Utc::now() - chrono::Duration::from_std(age).map_err(|e| e.to_string())?)
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match execute(cli).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let code = match e.downcast_ref::<OpsError>() {
                Some(OpsError::NotFound(_)) => EXIT_NOT_FOUND,
                Some(OpsError::Refused(_)) => EXIT_REFUSED,
                _ => EXIT_ERROR,
            };
            eprintln!("error: {e:#}");
            code
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(url) = &cli.database_url {
        settings.database.url = lifecycle_config::Secret::new(url.clone());
    }
    lifecycle_telemetry::init_logging(&settings.log.format);
    let db = lifecycle_store::connect(settings.database.url.expose(), 4).await.context("connecting to the database")?;
    match cli.command {
        Command::Migrate { status } => {
            if !status {
                lifecycle_store::migrate(&db).await.context("applying migrations")?;
            }
            let (applied, pending) = lifecycle_store::db::migration_status(&db).await?;
            for m in &applied {
                println!("applied  {m}");
            }
            for m in &pending {
                println!("pending  {m}");
            }
            if !status {
                println!("database is up to date ({} migrations)", applied.len());
            }
        }
        Command::Runs(RunsCommand::List(args)) => {
            let runs = lifecycle_ops::list_runs(&db, &args.filter()?).await?;
            output::runs(&runs, args.json);
        }
        Command::Runs(RunsCommand::Show { run_id, json }) => {
            let detail = lifecycle_ops::run_detail(&db, &run_id).await?;
            output::run_detail(&detail, json);
        }
        Command::Events(EventsCommand::Show { event_id, json }) => {
            let detail = lifecycle_ops::event_detail(&db, &event_id).await?;
            output::event_detail(&detail, json);
        }
    }
    Ok(())
}
