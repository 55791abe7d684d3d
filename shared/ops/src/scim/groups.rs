//! `/Groups`: a group's writes, its memberships, and the events its members'
//! access changes make.

use super::{commit, commit_changed, not_found, parse_json, refs, writable, write_error, Change, Group, Listed};
use super::{Error, Ref, Result, Scim, Written};
use crate::push;
use chrono::Utc;
use lifecycle_scim::filter::{Attr, Filter};
use lifecycle_scim::list::Page;
use lifecycle_scim::patch::{self, MemberChange};
use lifecycle_scim::resource::{self, GroupInput};
use lifecycle_scim::ScimError;
use lifecycle_store::entity::scim_group;
use lifecycle_store::scim::{self as store, GroupFilter, GroupRow};
use sea_orm::DatabaseTransaction;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tracing::info;

/// Members are read this many at a time.
const MEMBERS_PAGE: u64 = 500;

impl Scim<'_> {
    /// A page of groups, `filter` applied; each group's members only when `members`.
    pub async fn list_groups(&self, filter: Option<Filter>, page: Page, members: bool) -> Result<Listed<Group>> {
        let (total, groups) = store::list_groups(self.db, &group_filter(filter)?, page.offset(), page.count)
            .await
            .map_err(|source| Error::Read { what: "groups", source })?;
        let mut resources = Vec::with_capacity(groups.len());
        for g in &groups {
            resources.push(self.group(g, members).await?);
        }
        Ok(Listed { total, resources })
    }

    /// A group; its members only when `members`.
    pub async fn get_group(&self, id: &str, members: bool) -> Result<Group> {
        let g = store::get_group(self.db, id).await?.ok_or_else(|| not_found("Group", id))?;
        self.group(&g, members).await
    }

    /// A stored group; its members, when asked for, read page by page.
    async fn group(&self, g: &scim_group::Model, members: bool) -> Result<Group> {
        let members = if members { Some(self.members(&g.id).await?) } else { None };
        Ok(Group {
            id: g.id.clone(),
            resource: parse_json(&g.resource),
            version: g.version,
            created: g.created_at,
            modified: g.updated_at,
            members,
        })
    }

    async fn members(&self, group_id: &str) -> Result<Vec<Ref>> {
        let mut members = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let ids = store::member_ids_page(self.db, group_id, after.as_deref(), MEMBERS_PAGE).await?;
            members.extend(refs(store::user_names(self.db, &ids).await?));
            if (ids.len() as u64) < MEMBERS_PAGE {
                return Ok(members);
            }
            after = ids.last().cloned();
        }
    }

    /// A new group from a `POST /Groups` body, its members, and the events their access makes.
    pub async fn create_group(&self, body: &Value) -> Result<Written<Group>> {
        let input = resource::parse_group(body)?;
        let id = uuid::Uuid::new_v4().to_string();
        let txn = self.begin().await?;
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
            self.change_members(&txn, (&id, &input.display_name), &changes, false, &format!("group:{id}:v1")).await
        }
        .await;
        let events = commit(txn, result).await?;
        info!(group = %id, events, "SCIM group created");
        Ok(Written { resource: self.get_group(&id, true).await?, events })
    }

    /// PUT or PATCH of a group: its resource and its members.
    pub async fn update_group(&self, id: &str, change: Change, if_match: Option<&str>) -> Result<Written<Group>> {
        self.update_group_answering(id, change, if_match, true).await
    }

    /// [`Self::update_group`], the group's members read back only when
    /// `members` (a PATCH's answer leaves them out: 50,000 of them are
    /// 100 reads the IdP does not want).
    pub async fn update_group_answering(
        &self,
        id: &str,
        change: Change,
        if_match: Option<&str>,
        members: bool,
    ) -> Result<Written<Group>> {
        let txn = self.begin().await?;
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
                && (self.mapping.maps(&input.display_name) || self.mapping.maps(&current.display_name));
            let row = GroupRow {
                id: id.to_string(),
                display_name: input.display_name.clone(),
                external_id: input.external_id.clone(),
                version,
                resource: Value::Object(input.resource.clone()).to_string(),
            };
            store::save_group(&txn, row, Utc::now()).await.map_err(|e| write_error(e, || group_taken(&input)))?;
            let key = format!("group:{id}:v{version}");
            let events = self.change_members(&txn, (id, &input.display_name), &members, renamed, &key).await?;
            info!(group = %id, version, events, "SCIM group changed");
            Ok(Some(events))
        }
        .await;
        let events = commit_changed(txn, result).await?.unwrap_or(0);
        Ok(Written { resource: self.get_group(id, members).await?, events })
    }

    /// How many events the deletion stored (its members' access, when its name is mapped).
    pub async fn delete_group(&self, id: &str, if_match: Option<&str>) -> Result<usize> {
        let txn = self.begin().await?;
        let result = async {
            let current = writable(store::lock_group(&txn, id).await, ("Group", id), |g| g.version, if_match)?;
            let key = format!("group:{id}:deleted");
            if !self.mapping.maps(&current.display_name) {
                store::delete_group(&txn, id).await?;
                return Ok(0);
            }
            let members = store::all_member_ids(&txn, id).await?;
            if members.len() > push::BATCH {
                // Too many to work out in the request: a push does it afterwards.
                store::delete_group(&txn, id).await?;
                push::store(&txn, (id, &current.display_name), "delete", &key, &members).await?;
                return Ok(0);
            }
            store::lock_users(&txn, &members).await?;
            store::delete_group(&txn, id).await?;
            let mut events = 0;
            for m in &members {
                events += self.refresh_member(&txn, m, &key).await?;
            }
            Ok(events)
        }
        .await;
        let events = commit(txn, result).await?;
        info!(group = %id, events, "SCIM group deleted");
        Ok(events)
    }

    /// Applies member changes (batched inserts and deletes), then works out
    /// again the access of every member they touched (all members when
    /// `everyone`: the group's mapped name changed). When they are more than
    /// one push batch, that is left to a push stored in the same transaction
    /// (`crate::push`), and no event is made here.
    async fn change_members(
        &self,
        txn: &DatabaseTransaction,
        (group_id, group_name): (&str, &str),
        changes: &[MemberChange],
        everyone: bool,
        key: &str,
    ) -> Result<usize> {
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut added: BTreeSet<String> = BTreeSet::new();
        for c in changes {
            match c {
                MemberChange::Add(ids) | MemberChange::Replace(ids) => added.extend(ids.iter().cloned()),
                MemberChange::Remove(ids) => touched.extend(ids.iter().cloned()),
            }
        }
        if changes.iter().any(|c| matches!(c, MemberChange::Replace(_))) || everyone {
            touched.extend(store::all_member_ids(txn, group_id).await?);
        }
        let added: Vec<String> = added.into_iter().collect();
        let known: BTreeSet<String> = store::existing_user_ids(txn, &added).await?.into_iter().collect();
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
        let deferred = touched.len() > push::BATCH;
        // Members' rows are taken before memberships are written, in id order
        // (a user's own write takes only their row: no cycle). A push's batch
        // takes them when it works them out: its reads come after this commit.
        if !deferred {
            store::lock_users(txn, &touched).await?;
        }
        for c in &changes {
            match c {
                MemberChange::Add(ids) => store::add_members(txn, group_id, ids).await?,
                MemberChange::Remove(ids) => store::remove_members(txn, group_id, ids).await?,
                // Only the difference is written: a PUT of 50,000 that changes
                // 1,000 deletes and inserts 1,000 rows, not 50,000 each.
                MemberChange::Replace(ids) => {
                    let now: BTreeSet<String> = store::all_member_ids(txn, group_id).await?.into_iter().collect();
                    let wanted: BTreeSet<&String> = ids.iter().collect();
                    let gone: Vec<String> = now.iter().filter(|m| !wanted.contains(m)).cloned().collect();
                    let new: Vec<String> = ids.iter().filter(|m| !now.contains(*m)).cloned().collect();
                    store::remove_members(txn, group_id, &gone).await?;
                    store::add_members(txn, group_id, &new).await?;
                }
            }
        }
        if deferred {
            push::store(txn, (group_id, group_name), change_kind(&changes, everyone), key, &touched).await?;
            return Ok(0);
        }
        let mut events = 0;
        for user_id in &touched {
            events += self.refresh_member(txn, user_id, key).await?;
        }
        Ok(events)
    }
}

/// What a push records the write did to the members.
fn change_kind(changes: &[MemberChange], everyone: bool) -> &'static str {
    let kinds: BTreeSet<&str> = changes
        .iter()
        .map(|c| match c {
            MemberChange::Add(_) => "add",
            MemberChange::Remove(_) => "remove",
            MemberChange::Replace(_) => "replace",
        })
        .collect();
    match (kinds.len(), kinds.first()) {
        (0, _) if everyone => "rename",
        (1, Some(k)) => k,
        _ if kinds.contains("replace") => "replace",
        _ => "members",
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
            // `lifecycle_scim::filter::parse` refuses it on /Groups already.
            (Attr::UserName, None) => return Err(ScimError::invalid_filter("userName is not a filter of /Groups")),
        },
    })
}

fn group_taken(input: &GroupInput) -> String {
    format!("a group named {:?} exists already", input.display_name)
}
