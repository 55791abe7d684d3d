//! `lifecycle-ctl reconcile`, `plan` and `runs recheck`: the operations that
//! read the vendors (through connectors built from the same `[vendors.*]`
//! configuration and rate limits as the worker's), and the re-check of runs
//! that waited for a person. The operations live in `lifecycle_ops`; this
//! module is flags, progress and output.

use crate::dead::{confirm, publisher, OneOrAll};
use crate::{output, Exit, EXIT_ERROR, EXIT_REFUSED};
use anyhow::Context;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifecycle_config::Settings;
use lifecycle_domain::event::BodyError;
use lifecycle_domain::{RunState, VendorKind};
use lifecycle_ops::db::Db;
use lifecycle_ops::query::findings::FindingFilter;
use lifecycle_ops::reconcile::{FindingKind, FindingView, FixSummary, PassReport};
use lifecycle_ops::Vendors;
use serde::Serialize;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Which findings, and whether to read the vendors first.
#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// Only this vendor (default: every configured vendor).
    #[arg(long, value_enum)]
    pub vendor: Option<VendorKind>,
    /// Only findings of this kind (orphaned, missing, drifted, unmanaged) in the output and the fix.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<FindingKind>,
    /// Show the findings the last passes recorded, without reading the vendors.
    #[arg(long)]
    pub stored: bool,
    /// Read the vendors from this process (connectors built from this configuration, which
    /// then needs the vendors' credentials) instead of asking a worker, whose passes share the
    /// budget its runs spend. For when no worker runs.
    #[arg(long, conflicts_with = "stored")]
    pub here: bool,
    /// How long to wait for the workers' passes (a request not taken by then stays: a worker
    /// carries it out when one runs).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Turn findings into runs: orphaned → leaver, missing → joiner, drifted → mover
    /// (unmanaged accounts are left for a person). A dry run unless --yes.
    #[arg(long)]
    pub fix: bool,
    /// With --fix: make the runs.
    #[arg(long, short, requires = "fix")]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
}

fn parse_kind(s: &str) -> Result<FindingKind, String> {
    FindingKind::parse(s).ok_or_else(|| format!("'{s}' is not a finding kind (orphaned, missing, drifted, unmanaged)"))
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The event as the intake takes it (a JSON file; `-` reads standard input).
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RecheckArgs {
    #[command(flatten)]
    pub target: OneOrAll,
    /// Wait (up to this long) for the re-checked runs to end, and show how they ended.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
}

/// The vendors of this configuration, with their connectors.
fn vendors(settings: &Settings) -> anyhow::Result<Vendors> {
    let registry = lifecycle_vendors::registry::build_registry(settings).context("building the vendors' clients")?;
    Ok(Vendors::new(registry, settings))
}

fn spinner(what: String) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"));
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[derive(Serialize)]
struct ReconcileOutput {
    passes: Vec<PassReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<Failed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    findings: Option<Vec<FindingView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<FixSummary>,
}

#[derive(Serialize)]
struct Failed {
    vendor: VendorKind,
    error: String,
}

pub async fn reconcile(settings: &Settings, db: &Db, actor: &str, args: ReconcileArgs) -> anyhow::Result<()> {
    let mut out = ReconcileOutput { passes: Vec::new(), failed: Vec::new(), findings: None, fix: None };
    if !args.stored {
        let mut configured: Vec<VendorKind> = settings.vendors.keys().copied().collect();
        configured.sort();
        let chosen: Vec<VendorKind> = match args.vendor {
            Some(v) if !configured.contains(&v) => {
                return Err(Exit::Usage(format!("{v} is not configured ([vendors.{v}])")).into())
            }
            Some(v) => vec![v],
            None => configured,
        };
        let results = if args.here {
            read_here(settings, db, actor, &chosen).await?
        } else {
            ask_workers(db, actor, &chosen, args.timeout).await?
        };
        for (vendor, result) in results {
            match result {
                Ok(report) => {
                    if !args.json {
                        out!("{} in {:.1}s", report.line(), report.seconds);
                    }
                    out.passes.push(report);
                }
                Err(error) => {
                    eprintln!("{vendor}: {error}");
                    out.failed.push(Failed { vendor, error });
                }
            }
        }
    }
    let filter = FindingFilter { vendor: args.vendor, kind: args.kind, include_resolved: false, limit: None };
    let findings = lifecycle_ops::reconcile::findings(db, &filter).await?;
    if !args.json {
        print_findings(&findings);
    }
    if args.fix {
        let bar = output::progress_bar(findings.len() as u64, "fixing");
        let guard = lifecycle_ops::approvals::guard(settings);
        let summary =
            lifecycle_ops::reconcile::fix(db, &settings.schedule, &guard, &filter, None, actor, !args.yes, |_| {
                bar.inc(1)
            })
            .await?;
        bar.finish_and_clear();
        if !args.json {
            print_fix(&summary);
        }
        out.fix = Some(summary);
    }
    if args.json {
        out.findings = Some(findings);
        output::json(&out);
    }
    if !out.failed.is_empty() {
        let names: Vec<String> = out.failed.iter().map(|f| f.vendor.to_string()).collect();
        return Err(Exit::Partial {
            message: format!("could not read {}; their findings are as the last pass left them", names.join(", ")),
            code: EXIT_ERROR,
        }
        .into());
    }
    Ok(())
}

type Passes = Vec<(VendorKind, Result<PassReport, String>)>;

/// Each vendor read from this process, in turn, a spinner counting accounts.
async fn read_here(settings: &Settings, db: &Db, actor: &str, chosen: &[VendorKind]) -> anyhow::Result<Passes> {
    let vendors = vendors(settings)?;
    let mut results = Vec::new();
    for &vendor in chosen {
        let connector = vendors.registry.get(vendor).expect("configured");
        let bar = spinner(format!("reading {vendor}'s accounts"));
        let progress = |n: usize| bar.set_message(format!("reading {vendor}'s accounts: {n}"));
        let result =
            lifecycle_ops::reconcile::reconcile(db, &*connector, &vendors.reconcile, actor, None, &progress).await;
        bar.finish_and_clear();
        results.push(match result {
            Ok(Some(report)) => (vendor, Ok(report)),
            Ok(None) => unreachable!("a pass without a slot always starts"),
            Err(e @ (lifecycle_ops::OpsError::Vendor(_) | lifecycle_ops::OpsError::Refused(_))) => {
                (vendor, Err(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        });
    }
    Ok(results)
}

/// Asks the workers for a pass per vendor and waits for them, the spinner
/// saying where each stands.
async fn ask_workers(db: &Db, actor: &str, chosen: &[VendorKind], timeout: Duration) -> anyhow::Result<Passes> {
    use lifecycle_ops::query::passes;
    let mut asked = Vec::new();
    for &vendor in chosen {
        asked.push(passes::ask(db, vendor, actor).await?);
    }
    let bar = spinner("asking a worker to read the vendors".into());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut results: Vec<Option<Result<PassReport, String>>> = vec![None; asked.len()];
    loop {
        let mut waiting = Vec::new();
        for (i, request) in asked.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let now = passes::request(db, &request.id).await?.expect("our request exists");
            match (&now.finished_at, &now.pass_id, &now.error) {
                (Some(_), Some(pass), _) => results[i] = Some(Ok(lifecycle_ops::reconcile::report_of(db, pass).await?)),
                (Some(_), None, error) => results[i] = Some(Err(error.clone().unwrap_or_else(|| "failed".into()))),
                (None, _, _) => waiting.push(match (&now.claimed_by, now.claimed_at) {
                    (Some(worker), Some(at)) => {
                        format!(
                            "{}: worker {worker} reading for {}s",
                            now.vendor,
                            (chrono::Utc::now() - at).num_seconds()
                        )
                    }
                    _ => format!("{}: waiting for a worker", now.vendor),
                }),
            }
        }
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            return Err(Exit::Timeout(format!(
                "after {}: {}; is a worker running with these vendors configured? The requests stay, and a worker \
                 carries them out when one runs (or read from here: --here)",
                humantime::format_duration(timeout),
                waiting.join("; ")
            ))
            .into());
        }
        bar.set_message(waiting.join("; "));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bar.finish_and_clear();
    Ok(chosen.iter().copied().zip(results.into_iter().map(|r| r.expect("every request ended"))).collect())
}

fn print_findings(findings: &[FindingView]) {
    if findings.is_empty() {
        out!("no open findings");
        return;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(vec!["VENDOR", "KIND", "ACCOUNT", "SINCE", "DETAIL", "FIX"]);
    for f in findings {
        t.add_row(vec![
            f.vendor.to_string(),
            f.kind.to_string(),
            f.account.clone(),
            f.first_seen_at.format("%Y-%m-%d %H:%M").to_string(),
            f.detail.clone(),
            f.fix_event_id.clone().map(|e| format!("event {e}")).unwrap_or_default(),
        ]);
    }
    out!("{t}");
}

fn print_fix(s: &FixSummary) {
    for f in &s.fixed {
        match (&f.event_id, &f.run_id) {
            (Some(event), run) => out!(
                "{} {} {} → {} run {} (event {event})",
                f.vendor,
                f.kind,
                f.account,
                f.workflow,
                run.as_deref().unwrap_or("-")
            ),
            (None, _) => out!(
                "would run {} at {} for {} ({}), dated {}; their latest event: {}",
                f.workflow,
                f.vendor,
                f.account,
                f.kind,
                f.occurred_at.format("%Y-%m-%d %H:%M:%S UTC"),
                f.latest_event.as_ref().map_or_else(|| "none".to_string(), |e| e.describe())
            ),
        }
    }
    for k in &s.skipped {
        let changed = if k.person_changed { " (changed since the pass)" } else { "" };
        out!("left {}{changed}: {}", k.account, k.reason);
    }
    out!("{}", s.line());
}

pub async fn plan(settings: &Settings, args: PlanArgs) -> anyhow::Result<()> {
    let bytes = if args.file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("reading the event from standard input")?;
        b
    } else {
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?
    };
    let (_, event) = lifecycle_domain::Event::parse_body(&bytes).map_err(|e| match e {
        BodyError::Invalid { errors, .. } if !errors.is_empty() => {
            let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect();
            Exit::Usage(format!("the event is invalid: {}", fields.join("; ")))
        }
        other => Exit::Usage(other.to_string()),
    })?;
    let vendors = vendors(settings)?;
    let bar = spinner("reading the vendors".into());
    let plan = lifecycle_ops::plan::plan(&vendors.registry, &event).await;
    bar.finish_and_clear();
    if args.json {
        output::json(&plan);
    } else {
        out!("{}", plan.text().trim_end());
    }
    if plan.vendors.iter().any(|v| v.error.is_some()) {
        return Err(Exit::Partial { message: "some vendors could not be planned".into(), code: EXIT_ERROR }.into());
    }
    Ok(())
}

pub async fn recheck(settings: &Settings, db: &Db, actor: &str, args: RecheckArgs) -> anyhow::Result<()> {
    let selected = match &args.target.run_id {
        Some(id) => vec![lifecycle_ops::check_recheckable(db, id).await?],
        None => {
            let mut f = args.target.filter.run_filter();
            f.states = vec![RunState::NeedsManualAction];
            lifecycle_ops::query::runs::select(db, &f).await.context("listing needs_manual_action runs")?
        }
    };
    if selected.is_empty() {
        eprintln!("no needs_manual_action run matches");
        if args.target.json {
            output::json(&lifecycle_ops::ReplaySummary { dry_run: args.target.dry_run, ..Default::default() });
        }
        return Ok(());
    }
    if args.target.run_id.is_none() && !args.target.dry_run && !args.target.yes {
        confirm(&format!("Re-check {} needs_manual_action run(s)?", selected.len()), "re-check")?;
    }
    let bar = output::progress_bar(selected.len() as u64, "re-checking");
    let publisher = publisher(settings);
    let summary = lifecycle_ops::recheck_all(
        db,
        &publisher,
        selected,
        actor,
        args.target.reason.as_deref(),
        args.target.dry_run,
        |run_id| {
            bar.set_message(run_id.to_string());
            bar.inc(1);
        },
    )
    .await;
    bar.finish_and_clear();
    publisher.close().await;
    let ended = match args.wait {
        Some(timeout) if !args.target.dry_run && !summary.replayed.is_empty() => {
            let ids: Vec<String> = summary.replayed.iter().map(|r| r.run_id.clone()).collect();
            Some(wait_for(db, &ids, timeout).await?)
        }
        _ => None,
    };
    if args.target.json {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            summary: &'a lifecycle_ops::ReplaySummary,
            #[serde(skip_serializing_if = "Option::is_none")]
            ended: Option<&'a Vec<lifecycle_ops::RunSummary>>,
        }
        output::json(&Out { summary: &summary, ended: ended.as_ref() });
    } else {
        for r in &summary.replayed {
            out!("re-checking  {}  {} {} {}", r.run_id, r.vendor, r.workflow, r.employee_email);
        }
        for id in &summary.would_replay {
            out!("would re-check  {id}");
        }
        for r in summary.refused.iter().chain(&summary.failed) {
            out!("not re-checked  {}  {}", r.run_id, r.reason);
        }
        if let Some(runs) = &ended {
            for r in runs {
                out!("{}  {}  {}", r.run_id, r.state, r.outcome.as_deref().unwrap_or(""));
            }
        }
        out!("{}", summary.line());
    }
    if let Some(runs) = &ended {
        let open = runs.iter().filter(|r| !r.state.is_terminal()).count();
        if open > 0 {
            return Err(Exit::Timeout(format!("{open} re-checked run(s) still unfinished")).into());
        }
    }
    if !summary.failed.is_empty() {
        return Err(Exit::Partial { message: summary.line(), code: EXIT_ERROR }.into());
    }
    if !summary.refused.is_empty() {
        return Err(Exit::Partial { message: summary.line(), code: EXIT_REFUSED }.into());
    }
    Ok(())
}

/// The runs `ids` once every one has ended, or as they are at the deadline.
async fn wait_for(db: &Db, ids: &[String], timeout: Duration) -> anyhow::Result<Vec<lifecycle_ops::RunSummary>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut runs = Vec::new();
        for id in ids {
            let detail = lifecycle_ops::run_detail(db, id).await?;
            runs.push(detail.run);
        }
        if runs.iter().all(|r| r.state.is_terminal()) || tokio::time::Instant::now() >= deadline {
            return Ok(runs);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
