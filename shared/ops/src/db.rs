//! The database handle for the binaries: connecting, migrating, and whether
//! it answers. The handle is the store's; the binaries reach it through here.

pub use lifecycle_store::{connect, migrate, Db, DbErr, StoreError};

/// Opens the binaries' pool as `[database]` says: its size, and how long a
/// statement waits for a connection (short on PostgreSQL, so that a database
/// that is gone is an error soon, not a request that hangs).
pub async fn connect_settings(settings: &lifecycle_config::DatabaseSettings) -> Result<Db, DbErr> {
    lifecycle_store::connect_with(settings.url.expose(), settings.pool_size(), settings.acquire_wait()).await
}

/// The engine's storage (run store, journal, schedule) over this database: what
/// the worker hands the engine.
pub use lifecycle_store::engine::Storage;

/// How long a readiness check waits for the database: less than a pool's
/// acquire timeout, so that `/readyz` says "unavailable" while a probe still listens.
const PING_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// `SELECT 1` through the pool, within 2 s; the database's words when it does not answer.
pub async fn ping(db: &Db) -> Result<(), String> {
    match tokio::time::timeout(PING_WITHIN, db.ping()).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {PING_WITHIN:?}")),
    }
}

/// Which migrations are applied and which are pending, by name.
pub async fn migration_status(db: &Db) -> Result<(Vec<String>, Vec<String>), DbErr> {
    lifecycle_store::db::migration_status(db).await
}
