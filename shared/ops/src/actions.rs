//! What operators change: replaying and discarding runs. Every action is
//! written to the audit log in the same transaction as the change itself, so
//! there is never a replay without its entry, nor an entry without a replay.
//!
//! A replay puts the run back to work with its journal untouched: completed
//! steps are answered from the journal and the failed step is retried (as in
//! doubt, so it looks at the vendor before acting again).

use crate::OpsError;
use lifecycle_broker::{Dispatch, Publisher};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::{runs, Db, StoreError};
use serde::Serialize;
use serde_json::json;

pub const ACTION_REPLAY: &str = "run.replay";
pub const ACTION_DISCARD: &str = "run.discard";
pub const ACTION_RECHECK: &str = "run.recheck";

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub run_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub employee_email: String,
    /// `dead` or `needs_manual_action`.
    pub state_before: RunState,
    pub outcome_before: Option<String>,
    pub last_error_before: Option<String>,
    pub dispatch_seq: i64,
    /// False when RabbitMQ could not be reached: the replay stands, and a
    /// worker's sweeper publishes the run once it is overdue.
    pub published: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_error: Option<String>,
}

impl Replayed {
    /// One line for people: what happens next.
    pub fn note(&self) -> String {
        if self.published {
            format!("run {} ({} {}) replayed; a worker is picking it up", self.run_id, self.vendor, self.workflow)
        } else {
            format!(
                "run {} ({} {}) replayed, but RabbitMQ could not be reached ({}); a worker's sweeper will publish it",
                self.run_id,
                self.vendor,
                self.workflow,
                self.publish_error.as_deref().unwrap_or("unknown error")
            )
        }
    }
}

/// Checks that `run_id` can be replayed now; returns the run. Used before
/// asking for confirmation, and again inside [`replay`].
pub async fn check_replayable(db: &Db, run_id: &str) -> Result<runs::Run, OpsError> {
    let run = runs::get(db, run_id).await?.ok_or_else(|| OpsError::NotFound(format!("no run {run_id}")))?;
    if let Some(at) = run.discarded_at {
        return Err(OpsError::Refused(format!(
            "run {run_id} was discarded at {} ({}); a discarded run is not replayed: send a new event instead",
            at.to_rfc3339(),
            run.discard_reason.as_deref().unwrap_or("no reason")
        )));
    }
    if !matches!(run.state, RunState::Dead | RunState::NeedsManualAction) {
        return Err(OpsError::Refused(format!(
            "run {run_id} is {}; only dead and needs_manual_action runs can be replayed",
            run.state
        )));
    }
    if let Some(later) = runs::later_started(db, run.vendor, &run.person_key, run.seq).await? {
        return Err(OpsError::Refused(format!(
            "a later run for {} at {} ({} {}, {}) has already started, so replaying run {run_id} would apply its \
             effects out of order; discard it instead (lifecycle-ctl dead discard {run_id} --reason ...) or send a new event",
            run.person_key, run.vendor, later.workflow, later.id, later.state
        )));
    }
    Ok(run)
}

/// Replays one `dead` (not discarded) or `needs_manual_action` run: resets it
/// to `queued` (attempts from zero, age from now), records the audit entry,
/// then publishes its dispatch. Refused when a later run for the same person
/// at the same vendor has started or ended.
pub async fn replay(
    db: &Db,
    publisher: &Publisher,
    run_id: &str,
    actor: &str,
    reason: Option<&str>,
) -> Result<Replayed, OpsError> {
    let run = check_replayable(db, run_id).await?;
    put_back(db, publisher, run, actor, reason, ACTION_REPLAY).await
}

/// Re-checks a `needs_manual_action` run: runs its workflow again (as a
/// replay does) so that, if the vendor now shows what the run wanted (a
/// person invited them, changed the role), it ends `succeeded` saying who
/// asked for the re-check; else it ends `needs_manual_action` again, saying
/// what is still missing.
pub async fn recheck(
    db: &Db,
    publisher: &Publisher,
    run_id: &str,
    actor: &str,
    reason: Option<&str>,
) -> Result<Replayed, OpsError> {
    let run = check_recheckable(db, run_id).await?;
    put_back(db, publisher, run, actor, reason, ACTION_RECHECK).await
}

/// Checks that `run_id` can be re-checked now; returns the run.
pub async fn check_recheckable(db: &Db, run_id: &str) -> Result<runs::Run, OpsError> {
    let run = check_replayable(db, run_id).await?;
    if run.state != RunState::NeedsManualAction {
        return Err(OpsError::Refused(format!(
            "run {run_id} is {}; only needs_manual_action runs are re-checked (a dead run is replayed)",
            run.state
        )));
    }
    Ok(run)
}

/// Puts `run` back to work, audited as `action`, and publishes it.
async fn put_back(
    db: &Db,
    publisher: &Publisher,
    run: runs::Run,
    actor: &str,
    reason: Option<&str>,
    action: &str,
) -> Result<Replayed, OpsError> {
    let run_id = run.id.as_str();
    let rechecked_by = (action == ACTION_RECHECK).then_some(actor);
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    let Some(seq) = runs::reset_for_replay(&txn, &run, rechecked_by).await? else {
        return Err(OpsError::Refused(format!(
            "run {run_id} changed while it was being replayed (someone else replayed or discarded it, or a later run \
             for {} at {} started); look at it again",
            run.person_key, run.vendor
        )));
    };
    audit::record(
        &txn,
        NewEntry {
            actor,
            action,
            target_kind: "run",
            target_id: run_id,
            reason: reason.filter(|r| !r.trim().is_empty()),
            details: Some(json!({
                "state_before": run.state,
                "outcome_before": run.outcome,
                "last_error_before": run.last_error,
                "attempts_before": run.attempts,
                "vendor": run.vendor,
                "workflow": run.workflow,
            })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    let publish =
        publisher.dispatch(&Dispatch { run_id: run_id.to_string(), dispatch_seq: seq, vendor: run.vendor }).await;
    if let Err(e) = &publish {
        tracing::warn!(run_id, error = %e, "put back to work, but could not publish; the sweeper will");
    }
    tracing::info!(run_id, actor, action, "run put back to work");
    Ok(Replayed {
        run_id: run.id,
        vendor: run.vendor,
        workflow: run.workflow,
        employee_email: run.person_key,
        state_before: run.state,
        outcome_before: run.outcome,
        last_error_before: run.last_error,
        dispatch_seq: seq,
        published: publish.is_ok(),
        publish_error: publish.err().map(|e| e.to_string()),
    })
}

/// What a discard did.
#[derive(Debug, Clone, Serialize)]
pub struct Discarded {
    pub run_id: String,
    pub reason: String,
}

/// Marks a `dead` run discarded: it stays dead and leaves the dead listing.
/// A reason is required; it goes to the run and to the audit log.
pub async fn discard(db: &Db, run_id: &str, actor: &str, reason: &str) -> Result<Discarded, OpsError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OpsError::Invalid("a discard needs a reason".into()));
    }
    let run = runs::get(db, run_id).await?.ok_or_else(|| OpsError::NotFound(format!("no run {run_id}")))?;
    if let Some(at) = run.discarded_at {
        return Err(OpsError::Refused(format!("run {run_id} was already discarded at {}", at.to_rfc3339())));
    }
    if run.state != RunState::Dead {
        return Err(OpsError::Refused(format!("run {run_id} is {}; only dead runs can be discarded", run.state)));
    }
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    if !runs::discard(&txn, run_id, reason).await? {
        return Err(OpsError::Refused(format!("run {run_id} changed meanwhile (replayed or discarded); look again")));
    }
    audit::record(
        &txn,
        NewEntry {
            actor,
            action: ACTION_DISCARD,
            target_kind: "run",
            target_id: run_id,
            reason: Some(reason),
            details: Some(json!({ "outcome": run.outcome, "vendor": run.vendor, "workflow": run.workflow })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    tracing::info!(run_id, actor, "run discarded");
    Ok(Discarded { run_id: run.id, reason: reason.to_string() })
}

/// A run that was not replayed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotReplayed {
    pub run_id: String,
    pub reason: String,
}

/// The end of a bulk replay: replayed N, refused M (each with its reason), failed K.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub dry_run: bool,
    /// Re-checks rather than replays: only the words differ.
    #[serde(skip)]
    pub rechecks: bool,
    /// Runs that matched the filter.
    pub selected: usize,
    pub replayed: Vec<Replayed>,
    /// The operation does not apply to the run (overtaken by a later run, changed meanwhile).
    pub refused: Vec<NotReplayed>,
    /// Something went wrong (the database); trying again may work.
    pub failed: Vec<NotReplayed>,
    /// With `dry_run`: the runs that would be replayed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_replay: Vec<String>,
}

impl ReplaySummary {
    pub fn record(&mut self, run_id: &str, result: Result<Replayed, OpsError>) {
        match result {
            Ok(r) => self.replayed.push(r),
            Err(e @ (OpsError::Refused(_) | OpsError::NotFound(_) | OpsError::Invalid(_))) => {
                self.refused.push(NotReplayed { run_id: run_id.to_string(), reason: e.to_string() })
            }
            Err(e) => self.failed.push(NotReplayed { run_id: run_id.to_string(), reason: e.to_string() }),
        }
    }

    /// "replayed 3, refused 1, failed 0".
    pub fn line(&self) -> String {
        let done = if self.rechecks { "re-checked" } else { "replayed" };
        if self.dry_run {
            return format!(
                "dry run: {} of {} selected run(s) would be {done}, {} would be refused",
                self.would_replay.len(),
                self.selected,
                self.refused.len()
            );
        }
        format!("{done} {}, refused {}, failed {}", self.replayed.len(), self.refused.len(), self.failed.len())
    }

    pub fn unpublished(&self) -> usize {
        self.replayed.iter().filter(|r| !r.published).count()
    }
}

/// Replays every run in `run_ids` in arrival order (oldest first, so that an
/// earlier run for a person is back at work before a later one is looked at),
/// calling `progress` after each. With `dry_run` nothing changes: each run is
/// only checked.
pub async fn replay_all(
    db: &Db,
    publisher: &Publisher,
    selected: Vec<runs::Run>,
    actor: &str,
    reason: Option<&str>,
    dry_run: bool,
    progress: impl FnMut(&str),
) -> ReplaySummary {
    put_back_all(db, publisher, selected, actor, reason, dry_run, ACTION_REPLAY, progress).await
}

/// [`recheck`]s every run in `selected`, as [`replay_all`] replays them.
pub async fn recheck_all(
    db: &Db,
    publisher: &Publisher,
    selected: Vec<runs::Run>,
    actor: &str,
    reason: Option<&str>,
    dry_run: bool,
    progress: impl FnMut(&str),
) -> ReplaySummary {
    put_back_all(db, publisher, selected, actor, reason, dry_run, ACTION_RECHECK, progress).await
}

#[allow(clippy::too_many_arguments)]
async fn put_back_all(
    db: &Db,
    publisher: &Publisher,
    mut selected: Vec<runs::Run>,
    actor: &str,
    reason: Option<&str>,
    dry_run: bool,
    action: &str,
    mut progress: impl FnMut(&str),
) -> ReplaySummary {
    selected.sort_by_key(|r| r.seq);
    let recheck = action == ACTION_RECHECK;
    let mut summary = ReplaySummary { dry_run, rechecks: recheck, selected: selected.len(), ..Default::default() };
    for run in &selected {
        let checked = if recheck { check_recheckable(db, &run.id).await } else { check_replayable(db, &run.id).await };
        match checked {
            Ok(_) if dry_run => summary.would_replay.push(run.id.clone()),
            Ok(current) => {
                let result = put_back(db, publisher, current, actor, reason, action).await;
                summary.record(&run.id, result);
            }
            Err(e) => summary.record(&run.id, Err(e)),
        }
        progress(&run.id);
    }
    summary
}
