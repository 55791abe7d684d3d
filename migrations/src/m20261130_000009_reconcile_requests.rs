//! Reconcile passes that an operator asks for (`lifecycle-ctl reconcile`, the
//! console's "Reconcile now") are carried out by a worker, through its own
//! connectors and rate limiters: the same budget its runs spend. A request
//! row is what asks; the worker that claims it runs the pass and ends it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconcileRequests {
    Table,
    Id,
    Vendor,
    RequestedBy,
    RequestedAt,
    /// The worker carrying it out, and since when (a claim that old without an
    /// end is taken again: its worker died mid-read).
    ClaimedBy,
    ClaimedAt,
    /// The pass it ran, when it ended, and why it failed.
    PassId,
    FinishedAt,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ReconcileRequests::Table)
                .if_not_exists()
                .col(string_len(ReconcileRequests::Id, 36).primary_key())
                .col(string_len(ReconcileRequests::Vendor, 32))
                .col(string_len(ReconcileRequests::RequestedBy, 255))
                .col(timestamp_with_time_zone(ReconcileRequests::RequestedAt))
                .col(string_len_null(ReconcileRequests::ClaimedBy, 255))
                .col(timestamp_with_time_zone_null(ReconcileRequests::ClaimedAt))
                .col(string_len_null(ReconcileRequests::PassId, 36))
                .col(timestamp_with_time_zone_null(ReconcileRequests::FinishedAt))
                .col(text_null(ReconcileRequests::Error))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_reconcile_requests_open")
                .table(ReconcileRequests::Table)
                .col(ReconcileRequests::FinishedAt)
                .col(ReconcileRequests::RequestedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ReconcileRequests::Table).if_exists().to_owned()).await
    }
}
