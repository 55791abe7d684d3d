//! Traces (issue 18): a run keeps the W3C `traceparent` of the span that
//! stored it (the intake's, SCIM's, a webhook's, a reconcile pass's), so that
//! whoever publishes it later (the relay, the sweeper, the scheduler, a retry)
//! carries the same trace, and a replay can link to it. Null when traces are
//! off or the run came from before this column.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    Traceparent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // `00-<32 hex>-<16 hex>-<2 hex>`: 55 characters; later versions may be longer.
        let mut column = string_len_null(Runs::Traceparent, 128);
        m.alter_table(Table::alter().table(Runs::Table).add_column(&mut column).to_owned()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Runs::Table).drop_column(Runs::Traceparent).to_owned()).await
    }
}
