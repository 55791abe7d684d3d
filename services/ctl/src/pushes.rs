//! `lifecycle-ctl pushes ...`: big SCIM group writes' fan-outs (issue 29).
//! List them with their progress, or watch one until it is done (a progress
//! bar of its members on a terminal, a line per change elsewhere). The
//! reads are `lifecycle_ops::push`, shared with the admin API and console.

use clap::Subcommand;
use lifecycle_ops::db::Db;
use lifecycle_ops::push::{self, Push};
use std::io::Write;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum PushesCommand {
    /// Newest first: the group, what changed, members done of the total, events made, state.
    List {
        /// Only those not done yet.
        #[arg(long)]
        pending: bool,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Follow one push until it is done.
    Watch {
        id: String,
        /// How often to look, in milliseconds.
        #[arg(long, default_value_t = 500)]
        every_ms: u64,
    },
}

pub async fn execute(db: &Db, cmd: PushesCommand) -> anyhow::Result<()> {
    match cmd {
        PushesCommand::List { pending, limit, json } => {
            let list = push::list(db, pending, limit).await?;
            if json {
                crate::output::json(&list);
            } else {
                for p in &list {
                    out!("{}", line(p));
                }
                out!("{} push(es)", list.len());
            }
        }
        PushesCommand::Watch { id, every_ms } => {
            let Some(mut p) = push::get(db, &id).await? else { anyhow::bail!("no push {id}") };
            let bar = crate::output::progress_bar(u64::try_from(p.members).unwrap_or(0), "members");
            let mut last = -1;
            loop {
                bar.set_position(u64::try_from(p.members_done).unwrap_or(0));
                bar.set_message(format!("{} event(s)", p.events));
                if bar.is_hidden() && p.members_done != last {
                    out!("{}", line(&p));
                    last = p.members_done;
                }
                if push::is_done(&p) {
                    bar.finish();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(every_ms.max(50))).await;
                p = push::get(db, &id).await?.ok_or_else(|| anyhow::anyhow!("push {id} is gone"))?;
            }
            if !bar.is_hidden() {
                out!("{}", line(&p));
            }
        }
    }
    Ok(())
}

fn line(p: &Push) -> String {
    let took = match (p.started_at, p.finished_at) {
        (Some(s), Some(f)) => format!(" in {:.1}s", (f - s).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    };
    let error = p.last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
    format!(
        "{}  {:<24} {:<8} {:<8} {}/{} members, {} event(s), created {}{took}{error}",
        p.id,
        p.group_name,
        p.change,
        p.state,
        p.members_done,
        p.members,
        p.events,
        p.created_at.format("%Y-%m-%d %H:%M:%S")
    )
}
