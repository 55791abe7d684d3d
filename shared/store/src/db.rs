//! Connecting to SQLite or PostgreSQL, and applying migrations.

use lifecycle_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    TransactionTrait,
};
use std::time::Duration;

pub type Db = DatabaseConnection;

/// Opens a pool that waits up to 30 s for a connection: see [`connect_with`].
pub async fn connect(url: &str, max_connections: u32) -> Result<Db, sea_orm::DbErr> {
    connect_with(url, max_connections, Duration::from_secs(30)).await
}

/// Opens a pool. For SQLite it turns on WAL (readers never block the one
/// writer, and the producer and worker processes share the file),
/// `synchronous=NORMAL` (durable at each checkpoint, the usual WAL pairing),
/// foreign keys, and a busy timeout so concurrent writers queue instead of failing.
///
/// `acquire_timeout` bounds how long a statement waits for a connection,
/// including the pool's reconnect attempts while a PostgreSQL server is down
/// or starting up (the driver retries those until then): past it the
/// statement fails (`DbErr::ConnectionAcquire`) and its caller answers or
/// retries as for any database error.
pub async fn connect_with(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Db, sea_orm::DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(max_connections)
        .min_connections(1)
        // sea-orm's connect timeout is the driver's acquire timeout too: one bound.
        .connect_timeout(acquire_timeout)
        .acquire_timeout(acquire_timeout)
        // No ping before each use: on SQLite it is a round trip to the
        // connection's thread, on PostgreSQL one over the network, for every
        // statement (a third of the worker's database work, measured). A
        // connection that broke (the server restarted) fails its next
        // statement instead; every caller already treats a database error as
        // "hand the message back and try again", and the pool drops it.
        .test_before_acquire(false)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
        });
    Database::connect(opts).await
}

/// Begins a transaction that will write. On SQLite it takes the write lock
/// first (what `BEGIN IMMEDIATE` does; neither sea-orm nor its driver can
/// ask for that): a deferred transaction that reads and then writes fails at
/// once with "database is locked" if another connection committed after its
/// read (SQLite cannot move its snapshot forward, and the busy timeout does
/// not apply), which showed as a rare 503 from an operator's cancel while the
/// workers wrote. Taking the lock first makes it wait its turn instead. The
/// statement matches no row; it only starts the write. PostgreSQL needs
/// nothing: its writers wait on row locks.
pub async fn begin_write<C>(db: &C) -> Result<DatabaseTransaction, DbErr>
where
    C: TransactionTrait + ConnectionTrait,
{
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::Sqlite {
        txn.execute_unprepared("UPDATE seaql_migrations SET version = version WHERE 0").await?;
    }
    Ok(txn)
}

/// Applies every pending migration. When several processes start together on
/// a fresh database (a producer and a worker), one applies them and the
/// others' statements fail (the table exists, the version is recorded): they
/// try again, and by then there is nothing left to do.
pub async fn migrate(db: &Db) -> Result<(), sea_orm::DbErr> {
    let mut attempt = 0;
    loop {
        match Migrator::up(db, None).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "migrations raced with another process; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Names the migrations already applied and those pending.
pub async fn migration_status(db: &Db) -> Result<(Vec<String>, Vec<String>), sea_orm::DbErr> {
    let applied = Migrator::get_applied_migrations(db).await?.iter().map(|m| m.name().to_string()).collect();
    let pending = Migrator::get_pending_migrations(db).await?.iter().map(|m| m.name().to_string()).collect();
    Ok((applied, pending))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{Statement, TransactionTrait};

    async fn file_db(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let db = connect(&url, 4).await.unwrap();
        migrate(&db).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
        db
    }

    async fn read(txn: &DatabaseTransaction) {
        txn.query_all(Statement::from_string(DatabaseBackend::Sqlite, "SELECT x FROM t")).await.unwrap();
    }

    /// Why [`begin_write`] exists: a deferred transaction that read before
    /// another connection committed cannot write (SQLite refuses at once,
    /// whatever the busy timeout).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_deferred_transaction_that_read_cannot_write_after_another_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let txn = db.begin().await.unwrap();
        read(&txn).await;
        db.execute_unprepared("INSERT INTO t VALUES (2)").await.unwrap();
        let e = txn.execute_unprepared("UPDATE t SET x = 3").await.unwrap_err();
        assert!(e.to_string().contains("locked"), "{e}");
    }

    /// With the write lock taken first, the other writer waits its turn and
    /// both writes land.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_transaction_makes_other_writers_wait_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let txn = begin_write(&db).await.unwrap();
        read(&txn).await;
        let other = {
            let db = db.clone();
            tokio::spawn(async move { db.execute_unprepared("INSERT INTO t VALUES (2)").await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!other.is_finished(), "the other writer waits for the lock");
        txn.execute_unprepared("UPDATE t SET x = 3").await.unwrap();
        txn.commit().await.unwrap();
        other.await.unwrap().unwrap();
        let rows =
            db.query_all(Statement::from_string(DatabaseBackend::Sqlite, "SELECT x FROM t ORDER BY x")).await.unwrap();
        let xs: Vec<i64> = rows.iter().map(|r| r.try_get_by_index(0).unwrap()).collect();
        assert_eq!(xs, vec![2, 3]);
    }
}
