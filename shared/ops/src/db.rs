//! The database handle for the binaries: connecting, migrating, and whether
//! it answers. The handle is the store's; the binaries reach it through here.

pub use lifecycle_store::{connect, migrate, Db, DbErr, StoreError};

/// The engine's storage (run store, journal, schedule) over this database: what
/// the worker hands the engine.
pub use lifecycle_store::engine::Storage;

/// `SELECT 1` through the pool; the database's words when it does not answer.
pub async fn ping(db: &Db) -> Result<(), String> {
    db.ping().await.map_err(|e| e.to_string())
}

/// Which migrations are applied and which are pending, by name.
pub async fn migration_status(db: &Db) -> Result<(Vec<String>, Vec<String>), DbErr> {
    lifecycle_store::db::migration_status(db).await
}
