//! Pushes: a SCIM group write that touches many people stores its membership
//! change and one fan-out record here in the transaction of its answer; the
//! per-person events are made afterwards, one batch of members at a time, by
//! a producer holding the push's lease (`lifecycle_store::push`).
//!
//! A push's members are kept in batches of ids (one JSON array per row), so a
//! push of 50,000 people is 100 rows, not 50,000, in the request that makes it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScimPushes {
    Table,
    Id,
    GroupId,
    GroupName,
    Change,
    Source,
    Key,
    Members,
    MembersDone,
    Events,
    Batches,
    NextBatch,
    State,
    LeaseOwner,
    LeaseUntil,
    Attempts,
    LastError,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum ScimPushBatches {
    Table,
    PushId,
    Seq,
    MemberIds,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScimPushes::Table)
                .if_not_exists()
                .col(string_len(ScimPushes::Id, 36).primary_key())
                .col(string_len(ScimPushes::GroupId, 36))
                // The group's displayName when the push was made (the group may be renamed or deleted since).
                .col(string_len(ScimPushes::GroupName, 255))
                // What the write did to the members: add, remove, replace, members (several), rename, delete.
                .col(string_len(ScimPushes::Change, 16))
                // Who made it (`scim`).
                .col(string_len(ScimPushes::Source, 32))
                // The start of each member's event's idempotency key (`group:{id}:v{version}`).
                .col(string_len(ScimPushes::Key, 255))
                .col(integer(ScimPushes::Members))
                .col(integer(ScimPushes::MembersDone))
                .col(integer(ScimPushes::Events))
                .col(integer(ScimPushes::Batches))
                // Batches before it are done (each in the transaction that stored its events).
                .col(integer(ScimPushes::NextBatch))
                // `pending` until every batch is done, then `done`.
                .col(string_len(ScimPushes::State, 16))
                .col(string_len_null(ScimPushes::LeaseOwner, 64))
                .col(timestamp_with_time_zone_null(ScimPushes::LeaseUntil))
                .col(integer(ScimPushes::Attempts))
                .col(text_null(ScimPushes::LastError))
                .col(timestamp_with_time_zone(ScimPushes::CreatedAt))
                .col(timestamp_with_time_zone_null(ScimPushes::StartedAt))
                .col(timestamp_with_time_zone_null(ScimPushes::FinishedAt))
                .to_owned(),
        )
        .await?;
        // The drainers look for pending pushes, oldest first.
        m.create_index(
            Index::create()
                .name("ix_scim_pushes_state_created")
                .table(ScimPushes::Table)
                .col(ScimPushes::State)
                .col(ScimPushes::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimPushBatches::Table)
                .if_not_exists()
                .col(string_len(ScimPushBatches::PushId, 36))
                // 0-based; batch `seq` is done once the push's next_batch is past it.
                .col(integer(ScimPushBatches::Seq))
                // The SCIM user ids of the batch, a JSON array.
                .col(text(ScimPushBatches::MemberIds))
                .primary_key(Index::create().col(ScimPushBatches::PushId).col(ScimPushBatches::Seq))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [ScimPushBatches::Table.into_iden(), ScimPushes::Table.into_iden()] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
