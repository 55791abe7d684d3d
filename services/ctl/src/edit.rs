//! `lifecycle-ctl runs edit ...`: correct a dead run's input where the fix is
//! in the data (a role, groups, a login, a successor), one run or every dead
//! run matching a filter, and (with --replay) put it back to work. The
//! operation lives in `lifecycle_ops::edit`, shared with the admin API and the
//! console; this module is flags, the preview, the prompt and the output.

use crate::dead::{confirm, publisher, DeadFilter};
use crate::{output, Exit, EXIT_ERROR, EXIT_REFUSED, EXIT_USAGE};
use clap::Args;
use lifecycle_config::Settings;
use lifecycle_ops::db::Db;
use lifecycle_ops::edit::{self, EditError, EditFilter};
use std::io::Write;

#[derive(Args, Debug)]
pub struct EditArgs {
    /// The dead run (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub run_id: Option<String>,
    /// Every dead run matching the filters (and --error-contains).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub filter: DeadFilter,
    /// Only runs whose error or outcome contains this text (case-insensitive), e.g. "Sales Rep.".
    #[arg(long)]
    pub error_contains: Option<String>,
    /// FIELD=VALUE (repeatable): a field of the run's vendor (role, roles, groups, products, login,
    /// teams) or successor_email. A value starting with [ or { (or true, false, null) is JSON; a list
    /// field takes comma-separated names.
    #[arg(long = "set", value_name = "FIELD=VALUE", required = true)]
    pub set: Vec<String>,
    /// Replay each run once edited (it resumes with the new input).
    #[arg(long)]
    pub replay: bool,
    /// Why (kept with the edit and in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Do not ask for confirmation (--all).
    #[arg(long, short)]
    pub yes: bool,
    /// Only show what would change.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

/// Field errors as the intake names them, one per line, then a usage exit.
fn refused(e: EditError) -> anyhow::Error {
    match e {
        EditError::Ops(e) => e.into(),
        EditError::Fields { detail, errors } => {
            let mut msg = format!("refused: {detail}");
            for f in errors {
                msg.push_str(&format!("\n  {}: {}", f.field, f.detail));
            }
            Exit::Partial { message: msg, code: EXIT_USAGE }.into()
        }
    }
}

pub async fn execute(settings: &Settings, db: &Db, actor: &str, args: EditArgs) -> anyhow::Result<()> {
    let changes = edit::parse_set(&args.set)?;
    let Some(run_id) = args.run_id.clone() else {
        return edit_all(settings, db, actor, &args, &changes).await;
    };
    if args.dry_run {
        let run = edit::check_editable(db, &run_id).await?;
        let (after, changed) = edit::edited_input(&run, &changes).map_err(refused)?;
        if args.json {
            output::json(
                &serde_json::json!({"run_id": run_id, "changed": changed, "after": serde_json::from_str::<serde_json::Value>(&after)?}),
            );
        } else {
            out!("run {run_id} can be edited: {}", changed.join(", "));
        }
        return Ok(());
    }
    let publisher = publisher(settings);
    let result = edit::edit(db, &publisher, &run_id, &changes, actor, args.reason.as_deref(), args.replay).await;
    publisher.close().await;
    let e = result.map_err(refused)?;
    if args.json {
        output::json(&e);
    } else {
        out!("{}", e.note());
    }
    if let Some(why) = &e.replay_error {
        return Err(Exit::Partial { message: format!("edited, but not replayed: {why}"), code: EXIT_REFUSED }.into());
    }
    Ok(())
}

async fn edit_all(
    settings: &Settings,
    db: &Db,
    actor: &str,
    args: &EditArgs,
    changes: &edit::Changes,
) -> anyhow::Result<()> {
    let f = EditFilter { runs: args.filter.run_filter(), error_contains: args.error_contains.clone() };
    let selected = edit::select(db, &f).await?;
    if selected.is_empty() {
        eprintln!("no dead run matches");
        if args.json {
            output::json(&edit::BulkEdit { dry_run: args.dry_run, ..Default::default() });
        }
        return Ok(());
    }
    let publisher = publisher(settings);
    // The preview first: the count, a sample, and the runs it would be refused for.
    let preview = edit::edit_all(db, &publisher, selected.clone(), changes, actor, None, false, true, |_| {}).await;
    if args.dry_run || !args.json {
        print_bulk(&preview);
    }
    if args.dry_run {
        if args.json {
            output::json(&preview);
        }
        publisher.close().await;
        return Ok(());
    }
    if preview.would_edit.is_empty() {
        publisher.close().await;
        return Err(Exit::Partial { message: preview.line(), code: EXIT_REFUSED }.into());
    }
    if !args.yes {
        let then = if args.replay { " and replay them" } else { "" };
        confirm(&format!("Edit {} dead run(s){then}?", preview.would_edit.len()), "edit")?;
    }
    let chosen: Vec<_> = selected.into_iter().filter(|r| preview.would_edit.contains(&r.id)).collect();
    let bar = output::progress_bar(chosen.len() as u64, "editing");
    let summary =
        edit::edit_all(db, &publisher, chosen, changes, actor, args.reason.as_deref(), args.replay, false, |id| {
            bar.set_message(id.to_string());
            bar.inc(1);
        })
        .await;
    bar.finish_and_clear();
    publisher.close().await;
    if args.json {
        output::json(&summary);
    } else {
        print_bulk(&summary);
    }
    if !summary.failed.is_empty() {
        return Err(Exit::Partial { message: summary.line(), code: EXIT_ERROR }.into());
    }
    if !summary.refused.is_empty() {
        return Err(Exit::Partial { message: summary.line(), code: EXIT_REFUSED }.into());
    }
    Ok(())
}

fn print_bulk(s: &edit::BulkEdit) {
    for p in &s.sample {
        out!("{}  {}  {}  {}", if s.dry_run { "would edit" } else { "edited" }, p.run_id, p.employee_email, p.change);
    }
    let shown = s.sample.len();
    let total = if s.dry_run { s.would_edit.len() } else { s.edited.len() };
    if total > shown {
        out!("... and {} more", total - shown);
    }
    for r in &s.refused {
        out!("refused  {}  {}", r.run_id, r.reason);
    }
    for r in &s.failed {
        out!("failed   {}  {}", r.run_id, r.reason);
    }
    out!("{}", s.line());
}
