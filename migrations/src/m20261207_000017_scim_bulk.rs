//! Entra's API-driven inbound provisioning (docs/integrators/scim-entra.md): each
//! SCIM `BulkRequest` posted to `/scim/v2/bulkUpload` as it was received,
//! and one row per operation with its result, so that an operator can read
//! what became of each person and a producer that stops half-way lets
//! another finish the rest.
//!
//! A request's id is the hash of its body: the same request sent again finds
//! its row (unique primary key) and nothing is stored or done twice.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScimBulkRequests {
    Table,
    Id,
    Body,
    Operations,
    State,
    LeaseOwner,
    LeaseUntil,
    Attempts,
    ReceivedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum ScimBulkOperations {
    Table,
    RequestId,
    Position,
    BulkId,
    State,
    Status,
    ScimType,
    Detail,
    UserId,
    Events,
    DoneAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScimBulkRequests::Table)
                .if_not_exists()
                // The hex SHA-256 of the canonical body.
                .col(string_len(ScimBulkRequests::Id, 64).primary_key())
                // The request as received (JSON): what the operations are read from.
                .col(text(ScimBulkRequests::Body))
                .col(integer(ScimBulkRequests::Operations))
                // `pending` until every operation has its result, then `done`.
                .col(string_len(ScimBulkRequests::State, 16))
                // The producer working on it, until when (a lease: another takes over after).
                .col(string_len_null(ScimBulkRequests::LeaseOwner, 64))
                .col(timestamp_with_time_zone_null(ScimBulkRequests::LeaseUntil))
                .col(integer(ScimBulkRequests::Attempts))
                .col(timestamp_with_time_zone(ScimBulkRequests::ReceivedAt))
                .col(timestamp_with_time_zone_null(ScimBulkRequests::FinishedAt))
                .to_owned(),
        )
        .await?;
        // The processors look for pending requests, oldest first.
        m.create_index(
            Index::create()
                .name("ix_scim_bulk_requests_state_received")
                .table(ScimBulkRequests::Table)
                .col(ScimBulkRequests::State)
                .col(ScimBulkRequests::ReceivedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimBulkOperations::Table)
                .if_not_exists()
                .col(string_len(ScimBulkOperations::RequestId, 64))
                // Its index in the request's `Operations` (0-based).
                .col(integer(ScimBulkOperations::Position))
                .col(string_len(ScimBulkOperations::BulkId, 255))
                // `pending`, `succeeded` or `failed`.
                .col(string_len(ScimBulkOperations::State, 16))
                // The HTTP status the write would have answered (201, 200, 400, 409, ...).
                .col(integer_null(ScimBulkOperations::Status))
                .col(string_len_null(ScimBulkOperations::ScimType, 32))
                .col(text_null(ScimBulkOperations::Detail))
                // The SCIM user it created or changed.
                .col(string_len_null(ScimBulkOperations::UserId, 36))
                .col(integer(ScimBulkOperations::Events))
                .col(timestamp_with_time_zone_null(ScimBulkOperations::DoneAt))
                .primary_key(Index::create().col(ScimBulkOperations::RequestId).col(ScimBulkOperations::Position))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [ScimBulkOperations::Table.into_iden(), ScimBulkRequests::Table.into_iden()] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
