//! Group commit: the writes of many callers (the worker's runs, the intake's
//! requests) that arrive while a commit is under way go to the database
//! together, in one transaction and one commit.
//!
//! A writer task takes whatever is queued (at most [`GroupCommit`]'s
//! `max_batch`), executes each write in order inside one transaction, and
//! commits; only then is each caller answered with its own result. So:
//!
//! - no caller hears "done" for a write that did not commit: a failed commit
//!   fails every caller of the batch (as a failed commit of a write alone
//!   fails its caller);
//! - a write that fails with a database error (on PostgreSQL it aborts the
//!   whole transaction) rolls the batch back, and every write of it is then
//!   executed again alone, in its own transaction, and answered from that:
//!   one caller's bad write never fails another's;
//! - a write's own outcome that is not a database error (the lease was lost,
//!   nothing written) is just its answer, and the batch goes on.
//!
//! Each write is one of the store's ordinary functions, run over [`Conn`]:
//! the batch's transaction, or the pool when a write is alone (a batch of
//! one is executed as it would be without group commit: no BEGIN, no COMMIT).
//! A write's guards are inside its own statements, so executing it after
//! others in the same transaction decides exactly what it would decide after
//! them in separate ones: SQLite executes writes one at a time anyway, and on
//! PostgreSQL the rows a write locks stay locked until the batch commits.
//!
//! No timer: the writer starts a batch as soon as it is idle, so a write
//! alone waits for nothing, and under load a batch is whatever queued during
//! the previous commit (the classic group commit).

use crate::{Db, Result, StoreError};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult,
    Statement, TransactionError, TransactionTrait,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// A boxed future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a grouped write executes: the batch's transaction, or the pool
/// (a write alone). Both are connections; `begin` makes a savepoint in the
/// batch's transaction, a transaction on the pool.
#[derive(Clone, Copy)]
pub enum Conn<'a> {
    Txn(&'a DatabaseTransaction),
    Pool(&'a Db),
}

#[async_trait::async_trait]
impl ConnectionTrait for Conn<'_> {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Conn::Txn(c) => c.get_database_backend(),
            Conn::Pool(c) => c.get_database_backend(),
        }
    }
    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Txn(c) => c.execute(stmt).await,
            Conn::Pool(c) => c.execute(stmt).await,
        }
    }
    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Txn(c) => c.execute_unprepared(sql).await,
            Conn::Pool(c) => c.execute_unprepared(sql).await,
        }
    }
    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Conn::Txn(c) => c.query_one(stmt).await,
            Conn::Pool(c) => c.query_one(stmt).await,
        }
    }
    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Conn::Txn(c) => c.query_all(stmt).await,
            Conn::Pool(c) => c.query_all(stmt).await,
        }
    }
    fn support_returning(&self) -> bool {
        match self {
            Conn::Txn(c) => c.support_returning(),
            Conn::Pool(c) => c.support_returning(),
        }
    }
}

#[async_trait::async_trait]
impl TransactionTrait for Conn<'_> {
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        match self {
            Conn::Txn(c) => c.begin().await,
            Conn::Pool(c) => crate::begin_write(*c).await,
        }
    }
    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        match self {
            Conn::Txn(c) => c.begin_with_config(isolation_level, access_mode).await,
            Conn::Pool(c) => c.begin_with_config(isolation_level, access_mode).await,
        }
    }
    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        match self {
            Conn::Txn(c) => c.transaction(callback).await,
            Conn::Pool(c) => c.transaction(callback).await,
        }
    }
    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        match self {
            Conn::Txn(c) => c.transaction_with_config(callback, isolation_level, access_mode).await,
            Conn::Pool(c) => c.transaction_with_config(callback, isolation_level, access_mode).await,
        }
    }
}

/// One grouped write: the function and what it writes. It may be executed
/// twice (in a batch rolled back, then alone), so it takes its input by reference.
pub type WriteFn<A, T> = for<'a> fn(Conn<'a>, &'a A) -> BoxFuture<'a, Result<T>>;

/// A queued write, its answer not yet sent.
trait Job: Send {
    /// Executes the write; Err only for a database error (the batch must be
    /// rolled back). The write's own outcome is kept until [`Job::answer`].
    fn run<'a>(&'a mut self, conn: Conn<'a>) -> BoxFuture<'a, Result<(), DbErr>>;
    /// Executes the write alone, keeping whatever it returns.
    fn run_alone<'a>(&'a mut self, db: &'a Db) -> BoxFuture<'a, ()>;
    /// Sends the kept outcome (its write committed, or it wrote nothing).
    fn answer(self: Box<Self>);
    /// Sends `error` instead: the write's commit failed or is unknown.
    fn fail(self: Box<Self>, error: String);
}

struct Typed<A, T> {
    input: A,
    write: WriteFn<A, T>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<A: Send + Sync + 'static, T: Send + 'static> Job for Typed<A, T> {
    fn run<'a>(&'a mut self, conn: Conn<'a>) -> BoxFuture<'a, Result<(), DbErr>> {
        Box::pin(async move {
            match (self.write)(conn, &self.input).await {
                Err(StoreError::Db(e)) => Err(e),
                other => {
                    self.outcome = Some(other);
                    Ok(())
                }
            }
        })
    }

    fn run_alone<'a>(&'a mut self, db: &'a Db) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.outcome = Some((self.write)(Conn::Pool(db), &self.input).await);
        })
    }

    fn answer(self: Box<Self>) {
        let outcome =
            self.outcome.unwrap_or_else(|| Err(StoreError::Corrupt("a grouped write was not executed".into())));
        // The caller may have gone (its task was cancelled): nothing to tell.
        let _ = self.reply.send(outcome);
    }

    fn fail(self: Box<Self>, error: String) {
        let _ = self.reply.send(Err(StoreError::Db(DbErr::Custom(error))));
    }
}

type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Box<dyn Job>>>>;

/// A group-commit writer over one database: cheap to clone; its writer tasks
/// end when the last clone is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Box<dyn Job>>,
    /// Transactions the writers executed (a batch, or a write alone).
    batches: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Starts `writers` writer tasks (SQLite writes one at a time: one is
    /// enough there; on PostgreSQL a few keep several commits in flight),
    /// each committing at most `max_batch` writes at once.
    pub fn start(db: Db, writers: usize, max_batch: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx: Queue = Arc::new(Mutex::new(rx));
        let batches = Arc::new(AtomicU64::new(0));
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(db.clone(), rx.clone(), max_batch.max(1), batches.clone()));
        }
        Self { queue: tx, batches }
    }

    /// How many batches (each one transaction) the writers have executed.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// The defaults for `db`'s backend: one writer on SQLite, four on
    /// PostgreSQL; 256 writes a batch at most.
    pub fn for_db(db: Db) -> Self {
        let writers = if db.get_database_backend() == DbBackend::Sqlite { 1 } else { 4 };
        Self::start(db, writers, 256)
    }

    /// Queues `write` of `input` and waits until it committed (or failed).
    pub async fn write<A, T>(&self, input: A, write: WriteFn<A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed { input, write, outcome: None, reply });
        self.queue
            .send(job)
            .map_err(|_| StoreError::Db(DbErr::Custom("the group-commit writer has stopped".into())))?;
        answer.await.map_err(|_| StoreError::Db(DbErr::Custom("the group-commit writer dropped a write".into())))?
    }
}

async fn writer(db: Db, queue: Queue, max_batch: usize, batches: Arc<AtomicU64>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    loop {
        // One writer takes a batch at a time; the others commit theirs meanwhile.
        let taken = queue.lock().await.recv_many(&mut batch, max_batch).await;
        if taken == 0 {
            return; // every sender is gone
        }
        tracing::trace!(writes = taken, "group commit");
        // In a task of its own: a write that panics takes its batch down (its
        // transaction is dropped, so rolled back, and its callers are told it
        // failed), not this writer, which every later write needs.
        let (db_, mut jobs) = (db.clone(), std::mem::take(&mut batch));
        match tokio::spawn(async move {
            commit(&db_, &mut jobs).await;
            jobs
        })
        .await
        {
            Ok(emptied) => batch = emptied,
            Err(e) => {
                tracing::error!(error = %e, "a grouped write panicked: its batch failed, the writer goes on");
                batch = Vec::with_capacity(max_batch);
            }
        }
        batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// Executes and commits `batch` (emptied), answering each caller.
async fn commit(db: &Db, batch: &mut Vec<Box<dyn Job>>) {
    if batch.len() == 1 {
        let mut job = batch.pop().expect("one write");
        job.run_alone(db).await;
        job.answer();
        return;
    }
    let txn = match crate::begin_write(db).await {
        Ok(txn) => txn,
        Err(e) => {
            let error = e.to_string();
            batch.drain(..).for_each(|job| job.fail(error.clone()));
            return;
        }
    };
    let mut failed = None;
    for job in batch.iter_mut() {
        if let Err(e) = job.run(Conn::Txn(&txn)).await {
            failed = Some(e);
            break;
        }
    }
    if let Some(e) = failed {
        tracing::debug!(error = %e, writes = batch.len(), "a grouped write failed: the batch is rolled back, each write executed alone");
        // A rollback that fails leaves nothing committed either (the
        // connection is dropped with its transaction).
        let _ = txn.rollback().await;
        for mut job in batch.drain(..) {
            job.run_alone(db).await;
            job.answer();
        }
        return;
    }
    match txn.commit().await {
        Ok(()) => batch.drain(..).for_each(|job| job.answer()),
        Err(e) => {
            let error = format!("the group commit failed: {e}");
            batch.drain(..).for_each(|job| job.fail(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, TestDb};

    /// Inserts an audit row with the given actor.
    #[allow(clippy::ptr_arg)] // a WriteFn takes its input as `&A`, here `&String`
    fn insert<'a>(c: Conn<'a>, actor: &'a String) -> BoxFuture<'a, Result<()>> {
        use crate::entity::audit;
        use sea_orm::{EntityTrait, Set};
        Box::pin(async move {
            audit::Entity::insert(audit::ActiveModel {
                at: Set(chrono::Utc::now()),
                actor: Set(actor.clone()),
                action: Set("test".into()),
                target_kind: Set("test".into()),
                target_id: Set("x".into()),
                reason: Set(None),
                details: Set(None),
                ..Default::default()
            })
            .exec_without_returning(&c)
            .await?;
            Ok(())
        })
    }

    fn fail<'a>(c: Conn<'a>, _: &'a ()) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            c.execute_unprepared("INSERT INTO no_such_table VALUES (1)").await?;
            Ok(())
        })
    }

    async fn actors(db: &Db) -> Vec<String> {
        let rows = db
            .query_all(Statement::from_string(db.get_database_backend(), "SELECT actor FROM audit_log ORDER BY actor"))
            .await
            .unwrap();
        rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
    }

    async fn together_in_one_commit(backend: Backend) {
        let test_db = TestDb::new(backend).await;
        let db = test_db.connect().await;
        let group = GroupCommit::start(db.clone(), 1, 256);
        let writes = (0..20).map(|i| group.write(format!("a{i:02}"), insert));
        // All queued before the writer runs (this test's runtime has one thread): one batch.
        for answer in futures_join(writes).await {
            answer.unwrap();
        }
        assert_eq!(group.batches(), 1, "twenty writes, one transaction");
        assert_eq!(actors(&db).await.len(), 20, "every write answered done is committed");
    }

    async fn a_failing_write_fails_only_itself(backend: Backend) {
        let test_db = TestDb::new(backend).await;
        let db = test_db.connect().await;
        let group = GroupCommit::start(db.clone(), 1, 256);
        let (a, bad, b) = tokio::join!(
            group.write("a".to_string(), insert),
            group.write((), fail),
            group.write("b".to_string(), insert)
        );
        a.unwrap();
        b.unwrap();
        assert!(matches!(bad, Err(StoreError::Db(_))), "{bad:?}");
        assert_eq!(actors(&db).await, ["a", "b"], "the batch rolled back, each write done again alone, once");
        assert_eq!(group.batches(), 1);
    }

    fn panics<'a>(_: Conn<'a>, _: &'a ()) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { panic!("a bug in a write") })
    }

    async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on(backend: Backend) {
        let test_db = TestDb::new(backend).await;
        let db = test_db.connect().await;
        let group = GroupCommit::start(db.clone(), 1, 256);
        let (a, bad) = tokio::join!(group.write("a".to_string(), insert), group.write((), panics));
        assert!(a.is_err() && bad.is_err(), "the panicking batch's writes are told they failed: {a:?} {bad:?}");
        assert!(actors(&db).await.is_empty(), "nothing of the panicking batch is committed");
        group.write("b".to_string(), insert).await.expect("the writer still writes after a panic");
        assert_eq!(actors(&db).await, ["b"]);
    }

    async fn futures_join<F: Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
        // Polled all at once, so that every write is queued before any is answered.
        let mut pending: Vec<_> = fs.map(|f| Some(Box::pin(f))).collect();
        let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut done = true;
            for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            *result = Some(v);
                            *slot = None;
                        }
                        std::task::Poll::Pending => done = false,
                    }
                }
            }
            if done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        results.into_iter().map(|r| r.expect("every write answered")).collect()
    }

    macro_rules! on_both_databases {
        ($($name:ident),* $(,)?) => {$(
            mod $name {
                #[tokio::test]
                async fn sqlite() { super::$name(super::Backend::Sqlite).await }
                #[tokio::test]
                async fn postgres() { super::$name(super::Backend::Postgres).await }
            }
        )*};
    }

    on_both_databases!(
        together_in_one_commit,
        a_failing_write_fails_only_itself,
        a_panicking_write_fails_its_batch_and_the_writer_goes_on
    );
}
