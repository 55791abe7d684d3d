//! SCIM's wire shapes over `lifecycle_ops::scim` (docs/contract.md §6): the
//! writes, their transactions and the events they make are the ops crate's;
//! here a stored user or group becomes the SCIM resource a client reads
//! (`meta`, `$ref`, `groups`, `members`), and [`Kind`] lets one set of
//! handlers serve `/Users` and `/Groups`.
//!
//! [`bulk`]: Entra's `bulkUpload` loop and its `BulkResponse`.

pub mod bulk;

use chrono::{DateTime, Utc};
use lifecycle_config::Secret;
use lifecycle_ops::scim::{Change, Group, Ref, User};
use lifecycle_scim::filter::{Filter, Resource};
use lifecycle_scim::list::Page;
use lifecycle_scim::mapping::Mapping;
use lifecycle_scim::resource::{self, Meta, Projection};
use lifecycle_scim::ScimError;
use serde_json::{json, Map, Value};
use std::future::Future;

pub use lifecycle_ops::scim::{off_thread, SOURCE};

/// The SCIM endpoint's configuration, ready to serve.
pub struct ScimConfig {
    /// No tokens: SCIM is not served (404).
    pub tokens: Vec<Secret>,
    pub mapping: Mapping,
    pub max_body_bytes: usize,
    /// A group's writes' own limit (`[scim] max_group_body_bytes`).
    pub max_group_body_bytes: usize,
    pub max_page_size: u64,
    /// `[scim] public_url`: the start of `Location` and `meta.location`.
    pub public_url: Option<String>,
    /// Wakes [`bulk::run`] when a bulk request is stored.
    pub bulk_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Wakes [`crate::push::run`] after a group write (it may have stored a push).
    pub push_wake: std::sync::Arc<tokio::sync::Notify>,
}

impl ScimConfig {
    pub fn new(settings: &lifecycle_config::ScimSettings) -> ScimConfig {
        ScimConfig {
            tokens: settings.tokens.clone(),
            mapping: Mapping::new(settings),
            max_body_bytes: settings.max_body_bytes,
            max_group_body_bytes: settings.max_group_body_bytes,
            max_page_size: settings.max_page_size,
            public_url: settings.public_url.clone(),
            bulk_wake: Default::default(),
            push_wake: Default::default(),
        }
    }
}

/// What serves SCIM for `state` with `config` (once its caller is authenticated).
pub(crate) fn scim_for<'a>(state: &'a crate::AppState, config: &'a ScimConfig) -> Scim<'a> {
    // meta.location and Location: `[scim] public_url`, else a path. Never the
    // request's Host or X-Forwarded-*: any client could choose them.
    let base = format!("{}/scim/v2", config.public_url.as_deref().unwrap_or(""));
    let ops = lifecycle_ops::scim::Scim {
        db: &state.db,
        schedule: &state.schedule,
        guard: &state.vendors.safety,
        mapping: &config.mapping,
    };
    Scim { ops, config, base }
}

/// What a write did: the resource now, and how many events it stored.
pub struct Written {
    pub resource: Value,
    pub version: i64,
    pub events: usize,
}

/// A page of resources, and how many match in all.
pub type Listed = (u64, Vec<Value>);

/// The SCIM operations, and how their resources are shown.
pub struct Scim<'a> {
    pub ops: lifecycle_ops::scim::Scim<'a>,
    pub config: &'a ScimConfig,
    /// `[scim] public_url` + `/scim/v2` (or `/scim/v2` alone), for `meta.location`.
    pub base: String,
}

impl Scim<'_> {
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

    /// A user as SCIM shows it; its groups only when it is in some.
    pub fn user_json(&self, u: &User) -> Value {
        let meta = self.meta("User", &u.id, (u.created, u.modified), u.version);
        let mut out = resource::render(&u.resource, &u.id, &meta);
        if !u.groups.is_empty() {
            let list: Vec<Value> = u
                .groups
                .iter()
                .map(|Ref { id, name }| json!({"value": id, "display": name, "$ref": format!("{}/Groups/{id}", self.base), "type": "direct"}))
                .collect();
            out.insert("groups".into(), Value::Array(list));
        }
        Value::Object(out)
    }

    /// A group as SCIM shows it, `projection` applied; its members when they were read.
    pub fn group_json(&self, g: &Group, projection: &Projection) -> Value {
        let meta = self.meta("Group", &g.id, (g.created, g.modified), g.version);
        let mut out: Map<String, Value> = resource::render(&g.resource, &g.id, &meta);
        if let Some(members) = &g.members {
            let list: Vec<Value> = members
                .iter()
                .map(|Ref { id, name }| json!({"value": id, "display": name, "$ref": format!("{}/Users/{id}", self.base), "type": "User"}))
                .collect();
            out.insert("members".into(), Value::Array(list));
        }
        projection.apply(&mut out);
        Value::Object(out)
    }

    pub(crate) fn user_written(&self, w: lifecycle_ops::scim::Written<User>) -> Written {
        Written { version: w.resource.version, resource: self.user_json(&w.resource), events: w.events }
    }

    fn group_written(&self, w: lifecycle_ops::scim::Written<Group>) -> Written {
        let resource = self.group_json(&w.resource, &Projection::default());
        Written { version: w.resource.version, resource, events: w.events }
    }
}

/// `/Users` or `/Groups`: what differs between the two for the handlers
/// (`routes::scim`) that serve both.
pub(crate) trait Kind {
    const RESOURCE: Resource;

    /// A page of resources, `filter` applied, each resource projected.
    fn list(
        s: &Scim<'_>,
        filter: Option<Filter>,
        page: Page,
        projection: &Projection,
    ) -> impl Future<Output = Result<Listed, ScimError>> + Send;

    fn create(s: &Scim<'_>, body: &Value) -> impl Future<Output = Result<Written, ScimError>> + Send;

    /// A resource as `projection` asks for it, and its version.
    fn get(
        s: &Scim<'_>,
        id: &str,
        projection: &Projection,
    ) -> impl Future<Output = Result<(Value, i64), ScimError>> + Send;

    /// A PUT or PATCH; a group's members are read back only when `members`.
    fn update(
        s: &Scim<'_>,
        id: &str,
        change: Change,
        if_match: Option<&str>,
        members: bool,
    ) -> impl Future<Output = Result<Written, ScimError>> + Send;

    /// How many events the deletion stored.
    fn delete(s: &Scim<'_>, id: &str, if_match: Option<&str>) -> impl Future<Output = Result<usize, ScimError>> + Send;
}

pub(crate) struct Users;

impl Kind for Users {
    const RESOURCE: Resource = Resource::Users;

    async fn list(
        s: &Scim<'_>,
        filter: Option<Filter>,
        page: Page,
        projection: &Projection,
    ) -> Result<Listed, ScimError> {
        let listed = s.ops.list_users(filter, page).await?;
        let resources = listed
            .resources
            .iter()
            .map(|u| {
                let mut v = s.user_json(u);
                projection.apply_value(&mut v);
                v
            })
            .collect();
        Ok((listed.total, resources))
    }

    async fn create(s: &Scim<'_>, body: &Value) -> Result<Written, ScimError> {
        Ok(s.user_written(s.ops.create_user(body).await?))
    }

    async fn get(s: &Scim<'_>, id: &str, projection: &Projection) -> Result<(Value, i64), ScimError> {
        let u = s.ops.get_user(id).await?;
        let mut v = s.user_json(&u);
        projection.apply_value(&mut v);
        Ok((v, u.version))
    }

    async fn update(
        s: &Scim<'_>,
        id: &str,
        change: Change,
        if_match: Option<&str>,
        _members: bool,
    ) -> Result<Written, ScimError> {
        Ok(s.user_written(s.ops.update_user(id, change, if_match).await?))
    }

    async fn delete(s: &Scim<'_>, id: &str, if_match: Option<&str>) -> Result<usize, ScimError> {
        Ok(s.ops.delete_user(id, if_match).await?)
    }
}

pub(crate) struct Groups;

impl Kind for Groups {
    const RESOURCE: Resource = Resource::Groups;

    async fn list(
        s: &Scim<'_>,
        filter: Option<Filter>,
        page: Page,
        projection: &Projection,
    ) -> Result<Listed, ScimError> {
        let listed = s.ops.list_groups(filter, page, projection.wants("members")).await?;
        Ok((listed.total, listed.resources.iter().map(|g| s.group_json(g, projection)).collect()))
    }

    async fn create(s: &Scim<'_>, body: &Value) -> Result<Written, ScimError> {
        Ok(s.group_written(s.ops.create_group(body).await?))
    }

    async fn get(s: &Scim<'_>, id: &str, projection: &Projection) -> Result<(Value, i64), ScimError> {
        let g = s.ops.get_group(id, projection.wants("members")).await?;
        Ok((s.group_json(&g, projection), g.version))
    }

    async fn update(
        s: &Scim<'_>,
        id: &str,
        change: Change,
        if_match: Option<&str>,
        members: bool,
    ) -> Result<Written, ScimError> {
        Ok(s.group_written(s.ops.update_group_answering(id, change, if_match, members).await?))
    }

    async fn delete(s: &Scim<'_>, id: &str, if_match: Option<&str>) -> Result<usize, ScimError> {
        Ok(s.ops.delete_group(id, if_match).await?)
    }
}
