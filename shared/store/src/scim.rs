//! SCIM users, groups and memberships (docs/contract.md §6).
//!
//! A write takes its resource's row first (`lock_*`: an `UPDATE` that changes
//! nothing): on PostgreSQL that locks the row until the transaction ends, and
//! on SQLite a transaction that writes first holds the database's write lock
//! from its start, so the read that follows cannot be overtaken (see
//! `events::insert_all` on why SQLite's transactions must write first).
//! Memberships are rows with a composite primary key: an add inserts what is
//! missing and a remove deletes rows, so PATCHes to one group never rewrite
//! a shared list, and a group is read in pages.

use crate::entity::{scim_group as group, scim_member as member, scim_user as user};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, PrimaryKeyTrait,
    QueryFilter, QueryOrder, QuerySelect, Select, SqlErr,
};

/// Rows per statement when many ids go in one `IN (...)` or insert.
const CHUNK: usize = 500;

/// Whether `e` is a unique index refusing a row (a `userName` or group name taken).
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(db) if matches!(db.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))))
}

pub struct UserRow {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub version: i64,
    pub resource: String,
    pub applied: Option<String>,
}

/// Inserts a new user; a taken `userName` fails with a unique violation.
pub async fn insert_user(c: &impl ConnectionTrait, u: UserRow, now: DateTime<Utc>) -> Result<()> {
    user::Entity::insert(user::ActiveModel {
        id: Set(u.id),
        user_name_key: Set(u.user_name.to_lowercase()),
        user_name: Set(u.user_name),
        external_id: Set(u.external_id),
        active: Set(u.active),
        version: Set(u.version),
        resource: Set(u.resource),
        applied: Set(u.applied),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(c)
    .await?;
    Ok(())
}

/// Takes the row whose `id` is `id` (an `UPDATE` setting `version` to
/// itself); false when there is none.
async fn take_row<E: EntityTrait>(
    c: &impl ConnectionTrait,
    version: E::Column,
    id: E::Column,
    key: &str,
) -> Result<bool> {
    let done = E::update_many().col_expr(version, Expr::col(version).into()).filter(id.eq(key)).exec(c).await?;
    Ok(done.rows_affected > 0)
}

/// Takes the user's row for the rest of the transaction and reads it.
pub async fn lock_user(c: &impl ConnectionTrait, id: &str) -> Result<Option<user::Model>> {
    if !take_row::<user::Entity>(c, user::Column::Version, user::Column::Id, id).await? {
        return Ok(None);
    }
    get_user(c, id).await
}

/// Takes these users' rows, in id order (two transactions taking the same
/// users never wait on each other in a cycle).
pub async fn lock_users(c: &impl ConnectionTrait, ids: &[String]) -> Result<()> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    for chunk in ids.chunks(CHUNK) {
        user::Entity::update_many()
            .col_expr(user::Column::Version, Expr::col(user::Column::Version).into())
            .filter(user::Column::Id.is_in(chunk.iter().cloned()))
            .exec(c)
            .await?;
    }
    Ok(())
}

/// Writes a user's new state (after [`lock_user`]); a `userName` taken by
/// another user fails with a unique violation.
pub async fn save_user(c: &impl ConnectionTrait, u: UserRow, now: DateTime<Utc>) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::UserNameKey, Expr::value(u.user_name.to_lowercase()))
        .col_expr(user::Column::UserName, Expr::value(u.user_name))
        .col_expr(user::Column::ExternalId, Expr::value(u.external_id))
        .col_expr(user::Column::Active, Expr::value(u.active))
        .col_expr(user::Column::Version, Expr::value(u.version))
        .col_expr(user::Column::Resource, Expr::value(u.resource))
        .col_expr(user::Column::Applied, Expr::value(u.applied))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(u.id))
        .exec(c)
        .await?;
    Ok(())
}

/// Records what lifecycle now asks for the user (a group change).
pub async fn set_applied(c: &impl ConnectionTrait, id: &str, applied: Option<String>) -> Result<()> {
    user::Entity::update_many()
        .col_expr(user::Column::Applied, Expr::value(applied))
        .filter(user::Column::Id.eq(id))
        .exec(c)
        .await?;
    Ok(())
}

/// Deletes the user and their memberships.
pub async fn delete_user(c: &impl ConnectionTrait, id: &str) -> Result<()> {
    delete_with_memberships::<user::Entity>(c, member::Column::UserId, id).await
}

/// Deletes a user or group (`E`) and the memberships whose `side` is it.
async fn delete_with_memberships<E: EntityTrait>(c: &impl ConnectionTrait, side: member::Column, id: &str) -> Result<()>
where
    String: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
{
    member::Entity::delete_many().filter(side.eq(id)).exec(c).await?;
    E::delete_by_id(id.to_string()).exec(c).await?;
    Ok(())
}

pub async fn get_user(c: &impl ConnectionTrait, id: &str) -> Result<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id.to_string()).one(c).await?)
}

/// The users among `ids`, in id order (a push's batch reads its members so).
pub async fn get_users(c: &impl ConnectionTrait, ids: &[String]) -> Result<Vec<user::Model>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        out.extend(user::Entity::find().filter(user::Column::Id.is_in(chunk.iter().cloned())).all(c).await?);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One `eq` comparison (the filters of `lifecycle_scim::filter`), its value
/// always bound as a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserFilter {
    All,
    /// Compared without regard to case.
    UserName(String),
    ExternalId(String),
    Id(String),
}

/// A page of users in creation order, and how many match in all.
pub async fn list_users(
    c: &impl ConnectionTrait,
    filter: &UserFilter,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<user::Model>)> {
    let q = user::Entity::find();
    let q = match filter {
        UserFilter::All => q,
        UserFilter::UserName(v) => q.filter(user::Column::UserNameKey.eq(v.to_lowercase())),
        UserFilter::ExternalId(v) => q.filter(user::Column::ExternalId.eq(v.as_str())),
        UserFilter::Id(v) => q.filter(user::Column::Id.eq(v.as_str())),
    };
    counted_page(c, q, (user::Column::CreatedAt, user::Column::Id), offset, limit).await
}

/// How many rows `q` finds, and a page of them in `order` (creation time, then id).
async fn counted_page<E: EntityTrait>(
    c: &impl ConnectionTrait,
    q: Select<E>,
    order: (E::Column, E::Column),
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<E::Model>)>
where
    E::Model: Sync,
{
    let total = q.clone().count(c).await?;
    let page = if limit == 0 {
        Vec::new()
    } else {
        q.order_by_asc(order.0).order_by_asc(order.1).offset(offset).limit(limit).all(c).await?
    };
    Ok((total, page))
}

/// Those of `ids` that are users.
pub async fn existing_user_ids(c: &impl ConnectionTrait, ids: &[String]) -> Result<Vec<String>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<String> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(c)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// The `userName` of each of `ids` that exists, in the order of `ids`.
pub async fn user_names(c: &impl ConnectionTrait, ids: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String)> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::UserName)
            .filter(user::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(c)
            .await?;
        out.extend(rows);
    }
    let pos = |id: &str| ids.iter().position(|i| i == id);
    out.sort_by_key(|(id, _)| pos(id));
    Ok(out)
}

/// The groups a user is in: (id, displayName).
pub async fn groups_of_user(c: &impl ConnectionTrait, user_id: &str) -> Result<Vec<(String, String)>> {
    let ids: Vec<String> = member::Entity::find()
        .select_only()
        .column(member::Column::GroupId)
        .filter(member::Column::UserId.eq(user_id))
        .into_tuple()
        .all(c)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(group::Entity::find()
        .select_only()
        .column(group::Column::Id)
        .column(group::Column::DisplayName)
        .filter(group::Column::Id.is_in(ids))
        .order_by_asc(group::Column::DisplayNameKey)
        .into_tuple()
        .all(c)
        .await?)
}

/// The groups each of `user_ids` is in, as [`groups_of_user`] says them: one
/// read for a page of users, not one per user. A user in no group has no entry.
pub async fn groups_of_users(
    c: &impl ConnectionTrait,
    user_ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<(String, String)>>> {
    let mut memberships: Vec<(String, String)> = Vec::new();
    for chunk in user_ids.chunks(CHUNK) {
        let rows: Vec<(String, String)> = member::Entity::find()
            .select_only()
            .column(member::Column::UserId)
            .column(member::Column::GroupId)
            .filter(member::Column::UserId.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(c)
            .await?;
        memberships.extend(rows);
    }
    let mut group_ids: Vec<String> = memberships.iter().map(|(_, g)| g.clone()).collect();
    group_ids.sort();
    group_ids.dedup();
    let mut groups: Vec<(String, String, String)> = Vec::with_capacity(group_ids.len());
    for chunk in group_ids.chunks(CHUNK) {
        let rows: Vec<(String, String, String)> = group::Entity::find()
            .select_only()
            .column(group::Column::Id)
            .column(group::Column::DisplayName)
            .column(group::Column::DisplayNameKey)
            .filter(group::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(c)
            .await?;
        groups.extend(rows);
    }
    let named: std::collections::HashMap<&str, (&str, &str)> =
        groups.iter().map(|(id, name, key)| (id.as_str(), (name.as_str(), key.as_str()))).collect();
    let mut keyed: std::collections::HashMap<String, Vec<(&str, &str, &str)>> = std::collections::HashMap::new();
    for (user_id, group_id) in &memberships {
        if let Some((name, key)) = named.get(group_id.as_str()) {
            keyed.entry(user_id.clone()).or_default().push((key, group_id, name));
        }
    }
    let out = keyed
        .into_iter()
        .map(|(user_id, mut groups)| {
            groups.sort();
            (user_id, groups.into_iter().map(|(_, id, name)| (id.to_string(), name.to_string())).collect())
        })
        .collect();
    Ok(out)
}

pub struct GroupRow {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub version: i64,
    pub resource: String,
}

/// Inserts a new group; a taken `displayName` fails with a unique violation.
pub async fn insert_group(c: &impl ConnectionTrait, g: GroupRow, now: DateTime<Utc>) -> Result<()> {
    group::Entity::insert(group::ActiveModel {
        id: Set(g.id),
        display_name_key: Set(g.display_name.to_lowercase()),
        display_name: Set(g.display_name),
        external_id: Set(g.external_id),
        version: Set(g.version),
        resource: Set(g.resource),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(c)
    .await?;
    Ok(())
}

/// Takes the group's row for the rest of the transaction and reads it.
pub async fn lock_group(c: &impl ConnectionTrait, id: &str) -> Result<Option<group::Model>> {
    if !take_row::<group::Entity>(c, group::Column::Version, group::Column::Id, id).await? {
        return Ok(None);
    }
    get_group(c, id).await
}

pub async fn save_group(c: &impl ConnectionTrait, g: GroupRow, now: DateTime<Utc>) -> Result<()> {
    group::Entity::update_many()
        .col_expr(group::Column::DisplayNameKey, Expr::value(g.display_name.to_lowercase()))
        .col_expr(group::Column::DisplayName, Expr::value(g.display_name))
        .col_expr(group::Column::ExternalId, Expr::value(g.external_id))
        .col_expr(group::Column::Version, Expr::value(g.version))
        .col_expr(group::Column::Resource, Expr::value(g.resource))
        .col_expr(group::Column::UpdatedAt, Expr::value(now))
        .filter(group::Column::Id.eq(g.id))
        .exec(c)
        .await?;
    Ok(())
}

/// Deletes the group and its memberships.
pub async fn delete_group(c: &impl ConnectionTrait, id: &str) -> Result<()> {
    delete_with_memberships::<group::Entity>(c, member::Column::GroupId, id).await
}

pub async fn get_group(c: &impl ConnectionTrait, id: &str) -> Result<Option<group::Model>> {
    Ok(group::Entity::find_by_id(id.to_string()).one(c).await?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupFilter {
    All,
    /// Compared without regard to case.
    DisplayName(String),
    ExternalId(String),
    Id(String),
    /// Entra's `id eq "g" and members[value eq "u"]`: the group, if the user is in it.
    IdWithMember(String, String),
}

/// A page of groups in creation order, and how many match in all. Members
/// are not read here (see [`member_ids_page`]).
pub async fn list_groups(
    c: &impl ConnectionTrait,
    filter: &GroupFilter,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<group::Model>)> {
    let q = group::Entity::find();
    let q = match filter {
        GroupFilter::All => q,
        GroupFilter::DisplayName(v) => q.filter(group::Column::DisplayNameKey.eq(v.to_lowercase())),
        GroupFilter::ExternalId(v) => q.filter(group::Column::ExternalId.eq(v.as_str())),
        GroupFilter::Id(v) => q.filter(group::Column::Id.eq(v.as_str())),
        GroupFilter::IdWithMember(g, u) => q.filter(group::Column::Id.eq(g.as_str())).filter(
            Condition::all().add(
                group::Column::Id.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(member::Column::GroupId)
                        .from(member::Entity)
                        .and_where(member::Column::GroupId.eq(g.as_str()))
                        .and_where(member::Column::UserId.eq(u.as_str()))
                        .to_owned(),
                ),
            ),
        ),
    };
    counted_page(c, q, (group::Column::CreatedAt, group::Column::Id), offset, limit).await
}

/// Up to `limit` member ids of the group after `after`, in id order (keyset
/// paging: each page is one indexed range read, whatever the group's size).
pub async fn member_ids_page(
    c: &impl ConnectionTrait,
    group_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>> {
    let mut q = member::Entity::find()
        .select_only()
        .column(member::Column::UserId)
        .filter(member::Column::GroupId.eq(group_id));
    if let Some(after) = after {
        q = q.filter(member::Column::UserId.gt(after));
    }
    Ok(q.order_by_asc(member::Column::UserId).limit(limit).into_tuple().all(c).await?)
}

/// Every member id of the group, read page by page.
pub async fn all_member_ids(c: &impl ConnectionTrait, group_id: &str) -> Result<Vec<String>> {
    let mut all = Vec::new();
    loop {
        let page = member_ids_page(c, group_id, all.last().map(String::as_str), CHUNK as u64).await?;
        let done = page.len() < CHUNK;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

pub async fn member_count(c: &impl ConnectionTrait, group_id: &str) -> Result<u64> {
    Ok(member::Entity::find().filter(member::Column::GroupId.eq(group_id)).count(c).await?)
}

/// Adds memberships; those that exist already are left as they are.
pub async fn add_members(c: &impl ConnectionTrait, group_id: &str, user_ids: &[String]) -> Result<()> {
    for chunk in user_ids.chunks(CHUNK) {
        let rows =
            chunk.iter().map(|u| member::ActiveModel { group_id: Set(group_id.to_string()), user_id: Set(u.clone()) });
        member::Entity::insert_many(rows)
            .on_conflict(OnConflict::columns([member::Column::GroupId, member::Column::UserId]).do_nothing().to_owned())
            .exec_without_returning(c)
            .await?;
    }
    Ok(())
}

pub async fn remove_members(c: &impl ConnectionTrait, group_id: &str, user_ids: &[String]) -> Result<()> {
    for chunk in user_ids.chunks(CHUNK) {
        member::Entity::delete_many()
            .filter(member::Column::GroupId.eq(group_id))
            .filter(member::Column::UserId.is_in(chunk.iter().cloned()))
            .exec(c)
            .await?;
    }
    Ok(())
}
