//! `lifecycle-ctl hr deliveries ...`: the HR systems' deliveries (issue 27).
//! List them (those that need a person first of all: each with why and the
//! raw delivery), show one, and retry one once its cause is fixed at the
//! source (audited). The operations live in `lifecycle_ops::hris`, shared
//! with the console.

use clap::Subcommand;
use lifecycle_ops::db::Db;
use lifecycle_ops::hris::{self, DeliveryView};
use lifecycle_ops::query::deliveries::{DeliveryFilter, DeliveryState};
use std::io::Write;

#[derive(Subcommand, Debug)]
pub enum HrCommand {
    /// Deliveries from HR systems (BambooHR, HiBob, Personio).
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
}

#[derive(Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// Newest first: which source and tenant sent it, about whom, where it is, and why.
    List {
        /// Only this state: pending, processed, needs_person.
        #[arg(long, value_parser = |s: &str| s.parse::<DeliveryState>())]
        state: Option<DeliveryState>,
        /// Only this source: bamboohr, hibob, personio.
        #[arg(long)]
        source: Option<String>,
        /// Only deliveries about this employee (the source's id).
        #[arg(long)]
        employee: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// One delivery, with the body the source sent.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Process a delivery that needs a person again, now (its cause fixed at the source). Audited.
    Retry {
        id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn execute(db: &Db, actor: &str, cmd: HrCommand) -> anyhow::Result<()> {
    let HrCommand::Deliveries(cmd) = cmd;
    match cmd {
        DeliveriesCommand::List { state, source, employee, limit, json } => {
            let filter = DeliveryFilter { state, source, employee_id: employee, limit: Some(limit) };
            let list = hris::list_deliveries(db, &filter).await?;
            if json {
                crate::output::json(&list);
            } else if list.is_empty() {
                out!("no delivery matches");
            } else {
                for d in &list {
                    line(d);
                }
            }
        }
        DeliveriesCommand::Show { id, json } => {
            let d = hris::delivery(db, &id).await?;
            if json {
                crate::output::json(&d);
            } else {
                line(&d);
                if let Some(e) = &d.last_error {
                    out!("  last error: {e}");
                }
                if !d.event_ids.is_empty() {
                    out!("  events: {}", d.event_ids.join(", "));
                }
                out!("  body: {}", d.body);
            }
        }
        DeliveriesCommand::Retry { id, reason, json } => {
            let d = hris::retry_delivery(db, &id, actor, reason.as_deref()).await?;
            if json {
                crate::output::json(&d);
            } else {
                out!("delivery {} is due again; the producer processes it within moments", d.id);
            }
        }
    }
    Ok(())
}

fn line(d: &DeliveryView) {
    out!(
        "{}  {}  {}/{}  {}  employee {}  {}  attempts {}{}",
        d.id,
        d.received_at.format("%Y-%m-%d %H:%M:%S"),
        d.source,
        d.tenant,
        d.type_name,
        d.employee_id.as_deref().unwrap_or("-"),
        d.state.as_str(),
        d.attempts,
        d.outcome.as_deref().map(|o| format!("  — {o}")).unwrap_or_default(),
    );
}
