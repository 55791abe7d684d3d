//! Runs and their state machine.
//!
//! ```text
//! queued ──claim──▶ running ──▶ succeeded | needs_manual_action | dead
//!    ▲                 │
//!    │                 └──transient failure──▶ retry_scheduled ──claim──▶ running
//!    └──────── operator replay of a dead run ─────────────────────────────┘
//! ```
//!
//! Every transition is a conditional update; the caller learns from the
//! affected row count whether it won.

use crate::entity::run;
use crate::Result;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use sea_orm::sea_query::{Alias, Expr, Func, LikeExpr, Order, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, Iterable, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait, UpdateMany,
};
use std::time::Duration;

pub use run::Model as Run;

mod claim;
mod ending;
mod listing;
mod order;
#[cfg(test)]
mod tests;

pub use claim::{claim, claim_as_sent, extend_lease, ClaimOf, Claimed};
pub use ending::{finish, finish_then_next, finish_unheld, release, schedule_retry, Ended, Finish};
pub use listing::{count_unfinished, counts, list, RunFilter};
pub use order::{
    block, discard, earlier_unfinished, later_started, next_unfinished, overdue, redispatch, reset_for_replay,
};

fn chrono(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

fn unfinished() -> SimpleExpr {
    run::Column::State.is_in(RunState::UNFINISHED)
}

/// The runs for the same person and vendor that arrived before `seq` and are
/// unfinished. A `scheduled` run holds nothing back until it is due: an HR
/// run never waits behind one (a newer event replaces what is scheduled, an
/// older one is superseded), and a Pipedrive webhook's follow-up reacts to
/// what already happened there, not on the scheduled run's day.
fn earlier_unfinished_of(vendor: VendorKind, person_key: &str, seq: i64) -> Condition {
    Condition::all()
        .add(run::Column::Vendor.eq(vendor))
        .add(run::Column::PersonKey.eq(person_key))
        .add(run::Column::Seq.lt(seq))
        .add(unfinished())
        .add(run::Column::State.ne(RunState::Scheduled))
}

/// The runs for the same person and vendor that arrived after `seq` and have started or ended.
fn later_started_of(vendor: VendorKind, person_key: &str, seq: i64) -> Condition {
    Condition::all()
        .add(run::Column::Vendor.eq(vendor))
        .add(run::Column::PersonKey.eq(person_key))
        .add(run::Column::Seq.gt(seq))
        .add(Condition::any().add(run::Column::Attempts.gt(0)).add(run::Column::State.is_in(APPLIED)))
}

/// Terminal states that reached the vendor (or tried): not superseded or
/// cancelled runs, which never ran.
const APPLIED: [RunState; 3] = [RunState::Succeeded, RunState::NeedsManualAction, RunState::Dead];

/// True when no run matches `cond`: a guard inside a transition's own update,
/// so that a check made just before cannot be overtaken by another writer.
fn none_match(cond: Condition) -> SimpleExpr {
    Expr::exists(Query::select().expr(Expr::val(1)).from(run::Entity).cond_where(cond).to_owned()).not()
}

/// Serializes, until the end of the caller's transaction, the transitions whose
/// guards look at other runs of one person at one vendor (a claim, a replay).
/// PostgreSQL needs it: two READ COMMITTED transactions would each pass the
/// other's not-yet-committed guard. SQLite already has one writer at a time.
pub async fn lock_person(txn: &impl ConnectionTrait, vendor: VendorKind, person_key: &str) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        let key = format!("lifecycle-run-order\u{1f}{vendor}\u{1f}{person_key}");
        txn.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}

pub async fn get(db: &impl ConnectionTrait, id: &str) -> Result<Option<Run>> {
    Ok(run::Entity::find().filter(run::Column::Id.eq(id)).one(db).await?)
}

pub async fn for_event(db: &impl ConnectionTrait, event_id: &str) -> Result<Vec<Run>> {
    Ok(run::Entity::find().filter(run::Column::EventId.eq(event_id)).order_by_asc(run::Column::Seq).all(db).await?)
}
