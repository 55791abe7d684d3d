//! Jira groups, by `groupId` (never by name): the event's groups checked against the site's
//! catalogue, the user's groups read, and the memberships converged as journaled steps.

use super::client::{Client, GroupRef};
use crate::catalog::Cached;
use crate::http::HttpError;
use lifecycle_engine::{StepError, Steps};
use serde::{Deserialize, Serialize};

/// A group of the event, checked to exist.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct GroupInfo {
    pub(super) id: String,
    pub(super) name: String,
}

impl GroupInfo {
    pub(super) fn label(&self) -> String {
        if self.name.is_empty() {
            self.id.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

impl GroupInfo {
    /// `None` for a group Jira answers with a null `groupId` (nullable in the definition).
    pub(super) fn of(g: &GroupRef) -> Option<GroupInfo> {
        g.id().map(|id| GroupInfo { id: id.to_string(), name: g.name.clone().unwrap_or_default() })
    }
}

/// The groups that have an id, and the names of those that do not.
pub(super) fn addressable(groups: &[GroupRef]) -> (Vec<GroupInfo>, Vec<String>) {
    let with_id = groups.iter().filter_map(GroupInfo::of).collect();
    let without = groups
        .iter()
        .filter(|g| g.id().is_none())
        .map(|g| g.name.clone().unwrap_or_else(|| "(unnamed)".into()))
        .collect();
    (with_id, without)
}

/// For an outcome: the memberships lifecycle cannot change because Jira names no `groupId`.
pub(super) fn left_without_id(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    format!(
        "; still in group(s) {} which Jira answers without a groupId, so lifecycle cannot address them: change those by hand in admin.atlassian.com > Directory > Groups",
        names.join(", ")
    )
}

/// What converging the groups did, for the outcome.
#[derive(Debug, Default)]
pub(super) struct GroupChanges {
    pub(super) added: Vec<String>,
    pub(super) removed: Vec<String>,
    pub(super) kept: Vec<String>,
}

impl GroupChanges {
    pub(super) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added to group(s) {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed from group(s) {}", self.removed.join(", ")));
        }
        if !self.kept.is_empty() {
            parts.push(format!("already in group(s) {}", self.kept.join(", ")));
        }
        if parts.is_empty() {
            "no groups to change".into()
        } else {
            parts.join("; ")
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Membership {
    group_id: String,
    account_id: String,
    /// True when an earlier, in-doubt attempt (or someone else) had already done it.
    #[serde(default)]
    adopted: bool,
}

/// The event's groups, each checked to exist by `groupId`, in the event's order: from the
/// cached catalogue, fetched again once when an id is not in it (a group created at Jira
/// since), and only then unknown. No request at all while the catalogue is fresh.
pub(super) async fn resolve_groups(
    c: &Client,
    catalogue: &Cached<Vec<GroupRef>>,
    ids: &[String],
) -> Result<Vec<GroupInfo>, StepError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let load = || c.all_groups();
    let pick = |catalogue: &Vec<GroupRef>| -> Option<Vec<GroupInfo>> {
        ids.iter().map(|id| catalogue.iter().find(|g| g.id() == Some(id.as_str())).and_then(GroupInfo::of)).collect()
    };
    let read = |e: HttpError| StepError::from(e).context("read Jira's groups");
    if let Some(found) = catalogue.find(load, pick).await.map_err(read)? {
        return Ok(found);
    }
    let catalogue = catalogue.get(load).await.map_err(read)?;
    let missing: Vec<&str> =
        ids.iter().map(String::as_str).filter(|id| !catalogue.iter().any(|g| g.id() == Some(*id))).collect();
    Err(StepError::permanent(format!(
            "Jira has no group with groupId {}: check the id (admin.atlassian.com > Directory > Groups; Jira identifies groups by id, not by name) and fix the event, then replay this run. Nothing was changed.",
            missing.join(", ")
        )))
}

/// The user's groups now (`GET /user/groups`), and the names of those Jira answers with a
/// null `groupId` (which no request can address by id); none when the user is gone from
/// the site.
pub(super) async fn current_groups(c: &Client, account_id: &str) -> Result<(Vec<GroupInfo>, Vec<String>), StepError> {
    match c.user_groups(account_id).await {
        Ok(groups) => Ok(addressable(&groups)),
        // Gone from the site since it was found: it is in no group.
        Err(e) if e.is_not_found() => Ok((Vec::new(), Vec::new())),
        Err(e) => Err(StepError::from(e).context("list the user's groups")),
    }
}

/// Adds each wanted group the user lacks; with `exact`, also removes every other group.
///
/// `current` is what the user has now, as this attempt read it. With `exact`, the groups
/// the user had when the run first looked are journaled too (`list_groups`, a read: one
/// write), so that a retry still removes — and reports — a group that an earlier attempt
/// was removing. A membership Jira refuses to add (already there) or to remove (not there)
/// is read once, to tell "done" from an error.
pub(super) async fn converge_groups(
    c: &Client,
    catalogue: &Cached<Vec<GroupRef>>,
    steps: &mut Steps,
    account_id: &str,
    wanted: &[GroupInfo],
    current: Vec<GroupInfo>,
    exact: bool,
) -> Result<GroupChanges, StepError> {
    let mut changes = GroupChanges::default();
    for g in wanted {
        let key = format!("add_group:{}", g.id);
        if current.iter().any(|have| have.id == g.id) {
            // Added by an earlier attempt of this run, or there before it.
            match steps.recorded::<Membership>(&key) {
                Some(m) if !m.adopted => changes.added.push(g.label()),
                _ => changes.kept.push(g.label()),
            }
            continue;
        }
        let (gid, aid) = (g.id.as_str(), account_id);
        let m: Membership = steps
            .run(key, |attempt| async move {
                let done = |adopted| Membership { group_id: gid.into(), account_id: aid.into(), adopted };
                if attempt.in_doubt && c.is_member(aid, gid).await? {
                    return Ok(done(true));
                }
                match c.add_to_group(gid, aid).await {
                    Ok(()) => Ok(done(false)),
                    // "Already a member": someone (or a lost answer) got there first.
                    Err(e @ HttpError::Rejected { .. }) => match c.is_member(aid, gid).await? {
                        true => Ok(done(true)),
                        false => Err(StepError::from(e).context(&format!("add to group {gid}"))),
                    },
                    Err(e @ HttpError::NotFound { .. }) => {
                        // The group (or the user) is gone since the catalogue was read:
                        // the next run reads the catalogue afresh.
                        catalogue.invalidate().await;
                        Err(StepError::from(e).context(&format!("add to group {gid}")))
                    }
                    Err(e) => Err(StepError::from(e).context(&format!("add to group {gid}"))),
                }
            })
            .await?;
        if m.adopted {
            changes.kept.push(g.label());
        } else {
            changes.added.push(g.label());
        }
    }
    if !exact {
        return Ok(changes);
    }
    let first_seen = current.clone();
    let before: Vec<GroupInfo> = steps.read("list_groups", |_| async move { Ok(first_seen) }).await?;
    let mut extras: Vec<&GroupInfo> = Vec::new();
    for g in before.iter().chain(&current) {
        if !wanted.iter().any(|w| w.id == g.id) && !extras.iter().any(|e| e.id == g.id) {
            extras.push(g);
        }
    }
    for extra in extras {
        let (gid, aid) = (extra.id.as_str(), account_id);
        steps
            .run(format!("remove_group:{gid}"), |attempt| async move {
                let done = |adopted| Membership { group_id: gid.into(), account_id: aid.into(), adopted };
                if attempt.in_doubt && !c.is_member(aid, gid).await? {
                    return Ok(done(true));
                }
                match c.remove_from_group(gid, aid).await {
                    Ok(()) => Ok(done(false)),
                    // Not a member (any more), or the group is gone: either way, done.
                    Err(e @ (HttpError::Rejected { .. } | HttpError::NotFound { .. })) => {
                        match c.is_member(aid, gid).await {
                            Ok(false) => Ok(done(true)),
                            Err(gone) if gone.is_not_found() => Ok(done(true)),
                            _ => Err(StepError::from(e).context(&format!("remove from group {gid}"))),
                        }
                    }
                    Err(e) => Err(StepError::from(e).context(&format!("remove from group {gid}"))),
                }
            })
            .await?;
        changes.removed.push(extra.label());
    }
    Ok(changes)
}
