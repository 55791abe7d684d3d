//! HR systems as event sources (issue 27): each verified delivery, stored in
//! the transaction that precedes its 2xx and processed afterwards under a
//! lease (`hris_deliveries`), and what lifecycle last derived for each person
//! of each source and tenant (`hris_people`), which the next record is
//! compared with.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum HrisDeliveries {
    Table,
    Id,
    Source,
    Tenant,
    /// The source's identity of the delivery: a retry has the same one.
    DeliveryKey,
    TypeName,
    Kind,
    EmployeeId,
    OccurredAt,
    ReceivedAt,
    /// The body as received (never its headers: they carry the signature).
    Body,
    /// `pending`, `processed` or `needs_person`.
    State,
    Attempts,
    /// When it is next due (a transient HRIS API failure puts it later).
    NextAttemptAt,
    LeaseOwner,
    LeaseUntil,
    LastError,
    /// What processing did, or why a person must look at it.
    Outcome,
    /// The events it made, as a JSON array of ids (none: nothing changed).
    EventIds,
    ProcessedAt,
}

#[derive(DeriveIden)]
enum HrisPeople {
    Table,
    Source,
    Tenant,
    EmployeeId,
    Email,
    LastEventType,
    /// The apps lifecycle last asked for them (JSON) and their digest.
    Apps,
    AppsHash,
    /// Bumped by every write: part of each event's idempotency key.
    Version,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(HrisDeliveries::Table)
                .if_not_exists()
                .col(string_len(HrisDeliveries::Id, 36).primary_key())
                .col(string_len(HrisDeliveries::Source, 16))
                .col(string_len(HrisDeliveries::Tenant, 64))
                .col(string_len(HrisDeliveries::DeliveryKey, 255))
                .col(string_len(HrisDeliveries::TypeName, 64))
                .col(string_len(HrisDeliveries::Kind, 16))
                .col(string_len_null(HrisDeliveries::EmployeeId, 255))
                .col(timestamp_with_time_zone_null(HrisDeliveries::OccurredAt))
                .col(timestamp_with_time_zone(HrisDeliveries::ReceivedAt))
                .col(text(HrisDeliveries::Body))
                .col(string_len(HrisDeliveries::State, 16))
                .col(integer(HrisDeliveries::Attempts).default(0))
                .col(timestamp_with_time_zone(HrisDeliveries::NextAttemptAt))
                .col(string_len_null(HrisDeliveries::LeaseOwner, 255))
                .col(timestamp_with_time_zone_null(HrisDeliveries::LeaseUntil))
                .col(text_null(HrisDeliveries::LastError))
                .col(text_null(HrisDeliveries::Outcome))
                .col(text_null(HrisDeliveries::EventIds))
                .col(timestamp_with_time_zone_null(HrisDeliveries::ProcessedAt))
                .to_owned(),
        )
        .await?;
        // A source's retry of a delivery is the same row.
        m.create_index(
            Index::create()
                .name("ux_hris_deliveries_key")
                .table(HrisDeliveries::Table)
                .col(HrisDeliveries::Source)
                .col(HrisDeliveries::Tenant)
                .col(HrisDeliveries::DeliveryKey)
                .unique()
                .to_owned(),
        )
        .await?;
        // The processing loop's question: which are due.
        m.create_index(
            Index::create()
                .name("ix_hris_deliveries_due")
                .table(HrisDeliveries::Table)
                .col(HrisDeliveries::State)
                .col(HrisDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(HrisPeople::Table)
                .if_not_exists()
                .col(string_len(HrisPeople::Source, 16))
                .col(string_len(HrisPeople::Tenant, 64))
                .col(string_len(HrisPeople::EmployeeId, 255))
                .col(string_len(HrisPeople::Email, 320))
                .col(string_len(HrisPeople::LastEventType, 16))
                .col(text(HrisPeople::Apps))
                .col(string_len(HrisPeople::AppsHash, 64))
                .col(integer(HrisPeople::Version))
                .col(timestamp_with_time_zone(HrisPeople::UpdatedAt))
                .primary_key(
                    Index::create().col(HrisPeople::Source).col(HrisPeople::Tenant).col(HrisPeople::EmployeeId),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(HrisPeople::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(HrisDeliveries::Table).if_exists().to_owned()).await
    }
}
