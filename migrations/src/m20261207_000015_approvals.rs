//! Approvals (`[approval]`): one row per run that had to await an approver,
//! with whom it awaits (the rule's approvers, then the escalation group), its
//! deadline, and the one decision taken (approved, rejected, expired), by whom
//! and why. The run itself is `awaiting_approval` then `queued` or `rejected`
//! (states stored as their names in `runs.state`: no change there).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Approvals {
    Table,
    RunId,
    Vendor,
    Workflow,
    Rule,
    Approvers,
    EscalateTo,
    RequestedAt,
    EscalateAt,
    EscalatedAt,
    DeadlineAt,
    Decision,
    DecidedBy,
    DecidedAt,
    Reason,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Approvals::Table)
                .if_not_exists()
                .col(string_len(Approvals::RunId, 36).primary_key())
                .col(string_len(Approvals::Vendor, 32))
                .col(string_len(Approvals::Workflow, 32))
                .col(text(Approvals::Rule))
                .col(text(Approvals::Approvers))
                .col(text(Approvals::EscalateTo))
                .col(timestamp_with_time_zone(Approvals::RequestedAt))
                .col(timestamp_with_time_zone_null(Approvals::EscalateAt))
                .col(timestamp_with_time_zone_null(Approvals::EscalatedAt))
                .col(timestamp_with_time_zone(Approvals::DeadlineAt))
                .col(string_len_null(Approvals::Decision, 16))
                .col(string_len_null(Approvals::DecidedBy, 255))
                .col(timestamp_with_time_zone_null(Approvals::DecidedAt))
                .col(text_null(Approvals::Reason))
                .to_owned(),
        )
        .await?;
        // The periodic pass looks for undecided approvals past their deadline.
        m.create_index(
            Index::create()
                .name("ix_approvals_open_deadline")
                .table(Approvals::Table)
                .col(Approvals::Decision)
                .col(Approvals::DeadlineAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Approvals::Table).if_exists().to_owned()).await
    }
}
