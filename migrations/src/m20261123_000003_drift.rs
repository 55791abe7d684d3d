//! Drift: what a vendor reports that lifecycle did not do (a user added
//! outside an HR joiner, deactivated or deleted by hand), kept for operators.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Drift {
    Table,
    Id,
    Vendor,
    Kind,
    VendorUserId,
    Email,
    Details,
    EventId,
    DetectedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Drift::Table)
                .if_not_exists()
                .col(big_integer(Drift::Id).auto_increment().primary_key())
                .col(string_len(Drift::Vendor, 32))
                .col(string_len(Drift::Kind, 64))
                .col(string_len_null(Drift::VendorUserId, 255))
                .col(string_len_null(Drift::Email, 320))
                .col(text(Drift::Details))
                // The webhook delivery (events row) that revealed it.
                .col(string_len_null(Drift::EventId, 36))
                .col(timestamp_with_time_zone(Drift::DetectedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_drift_detected_at").table(Drift::Table).col(Drift::DetectedAt).to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_drift_vendor_email")
                .table(Drift::Table)
                .col(Drift::Vendor)
                .col(Drift::Email)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Drift::Table).if_exists().to_owned()).await
    }
}
