//! Edit and replay: an operator corrects a dead run's input where the fix is
//! in the data (a role or group name, a login, a successor) and replays it.
//!
//! The edit is a JSON merge of the run's `app` part (and `successor_email`),
//! checked exactly as the intake checks an event ([`Event::parse`], so the
//! same field names and messages); the person and the event type are not
//! editable (they are what the run is about: send a new event instead). The
//! run's input becomes the edited one; the edit is kept with the input before
//! and after it (`run_edits`), and audited with both, in one transaction.
//!
//! The journal is kept, but the steps that succeeded before the edit are not
//! answered from it on the next attempt: a step's recorded output may have
//! come from the old input (the roles a plan computed, the successor it
//! resolved) under a key that does not name it. Each is run again as in doubt
//! (reads read again, writes look at the vendor before acting), so nothing is
//! done twice and nothing old is carried on. A step that never succeeded (the
//! one the run died at) runs with the new input, as any replay.

use crate::actions::{self, NotReplayed, Replayed};
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_broker::Publisher;
use lifecycle_domain::event::FieldError;
use lifecycle_domain::{Event, RunInput, RunState, VendorKind, Workflow};
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::edits::{self, NewEdit};
use lifecycle_store::runs::{self, Run, RunFilter};
use lifecycle_store::{Db, StoreError};
use serde::Serialize;
use serde_json::{json, Map, Value};

pub const ACTION_EDIT: &str = "run.edit";

/// What an operator sets: a field of the run's vendor (`role`, `roles`,
/// `groups`, `products`, `login`, `teams`, ...; `app.` may prefix it) or
/// `successor_email`, to a JSON value (`null` removes it).
pub type Changes = Map<String, Value>;

/// Why an edit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// The edited input is not what the intake accepts: each bad field named
    /// as the intake names it (`apps.pipedrive.role`).
    #[error("{detail}")]
    Fields { detail: String, errors: Vec<FieldError> },
}

impl From<StoreError> for EditError {
    fn from(e: StoreError) -> Self {
        EditError::Ops(e.into())
    }
}

/// `--set` items (`role=Sales Rep`, `roles=["a","b"]`, `teams=a,b`) as
/// changes. A value that starts with `[` or `{`, or is `true`, `false` or
/// `null`, is JSON; anything else is a string (a list field takes it as
/// comma-separated names: see [`edited_input`]).
pub fn parse_set(items: &[String]) -> Result<Changes, OpsError> {
    let mut out = Changes::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(OpsError::Invalid(format!("--set {item}: expected FIELD=VALUE (e.g. role=\"Sales Rep\")")));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(OpsError::Invalid(format!("--set {item}: the field name is empty")));
        }
        let t = v.trim();
        let value = if t.starts_with('[') || t.starts_with('{') || matches!(t, "true" | "false" | "null") {
            serde_json::from_str(t).map_err(|e| OpsError::Invalid(format!("--set {k}: {t} is not valid JSON: {e}")))?
        } else {
            Value::String(v.to_string())
        };
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

/// The input `run` would have after `changes`, checked as the intake checks
/// an event: (the new input as stored, the fields that changed).
pub fn edited_input(run: &Run, changes: &Changes) -> Result<(String, Vec<String>), EditError> {
    if changes.is_empty() {
        return Err(OpsError::Invalid("an edit sets at least one field (e.g. role=\"Sales Rep\")".into()).into());
    }
    let old: RunInput = serde_json::from_str(&run.input)
        .map_err(|e| OpsError::Invalid(format!("run {}'s input cannot be read by this version: {e}", run.id)))?;
    let old_value = serde_json::to_value(&old).expect("a run input serializes");
    let mut app = old_value["app"].as_object().cloned().unwrap_or_default();
    app.remove("vendor");
    let mut body = json!({
        "type": old.event_type.as_str(),
        "employee": old_value["employee"],
        "apps": {},
    });
    if let Some(t) = old.occurred_at {
        body["occurred_at"] = json!(t.to_rfc3339());
    }
    if let Some(s) = &old.successor_email {
        body["successor_email"] = json!(s.as_str());
    }
    for (key, value) in changes {
        let key = key.strip_prefix("app.").unwrap_or(key);
        if key == "successor_email" {
            body["successor_email"] = value.clone();
            continue;
        }
        if key == "vendor"
            || key.starts_with("employee")
            || ["type", "occurred_at", "effective_at", "apps"].contains(&key)
        {
            return Err(OpsError::Invalid(format!(
                "{key} cannot be edited: only the vendor's fields (apps.{}.*) and successor_email can; the person and \
                 the event type are what the run is about (send a new event instead)",
                run.vendor
            ))
            .into());
        }
        let value = match (value, app.get(key)) {
            // A list field typed as text: comma-separated names.
            (Value::String(s), Some(Value::Array(_))) => {
                Value::Array(s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| json!(p)).collect())
            }
            _ => value.clone(),
        };
        if value.is_null() {
            app.remove(key);
        } else {
            app.insert(key.to_string(), value);
        }
    }
    body["apps"][run.vendor.as_str()] = Value::Object(app);
    let event = Event::parse(&body).map_err(|errors| {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        EditError::Fields { detail: format!("the edited input has invalid fields: {}", fields.join(", ")), errors }
    })?;
    let new = event.run_inputs().into_iter().next().expect("the edited event names the run's vendor");
    let new_value = serde_json::to_value(&new).expect("a run input serializes");
    let changed = changed_fields(&old_value, &new_value);
    if changed.is_empty() {
        return Err(OpsError::Invalid(format!("the edit changes nothing in run {}'s input", run.id)).into());
    }
    Ok((serde_json::to_string(&new).expect("a run input serializes"), changed))
}

/// `app.role`, `successor_email`: the top-level and `app` fields that differ.
fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Map::new();
    for (prefix, a, b) in [
        ("", old.as_object().unwrap_or(&empty), new.as_object().unwrap_or(&empty)),
        ("app.", old["app"].as_object().unwrap_or(&empty), new["app"].as_object().unwrap_or(&empty)),
    ] {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            if (prefix.is_empty() && k == "app") || a.get(k) == b.get(k) {
                continue;
            }
            out.push(format!("{prefix}{k}"));
        }
    }
    out
}

/// What an edit did.
#[derive(Debug, Clone, Serialize)]
pub struct Edited {
    pub run_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub employee_email: String,
    /// `app.role`, `successor_email`, ...
    pub changed: Vec<String>,
    pub before: Value,
    pub after: Value,
    /// With a replay: what it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<Replayed>,
    /// With a replay that was refused after the edit stood (the run changed
    /// between the check and the replay): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_error: Option<String>,
}

impl Edited {
    /// One line for people.
    pub fn note(&self) -> String {
        let edited = format!("run {} ({} {}) edited: {}", self.run_id, self.vendor, self.workflow, self.describe());
        match (&self.replayed, &self.replay_error) {
            (Some(r), _) => format!("{edited}; {}", r.note()),
            (None, Some(e)) => format!("{edited}; not replayed: {e}"),
            (None, None) => format!("{edited}; replay it when ready (lifecycle-ctl dead replay {})", self.run_id),
        }
    }

    /// `app.role "Sales Rep." -> "Sales Rep"`.
    pub fn describe(&self) -> String {
        self.changed
            .iter()
            .map(|f| {
                let at = |v: &Value| {
                    let p = format!("/{}", f.replace('.', "/"));
                    v.pointer(&p).map_or("(none)".to_string(), Value::to_string)
                };
                format!("{f} {} -> {}", at(&self.before), at(&self.after))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks that `run_id` is a dead run that can be edited; returns it.
pub async fn check_editable(db: &Db, run_id: &str) -> Result<Run, OpsError> {
    let run = runs::get(db, run_id).await?.ok_or_else(|| OpsError::NotFound(format!("no run {run_id}")))?;
    if run.discarded_at.is_some() {
        return Err(OpsError::Refused(format!("run {run_id} was discarded; a discarded run is not edited")));
    }
    if run.state != RunState::Dead {
        return Err(OpsError::Refused(format!("run {run_id} is {}; only dead runs are edited", run.state)));
    }
    Ok(run)
}

/// Edits a dead run's input (see the module's comment), audited; with
/// `replay`, then replays it as [`actions::replay`] does (and checks first
/// that it can be, so a refused replay leaves the run unedited).
pub async fn edit(
    db: &Db,
    publisher: &Publisher,
    run_id: &str,
    changes: &Changes,
    actor: &str,
    reason: Option<&str>,
    replay: bool,
) -> Result<Edited, EditError> {
    let run = check_editable(db, run_id).await?;
    if replay {
        actions::check_replayable(db, run_id).await?;
    }
    let (after, changed) = edited_input(&run, changes)?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    let changes_text = Value::Object(changes.clone()).to_string();
    let edit = NewEdit { actor, reason, after: &after, changes: &changes_text };
    if !edits::record(&txn, &run, edit).await? {
        return Err(OpsError::Refused(format!(
            "run {run_id} changed while it was being edited (replayed, discarded or edited by someone else); look at it again"
        ))
        .into());
    }
    let before: Value = serde_json::from_str(&run.input).unwrap_or(Value::Null);
    let after_value: Value = serde_json::from_str(&after).expect("just serialized");
    audit::record(
        &txn,
        NewEntry {
            actor,
            action: ACTION_EDIT,
            target_kind: "run",
            target_id: run_id,
            reason,
            details: Some(json!({
                "vendor": run.vendor,
                "workflow": run.workflow,
                "changed": changed,
                "set": changes,
                "before": before,
                "after": after_value,
                "last_error_before": run.last_error,
            })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    tracing::info!(run_id, actor, changed = ?changed, "run input edited");
    let mut edited = Edited {
        run_id: run.id,
        vendor: run.vendor,
        workflow: run.workflow,
        employee_email: run.person_key,
        changed,
        before,
        after: after_value,
        replayed: None,
        replay_error: None,
    };
    if replay {
        match actions::replay(db, publisher, run_id, actor, reason).await {
            Ok(r) => edited.replayed = Some(r),
            Err(e) => edited.replay_error = Some(e.to_string()),
        }
    }
    Ok(edited)
}

/// The dead runs a bulk edit selects: `dead`, not discarded, narrowed by the
/// filter, and (with `error_contains`) whose error or outcome contains that
/// text, case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct EditFilter {
    pub runs: RunFilter,
    pub error_contains: Option<String>,
}

pub async fn select(db: &Db, f: &EditFilter) -> Result<Vec<Run>, OpsError> {
    let mut selected = runs::list(db, &crate::filter::dead(f.runs.clone(), false)).await?;
    if let Some(needle) = f.error_contains.as_deref().map(str::to_lowercase).filter(|n| !n.is_empty()) {
        selected.retain(|r| {
            [&r.last_error, &r.outcome].iter().any(|t| t.as_deref().is_some_and(|t| t.to_lowercase().contains(&needle)))
        });
    }
    selected.sort_by_key(|r| r.seq);
    Ok(selected)
}

/// One run of a bulk edit's preview: what would change.
#[derive(Debug, Clone, Serialize)]
pub struct EditPreview {
    pub run_id: String,
    pub employee_email: String,
    /// `app.role "Sales Rep." -> "Sales Rep"`.
    pub change: String,
}

/// A bulk edit: with `dry_run`, the preview (the count, a sample, and the
/// runs the edit would be refused for, each with why); else what was done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BulkEdit {
    pub dry_run: bool,
    /// Runs the filter selected.
    pub selected: usize,
    /// With `dry_run`: the runs that would be edited.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_edit: Vec<String>,
    /// The first few edits, as they would be (or were) made.
    pub sample: Vec<EditPreview>,
    pub edited: Vec<Edited>,
    /// Not editable (the edit is invalid for it, or it changed meanwhile).
    pub refused: Vec<NotReplayed>,
    /// The database failed; trying again may work.
    pub failed: Vec<NotReplayed>,
}

pub const SAMPLE: usize = 5;

impl BulkEdit {
    pub fn line(&self) -> String {
        if self.dry_run {
            return format!(
                "dry run: {} of {} selected dead run(s) would be edited, {} would be refused",
                self.would_edit.len(),
                self.selected,
                self.refused.len()
            );
        }
        let replayed = self.edited.iter().filter(|e| e.replayed.is_some()).count();
        format!(
            "edited {} (replayed {replayed}), refused {}, failed {}",
            self.edited.len(),
            self.refused.len(),
            self.failed.len()
        )
    }
}

/// Edits every run of `selected` with the same `changes` (oldest first),
/// each as [`edit`] does: its own transaction and audit entry. With
/// `dry_run`, nothing changes: each edit is only checked (the preview).
#[allow(clippy::too_many_arguments)]
pub async fn edit_all(
    db: &Db,
    publisher: &Publisher,
    mut selected: Vec<Run>,
    changes: &Changes,
    actor: &str,
    reason: Option<&str>,
    replay: bool,
    dry_run: bool,
    mut progress: impl FnMut(&str),
) -> BulkEdit {
    selected.sort_by_key(|r| r.seq);
    let mut out = BulkEdit { dry_run, selected: selected.len(), ..Default::default() };
    for run in &selected {
        let refuse = |out: &mut BulkEdit, e: EditError| {
            let entry = NotReplayed { run_id: run.id.clone(), reason: e.to_string() };
            match e {
                EditError::Ops(OpsError::Store(_)) => out.failed.push(entry),
                _ => out.refused.push(entry),
            }
        };
        if dry_run {
            match edited_input(run, changes) {
                Ok((after, _)) => {
                    out.would_edit.push(run.id.clone());
                    if out.sample.len() < SAMPLE {
                        let e = preview(run, &after, changes);
                        out.sample.push(e);
                    }
                }
                Err(e) => refuse(&mut out, e),
            }
        } else {
            match edit(db, publisher, &run.id, changes, actor, reason, replay).await {
                Ok(e) => {
                    if out.sample.len() < SAMPLE {
                        out.sample.push(EditPreview {
                            run_id: e.run_id.clone(),
                            employee_email: e.employee_email.clone(),
                            change: e.describe(),
                        });
                    }
                    out.edited.push(e);
                }
                Err(e) => refuse(&mut out, e),
            }
        }
        progress(&run.id);
    }
    out
}

fn preview(run: &Run, after: &str, _changes: &Changes) -> EditPreview {
    let before: Value = serde_json::from_str(&run.input).unwrap_or(Value::Null);
    let after: Value = serde_json::from_str(after).unwrap_or(Value::Null);
    let e = Edited {
        run_id: run.id.clone(),
        vendor: run.vendor,
        workflow: run.workflow,
        employee_email: run.person_key.clone(),
        changed: changed_fields(&before, &after),
        before,
        after,
        replayed: None,
        replay_error: None,
    };
    EditPreview { run_id: e.run_id.clone(), employee_email: e.employee_email.clone(), change: e.describe() }
}

/// One edit of a run, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct EditView {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: Option<String>,
    pub changes: Value,
    pub before: Value,
    pub after: Value,
}

/// The edits of a run, oldest first: the first one's `before` is the
/// original input.
pub async fn edits_of(db: &Db, run_id: &str) -> Result<Vec<EditView>, OpsError> {
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
    Ok(edits::list(db, run_id)
        .await?
        .into_iter()
        .map(|e| EditView {
            at: e.at,
            actor: e.actor,
            reason: e.reason,
            changes: parse(&e.changes),
            before: parse(&e.before),
            after: parse(&e.after),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_items_are_strings_unless_they_look_like_json() {
        let c = parse_set(&[
            "role=Sales Rep".into(),
            "roles=[\"a\",\"b\"]".into(),
            "successor_email=null".into(),
            "teams=a,b".into(),
        ])
        .unwrap();
        assert_eq!(c["role"], "Sales Rep");
        assert_eq!(c["roles"], json!(["a", "b"]));
        assert!(c["successor_email"].is_null());
        assert_eq!(c["teams"], "a,b");
        assert!(parse_set(&["role".into()]).is_err());
        assert!(parse_set(&["=x".into()]).is_err());
        assert!(parse_set(&["roles=[oops".into()]).is_err());
    }
}
