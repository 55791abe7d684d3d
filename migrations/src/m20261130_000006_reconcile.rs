//! Reconcile: each pass over a vendor's directory, and the findings it made
//! (kept open until a later pass no longer sees them, so "orphaned since
//! Tuesday" can be read). And who asked for a re-check of a run that needed
//! a person, so its outcome can say so.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconcilePasses {
    Table,
    Id,
    Vendor,
    /// `vendor` + the start of the periodic window it ran in: unique, so that
    /// of a fleet of workers one runs each scheduled pass. Null for a pass an
    /// operator asked for.
    Slot,
    RequestedBy,
    StartedAt,
    FinishedAt,
    Accounts,
    Findings,
    Error,
}

#[derive(DeriveIden)]
enum ReconcileFindings {
    Table,
    Id,
    Vendor,
    Kind,
    /// The address (or login) the account is known by at the vendor.
    AccountKey,
    VendorAccountId,
    PersonKey,
    Detail,
    FirstSeenAt,
    LastSeenAt,
    /// Set when a later pass no longer sees it.
    ResolvedAt,
    /// The event `--fix` made for it.
    FixEventId,
    FixedBy,
    FixedAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    RecheckedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ReconcilePasses::Table)
                .if_not_exists()
                .col(string_len(ReconcilePasses::Id, 36).primary_key())
                .col(string_len(ReconcilePasses::Vendor, 32))
                .col(string_len_null(ReconcilePasses::Slot, 96).unique_key())
                .col(string_len(ReconcilePasses::RequestedBy, 255))
                .col(timestamp_with_time_zone(ReconcilePasses::StartedAt))
                .col(timestamp_with_time_zone_null(ReconcilePasses::FinishedAt))
                .col(integer_null(ReconcilePasses::Accounts))
                .col(integer_null(ReconcilePasses::Findings))
                .col(text_null(ReconcilePasses::Error))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_reconcile_passes_vendor_started")
                .table(ReconcilePasses::Table)
                .col(ReconcilePasses::Vendor)
                .col(ReconcilePasses::StartedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ReconcileFindings::Table)
                .if_not_exists()
                .col(string_len(ReconcileFindings::Id, 36).primary_key())
                .col(string_len(ReconcileFindings::Vendor, 32))
                .col(string_len(ReconcileFindings::Kind, 32))
                .col(string_len(ReconcileFindings::AccountKey, 320))
                .col(string_len_null(ReconcileFindings::VendorAccountId, 255))
                .col(string_len_null(ReconcileFindings::PersonKey, 320))
                .col(text(ReconcileFindings::Detail))
                .col(timestamp_with_time_zone(ReconcileFindings::FirstSeenAt))
                .col(timestamp_with_time_zone(ReconcileFindings::LastSeenAt))
                .col(timestamp_with_time_zone_null(ReconcileFindings::ResolvedAt))
                .col(string_len_null(ReconcileFindings::FixEventId, 36))
                .col(string_len_null(ReconcileFindings::FixedBy, 255))
                .col(timestamp_with_time_zone_null(ReconcileFindings::FixedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_reconcile_findings_open")
                .table(ReconcileFindings::Table)
                .col(ReconcileFindings::Vendor)
                .col(ReconcileFindings::ResolvedAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(Table::alter().table(Runs::Table).add_column(string_len_null(Runs::RecheckedBy, 255)).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Runs::Table).drop_column(Runs::RecheckedBy).to_owned()).await?;
        m.drop_table(Table::drop().table(ReconcileFindings::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(ReconcilePasses::Table).if_exists().to_owned()).await
    }
}
