//! `lifecycle-ctl held ...`: runs the blast-radius guard (`[safety]`) held
//! past a threshold. List them; release them (they run) or cancel them (they
//! end `cancelled`), all or by filter, after seeing the count and a sample.
//! The operations live in `lifecycle_ops::safety`, shared with the admin API.

use crate::dead::confirm;
use crate::{output, parse_time};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use lifecycle_domain::VendorKind;
use lifecycle_ops::db::Db;
use lifecycle_ops::safety::{self, HeldFilter, HeldOutcome, HeldView};
use std::io::Write;

/// Runs shown before a release or a cancel is confirmed.
const SAMPLE: usize = 10;

#[derive(Subcommand, Debug)]
pub enum HeldCommand {
    /// How many runs are held (by vendor), and the oldest of them.
    List {
        #[command(flatten)]
        filter: HeldArgs,
        /// How many runs to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Release the held runs matching the filters (all without one): they run now and are not
    /// held again. Shows the count and a sample, then asks. Audited.
    Release(ActArgs),
    /// Cancel the held runs matching the filters (all without one): they end cancelled, naming
    /// you. Shows the count and a sample, then asks. Audited.
    Cancel(ActArgs),
}

#[derive(Args, Debug, Clone)]
pub struct HeldArgs {
    /// Only this vendor.
    #[arg(long, value_enum)]
    pub vendor: Option<VendorKind>,
    /// Only runs that arrived at or after: RFC 3339 or an age (2h, 3d).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only this person: their e-mail address or HR employee id.
    #[arg(long)]
    pub employee: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ActArgs {
    #[command(flatten)]
    pub filter: HeldArgs,
    /// Why (kept in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Do it without asking.
    #[arg(long)]
    pub yes: bool,
    /// Show what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

impl HeldArgs {
    fn filter(&self) -> HeldFilter {
        HeldFilter { vendor: self.vendor, since: self.since, employee: self.employee.clone() }
    }
}

pub async fn execute(db: &Db, actor: &str, cmd: HeldCommand) -> anyhow::Result<()> {
    match cmd {
        HeldCommand::List { filter, limit, json } => {
            let view = safety::held(db, &filter.filter(), limit).await?;
            if json {
                output::json(&view);
            } else {
                show(&view);
            }
        }
        HeldCommand::Release(args) => act(db, actor, args, true).await?,
        HeldCommand::Cancel(args) => act(db, actor, args, false).await?,
    }
    Ok(())
}

fn show(view: &HeldView) {
    let by: Vec<String> = view.by_vendor.iter().map(|(v, n)| format!("{v}: {n}")).collect();
    if !view.sample.is_empty() {
        output::runs(&view.sample, false);
    }
    out!("{} held run(s){}", view.count, if by.is_empty() { String::new() } else { format!(" ({})", by.join(", ")) });
}

async fn act(db: &Db, actor: &str, args: ActArgs, release: bool) -> anyhow::Result<()> {
    let filter = args.filter.filter();
    let verb = if release { "release" } else { "cancel" };
    if !args.dry_run && !args.yes {
        let view = safety::held(db, &filter, SAMPLE).await?;
        if view.count == 0 {
            out!("no held run matches; nothing to {verb}");
            return Ok(());
        }
        show(&view);
        confirm(&format!("{verb} these {} held run(s)?", view.count), verb)?;
    }
    let reason = args.reason.as_deref();
    let done: HeldOutcome = if release {
        safety::release(db, &filter, actor, reason, args.dry_run).await?
    } else {
        safety::cancel(db, &filter, actor, reason, args.dry_run).await?
    };
    if args.json {
        output::json(&done);
    } else {
        out!("{}", done.line());
    }
    Ok(())
}
