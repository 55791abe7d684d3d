//! The schema, one migration per change, applied in order by
//! `lifecycle-ctl migrate` (and at start-up unless disabled). The same
//! migrations run on SQLite and PostgreSQL: only portable column types.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_operators;
mod m20261123_000003_drift;
mod m20261123_000004_step_history;
mod m20261130_000005_time;
mod m20261130_000006_reconcile;
mod m20261130_000007_scim;
mod m20261130_000008_traceparent;
mod m20261130_000009_reconcile_requests;
mod m20261207_000010_safety;
mod m20261207_000013_run_edits;
mod m20261207_000014_notifications;
mod m20261207_000015_approvals;
mod m20261207_000016_hris;
mod m20261207_000017_scim_bulk;
mod m20261207_000018_pushes;
mod m20261207_000019_lanes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_operators::Migration),
            Box::new(m20261123_000003_drift::Migration),
            Box::new(m20261123_000004_step_history::Migration),
            Box::new(m20261130_000005_time::Migration),
            Box::new(m20261130_000006_reconcile::Migration),
            Box::new(m20261130_000007_scim::Migration),
            Box::new(m20261130_000008_traceparent::Migration),
            Box::new(m20261130_000009_reconcile_requests::Migration),
            Box::new(m20261207_000010_safety::Migration),
            Box::new(m20261207_000013_run_edits::Migration),
            Box::new(m20261207_000014_notifications::Migration),
            Box::new(m20261207_000015_approvals::Migration),
            Box::new(m20261207_000016_hris::Migration),
            Box::new(m20261207_000017_scim_bulk::Migration),
            Box::new(m20261207_000018_pushes::Migration),
            Box::new(m20261207_000019_lanes::Migration),
        ]
    }
}
