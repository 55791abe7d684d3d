//! A step's attempts live in its own row, as a JSON history, instead of a
//! table of their own: a step then costs two single-statement writes (begin,
//! finish), which is most of the journal's cost (each statement is a commit,
//! and a PostgreSQL commit is an fsync).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Steps {
    Table,
    History,
}

#[derive(DeriveIden)]
enum StepAttempts {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Steps::Table).add_column(text_null(Steps::History)).to_owned()).await?;
        // No release has shipped data in step_attempts: nothing to carry over.
        m.drop_table(Table::drop().table(StepAttempts::Table).if_exists().to_owned()).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Steps::Table).drop_column(Steps::History).to_owned()).await?;
        Ok(())
    }
}
