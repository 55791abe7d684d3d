//! SCIM writes and what they mean for lifecycle (docs/contract.md §6).
//!
//! Each write is one database transaction: the resource's row is taken first
//! (`lifecycle_store::scim::lock_*`), the change is worked out from what is
//! stored, and the resource, the memberships and the events the change means
//! for each person ([`lifecycle_scim::mapping::plan`]) are stored together
//! through [`crate::intake::submit`], as any event is. An event's
//! idempotency key is made of the resource's id and its new version, so a
//! retried write that changes nothing makes nothing, and a write that would
//! repeat an event already stored finds it instead.
//!
//! The operations answer typed records ([`User`], [`Group`]); the SCIM wire
//! shapes (`meta`, `$ref`, projections) are the producer's.
//!
//! [`users`] and [`groups`]: the two resources' writes. [`bulk`]: Entra's
//! `bulkUpload`, each of its operations written through this same path.

pub mod bulk;
mod groups;
mod users;

use crate::intake::{self, Submission};
use chrono::{DateTime, Utc};
use lifecycle_config::ScheduleSettings;
use lifecycle_domain::event::payload_hash;
use lifecycle_scim::mapping::{self, Applied, Mapping, Target};
use lifecycle_scim::patch;
use lifecycle_scim::resource::{self, UserInput};
use lifecycle_scim::ScimError;
use lifecycle_store::entity::scim_user;
use lifecycle_store::safety::Guard;
use lifecycle_store::scim as store;
use lifecycle_store::{Db, StoreError};
use sea_orm::DatabaseTransaction;
use serde_json::{Map, Value};
use tracing::{info, warn};

/// `events.source` of SCIM's events.
pub const SOURCE: &str = "scim";

/// Why a SCIM operation did not happen; `ScimError::from` says it as SCIM does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong as SCIM words it (a bad body, filter or PATCH).
    #[error(transparent)]
    Refused(#[from] ScimError),
    #[error("no {kind} with id {id:?}")]
    NotFound { kind: &'static str, id: String },
    /// A unique name (`userName`, a group's `displayName`) is taken; the words say which.
    #[error("{0}")]
    Taken(String),
    /// `If-Match` named another version than the stored one.
    #[error("the resource changed: its version is now {}", lifecycle_scim::etag(*version))]
    Changed { version: i64 },
    /// The database failed during a write: nothing was kept.
    #[error("the change could not be stored: {0}")]
    Store(#[source] StoreError),
    /// The database failed reading a list (`what`: users, groups).
    #[error("the {what} could not be read: {source}")]
    Read { what: &'static str, source: StoreError },
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        Error::Store(StoreError::Db(e))
    }
}

impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(e) => e,
            Error::NotFound { .. } => ScimError::not_found(e.to_string()),
            Error::Taken(words) => ScimError::uniqueness(words),
            Error::Changed { .. } => ScimError::precondition_failed(e.to_string()),
            // The database's words are logged, never answered.
            Error::Store(e) => {
                tracing::error!(error = %e, "database error in a SCIM request");
                ScimError::new(503, None, "the change could not be stored; nothing was kept, retry")
            }
            Error::Read { what, source } => {
                tracing::error!(error = %source, "database error reading SCIM {what}");
                ScimError::new(503, None, format!("the {what} could not be read; retry"))
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A group or user named in the other's resource: its id and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub id: String,
    pub name: String,
}

fn refs(pairs: Vec<(String, String)>) -> Vec<Ref> {
    pairs.into_iter().map(|(id, name)| Ref { id, name }).collect()
}

/// A stored user: the resource as written, and the groups it is in.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub resource: Map<String, Value>,
    pub active: bool,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub groups: Vec<Ref>,
}

impl User {
    fn new(u: &scim_user::Model, groups: Vec<Ref>) -> User {
        User {
            id: u.id.clone(),
            resource: parse_json(&u.resource),
            active: u.active,
            version: u.version,
            created: u.created_at,
            modified: u.updated_at,
            groups,
        }
    }
}

/// A stored group; `members` only when they were asked for.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub resource: Map<String, Value>,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub members: Option<Vec<Ref>>,
}

/// What a write did: the resource now, and how many events it stored.
#[derive(Debug, Clone)]
pub struct Written<R> {
    pub resource: R,
    pub events: usize,
}

/// A page of resources, and how many match in all.
#[derive(Debug, Clone)]
pub struct Listed<R> {
    pub total: u64,
    pub resources: Vec<R>,
}

/// A PUT's body or a PATCH's operations.
pub enum Change {
    Replace(Value),
    Patch(Vec<patch::Operation>),
}

/// Everything a write needs.
#[derive(Clone, Copy)]
pub struct Scim<'a> {
    pub db: &'a Db,
    pub schedule: &'a ScheduleSettings,
    /// The blast-radius guard (`[safety]`): a deprovisioned user's leavers count.
    pub guard: &'a Guard,
    /// `[scim]`'s groups-to-apps mapping.
    pub mapping: &'a Mapping,
}

/// Ends a write's transaction: committed when `result` is a success,
/// rolled back when it is an error.
async fn commit<T>(txn: DatabaseTransaction, result: Result<T>) -> Result<T> {
    match result {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// [`commit`], but rolled back also when the write had nothing to keep
/// (`None`: an IdP repeating itself).
async fn commit_changed<T>(txn: DatabaseTransaction, result: Result<Option<T>>) -> Result<Option<T>> {
    match result {
        Ok(None) => {
            let _ = txn.rollback().await;
            Ok(None)
        }
        other => commit(txn, other).await,
    }
}

/// `If-Match` against the resource's version (RFC 7644 §3.14).
fn check_if_match(if_match: Option<&str>, version: i64) -> Result<()> {
    match if_match.map(str::trim) {
        None | Some("*") => Ok(()),
        Some(tags) if tags.split(',').any(|t| t.trim() == lifecycle_scim::etag(version)) => Ok(()),
        Some(_) => Err(Error::Changed { version }),
    }
}

/// The row of a user or group a write just took (`lock_*`), once there is
/// one and `If-Match` allows the write.
fn writable<M>(
    taken: Result<Option<M>, StoreError>,
    (kind, id): (&'static str, &str),
    version: fn(&M) -> i64,
    if_match: Option<&str>,
) -> Result<M> {
    let current = taken?.ok_or_else(|| not_found(kind, id))?;
    check_if_match(if_match, version(&current))?;
    Ok(current)
}

/// A write's store error: a unique index refusing the row is [`Error::Taken`],
/// `taken` saying which name is taken.
fn write_error(e: StoreError, taken: impl FnOnce() -> String) -> Error {
    if store::is_unique_violation(&e) {
        Error::Taken(taken())
    } else {
        Error::Store(e)
    }
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::NotFound { kind, id: id.to_string() }
}

fn parse_json(s: &str) -> Map<String, Value> {
    serde_json::from_str(s).unwrap_or_default()
}

fn applied(u: &scim_user::Model) -> Option<Applied> {
    u.applied.as_deref().and_then(|a| serde_json::from_str(a).ok())
}

/// CPU work (a body decoded, a PATCH parsed or applied) off the async threads.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ScimError> + Send + 'static,
) -> Result<T, ScimError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        warn!(error = %e, "SCIM work failed");
        Err(ScimError::new(500, None, "the request could not be worked out"))
    })
}

impl Scim<'_> {
    /// The person a user is, and what they should have; `None` when inactive.
    fn target(&self, id: &str, input: &UserInput, groups: &[&str]) -> Result<Option<Target>, ScimError> {
        if !input.active {
            return Ok(None);
        }
        let person = resource::person(&input.resource)?;
        let apps = mapping::with_logins(self.mapping.desired(groups.iter().copied()), &person.logins);
        Ok(Some(Target { employee_id: input.external_id.clone().unwrap_or_else(|| id.to_string()), person, apps }))
    }

    /// Plans and stores the events taking one user from `before` to
    /// `target`, and records what is now applied.
    async fn apply_person(
        &self,
        txn: &DatabaseTransaction,
        id: &str,
        before: Option<&Applied>,
        target: Option<&Target>,
        key: &str,
    ) -> Result<usize> {
        let (planned, after) = mapping::plan(before, target)?;
        if after.as_ref() != before {
            let json = after.as_ref().map(|a| serde_json::to_string(a).expect("serializes"));
            store::set_applied(txn, id, json).await?;
        }
        self.submit_all(txn, &planned, key).await
    }

    /// After a group change: one member's access worked out again.
    async fn refresh_member(&self, txn: &DatabaseTransaction, user_id: &str, key: &str) -> Result<usize> {
        let Some(u) = store::get_user(txn, user_id).await? else { return Ok(0) };
        if !u.active && applied(&u).is_none() {
            return Ok(0);
        }
        let groups = store::groups_of_user(txn, user_id).await?;
        self.refresh_loaded(txn, &u, &groups, key).await
    }

    /// [`Self::refresh_member`] for many members (a push's batch): their rows
    /// taken in id order, then read, with their groups, in a few statements.
    /// How many events were stored.
    pub(crate) async fn refresh_members(&self, txn: &DatabaseTransaction, ids: &[String], key: &str) -> Result<usize> {
        store::lock_users(txn, ids).await?;
        let users = store::get_users(txn, ids).await?;
        let groups = store::groups_of_users(txn, ids).await?;
        let mut events = 0;
        for u in &users {
            if !u.active && applied(u).is_none() {
                continue;
            }
            let none = Vec::new();
            events += self.refresh_loaded(txn, u, groups.get(&u.id).unwrap_or(&none), key).await?;
        }
        Ok(events)
    }

    /// One member's access worked out from their stored row and groups.
    async fn refresh_loaded(
        &self,
        txn: &DatabaseTransaction,
        u: &scim_user::Model,
        groups: &[(String, String)],
        key: &str,
    ) -> Result<usize> {
        let user_id = u.id.as_str();
        let before = applied(u);
        let names: Vec<&str> = groups.iter().map(|(_, n)| n.as_str()).collect();
        let input = UserInput {
            resource: parse_json(&u.resource),
            user_name: u.user_name.clone(),
            external_id: u.external_id.clone(),
            active: u.active,
        };
        let target = match self.target(user_id, &input, &names) {
            Ok(t) => t,
            Err(e) => {
                // Every active user was checked when written; one stored before a rule existed is left as it is.
                warn!(user = %user_id, error = %e, "SCIM user cannot be provisioned; their group change makes no event");
                return Ok(0);
            }
        };
        self.apply_person(txn, user_id, before.as_ref(), target.as_ref(), &format!("{key}:user:{user_id}")).await
    }

    async fn submit_all(&self, txn: &DatabaseTransaction, planned: &[mapping::Planned], key: &str) -> Result<usize> {
        let mut stored = 0;
        for p in planned {
            let key = format!("scim:{key}:{}", p.event_type.as_str());
            let hash = payload_hash(&p.body);
            let s = Submission {
                source: SOURCE,
                idempotency_key: &key,
                payload: &p.body,
                payload_hash: &hash,
                event: &p.event,
                actor: SOURCE,
            };
            match intake::submit(txn, self.schedule, self.guard, s).await? {
                intake::Submitted::Created { event_id, .. } => {
                    metrics::counter!("lifecycle_events_accepted_total", "type" => p.event_type.as_str()).increment(1);
                    info!(event_id = %event_id, key = %key, event_type = p.event_type.as_str(), "SCIM event stored");
                    stored += 1;
                }
                // The same change was stored before (a retry): nothing more.
                intake::Submitted::Existing(_) => {}
            }
        }
        Ok(stored)
    }

    async fn begin(&self) -> Result<DatabaseTransaction> {
        Ok(lifecycle_store::begin_write(self.db).await?)
    }
}
