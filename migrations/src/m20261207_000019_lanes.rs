//! Lanes spread over a fleet of workers (issue 29): a lease per vendor lane
//! (who consumes it, until when) and each worker's presence (when it was last
//! seen), so that W live workers take at most ⌈lanes / W⌉ lanes each and a
//! dead worker's lanes pass to the others once its leases lapse.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LaneLeases {
    Table,
    Lane,
    Holder,
    ExpiresAt,
    TakenAt,
}

#[derive(DeriveIden)]
enum FleetWorkers {
    Table,
    WorkerId,
    SeenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(LaneLeases::Table)
                .if_not_exists()
                // The vendor's name: one row per lane, made by the first worker that looks.
                .col(string_len(LaneLeases::Lane, 32).primary_key())
                // The worker consuming it; none when it was given up.
                .col(string_len_null(LaneLeases::Holder, 128))
                // Free to take after this, whoever the holder was.
                .col(timestamp_with_time_zone_null(LaneLeases::ExpiresAt))
                .col(timestamp_with_time_zone_null(LaneLeases::TakenAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(FleetWorkers::Table)
                .if_not_exists()
                .col(string_len(FleetWorkers::WorkerId, 128).primary_key())
                .col(timestamp_with_time_zone(FleetWorkers::SeenAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [LaneLeases::Table.into_iden(), FleetWorkers::Table.into_iden()] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
