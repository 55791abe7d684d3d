//! Pushes: a big SCIM group write answered at once, its members' events made
//! afterwards (issue 29).
//!
//! A group write that touches more members than one [`BATCH`] stores its
//! membership change and a push (what changed, for which group, which
//! members) in the transaction of its answer, and makes no event there.
//! A producer's drainer ([`drain`]) then takes the push's lease and works
//! through its batches in order, each batch one transaction: the batch is
//! taken by a conditional update guarded by the lease and the batch number
//! (two producers never both make it), each member's access is worked out
//! again as the write would have done (`Scim::refresh_members`), the events
//! are stored through the intake, and the batch is recorded done. A member's
//! event's idempotency key is the push's key (`group:{id}:v{version}`) and
//! the member's id, as it was when the write made the events itself: a batch
//! made again after a crash finds its events stored and makes none twice.
//! The events then go through the outbox and the lanes like any other.

use crate::scim::Scim;
use chrono::{DateTime, Utc};
use lifecycle_store::entity::scim_push;
use lifecycle_store::push::{self as store, NewPush, PushState};
use lifecycle_store::{Db, StoreError};
use sea_orm::DatabaseTransaction;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{info, warn, Instrument};

/// Members worked out per batch transaction; a write touching more is a push.
pub const BATCH: usize = 500;

/// How long a drainer holds a push between batches before another may take it.
pub const LEASE: Duration = Duration::from_secs(30);

/// How long a push whose batch failed (the database) waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Stores a push for `members` of the group (`(id, displayName)`), in the
/// write's transaction; `change` says what the write did, `key` starts each
/// member's events' idempotency keys. Its id.
pub(crate) async fn store(
    txn: &DatabaseTransaction,
    (group_id, group_name): (&str, &str),
    change: &str,
    key: &str,
    members: &[String],
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let new = NewPush {
        id: &id,
        group_id,
        group_name,
        change,
        source: crate::scim::SOURCE,
        key,
        member_ids: members,
        batch_size: BATCH,
    };
    store::insert(txn, new, Utc::now()).await?;
    metrics::counter!("lifecycle_pushes_total").increment(1);
    info!(push = %id, group = %group_id, change, members = members.len(), "SCIM push stored; its events follow");
    Ok(id)
}

/// A push as operators read it.
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    pub id: String,
    pub group_id: String,
    pub group_name: String,
    pub change: String,
    pub source: String,
    pub state: String,
    pub members: i32,
    pub members_done: i32,
    pub events: i32,
    pub batches: i32,
    pub batches_done: i32,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<scim_push::Model> for Push {
    fn from(m: scim_push::Model) -> Push {
        Push {
            id: m.id,
            group_id: m.group_id,
            group_name: m.group_name,
            change: m.change,
            source: m.source,
            state: m.state,
            members: m.members,
            members_done: m.members_done,
            events: m.events,
            batches: m.batches,
            batches_done: m.next_batch,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: m.created_at,
            started_at: m.started_at,
            finished_at: m.finished_at,
        }
    }
}

/// The most recent pushes, newest first (only pending ones when `pending`).
pub async fn list(db: &Db, pending: bool, limit: u64) -> Result<Vec<Push>, StoreError> {
    Ok(store::recent(db, pending, limit).await?.into_iter().map(Push::from).collect())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Push>, StoreError> {
    Ok(store::get(db, id).await?.map(Push::from))
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Made and recorded: how many members and events; `last` when the push is done.
    Done { members: usize, events: usize, last: bool },
    /// Not this drainer's to make (its lease was taken over, or the batch is done).
    NotOurs,
}

/// Makes batch `seq` of `push` in one transaction, as `owner`.
pub async fn run_batch(scim: &Scim<'_>, owner: &str, push: &scim_push::Model, seq: i32) -> Result<Batch, StoreError> {
    let txn = lifecycle_store::begin_write(scim.db).await?;
    let Some((members, events)) = batch_work(scim, &txn, owner, push, seq).await? else {
        txn.rollback().await?;
        return Ok(Batch::NotOurs);
    };
    let last = store::finish_batch(&txn, push, owner, seq, (members, events), Utc::now()).await?;
    txn.commit().await?;
    Ok(Batch::Done { members, events, last })
}

/// A producer that dies in the middle of batch `seq`: the batch's work is
/// done in its transaction, which then ends without a commit, as a dead
/// process's connection does. For tests of what the next drainer does.
#[doc(hidden)]
pub async fn crash_in_batch(scim: &Scim<'_>, owner: &str, push: &scim_push::Model, seq: i32) -> Result<(), StoreError> {
    let txn = lifecycle_store::begin_write(scim.db).await?;
    batch_work(scim, &txn, owner, push, seq).await?;
    drop(txn);
    Ok(())
}

/// The batch taken and its members' events stored: (members, events), or
/// None when the batch is not this drainer's.
async fn batch_work(
    scim: &Scim<'_>,
    txn: &DatabaseTransaction,
    owner: &str,
    push: &scim_push::Model,
    seq: i32,
) -> Result<Option<(usize, usize)>, StoreError> {
    if !store::take_batch(txn, &push.id, owner, seq, LEASE, Utc::now()).await? {
        return Ok(None);
    }
    let members = store::batch_members(txn, &push.id, seq).await?;
    let events = scim.refresh_members(txn, &members, &push.key).await.map_err(|e| match e {
        crate::scim::Error::Store(e) | crate::scim::Error::Read { source: e, .. } => e,
        // A refresh refuses nothing: each member's own rule is checked when it is written.
        other => StoreError::Corrupt(other.to_string()),
    })?;
    Ok(Some((members.len(), events)))
}

/// Takes the oldest pending push whose lease is free, for `owner`.
pub async fn claim(db: &Db, owner: &str) -> Result<Option<scim_push::Model>, StoreError> {
    store::claim(db, owner, LEASE, Utc::now()).await
}

/// Works through pending pushes, batch by batch, until none is left or
/// `stopping`; wakes the relay after each batch that stored events. How
/// many events were stored.
pub async fn drain(scim: &Scim<'_>, owner: &str, stopping: impl Fn() -> bool, relay_wake: &Notify) -> usize {
    let mut stored = 0;
    while !stopping() {
        let push = match claim(scim.db, owner).await {
            Ok(Some(p)) => p,
            Ok(None) => return stored,
            Err(e) => {
                warn!(error = %e, "pushes could not be read; trying again later");
                return stored;
            }
        };
        let span = tracing::info_span!("scim_push", push = %push.id, group = %push.group_id, attempt = push.attempts);
        match drain_one(scim, owner, &push, &stopping, relay_wake).instrument(span).await {
            Ok(n) => stored += n,
            Err(e) => {
                warn!(push = %push.id, error = %e, "a push's batch failed; it is tried again shortly");
                let at = Utc::now() + chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default();
                let _ = store::rest_until(scim.db, &push.id, owner, at, &e.to_string()).await;
                return stored;
            }
        }
    }
    stored
}

/// One push's remaining batches, in order; its lease given up when stopping half-way.
async fn drain_one(
    scim: &Scim<'_>,
    owner: &str,
    push: &scim_push::Model,
    stopping: &impl Fn() -> bool,
    relay_wake: &Notify,
) -> Result<usize, StoreError> {
    let mut stored = 0;
    for seq in push.next_batch..push.batches {
        if stopping() {
            store::release(scim.db, &push.id, owner, None).await?;
            return Ok(stored);
        }
        match run_batch(scim, owner, push, seq).await? {
            Batch::Done { members, events, last } => {
                metrics::counter!("lifecycle_push_members_total").increment(members as u64);
                if events > 0 {
                    relay_wake.notify_one();
                }
                stored += events;
                if last {
                    info!(push = %push.id, members = push.members, "SCIM push done");
                }
            }
            Batch::NotOurs => {
                warn!(push = %push.id, seq, "the push's lease was taken over; leaving it to its new owner");
                return Ok(stored);
            }
        }
    }
    Ok(stored)
}

/// Whether the push is done.
pub fn is_done(p: &Push) -> bool {
    p.state == PushState::Done.as_str()
}
