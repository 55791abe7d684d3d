//! `lifecycle-ctl dead ...`: the runs that gave up, and what an operator does
//! about them — replay one, replay every one matching a filter, or discard one
//! with a reason. The operations themselves live in `lifecycle_ops`, shared
//! with the admin API and console; this module is flags, prompts and output.

use crate::{output, parse_time, Exit, EXIT_ERROR, EXIT_REFUSED};
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use lifecycle_broker::{Publisher, Topology};
use lifecycle_config::Settings;
use lifecycle_domain::{VendorKind, Workflow};
use lifecycle_ops::db::Db;
use lifecycle_ops::query::runs::RunFilter;
use std::io::{IsTerminal, Write};

#[derive(Subcommand, Debug)]
pub enum DeadCommand {
    /// List dead runs (not discarded), newest first.
    List {
        #[command(flatten)]
        filter: DeadFilter,
        /// Also show runs an operator discarded.
        #[arg(long)]
        include_discarded: bool,
        #[arg(long)]
        json: bool,
    },
    /// Replay a dead (or needs_manual_action) run, or with --all every dead run matching the filters.
    ///
    /// The run resumes at the failed step: completed steps are not repeated. Refused (exit 4)
    /// when a later run for the same person at the same vendor has already started.
    Replay(ReplayArgs),
    /// Mark a dead run discarded: it stays dead, leaves `dead list`, and is never replayed.
    Discard {
        run_id: String,
        /// Why (kept on the run and in the audit log).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

/// The filters of `dead list`, `dead replay --all` and `runs recheck --all`.
#[derive(Args, Debug, Clone)]
pub struct DeadFilter {
    /// Only this vendor.
    #[arg(long, value_enum)]
    pub vendor: Option<VendorKind>,
    /// Only this workflow.
    #[arg(long, value_enum)]
    pub workflow: Option<Workflow>,
    /// Only this person: their e-mail address or HR employee id.
    #[arg(long)]
    pub employee: Option<String>,
    /// Created at or after: RFC 3339 (2026-11-22T09:00:00Z) or an age (2h, 3d).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Created before: RFC 3339 or an age.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// At most this many runs.
    #[arg(long, default_value_t = 1000)]
    pub limit: u64,
}

impl DeadFilter {
    fn filter(&self, include_discarded: bool) -> RunFilter {
        lifecycle_ops::filter::dead(self.run_filter(), include_discarded)
    }

    /// The narrowing filters alone, any state.
    pub(crate) fn run_filter(&self) -> RunFilter {
        RunFilter {
            vendor: self.vendor,
            workflow: self.workflow,
            employee: self.employee.clone(),
            since: self.since,
            until: self.until,
            limit: Some(self.limit),
            ..Default::default()
        }
    }
}

/// One run, or with --all every one the filters select: what `dead replay`
/// and `runs recheck` act on.
#[derive(Args, Debug)]
pub struct OneOrAll {
    /// The run (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub run_id: Option<String>,
    /// Every run matching the filters (dead ones for a replay, needs_manual_action ones for a re-check).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub filter: DeadFilter,
    /// Why (kept in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
    /// Only say what would be done.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

pub type ReplayArgs = OneOrAll;

pub(crate) fn publisher(settings: &Settings) -> Publisher {
    Publisher::new(
        lifecycle_broker::Endpoints::new(settings.broker.url.expose(), &settings.broker.addresses),
        "lifecycle-ctl",
        Topology::new(settings.broker.namespace.clone()),
        settings.broker.confirm_timeout,
    )
}

pub async fn execute(settings: &Settings, db: &Db, actor: &str, cmd: DeadCommand) -> anyhow::Result<()> {
    match cmd {
        DeadCommand::List { filter, include_discarded, json } => {
            let runs = lifecycle_ops::list_runs(db, &filter.filter(include_discarded)).await?;
            output::dead(&runs, json);
            Ok(())
        }
        DeadCommand::Discard { run_id, reason, json } => {
            let d = lifecycle_ops::discard(db, &run_id, actor, &reason).await?;
            if json {
                output::json(&d);
            } else {
                out!("run {} discarded: {}", d.run_id, d.reason);
            }
            Ok(())
        }
        DeadCommand::Replay(args) => match args.run_id.clone() {
            Some(id) => replay_one(settings, db, actor, &id, &args).await,
            None => replay_all(settings, db, actor, &args).await,
        },
    }
}

async fn replay_one(settings: &Settings, db: &Db, actor: &str, run_id: &str, args: &ReplayArgs) -> anyhow::Result<()> {
    let run = lifecycle_ops::check_replayable(db, run_id).await?;
    if args.dry_run {
        out!("run {run_id} ({} {} for {}) can be replayed", run.vendor, run.workflow, run.person_key);
        return Ok(());
    }
    let publisher = publisher(settings);
    let r = lifecycle_ops::replay(db, &publisher, run_id, actor, args.reason.as_deref()).await?;
    publisher.close().await;
    if args.json {
        output::json(&r);
    } else {
        out!("{}", r.note());
    }
    Ok(())
}

async fn replay_all(settings: &Settings, db: &Db, actor: &str, args: &ReplayArgs) -> anyhow::Result<()> {
    let filter = args.filter.filter(false);
    let selected = lifecycle_ops::query::runs::select(db, &filter).await.context("listing dead runs")?;
    if selected.is_empty() {
        eprintln!("no dead run matches");
        if args.json {
            output::json(&lifecycle_ops::ReplaySummary { dry_run: args.dry_run, ..Default::default() });
        }
        return Ok(());
    }
    if !args.dry_run && !args.yes {
        confirm(&format!("Replay {} dead run(s)?", selected.len()), "replay")?;
    }
    let bar = output::progress_bar(selected.len() as u64, "replaying");
    let publisher = publisher(settings);
    let summary =
        lifecycle_ops::replay_all(db, &publisher, selected, actor, args.reason.as_deref(), args.dry_run, |run_id| {
            bar.set_message(run_id.to_string());
            bar.inc(1);
        })
        .await;
    bar.finish_and_clear();
    publisher.close().await;
    if args.json {
        output::json(&summary);
    } else {
        output::replay_summary(&summary);
    }
    if !summary.failed.is_empty() {
        return Err(Exit::Partial { message: summary.line(), code: EXIT_ERROR }.into());
    }
    if !summary.refused.is_empty() {
        return Err(Exit::Partial { message: summary.line(), code: EXIT_REFUSED }.into());
    }
    Ok(())
}

/// Asks `question` on the terminal; without one, --yes is required. `verb`
/// says what would not happen ("replay").
pub(crate) fn confirm(question: &str, verb: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Exit::Usage(format!(
            "{question} There is no terminal to confirm on: add --yes to {verb} them (or --dry-run to look first)"
        ))
        .into());
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).context("reading the answer")?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Exit::Partial { message: format!("not confirmed; nothing was done (no {verb})"), code: EXIT_REFUSED }
            .into())
    }
}
