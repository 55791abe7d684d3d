//! What operators need: replays, discards and an audit log of their actions.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    ReplayedAt,
    DiscardedAt,
    DiscardReason,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    TargetKind,
    TargetId,
    Reason,
    Details,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        // A replayed run's age (retry.max_age) counts from its last replay.
        m.alter_table(
            Table::alter().table(Runs::Table).add_column(timestamp_with_time_zone_null(Runs::ReplayedAt)).to_owned(),
        )
        .await?;
        // A discarded run stays `dead` (the contract's states are fixed) and is marked.
        m.alter_table(
            Table::alter().table(Runs::Table).add_column(timestamp_with_time_zone_null(Runs::DiscardedAt)).to_owned(),
        )
        .await?;
        m.alter_table(Table::alter().table(Runs::Table).add_column(text_null(Runs::DiscardReason)).to_owned()).await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                .col(big_integer(AuditLog::Id).auto_increment().primary_key())
                .col(timestamp_with_time_zone(AuditLog::At))
                .col(string_len(AuditLog::Actor, 255))
                .col(string_len(AuditLog::Action, 64))
                .col(string_len(AuditLog::TargetKind, 32))
                .col(string_len(AuditLog::TargetId, 64))
                .col(text_null(AuditLog::Reason))
                .col(text_null(AuditLog::Details))
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_audit_at").table(AuditLog::Table).col(AuditLog::At).to_owned()).await?;
        m.create_index(
            Index::create()
                .name("ix_audit_target")
                .table(AuditLog::Table)
                .col(AuditLog::TargetKind)
                .col(AuditLog::TargetId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditLog::Table).if_exists().to_owned()).await?;
        for c in [Runs::DiscardReason, Runs::DiscardedAt, Runs::ReplayedAt] {
            m.alter_table(Table::alter().table(Runs::Table).drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
