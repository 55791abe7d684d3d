//! The blast-radius guard (`[safety]`): one row per destructive run admitted
//! to work (a leaver made `queued`), so that how many were admitted in a
//! sliding window is counted in the database, the same for every producer and
//! worker of a fleet and across restarts. Runs past a threshold are `held`
//! (a state stored as its name in `runs.state`: no change there).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SafetyAdmissions {
    Table,
    RunId,
    Vendor,
    Workflow,
    AdmittedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SafetyAdmissions::Table)
                .if_not_exists()
                .col(string_len(SafetyAdmissions::RunId, 36).primary_key())
                .col(string_len(SafetyAdmissions::Vendor, 32))
                .col(string_len(SafetyAdmissions::Workflow, 32))
                .col(timestamp_with_time_zone(SafetyAdmissions::AdmittedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_safety_admissions_window")
                .table(SafetyAdmissions::Table)
                .col(SafetyAdmissions::Workflow)
                .col(SafetyAdmissions::AdmittedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SafetyAdmissions::Table).if_exists().to_owned()).await
    }
}
