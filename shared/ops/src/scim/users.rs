//! `/Users`: a user's writes, and the events their access changes make.

use super::{
    applied, commit, commit_changed, not_found, off_thread, parse_json, refs, writable, write_error, Change, Listed,
    Result, Scim, User, Written,
};
use chrono::Utc;
use lifecycle_scim::filter::{Attr, Filter};
use lifecycle_scim::list::Page;
use lifecycle_scim::mapping;
use lifecycle_scim::patch;
use lifecycle_scim::resource::{self, UserInput};
use lifecycle_scim::ScimError;
use lifecycle_store::scim::{self as store, UserFilter, UserRow};
use sea_orm::DatabaseTransaction;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::info;

/// A user's PUT checked, or a PATCH and its result on the version read before the lock.
enum UserChange {
    Ready(Result<UserInput, ScimError>),
    Patch { ops: Arc<Vec<patch::Operation>>, ready: Option<(i64, Result<UserInput, ScimError>)> },
}

impl Scim<'_> {
    /// A page of users, `filter` applied (a Users filter: `userName`, `externalId`, `id`),
    /// each with its groups: read for the whole page at once.
    pub async fn list_users(&self, filter: Option<Filter>, page: Page) -> Result<Listed<User>> {
        let read = |source| super::Error::Read { what: "users", source };
        let (total, users) =
            store::list_users(self.db, &user_filter(filter)?, page.offset(), page.count).await.map_err(read)?;
        let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        let mut groups: HashMap<String, Vec<(String, String)>> =
            store::groups_of_users(self.db, &ids).await.map_err(read)?;
        let resources = users.iter().map(|u| User::new(u, refs(groups.remove(&u.id).unwrap_or_default()))).collect();
        Ok(Listed { total, resources })
    }

    /// A user and the groups it is in.
    pub async fn get_user(&self, id: &str) -> Result<User> {
        let u = store::get_user(self.db, id).await?.ok_or_else(|| not_found("User", id))?;
        let groups = store::groups_of_user(self.db, id).await?;
        Ok(User::new(&u, refs(groups)))
    }

    /// A new user from a `POST /Users` body, and the events its access makes.
    pub async fn create_user(&self, body: &Value) -> Result<Written<User>> {
        let input = resource::parse_user(body)?;
        let id = uuid::Uuid::new_v4().to_string();
        let target = self.target(&id, &input, &[])?;
        let now = Utc::now();
        let txn = self.begin().await?;
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
        let u = store::get_user(self.db, &id).await?.ok_or_else(|| not_found("User", &id))?;
        Ok(Written { resource: User::new(&u, Vec::new()), events })
    }

    /// PUT or PATCH of a user. The new user is worked out before the
    /// transaction takes the user's row, off the async threads: a PUT's body
    /// checked, a PATCH applied to the user as stored now. Under the lock the
    /// PATCH is applied again only if the user changed in between.
    pub async fn update_user(&self, id: &str, change: Change, if_match: Option<&str>) -> Result<Written<User>> {
        let change = match change {
            Change::Replace(body) => UserChange::Ready(off_thread(move || resource::parse_user(&body)).await),
            Change::Patch(ops) => {
                let ops = Arc::new(ops);
                let ready = match store::get_user(self.db, id).await? {
                    None => None,
                    Some(u) => {
                        let (version, work) = (u.version, ops.clone());
                        Some((version, off_thread(move || patched_user(&parse_json(&u.resource), &work)).await))
                    }
                };
                UserChange::Patch { ops, ready }
            }
        };
        let txn = self.begin().await?;
        let result = self.update_user_in(&txn, id, change, if_match).await;
        match commit_changed(txn, result).await? {
            Some(w) => Ok(w),
            // Nothing changed (an IdP repeating itself): nothing kept.
            None => Ok(Written { resource: self.get_user(id).await?, events: 0 }),
        }
    }

    async fn update_user_in(
        &self,
        txn: &DatabaseTransaction,
        id: &str,
        change: UserChange,
        if_match: Option<&str>,
    ) -> Result<Option<Written<User>>> {
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
        let groups = store::groups_of_user(txn, id).await?;
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
        let u = store::get_user(txn, id).await?.ok_or_else(|| not_found("User", id))?;
        info!(user = %id, version, events, active = u.active, "SCIM user changed");
        Ok(Some(Written { resource: User::new(&u, refs(groups)), events }))
    }

    /// How many events the deletion stored.
    pub async fn delete_user(&self, id: &str, if_match: Option<&str>) -> Result<usize> {
        let txn = self.begin().await?;
        let result = async {
            let current = writable(store::lock_user(&txn, id).await, ("User", id), |u| u.version, if_match)?;
            let (planned, _) = mapping::plan(applied(&current).as_ref(), None)?;
            store::delete_user(&txn, id).await?;
            self.submit_all(&txn, &planned, &format!("user:{id}:deleted")).await
        }
        .await;
        let events = commit(txn, result).await?;
        info!(user = %id, events, "SCIM user deleted");
        Ok(events)
    }
}

/// A `filter` on /Users as the store takes it.
fn user_filter(filter: Option<Filter>) -> Result<UserFilter, ScimError> {
    Ok(match filter {
        None => UserFilter::All,
        Some(f) => match f.attr {
            Attr::UserName => UserFilter::UserName(f.value),
            Attr::ExternalId => UserFilter::ExternalId(f.value),
            Attr::Id => UserFilter::Id(f.value),
            // `lifecycle_scim::filter::parse` refuses it on /Users already.
            Attr::DisplayName => return Err(ScimError::invalid_filter("displayName is not a filter of /Users")),
        },
    })
}

/// `ops` applied to a stored user; the patched user must still be a valid user.
fn patched_user(stored: &Map<String, Value>, ops: &[patch::Operation]) -> Result<UserInput, ScimError> {
    let mut r = stored.clone();
    patch::apply(&mut r, ops)?;
    r.entry("schemas").or_insert_with(|| json!([lifecycle_scim::USER_SCHEMA]));
    resource::parse_user(&Value::Object(r))
}

pub(super) fn user_taken(input: &UserInput) -> String {
    format!("a user with userName {:?} exists already", input.user_name)
}
