//! Events with their idempotency keys, the outbox, runs and the step journal.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    Source,
    IdempotencyKey,
    PayloadHash,
    EventType,
    EmployeeId,
    EmployeeEmail,
    Payload,
    ResponseStatus,
    ResponseBody,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Seq,
    Id,
    EventId,
    Vendor,
    Workflow,
    PersonKey,
    State,
    Input,
    Attempts,
    DispatchSeq,
    NextAttemptAt,
    DispatchedAt,
    LeaseOwner,
    LeaseUntil,
    BlockedBy,
    LastError,
    Outcome,
    Access,
    Replays,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Steps {
    Table,
    Id,
    RunId,
    Key,
    Position,
    IdempotencyKey,
    Status,
    Attempts,
    Output,
    LastError,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum StepAttempts {
    Table,
    Id,
    RunId,
    StepKey,
    Attempt,
    RunAttempt,
    Status,
    StartedAt,
    FinishedAt,
    DurationMs,
    Error,
    Output,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    RunId,
    DispatchSeq,
    CreatedAt,
    SentAt,
    Attempts,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Events::Table)
                .if_not_exists()
                .col(string_len(Events::Id, 36).primary_key())
                .col(string_len(Events::Source, 32))
                .col(string_len(Events::IdempotencyKey, 255))
                .col(string_len(Events::PayloadHash, 64))
                .col(string_len(Events::EventType, 32))
                .col(string_len_null(Events::EmployeeId, 255))
                .col(string_len_null(Events::EmployeeEmail, 320))
                .col(text(Events::Payload))
                .col(integer(Events::ResponseStatus))
                .col(text(Events::ResponseBody))
                .col(timestamp_with_time_zone(Events::ReceivedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_events_source_key")
                .table(Events::Table)
                .col(Events::Source)
                .col(Events::IdempotencyKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_events_received_at").table(Events::Table).col(Events::ReceivedAt).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Runs::Table)
                .if_not_exists()
                // `seq` orders runs by arrival: effects for one person in one
                // vendor apply in `seq` order.
                .col(big_integer(Runs::Seq).auto_increment().primary_key())
                .col(string_len_uniq(Runs::Id, 36))
                .col(string_len(Runs::EventId, 36))
                .col(string_len(Runs::Vendor, 32))
                .col(string_len(Runs::Workflow, 32))
                .col(string_len(Runs::PersonKey, 320))
                .col(string_len(Runs::State, 32))
                .col(text(Runs::Input))
                .col(integer(Runs::Attempts).default(0))
                .col(big_integer(Runs::DispatchSeq).default(0))
                .col(timestamp_with_time_zone(Runs::NextAttemptAt))
                .col(timestamp_with_time_zone_null(Runs::DispatchedAt))
                .col(string_len_null(Runs::LeaseOwner, 64))
                .col(timestamp_with_time_zone_null(Runs::LeaseUntil))
                .col(string_len_null(Runs::BlockedBy, 36))
                .col(text_null(Runs::LastError))
                .col(text_null(Runs::Outcome))
                .col(string_len_null(Runs::Access, 32))
                .col(integer(Runs::Replays).default(0))
                .col(timestamp_with_time_zone(Runs::CreatedAt))
                .col(timestamp_with_time_zone(Runs::UpdatedAt))
                .col(timestamp_with_time_zone_null(Runs::StartedAt))
                .col(timestamp_with_time_zone_null(Runs::FinishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_runs_event")
                        .from(Runs::Table, Runs::EventId)
                        .to(Events::Table, Events::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_runs_event").table(Runs::Table).col(Runs::EventId).to_owned()).await?;
        m.create_index(
            Index::create()
                .name("ix_runs_state_next")
                .table(Runs::Table)
                .col(Runs::State)
                .col(Runs::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_runs_person")
                .table(Runs::Table)
                .col(Runs::Vendor)
                .col(Runs::PersonKey)
                .col(Runs::Seq)
                .to_owned(),
        )
        .await?;
        m.create_index(Index::create().name("ix_runs_created").table(Runs::Table).col(Runs::CreatedAt).to_owned())
            .await?;

        m.create_table(
            Table::create()
                .table(Steps::Table)
                .if_not_exists()
                .col(big_integer(Steps::Id).auto_increment().primary_key())
                .col(string_len(Steps::RunId, 36))
                .col(string_len(Steps::Key, 255))
                .col(integer(Steps::Position))
                .col(string_len_uniq(Steps::IdempotencyKey, 300))
                .col(string_len(Steps::Status, 16))
                .col(integer(Steps::Attempts).default(0))
                .col(text_null(Steps::Output))
                .col(text_null(Steps::LastError))
                .col(timestamp_with_time_zone(Steps::StartedAt))
                .col(timestamp_with_time_zone_null(Steps::FinishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_steps_run")
                        .from(Steps::Table, Steps::RunId)
                        .to(Runs::Table, Runs::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_steps_run_key")
                .table(Steps::Table)
                .col(Steps::RunId)
                .col(Steps::Key)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(StepAttempts::Table)
                .if_not_exists()
                .col(big_integer(StepAttempts::Id).auto_increment().primary_key())
                .col(string_len(StepAttempts::RunId, 36))
                .col(string_len(StepAttempts::StepKey, 255))
                .col(integer(StepAttempts::Attempt))
                .col(integer(StepAttempts::RunAttempt))
                .col(string_len(StepAttempts::Status, 16))
                .col(timestamp_with_time_zone(StepAttempts::StartedAt))
                .col(timestamp_with_time_zone_null(StepAttempts::FinishedAt))
                .col(big_integer_null(StepAttempts::DurationMs))
                .col(text_null(StepAttempts::Error))
                .col(text_null(StepAttempts::Output))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_step_attempts_run")
                        .from(StepAttempts::Table, StepAttempts::RunId)
                        .to(Runs::Table, Runs::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("ix_step_attempts_run").table(StepAttempts::Table).col(StepAttempts::RunId).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .if_not_exists()
                .col(big_integer(Outbox::Id).auto_increment().primary_key())
                .col(string_len(Outbox::RunId, 36))
                .col(big_integer(Outbox::DispatchSeq))
                .col(timestamp_with_time_zone(Outbox::CreatedAt))
                .col(timestamp_with_time_zone_null(Outbox::SentAt))
                .col(integer(Outbox::Attempts).default(0))
                .col(text_null(Outbox::LastError))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_outbox_unsent")
                .table(Outbox::Table)
                .col(Outbox::SentAt)
                .col(Outbox::Id)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Outbox::Table.into_iden(),
            StepAttempts::Table.into_iden(),
            Steps::Table.into_iden(),
            Runs::Table.into_iden(),
            Events::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
