//! Outgoing notifications (`[notifications]`): which runs each webhook was
//! told about, so that a run is announced once per kind and occurrence, and a
//! restart neither loses nor repeats one; and, per webhook, since when it
//! counts runs and which worker of a fleet sends to it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum NotificationHooks {
    Table,
    /// The webhook's configured name (never its URL: that is often the credential).
    Name,
    /// When a sender first saw it: runs that entered a state before are not announced.
    Since,
    /// The worker that sends to it, until when (a lease: one sender per fleet).
    LeaseOwner,
    LeaseUntil,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Webhook,
    RunId,
    Kind,
    /// The run's `replays` when it entered the state: a run replayed and
    /// ending the same way again is announced again.
    Occurrence,
    /// The message it is in: rows claimed together are sent together, and a
    /// message that failed is sent again with the same id.
    BatchId,
    ClaimedAt,
    /// Deliveries tried for its message.
    Attempts,
    /// When its message was delivered (or given up on): set in the
    /// transaction that records the result; null while it is still to be sent.
    SentAt,
    /// `delivered` or `dropped` (the receiver refused it, 4xx, a few times).
    Result,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(NotificationHooks::Table)
                .if_not_exists()
                .col(string_len(NotificationHooks::Name, 64).primary_key())
                .col(timestamp_with_time_zone(NotificationHooks::Since))
                .col(string_len_null(NotificationHooks::LeaseOwner, 255))
                .col(timestamp_with_time_zone_null(NotificationHooks::LeaseUntil))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Notifications::Table)
                .if_not_exists()
                .col(string_len(Notifications::Webhook, 64))
                .col(string_len(Notifications::RunId, 36))
                .col(string_len(Notifications::Kind, 32))
                .col(integer(Notifications::Occurrence))
                .col(string_len(Notifications::BatchId, 36))
                .col(timestamp_with_time_zone(Notifications::ClaimedAt))
                .col(integer(Notifications::Attempts).default(0))
                .col(timestamp_with_time_zone_null(Notifications::SentAt))
                .col(string_len_null(Notifications::Result, 16))
                .primary_key(
                    Index::create()
                        .col(Notifications::Webhook)
                        .col(Notifications::RunId)
                        .col(Notifications::Kind)
                        .col(Notifications::Occurrence),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_notifications_batch")
                .table(Notifications::Table)
                .col(Notifications::Webhook)
                .col(Notifications::Kind)
                .col(Notifications::SentAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Notifications::Table).if_exists().to_owned()).await?;
        m.drop_table(Table::drop().table(NotificationHooks::Table).if_exists().to_owned()).await
    }
}
