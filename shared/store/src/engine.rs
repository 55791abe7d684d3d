//! The engine's storage traits ([`RunStore`], [`Journal`], [`Schedule`]) over
//! this database: what the worker hands the engine.
//!
//! The backends differ in one place the engine used to see: SQLite claims a
//! run ready as sent in one statement (`UPDATE … RETURNING`), PostgreSQL
//! claims inside a short transaction holding the person's lock and so
//! answers [`RunStore::claim_as_sent`] with None (the engine reads the run
//! and claims it with [`RunStore::claim`]).
//!
//! With [`Storage::with_group_commit`] (the worker), the writes of a run while
//! it executes (its claim on SQLite, every journal write, lease extensions,
//! its end, retry or release, and the wake of the run after it) go through a
//! [`GroupCommit`]: the writes of concurrent runs share one transaction and
//! one commit, and each is answered only once it committed. Reads, and the
//! claim on PostgreSQL (a transaction of its own holding the person's lock),
//! go to the pool directly.

use crate::entity::{run, step};
use crate::group::{Conn, GroupCommit};
use crate::{runs, safety, steps, time, Db, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lifecycle_domain::VendorKind;
use lifecycle_engine_storage::{
    Claimed, DueRun, Ended, Finish, Journal, RunRecord, RunStore, Schedule, Started, StepRecord, StepWrite,
    StorageError, StorageResult,
};
use sea_orm::{ConnectionTrait, DbBackend};
use std::time::Duration;

/// The engine's storage over one database. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Storage {
    db: Db,
    /// The blast-radius and approval guard the scheduler's starts pass through.
    guard: safety::Guard,
    /// Where the writes of executing runs go when grouped; None: each commits alone.
    group: Option<GroupCommit>,
}

impl Storage {
    pub fn new(db: Db) -> Self {
        Self { db, guard: Default::default(), group: None }
    }

    /// Groups the writes of executing runs into shared commits (see the
    /// module's documentation): for a process that executes many runs at once.
    pub fn with_group_commit(mut self) -> Self {
        self.group = Some(GroupCommit::for_db(self.db.clone()));
        self
    }

    /// Executes `write` of `input` through the group commit, or alone.
    async fn write<A, T>(&self, input: A, write: crate::group::WriteFn<A, T>) -> crate::Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        match &self.group {
            Some(group) => group.write(input, write).await,
            None => write(Conn::Pool(&self.db), &input).await,
        }
    }

    /// Holds due destructive runs past `guard`'s thresholds (see [`crate::safety`]).
    pub fn with_guard(mut self, guard: safety::Guard) -> Self {
        self.guard = guard;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost => StorageError::LeaseLost,
            other => StorageError::Unavailable(Box::new(other)),
        }
    }
}

/// A run as the engine sees it.
pub fn record(r: run::Model) -> RunRecord {
    RunRecord {
        id: r.id,
        seq: r.seq,
        event_id: r.event_id,
        vendor: r.vendor,
        workflow: r.workflow,
        person_key: r.person_key,
        state: r.state,
        input: r.input,
        attempts: r.attempts,
        dispatch_seq: r.dispatch_seq,
        next_attempt_at: r.next_attempt_at,
        lease_until: r.lease_until,
        blocked_by: r.blocked_by,
        last_error: r.last_error,
        replays: r.replays,
        created_at: r.created_at,
        started_at: r.started_at,
        replayed_at: r.replayed_at,
        effective_at: r.effective_at,
        rechecked_by: r.rechecked_by,
        traceparent: r.traceparent,
    }
}

fn step_record(s: step::Model) -> StepRecord {
    StepRecord {
        id: s.id,
        run_id: s.run_id,
        key: s.key,
        position: s.position,
        idempotency_key: s.idempotency_key,
        status: s.status,
        attempts: s.attempts,
        output: s.output,
        last_error: s.last_error,
        started_at: s.started_at,
        finished_at: s.finished_at,
        history: s.history,
    }
}

fn step_model(s: &StepRecord) -> step::Model {
    step::Model {
        id: s.id,
        run_id: s.run_id.clone(),
        key: s.key.clone(),
        position: s.position,
        idempotency_key: s.idempotency_key.clone(),
        status: s.status,
        attempts: s.attempts,
        output: s.output.clone(),
        last_error: s.last_error.clone(),
        started_at: s.started_at,
        finished_at: s.finished_at,
        history: s.history.clone(),
    }
}

/// A [`StepWrite`], owned: what a grouped journal write keeps until it commits.
struct StepInput {
    run_id: String,
    owner: String,
    key: String,
    position: i32,
    previous: Option<step::Model>,
    run_attempt: i32,
}

impl StepInput {
    fn of(w: StepWrite<'_>) -> Self {
        Self {
            run_id: w.run_id.to_owned(),
            owner: w.owner.to_owned(),
            key: w.key.to_owned(),
            position: w.position,
            previous: w.previous.map(step_model),
            run_attempt: w.run_attempt,
        }
    }
}

#[async_trait]
impl RunStore for Storage {
    async fn get(&self, id: &str) -> StorageResult<Option<RunRecord>> {
        Ok(runs::get(&self.db, id).await?.map(record))
    }

    async fn claim_as_sent(
        &self,
        run_id: &str,
        dispatch_seq: i64,
        owner: &str,
        lease: Duration,
        early: Duration,
    ) -> StorageResult<Option<Claimed>> {
        if self.db.get_database_backend() != DbBackend::Sqlite {
            return Ok(None);
        }
        let input = (run_id.to_owned(), dispatch_seq, owner.to_owned(), lease, early);
        let claimed = self
            .write(input, |c, a| Box::pin(async move { runs::claim_as_sent(&c, &a.0, a.1, &a.2, a.3, a.4).await }))
            .await?;
        Ok(claimed.map(|c| Claimed { run: record(c.run), has_journal: c.has_journal }))
    }

    async fn claim(&self, run: &RunRecord, dispatch_seq: i64, owner: &str, lease: Duration) -> StorageResult<bool> {
        let of = runs::ClaimOf { id: &run.id, vendor: run.vendor, person_key: &run.person_key, seq: run.seq };
        Ok(runs::claim(&self.db, of, dispatch_seq, owner, lease).await?)
    }

    async fn extend_lease(&self, id: &str, owner: &str, lease: Duration) -> StorageResult<bool> {
        let input = (id.to_owned(), owner.to_owned(), lease);
        Ok(self.write(input, |c, a| Box::pin(async move { runs::extend_lease(&c, &a.0, &a.1, a.2).await })).await?)
    }

    async fn finish_then_next(&self, id: &str, owner: &str, f: Finish<'_>) -> StorageResult<Option<Ended>> {
        let input =
            (id.to_owned(), owner.to_owned(), f.state, f.outcome.to_owned(), f.access, f.last_error.map(str::to_owned));
        let ended = self
            .write(input, |c, a| {
                Box::pin(async move {
                    let finish = runs::Finish { state: a.2, outcome: &a.3, access: a.4, last_error: a.5.as_deref() };
                    runs::finish_then_next(&c, &a.0, &a.1, finish).await
                })
            })
            .await?;
        Ok(ended.map(|e| Ended { next: e.next }))
    }

    async fn schedule_retry(
        &self,
        id: &str,
        owner: &str,
        current_seq: i64,
        at: DateTime<Utc>,
        error: &str,
    ) -> StorageResult<Option<i64>> {
        let input = (id.to_owned(), owner.to_owned(), current_seq, at, error.to_owned());
        Ok(self
            .write(input, |c, a| Box::pin(async move { runs::schedule_retry(&c, &a.0, &a.1, a.2, a.3, &a.4).await }))
            .await?)
    }

    async fn release(&self, id: &str, owner: &str) -> StorageResult<bool> {
        let input = (id.to_owned(), owner.to_owned());
        Ok(self.write(input, |c, a| Box::pin(async move { runs::release(&c, &a.0, &a.1).await })).await?)
    }

    async fn earlier_unfinished(
        &self,
        vendor: VendorKind,
        person_key: &str,
        seq: i64,
    ) -> StorageResult<Option<RunRecord>> {
        Ok(runs::earlier_unfinished(&self.db, vendor, person_key, seq).await?.map(record))
    }

    async fn next_unfinished(
        &self,
        vendor: VendorKind,
        person_key: &str,
        seq: i64,
    ) -> StorageResult<Option<RunRecord>> {
        Ok(runs::next_unfinished(&self.db, vendor, person_key, seq).await?.map(record))
    }

    async fn block(
        &self,
        id: &str,
        dispatch_seq: i64,
        blocked_by: &str,
        recheck_at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let input = (id.to_owned(), dispatch_seq, blocked_by.to_owned(), recheck_at);
        Ok(self.write(input, |c, a| Box::pin(async move { runs::block(&c, &a.0, a.1, &a.2, a.3).await })).await?)
    }

    async fn redispatch(&self, id: &str, expected_seq: i64, due_now: bool) -> StorageResult<Option<i64>> {
        let input = (id.to_owned(), expected_seq, due_now);
        Ok(self.write(input, |c, a| Box::pin(async move { runs::redispatch(&c, &a.0, a.1, a.2).await })).await?)
    }

    async fn overdue(&self, grace: Duration, limit: u64) -> StorageResult<Vec<RunRecord>> {
        Ok(runs::overdue(&self.db, grace, limit).await?.into_iter().map(record).collect())
    }
}

#[async_trait]
impl Schedule for Storage {
    async fn due(&self, now: DateTime<Utc>, limit: u64) -> StorageResult<Vec<RunRecord>> {
        Ok(time::due(&self.db, now, limit).await?.into_iter().map(record).collect())
    }

    async fn start_due(&self, due: &[DueRun]) -> StorageResult<Vec<Started>> {
        let ids: Vec<time::Due> = due
            .iter()
            .map(|d| time::Due {
                id: d.id.clone(),
                dispatch_seq: d.dispatch_seq,
                vendor: d.vendor,
                workflow: d.workflow,
            })
            .collect();
        let started = time::start_due_many(&self.db, &self.guard, &ids).await?;
        Ok(started
            .into_iter()
            .map(|s| match s {
                time::Started::Queued(seq) => Started::Queued(seq),
                time::Started::Held => Started::Held,
                time::Started::AwaitingApproval => Started::AwaitingApproval,
                time::Started::Lost => Started::Lost,
            })
            .collect())
    }
}

#[async_trait]
impl Journal for Storage {
    async fn load(&self, run_id: &str) -> StorageResult<Vec<StepRecord>> {
        Ok(steps::load(&self.db, run_id).await?.into_iter().map(step_record).collect())
    }

    async fn begin(&self, w: StepWrite<'_>) -> StorageResult<StepRecord> {
        let input = StepInput::of(w);
        let begun = self
            .write(input, |c, a| {
                Box::pin(async move {
                    steps::begin(&c, &a.run_id, &a.owner, &a.key, a.position, a.previous.as_ref(), a.run_attempt).await
                })
            })
            .await?;
        Ok(step_record(begun))
    }

    async fn finish(
        &self,
        begun: &StepRecord,
        owner: &str,
        output: Option<&str>,
        error: Option<&str>,
        duration_ms: i64,
    ) -> StorageResult<StepRecord> {
        let input =
            (step_model(begun), owner.to_owned(), output.map(str::to_owned), error.map(str::to_owned), duration_ms);
        let done = self
            .write(input, |c, a| {
                Box::pin(async move { steps::finish(&c, &a.0, &a.1, a.2.as_deref(), a.3.as_deref(), a.4).await })
            })
            .await?;
        Ok(step_record(done))
    }

    async fn record_read(&self, w: StepWrite<'_>, output: &str, duration_ms: i64) -> StorageResult<StepRecord> {
        let input = (StepInput::of(w), output.to_owned(), duration_ms);
        let read = self
            .write(input, |c, (w, output, duration_ms)| {
                Box::pin(async move {
                    let (run_id, owner, key, previous) = (&w.run_id, &w.owner, &w.key, w.previous.as_ref());
                    steps::record_read(
                        &c,
                        run_id,
                        owner,
                        key,
                        w.position,
                        previous,
                        w.run_attempt,
                        output,
                        *duration_ms,
                    )
                    .await
                })
            })
            .await?;
        Ok(step_record(read))
    }
}
