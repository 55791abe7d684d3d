//! Lane leases and worker presence (issue 29): which worker consumes which
//! vendor lane, until when, and which workers are alive. RabbitMQ 3.10 gives
//! a single-active-consumer queue to its oldest consumer and does not tell a
//! consumer whether it is the active one, so the fleet shares the lanes out
//! here: every change of holder is one conditional `UPDATE`, so two workers
//! can never both hold a lane.
//!
//! Times are the caller's (`now`), as for the runs' leases: the workers'
//! clocks must agree to well within a lease's length.

use crate::Result;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

/// One lane's lease.
pub mod lane_lease {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "lane_leases")]
    pub struct Model {
        /// The vendor's name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub lane: String,
        /// The worker consuming it; none once given up.
        pub holder: Option<String>,
        /// Free to take after this, whoever holds it.
        pub expires_at: Option<DateTimeUtc>,
        pub taken_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One worker's presence.
pub mod fleet_worker {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "fleet_workers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub worker_id: String,
        pub seen_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use lane_lease::Model as LaneLease;

/// A row per lane, free, where there is none yet (the first worker makes them).
pub async fn ensure(db: &impl ConnectionTrait, lanes: &[&str]) -> Result<()> {
    if lanes.is_empty() {
        return Ok(());
    }
    let rows = lanes.iter().map(|l| lane_lease::ActiveModel {
        lane: Set(l.to_string()),
        holder: Set(None),
        expires_at: Set(None),
        taken_at: Set(None),
    });
    lane_lease::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(lane_lease::Column::Lane).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Marks `worker` present at `now`.
pub async fn mark_present(db: &impl ConnectionTrait, worker: &str, now: DateTime<Utc>) -> Result<()> {
    fleet_worker::Entity::insert(fleet_worker::ActiveModel { worker_id: Set(worker.to_string()), seen_at: Set(now) })
        .on_conflict(
            OnConflict::column(fleet_worker::Column::WorkerId).update_column(fleet_worker::Column::SeenAt).to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The workers seen after `since`, by id.
pub async fn live_workers(db: &impl ConnectionTrait, since: DateTime<Utc>) -> Result<Vec<String>> {
    let rows = fleet_worker::Entity::find()
        .filter(fleet_worker::Column::SeenAt.gt(since))
        .order_by_asc(fleet_worker::Column::WorkerId)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|w| w.worker_id).collect())
}

/// Forgets workers not seen since `before` (each start is a new id, so rows
/// of stopped workers would otherwise pile up).
pub async fn forget_workers(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64> {
    let res = fleet_worker::Entity::delete_many().filter(fleet_worker::Column::SeenAt.lt(before)).exec(db).await?;
    Ok(res.rows_affected)
}

/// Every lane's lease, by lane.
pub async fn leases(db: &impl ConnectionTrait) -> Result<Vec<LaneLease>> {
    Ok(lane_lease::Entity::find().order_by_asc(lane_lease::Column::Lane).all(db).await?)
}

/// Extends every lease `worker` holds to `until`; how many. A lease that
/// lapsed but that nobody took is still the worker's (its holder column
/// names it), so it is extended too: a taker's condition and this one
/// cannot both match the row.
pub async fn renew(db: &impl ConnectionTrait, worker: &str, until: DateTime<Utc>) -> Result<u64> {
    let res = lane_lease::Entity::update_many()
        .col_expr(lane_lease::Column::ExpiresAt, Expr::value(until))
        .filter(lane_lease::Column::Holder.eq(worker))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Takes `lane` for `worker` until `until` when it is free or lapsed at
/// `now`: true if this worker now holds it. One conditional statement, so of
/// two workers taking the same lane at once exactly one wins.
pub async fn take(
    db: &impl ConnectionTrait,
    lane: &str,
    worker: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool> {
    let free = Condition::any()
        .add(lane_lease::Column::Holder.is_null())
        .add(lane_lease::Column::ExpiresAt.is_null())
        .add(lane_lease::Column::ExpiresAt.lte(now));
    let res = lane_lease::Entity::update_many()
        .col_expr(lane_lease::Column::Holder, Expr::value(worker))
        .col_expr(lane_lease::Column::ExpiresAt, Expr::value(until))
        .col_expr(lane_lease::Column::TakenAt, Expr::value(now))
        .filter(lane_lease::Column::Lane.eq(lane))
        .filter(free)
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Gives `lane` up, if `worker` still holds it: free for the next taker at once.
pub async fn release(db: &impl ConnectionTrait, lane: &str, worker: &str) -> Result<bool> {
    let res = lane_lease::Entity::update_many()
        .col_expr(lane_lease::Column::Holder, Expr::value(Option::<String>::None))
        .col_expr(lane_lease::Column::ExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(lane_lease::Column::Lane.eq(lane))
        .filter(lane_lease::Column::Holder.eq(worker))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// A worker that stops: its lanes free at once and its presence gone, so the
/// others need not wait for its leases to lapse.
pub async fn leave(db: &impl ConnectionTrait, worker: &str) -> Result<()> {
    lane_lease::Entity::update_many()
        .col_expr(lane_lease::Column::Holder, Expr::value(Option::<String>::None))
        .col_expr(lane_lease::Column::ExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(lane_lease::Column::Holder.eq(worker))
        .exec(db)
        .await?;
    fleet_worker::Entity::delete_many().filter(fleet_worker::Column::WorkerId.eq(worker)).exec(db).await?;
    Ok(())
}
