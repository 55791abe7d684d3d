//! Time: a run remembers when its event happened (`occurred_at`, for ordering
//! by when it happened rather than by arrival), when it should take effect
//! (`effective_at`; until then the run is `scheduled` and `next_attempt_at`
//! is when it starts), and which newer event superseded it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    OccurredAt,
    EffectiveAt,
    SupersededBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            timestamp_with_time_zone_null(Runs::OccurredAt),
            timestamp_with_time_zone_null(Runs::EffectiveAt),
            string_null(Runs::SupersededBy),
        ] {
            let mut column = column;
            m.alter_table(Table::alter().table(Runs::Table).add_column(&mut column).to_owned()).await?;
        }
        // The scheduler's question every second (which scheduled runs are due)
        // is served by the existing index on (state, next_attempt_at).
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [Runs::OccurredAt, Runs::EffectiveAt, Runs::SupersededBy] {
            m.alter_table(Table::alter().table(Runs::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
