//! Edits of dead runs' input by operators (edit and replay): each edit keeps
//! the input before and after it, who made it and when, so the original
//! input (the first edit's `before`) is never lost and every change is shown.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RunEdits {
    Table,
    Id,
    RunId,
    At,
    Actor,
    Reason,
    /// The run's input (a `RunInput` as JSON) before and after the edit.
    Before,
    After,
    /// What the operator asked to set, as JSON (`{"role": "Sales Rep"}`).
    Changes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RunEdits::Table)
                .if_not_exists()
                .col(big_integer(RunEdits::Id).auto_increment().primary_key())
                .col(string_len(RunEdits::RunId, 36))
                .col(timestamp_with_time_zone(RunEdits::At))
                .col(string_len(RunEdits::Actor, 255))
                .col(text_null(RunEdits::Reason))
                .col(text(RunEdits::Before))
                .col(text(RunEdits::After))
                .col(text(RunEdits::Changes))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_run_edits_run")
                .table(RunEdits::Table)
                .col(RunEdits::RunId)
                .col(RunEdits::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RunEdits::Table).if_exists().to_owned()).await
    }
}
