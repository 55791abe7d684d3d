//! `lifecycle-ctl approvals ...`: runs awaiting an approver (`[approval]`).
//! List them; approve one (it runs) or reject one (it ends `rejected`), once,
//! as one of the rule's approvers (your OS user, or `--actor`), audited. The
//! operations live in `lifecycle_ops::approvals`, shared with the admin API.

use crate::output;
use clap::Subcommand;
use lifecycle_config::Settings;
use lifecycle_ops::approvals::{self, ApprovalView};
use lifecycle_ops::db::Db;
use std::io::Write;

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// Runs awaiting approval: what made them need it, who may decide, the deadline.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Approve a run awaiting approval: it runs now. Audited.
    Approve {
        run_id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Reject a run awaiting approval: it ends rejected, naming you and the reason. Audited.
    Reject {
        run_id: String,
        /// Why (required; shown on the run and kept in the audit log).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn execute(settings: &Settings, db: &Db, actor: &str, cmd: ApprovalsCommand) -> anyhow::Result<()> {
    match cmd {
        ApprovalsCommand::List { json } => {
            let all = approvals::list(db).await?;
            if json {
                output::json(&all);
            } else {
                for a in &all {
                    show(a);
                }
                out!("{} run(s) awaiting approval", all.len());
            }
        }
        ApprovalsCommand::Approve { run_id, reason, json } => {
            let done = approvals::approve(db, &run_id, actor, reason.as_deref()).await?;
            report(&done, json);
        }
        ApprovalsCommand::Reject { run_id, reason, json } => {
            let publisher = crate::dead::publisher(settings);
            let done = approvals::reject(db, &publisher, &run_id, actor, &reason).await;
            publisher.close().await;
            report(&done?, json);
        }
    }
    Ok(())
}

fn show(a: &ApprovalView) {
    let escalated = if a.escalated_at.is_some() { " (escalated)" } else { "" };
    out!(
        "{}  {}  {}  {}  approvers: {}{escalated}  deadline {}",
        a.run.run_id,
        a.run.employee_email,
        a.rule,
        a.run.state,
        a.approvers.join(", "),
        a.deadline_at.to_rfc3339()
    );
}

fn report(a: &ApprovalView, json: bool) {
    if json {
        output::json(a);
    } else {
        out!(
            "run {} {} by {}; now {}",
            a.run.run_id,
            a.decision.as_deref().unwrap_or("?"),
            a.decided_by.as_deref().unwrap_or("?"),
            a.run.state
        );
    }
}
