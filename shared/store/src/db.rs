//! Connecting to SQLite or PostgreSQL, and applying migrations.

use lifecycle_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use std::time::Duration;

pub type Db = DatabaseConnection;

/// Opens a pool. For SQLite it turns on WAL (readers never block the one
/// writer, and the producer and worker processes share the file),
/// `synchronous=NORMAL` (durable at each checkpoint, the usual WAL pairing),
/// foreign keys, and a busy timeout so concurrent writers queue instead of failing.
pub async fn connect(url: &str, max_connections: u32) -> Result<Db, sea_orm::DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
        });
    Database::connect(opts).await
}

/// Applies every pending migration; safe to run concurrently from several
/// processes only on PostgreSQL, so binaries call it before serving.
pub async fn migrate(db: &Db) -> Result<(), sea_orm::DbErr> {
    Migrator::up(db, None).await
}

/// Names the migrations already applied and those pending.
pub async fn migration_status(db: &Db) -> Result<(Vec<String>, Vec<String>), sea_orm::DbErr> {
    let applied = Migrator::get_applied_migrations(db).await?.iter().map(|m| m.name().to_string()).collect();
    let pending = Migrator::get_pending_migrations(db).await?.iter().map(|m| m.name().to_string()).collect();
    Ok((applied, pending))
}
