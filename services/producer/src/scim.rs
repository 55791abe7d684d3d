//! SCIM writes and what they mean for lifecycle (docs/contract.md §6).
//!
//! Each write is one database transaction: the resource's row is taken first
//! (`lifecycle_store::scim::lock_*`), the change is worked out from what is
//! stored, and the resource, the memberships and the events the change means
//! for each person ([`lifecycle_scim::mapping::plan`]) are stored together
//! through `lifecycle_ops::intake::submit`, as any event is. An event's
//! idempotency key is made of the resource's id and its new version, so a
//! retried write that changes nothing makes nothing, and a write that would
//! repeat an event already stored finds it instead.
//!
//! [`bulk`]: Entra's `bulkUpload`, each of its operations written through
//! this same path.

pub mod bulk;

use chrono::{DateTime, Utc};
use lifecycle_config::{ScheduleSettings, Secret};
use lifecycle_domain::event::payload_hash;
use lifecycle_ops::intake::{self, Submission};
use lifecycle_scim::filter::{Attr, Filter, Resource};
use lifecycle_scim::list::Page;
use lifecycle_scim::mapping::{self, Applied, Mapping, Target};
use lifecycle_scim::patch::{self, MemberChange};
use lifecycle_scim::resource::{self, GroupInput, Meta, Projection, UserInput};
use lifecycle_scim::ScimError;
use lifecycle_store::entity::{scim_group, scim_user};
use lifecycle_store::scim::{self as store, GroupFilter, GroupRow, UserFilter, UserRow};
use lifecycle_store::{Db, StoreError};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use tracing::{info, warn};

/// `events.source` of SCIM's events.
pub const SOURCE: &str = "scim";

/// The SCIM endpoint's configuration, ready to serve.
pub struct ScimConfig {
    /// No tokens: SCIM is not served (404).
    pub tokens: Vec<Secret>,
    pub mapping: Mapping,
    pub max_body_bytes: usize,
    pub max_page_size: u64,
    /// `[scim] public_url`: the start of `Location` and `meta.location`.
    pub public_url: Option<String>,
    /// Wakes [`bulk::run`] when a bulk request is stored.
    pub bulk_wake: std::sync::Arc<tokio::sync::Notify>,
}

impl ScimConfig {
    pub fn new(settings: &lifecycle_config::ScimSettings) -> ScimConfig {
        ScimConfig {
            tokens: settings.tokens.clone(),
            mapping: Mapping::new(settings),
            max_body_bytes: settings.max_body_bytes,
            max_page_size: settings.max_page_size,
            public_url: settings.public_url.clone(),
            bulk_wake: Default::default(),
        }
    }
}

/// What serves SCIM for `state` with `config` (once its caller is authenticated).
pub(crate) fn scim_for<'a>(state: &'a crate::AppState, config: &'a ScimConfig) -> Scim<'a> {
    // meta.location and Location: `[scim] public_url`, else a path. Never the
    // request's Host or X-Forwarded-*: any client could choose them.
    let base = format!("{}/scim/v2", config.public_url.as_deref().unwrap_or(""));
    Scim { db: &state.db, schedule: &state.schedule, guard: &state.vendors.safety, config, base }
}

/// What a write did: the resource now, and how many events it stored.
pub struct Written {
    pub resource: Value,
    pub version: i64,
    pub events: usize,
}

/// A page of resources, and how many match in all.
pub type Listed = (u64, Vec<Value>);

/// Everything a write needs.
pub struct Scim<'a> {
    pub db: &'a Db,
    pub schedule: &'a ScheduleSettings,
    /// The blast-radius guard (`[safety]`): a deprovisioned user's leavers count.
    pub guard: &'a lifecycle_store::safety::Guard,
    pub config: &'a ScimConfig,
    /// `[scim] public_url` + `/scim/v2` (or `/scim/v2` alone), for `meta.location`.
    pub base: String,
}

fn db_error(e: StoreError) -> ScimError {
    tracing::error!(error = %e, "database error in a SCIM request");
    ScimError::new(503, None, "the change could not be stored; nothing was kept, retry")
}

fn db_err(e: sea_orm::DbErr) -> ScimError {
    db_error(StoreError::Db(e))
}

/// A list's read failing (the transaction-less reads of `GET /Users`, `GET /Groups`):
/// the database's words are logged, never answered.
fn read_error(what: &'static str) -> impl Fn(StoreError) -> ScimError {
    move |e| {
        tracing::error!(error = %e, "database error reading SCIM {what}");
        ScimError::new(503, None, format!("the {what} could not be read; retry"))
    }
}

/// A write's store error: a unique index refusing the row is SCIM's 409,
/// `taken` saying which name is taken.
fn write_error(e: StoreError, taken: impl FnOnce() -> String) -> ScimError {
    if store::is_unique_violation(&e) {
        ScimError::uniqueness(taken())
    } else {
        db_error(e)
    }
}

/// Ends a write's transaction: committed when `result` is a success,
/// rolled back when it is an error.
async fn commit<T>(txn: DatabaseTransaction, result: Result<T, ScimError>) -> Result<T, ScimError> {
    match result {
        Ok(v) => {
            txn.commit().await.map_err(db_err)?;
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
async fn commit_changed<T>(
    txn: DatabaseTransaction,
    result: Result<Option<T>, ScimError>,
) -> Result<Option<T>, ScimError> {
    match result {
        Ok(None) => {
            let _ = txn.rollback().await;
            Ok(None)
        }
        other => commit(txn, other).await,
    }
}

/// `If-Match` against the resource's version (RFC 7644 §3.14).
fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), ScimError> {
    match if_match.map(str::trim) {
        None | Some("*") => Ok(()),
        Some(tags) if tags.split(',').any(|t| t.trim() == lifecycle_scim::etag(version)) => Ok(()),
        Some(_) => Err(ScimError::precondition_failed(format!(
            "the resource changed: its version is now {}",
            lifecycle_scim::etag(version)
        ))),
    }
}

fn parse_json(s: &str) -> Map<String, Value> {
    serde_json::from_str(s).unwrap_or_default()
}

impl Scim<'_> {
    // ---- either resource (what the routes call) ----

    /// A page of users or groups, `filter` applied, each resource projected.
    pub async fn list(
        &self,
        kind: Resource,
        filter: Option<Filter>,
        page: Page,
        projection: &Projection,
    ) -> Result<Listed, ScimError> {
        match kind {
            Resource::Users => self.list_users(&user_filter(filter), page, projection).await,
            Resource::Groups => self.list_groups(&group_filter(filter)?, page, projection).await,
        }
    }

    pub async fn create(&self, kind: Resource, body: &Value) -> Result<Written, ScimError> {
        match kind {
            Resource::Users => self.create_user(body).await,
            Resource::Groups => self.create_group(body).await,
        }
    }

    /// A user or group as `projection` asks for it, and its version.
    pub async fn get(&self, kind: Resource, id: &str, projection: &Projection) -> Result<(Value, i64), ScimError> {
        match kind {
            Resource::Users => {
                let (mut user, version) = self.get_user(id).await?;
                projection.apply_value(&mut user);
                Ok((user, version))
            }
            Resource::Groups => self.get_group(id, projection).await,
        }
    }

    /// A PUT or PATCH.
    pub async fn update(
        &self,
        kind: Resource,
        id: &str,
        change: Change,
        if_match: Option<&str>,
    ) -> Result<Written, ScimError> {
        match kind {
            Resource::Users => self.update_user(id, change, if_match).await,
            Resource::Groups => self.update_group(id, change, if_match).await,
        }
    }

    /// How many events the deletion stored.
    pub async fn delete(&self, kind: Resource, id: &str, if_match: Option<&str>) -> Result<usize, ScimError> {
        match kind {
            Resource::Users => self.delete_user(id, if_match).await,
            Resource::Groups => self.delete_group(id, if_match).await,
        }
    }

    // ---- reading ----

    /// A stored resource's `meta`; `resource_type` is `User` or `Group`, at
    /// `/Users/{id}` or `/Groups/{id}`.
    fn meta(
        &self,
        resource_type: &'static str,
        id: &str,
        (created, last_modified): (DateTime<Utc>, DateTime<Utc>),
        version: i64,
    ) -> Meta<'static> {
        let location = format!("{}/{resource_type}s/{id}", self.base);
        Meta { resource_type, created, last_modified, version, location }
    }

    fn user_json(&self, u: &scim_user::Model, groups: &[(String, String)]) -> Value {
        let meta = self.meta("User", &u.id, (u.created_at, u.updated_at), u.version);
        let mut out = resource::render(&parse_json(&u.resource), &u.id, &meta);
        if !groups.is_empty() {
            let list: Vec<Value> = groups
                .iter()
                .map(|(id, name)| json!({"value": id, "display": name, "$ref": format!("{}/Groups/{id}", self.base), "type": "direct"}))
                .collect();
            out.insert("groups".into(), Value::Array(list));
        }
        Value::Object(out)
    }

    async fn list_users(&self, filter: &UserFilter, page: Page, projection: &Projection) -> Result<Listed, ScimError> {
        let (total, users) =
            store::list_users(self.db, filter, page.offset(), page.count).await.map_err(read_error("users"))?;
        let mut resources = Vec::with_capacity(users.len());
        for u in &users {
            let groups = store::groups_of_user(self.db, &u.id).await.map_err(read_error("users"))?;
            let mut v = self.user_json(u, &groups);
            projection.apply_value(&mut v);
            resources.push(v);
        }
        Ok((total, resources))
    }

    async fn get_user(&self, id: &str) -> Result<(Value, i64), ScimError> {
        let u = store::get_user(self.db, id).await.map_err(db_error)?.ok_or_else(|| not_found("User", id))?;
        let groups = store::groups_of_user(self.db, id).await.map_err(db_error)?;
        Ok((self.user_json(&u, &groups), u.version))
    }

    /// A group; its members only when `projection` asks for them, read page by page.
    async fn group_json(&self, g: &scim_group::Model, projection: &Projection) -> Result<Value, ScimError> {
        let meta = self.meta("Group", &g.id, (g.created_at, g.updated_at), g.version);
        let mut out = resource::render(&parse_json(&g.resource), &g.id, &meta);
        if projection.wants("members") {
            let mut members = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let ids = store::member_ids_page(self.db, &g.id, after.as_deref(), 500).await.map_err(db_error)?;
                let names = store::user_names(self.db, &ids).await.map_err(db_error)?;
                members.extend(names.into_iter().map(|(id, name)| {
                    json!({"value": id, "display": name, "$ref": format!("{}/Users/{id}", self.base), "type": "User"})
                }));
                if ids.len() < 500 {
                    break;
                }
                after = ids.last().cloned();
            }
            out.insert("members".into(), Value::Array(members));
        }
        projection.apply(&mut out);
        Ok(Value::Object(out))
    }

    async fn list_groups(
        &self,
        filter: &GroupFilter,
        page: Page,
        projection: &Projection,
    ) -> Result<Listed, ScimError> {
        let (total, groups) =
            store::list_groups(self.db, filter, page.offset(), page.count).await.map_err(read_error("groups"))?;
        let mut resources = Vec::with_capacity(groups.len());
        for g in &groups {
            resources.push(self.group_json(g, projection).await?);
        }
        Ok((total, resources))
    }

    async fn get_group(&self, id: &str, projection: &Projection) -> Result<(Value, i64), ScimError> {
        let g = store::get_group(self.db, id).await.map_err(db_error)?.ok_or_else(|| not_found("Group", id))?;
        Ok((self.group_json(&g, projection).await?, g.version))
    }

    // ---- users ----

    async fn create_user(&self, body: &Value) -> Result<Written, ScimError> {
        let input = resource::parse_user(body)?;
        let id = uuid::Uuid::new_v4().to_string();
        let target = self.target(&id, &input, &[])?;
        let now = Utc::now();
        let txn = self.db.begin().await.map_err(db_err)?;
        let row = UserRow {
            id: id.clone(),
            user_name: input.user_name.clone(),
            external_id: input.external_id.clone(),
            active: input.active,
            version: 1,
            resource: Value::Object(input.resource.clone()).to_string(),
            applied: None,
        };
        // The insert is the transaction's first write: a taken userName is
        // refused here, before anything else is written (RFC 7644 §3.3: 409).
        let result = async {
            store::insert_user(&txn, row, now).await.map_err(|e| write_error(e, || user_taken(&input)))?;
            self.apply_person(&txn, &id, None, target.as_ref(), &format!("user:{id}:v1")).await
        }
        .await;
        let events = commit(txn, result).await?;
        info!(user = %id, events, "SCIM user created");
        let u = store::get_user(self.db, &id).await.map_err(db_error)?.ok_or_else(|| not_found("User", &id))?;
        Ok(Written { resource: self.user_json(&u, &[]), version: u.version, events })
    }

    /// PUT or PATCH of a user. The new user is worked out before the
    /// transaction takes the user's row, off the async threads: a PUT's body
    /// checked, a PATCH applied to the user as stored now. Under the lock the
    /// PATCH is applied again only if the user changed in between.
    async fn update_user(&self, id: &str, change: Change, if_match: Option<&str>) -> Result<Written, ScimError> {
        let change = match change {
            Change::Replace(body) => UserChange::Ready(off_thread(move || resource::parse_user(&body)).await),
            Change::Patch(ops) => {
                let ops = std::sync::Arc::new(ops);
                let now = store::get_user(self.db, id).await.map_err(db_error)?;
                let ready = match now {
                    None => None,
                    Some(u) => {
                        let (version, work) = (u.version, ops.clone());
                        Some((version, off_thread(move || patched_user(&parse_json(&u.resource), &work)).await))
                    }
                };
                UserChange::Patch { ops, ready }
            }
        };
        let txn = self.db.begin().await.map_err(db_err)?;
        let result = self.update_user_in(&txn, id, change, if_match).await;
        match commit_changed(txn, result).await? {
            Some(w) => Ok(w),
            // Nothing changed (an IdP repeating itself): nothing kept.
            None => {
                let (resource, version) = self.get_user(id).await?;
                Ok(Written { resource, version, events: 0 })
            }
        }
    }

    async fn update_user_in(
        &self,
        txn: &DatabaseTransaction,
        id: &str,
        change: UserChange,
        if_match: Option<&str>,
    ) -> Result<Option<Written>, ScimError> {
        let current = writable(store::lock_user(txn, id).await, ("User", id), |u| u.version, if_match)?;
        let stored = parse_json(&current.resource);
        let input = match change {
            UserChange::Ready(input) => input?,
            // Worked out on this very version: the stored user is the same.
            UserChange::Patch { ready: Some((version, input)), .. } if version == current.version => input?,
            // Changed in between (bounded: MAX_OPERATIONS, MAX_ELEMENTS, linear).
            UserChange::Patch { ops, .. } => patched_user(&stored, &ops)?,
        };
        if input.resource == stored && input.user_name == current.user_name {
            // Nothing changed (an IdP repeating itself): no new version, no event.
            return Ok(None);
        }
        let version = current.version + 1;
        let groups = store::groups_of_user(txn, id).await.map_err(db_error)?;
        let names: Vec<&str> = groups.iter().map(|(_, n)| n.as_str()).collect();
        let target = self.target(id, &input, &names)?;
        let before = applied(&current);
        let (planned, after) = mapping::plan(before.as_ref(), target.as_ref())?;
        let row = UserRow {
            id: id.to_string(),
            user_name: input.user_name.clone(),
            external_id: input.external_id.clone(),
            active: input.active,
            version,
            resource: Value::Object(input.resource.clone()).to_string(),
            applied: after.as_ref().map(|a| serde_json::to_string(a).expect("serializes")),
        };
        store::save_user(txn, row, Utc::now()).await.map_err(|e| write_error(e, || user_taken(&input)))?;
        let events = self.submit_all(txn, &planned, &format!("user:{id}:v{version}")).await?;
        let u = store::get_user(txn, id).await.map_err(db_error)?.ok_or_else(|| not_found("User", id))?;
        info!(user = %id, version, events, active = u.active, "SCIM user changed");
        Ok(Some(Written { resource: self.user_json(&u, &groups), version, events }))
    }

    async fn delete_user(&self, id: &str, if_match: Option<&str>) -> Result<usize, ScimError> {
        let txn = self.db.begin().await.map_err(db_err)?;
        let result = async {
            let current = writable(store::lock_user(&txn, id).await, ("User", id), |u| u.version, if_match)?;
            let (planned, _) = mapping::plan(applied(&current).as_ref(), None)?;
            store::delete_user(&txn, id).await.map_err(db_error)?;
            let events = self.submit_all(&txn, &planned, &format!("user:{id}:deleted")).await?;
            Ok::<_, ScimError>(events)
        }
        .await;
        let events = commit(txn, result).await?;
        info!(user = %id, events, "SCIM user deleted");
        Ok(events)
    }

    /// The person a user is, and what they should have; `None` when inactive.
    fn target(&self, id: &str, input: &UserInput, groups: &[&str]) -> Result<Option<Target>, ScimError> {
        if !input.active {
            return Ok(None);
        }
        let person = resource::person(&input.resource)?;
        let apps = mapping::with_logins(self.config.mapping.desired(groups.iter().copied()), &person.logins);
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
    ) -> Result<usize, ScimError> {
        let (planned, after) = mapping::plan(before, target)?;
        if after.as_ref() != before {
            let json = after.as_ref().map(|a| serde_json::to_string(a).expect("serializes"));
            store::set_applied(txn, id, json).await.map_err(db_error)?;
        }
        self.submit_all(txn, &planned, key).await
    }

    /// After a group change: one member's access worked out again.
    async fn refresh_member(&self, txn: &DatabaseTransaction, user_id: &str, key: &str) -> Result<usize, ScimError> {
        let Some(u) = store::get_user(txn, user_id).await.map_err(db_error)? else { return Ok(0) };
        let before = applied(&u);
        if !u.active && before.is_none() {
            return Ok(0);
        }
        let groups = store::groups_of_user(txn, user_id).await.map_err(db_error)?;
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

    async fn submit_all(
        &self,
        txn: &DatabaseTransaction,
        planned: &[mapping::Planned],
        key: &str,
    ) -> Result<usize, ScimError> {
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
            match intake::submit(txn, self.schedule, self.guard, s).await.map_err(db_error)? {
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

    // ---- groups ----

    async fn create_group(&self, body: &Value) -> Result<Written, ScimError> {
        let input = resource::parse_group(body)?;
        let id = uuid::Uuid::new_v4().to_string();
        let txn = self.db.begin().await.map_err(db_err)?;
        let result = async {
            let row = GroupRow {
                id: id.clone(),
                display_name: input.display_name.clone(),
                external_id: input.external_id.clone(),
                version: 1,
                resource: Value::Object(input.resource.clone()).to_string(),
            };
            store::insert_group(&txn, row, Utc::now()).await.map_err(|e| write_error(e, || group_taken(&input)))?;
            let changes = input.members.clone().map(|m| vec![MemberChange::Add(m)]).unwrap_or_default();
            self.change_members(&txn, &id, &changes, false, &format!("group:{id}:v1")).await
        }
        .await;
        let events = commit(txn, result).await?;
        info!(group = %id, events, "SCIM group created");
        let (resource, version) = self.get_group(&id, &Projection::default()).await?;
        Ok(Written { resource, version, events })
    }

    async fn update_group(&self, id: &str, change: Change, if_match: Option<&str>) -> Result<Written, ScimError> {
        let txn = self.db.begin().await.map_err(db_err)?;
        let result = async {
            let current = writable(store::lock_group(&txn, id).await, ("Group", id), |g| g.version, if_match)?;
            let stored = parse_json(&current.resource);
            let (input, members): (GroupInput, Vec<MemberChange>) = match change {
                Change::Replace(body) => {
                    let input = resource::parse_group(&body)?;
                    // A PUT without members leaves them as they are (a large
                    // group's members are managed by PATCH).
                    let members = input.members.clone().map(|m| vec![MemberChange::Replace(m)]).unwrap_or_default();
                    (input, members)
                }
                Change::Patch(ops) => {
                    let (members, rest) = patch::split_group_ops(ops)?;
                    let mut r = stored.clone();
                    patch::apply(&mut r, &rest)?;
                    r.entry("schemas").or_insert_with(|| json!([lifecycle_scim::GROUP_SCHEMA]));
                    (resource::check_group(r)?, members)
                }
            };
            if input.resource == stored && members.is_empty() {
                return Ok(None);
            }
            let version = current.version + 1;
            let renamed = !input.display_name.eq_ignore_ascii_case(&current.display_name)
                && (self.config.mapping.maps(&input.display_name) || self.config.mapping.maps(&current.display_name));
            let row = GroupRow {
                id: id.to_string(),
                display_name: input.display_name.clone(),
                external_id: input.external_id.clone(),
                version,
                resource: Value::Object(input.resource.clone()).to_string(),
            };
            store::save_group(&txn, row, Utc::now()).await.map_err(|e| write_error(e, || group_taken(&input)))?;
            let events = self.change_members(&txn, id, &members, renamed, &format!("group:{id}:v{version}")).await?;
            info!(group = %id, version, events, "SCIM group changed");
            Ok(Some(events))
        }
        .await;
        let events = commit_changed(txn, result).await?.unwrap_or(0);
        let (resource, version) = self.get_group(id, &Projection::default()).await?;
        Ok(Written { resource, version, events })
    }

    async fn delete_group(&self, id: &str, if_match: Option<&str>) -> Result<usize, ScimError> {
        let txn = self.db.begin().await.map_err(db_err)?;
        let result = async {
            let current = writable(store::lock_group(&txn, id).await, ("Group", id), |g| g.version, if_match)?;
            let key = format!("group:{id}:deleted");
            if !self.config.mapping.maps(&current.display_name) {
                store::delete_group(&txn, id).await.map_err(db_error)?;
                return Ok(0);
            }
            let members = store::all_member_ids(&txn, id).await.map_err(db_error)?;
            store::lock_users(&txn, &members).await.map_err(db_error)?;
            store::delete_group(&txn, id).await.map_err(db_error)?;
            let mut events = 0;
            for m in &members {
                events += self.refresh_member(&txn, m, &key).await?;
            }
            Ok::<_, ScimError>(events)
        }
        .await;
        let events = commit(txn, result).await?;
        info!(group = %id, events, "SCIM group deleted");
        Ok(events)
    }

    /// Applies member changes row by row, then works out again the access
    /// of every member they touched (all members when `everyone`: the
    /// group's mapped name changed).
    async fn change_members(
        &self,
        txn: &DatabaseTransaction,
        group_id: &str,
        changes: &[MemberChange],
        everyone: bool,
        key: &str,
    ) -> Result<usize, ScimError> {
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut added: BTreeSet<String> = BTreeSet::new();
        for c in changes {
            match c {
                MemberChange::Add(ids) => added.extend(ids.iter().cloned()),
                MemberChange::Remove(ids) => touched.extend(ids.iter().cloned()),
                MemberChange::Replace(ids) => added.extend(ids.iter().cloned()),
            }
        }
        if changes.iter().any(|c| matches!(c, MemberChange::Replace(_))) || everyone {
            touched.extend(store::all_member_ids(txn, group_id).await.map_err(db_error)?);
        }
        let added: Vec<String> = added.into_iter().collect();
        let known: BTreeSet<String> =
            store::existing_user_ids(txn, &added).await.map_err(db_error)?.into_iter().collect();
        // An id that names no user (deleted meanwhile, or never ours) is left
        // out rather than failing the whole push: one stale member must not
        // keep the others out of the group. It is not stored, so the group
        // read back shows who really is in it.
        let unknown = added.len() - known.len();
        if unknown > 0 {
            info!(group = %group_id, unknown, "SCIM members that name no user were left out");
        }
        let only_known = |ids: &Vec<String>| ids.iter().filter(|i| known.contains(*i)).cloned().collect::<Vec<_>>();
        let changes: Vec<MemberChange> = changes
            .iter()
            .map(|c| match c {
                MemberChange::Add(ids) => MemberChange::Add(only_known(ids)),
                MemberChange::Replace(ids) => MemberChange::Replace(only_known(ids)),
                MemberChange::Remove(ids) => MemberChange::Remove(ids.clone()),
            })
            .collect();
        touched.extend(known.iter().cloned());
        let touched: Vec<String> = touched.into_iter().collect();
        // Members' rows are taken before memberships are written, in id order
        // (a user's own write takes only their row: no cycle).
        store::lock_users(txn, &touched).await.map_err(db_error)?;
        for c in &changes {
            match c {
                MemberChange::Add(ids) => store::add_members(txn, group_id, ids).await,
                MemberChange::Remove(ids) => store::remove_members(txn, group_id, ids).await,
                MemberChange::Replace(ids) => match store::remove_all_members(txn, group_id).await {
                    Ok(()) => store::add_members(txn, group_id, ids).await,
                    Err(e) => Err(e),
                },
            }
            .map_err(db_error)?;
        }
        let mut events = 0;
        for user_id in &touched {
            events += self.refresh_member(txn, user_id, key).await?;
        }
        Ok(events)
    }
}

/// A `filter` on /Users as the store takes it.
fn user_filter(filter: Option<Filter>) -> UserFilter {
    match filter {
        None => UserFilter::All,
        Some(f) => match f.attr {
            Attr::UserName => UserFilter::UserName(f.value),
            Attr::ExternalId => UserFilter::ExternalId(f.value),
            Attr::Id => UserFilter::Id(f.value),
            Attr::DisplayName => unreachable!("not a Users filter"),
        },
    }
}

/// A `filter` on /Groups as the store takes it.
fn group_filter(filter: Option<Filter>) -> Result<GroupFilter, ScimError> {
    Ok(match filter {
        None => GroupFilter::All,
        Some(f) => match (f.attr, f.member) {
            (Attr::Id, Some(member)) => GroupFilter::IdWithMember(f.value, member),
            (_, Some(_)) => return Err(ScimError::invalid_filter("a members clause goes with id eq \"...\" only")),
            (Attr::DisplayName, None) => GroupFilter::DisplayName(f.value),
            (Attr::ExternalId, None) => GroupFilter::ExternalId(f.value),
            (Attr::Id, None) => GroupFilter::Id(f.value),
            (Attr::UserName, None) => unreachable!("not a Groups filter"),
        },
    })
}

/// A user's PUT checked, or a PATCH and its result on the version read before the lock.
enum UserChange {
    Ready(Result<UserInput, ScimError>),
    Patch { ops: std::sync::Arc<Vec<patch::Operation>>, ready: Option<(i64, Result<UserInput, ScimError>)> },
}

/// `ops` applied to a stored user; the patched user must still be a valid user.
fn patched_user(stored: &Map<String, Value>, ops: &[patch::Operation]) -> Result<UserInput, ScimError> {
    let mut r = stored.clone();
    patch::apply(&mut r, ops)?;
    r.entry("schemas").or_insert_with(|| json!([lifecycle_scim::USER_SCHEMA]));
    resource::parse_user(&Value::Object(r))
}

/// CPU work (a body decoded, a PATCH parsed or applied) off the async threads.
pub(crate) async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ScimError> + Send + 'static,
) -> Result<T, ScimError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        warn!(error = %e, "SCIM work failed");
        Err(ScimError::new(500, None, "the request could not be worked out"))
    })
}

/// A PUT's body or a PATCH's operations.
pub enum Change {
    Replace(Value),
    Patch(Vec<patch::Operation>),
}

/// The row of a user or group a write just took (`lock_*`), once there is
/// one and `If-Match` allows the write.
fn writable<M>(
    taken: Result<Option<M>, StoreError>,
    (kind, id): (&str, &str),
    version: fn(&M) -> i64,
    if_match: Option<&str>,
) -> Result<M, ScimError> {
    let current = taken.map_err(db_error)?.ok_or_else(|| not_found(kind, id))?;
    check_if_match(if_match, version(&current))?;
    Ok(current)
}

fn user_taken(input: &UserInput) -> String {
    format!("a user with userName {:?} exists already", input.user_name)
}

fn group_taken(input: &GroupInput) -> String {
    format!("a group named {:?} exists already", input.display_name)
}

fn applied(u: &scim_user::Model) -> Option<Applied> {
    u.applied.as_deref().and_then(|a| serde_json::from_str(a).ok())
}

fn not_found(kind: &str, id: &str) -> ScimError {
    ScimError::not_found(format!("no {kind} with id {id:?}"))
}
