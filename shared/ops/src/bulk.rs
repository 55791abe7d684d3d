//! Bulk actions on runs chosen by id (the console's checkboxes, or every run
//! a filter matched, resolved to ids at the preview): replay, discard,
//! cancel, re-check, release. Each run goes through the same operation as
//! one run does ([`crate::replay`], [`crate::discard`], [`crate::cancel_run`],
//! [`crate::recheck`], the guard's release and cancel), audited as it is; the
//! batch adds one entry of its own (the operator, the action, the count), so
//! that "who did 300 replays at 09:12" is one line of the audit log.

use crate::actions::{self, NotReplayed};
use crate::OpsError;
use lifecycle_broker::Publisher;
use lifecycle_domain::RunState;
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::runs::{self, Run};
use lifecycle_store::{safety as guard_store, Db, StoreError};
use serde::Serialize;
use serde_json::json;

/// At most this many runs per bulk action: a larger batch is a job for a
/// narrower filter (or the ctl), and a preview must stay readable.
pub const MAX_RUNS: usize = 500;

pub const ACTION_BULK: &str = "runs.bulk";

/// What a bulk action does to each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    Replay,
    Discard,
    Cancel,
    Recheck,
    Release,
}

impl BulkAction {
    pub const ALL: [BulkAction; 5] =
        [BulkAction::Replay, BulkAction::Discard, BulkAction::Cancel, BulkAction::Recheck, BulkAction::Release];

    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Replay => "replay",
            BulkAction::Discard => "discard",
            BulkAction::Cancel => "cancel",
            BulkAction::Recheck => "recheck",
            BulkAction::Release => "release",
        }
    }

    pub fn parse(s: &str) -> Result<Self, OpsError> {
        Self::ALL.into_iter().find(|a| a.as_str() == s.trim()).ok_or_else(|| {
            OpsError::Invalid(format!("action: '{s}' is not one of replay, discard, cancel, recheck, release"))
        })
    }

    /// A discard and a cancel say why, as they do for one run.
    pub fn needs_reason(self) -> bool {
        matches!(self, BulkAction::Discard | BulkAction::Cancel)
    }

    /// What the action does to each run, for the preview.
    pub fn explain(self) -> &'static str {
        match self {
            BulkAction::Replay => {
                "Each dead or needs_manual_action run goes back to work: steps already done are kept and not \
                 repeated; it resumes at the step it stopped at, looking at the vendor first."
            }
            BulkAction::Discard => {
                "Each dead run stays dead, is marked discarded with the reason, leaves the dead runs list and can no \
                 longer be replayed."
            }
            BulkAction::Cancel => {
                "Each run that has not started (scheduled, queued and not yet claimed, or held by the blast-radius \
                 guard) ends cancelled; nothing is done at the vendor."
            }
            BulkAction::Recheck => {
                "Each needs_manual_action run's workflow runs again and looks at the vendor: those whose vendor now \
                 shows what was wanted end succeeded; the others say what is still missing."
            }
            BulkAction::Release => {
                "Each run held by the blast-radius guard is queued and runs now; it is not counted against the \
                 threshold again."
            }
        }
    }
}

impl std::fmt::Display for BulkAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `action` applies to `run` now: `Err` says why not.
pub async fn check(db: &Db, action: BulkAction, run: &Run) -> Result<(), OpsError> {
    let id = run.id.as_str();
    match action {
        BulkAction::Replay => actions::check_replayable(db, id).await.map(|_| ()),
        BulkAction::Recheck => actions::check_recheckable(db, id).await.map(|_| ()),
        BulkAction::Discard => match (run.state, run.discarded_at) {
            (_, Some(_)) => Err(OpsError::Refused(format!("run {id} was already discarded"))),
            (RunState::Dead, None) => Ok(()),
            (s, None) => Err(OpsError::Refused(format!("run {id} is {s}; only dead runs can be discarded"))),
        },
        BulkAction::Cancel => {
            let not_started = matches!(run.state, RunState::Scheduled | RunState::Held)
                || (run.state == RunState::Queued && run.started_at.is_none());
            if not_started {
                Ok(())
            } else {
                Err(OpsError::Refused(format!(
                    "run {id} is {}: only a run that has not started (scheduled, queued and not claimed, or held) \
                     can be cancelled",
                    run.state
                )))
            }
        }
        BulkAction::Release => match run.state {
            RunState::Held => Ok(()),
            s => Err(OpsError::Refused(format!("run {id} is {s}; only held runs are released"))),
        },
    }
}

/// The runs `ids` names that exist, oldest first (an earlier run for a person
/// is acted on before a later one), and the ids that name no run.
pub async fn load(db: &Db, ids: &[String]) -> Result<(Vec<Run>, Vec<String>), OpsError> {
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for id in ids {
        match runs::get(db, id).await? {
            Some(r) => found.push(r),
            None => missing.push(id.clone()),
        }
    }
    found.sort_by_key(|r| r.seq);
    Ok((found, missing))
}

/// The preview: which of `selected` the action applies to, and why not the others.
#[derive(Debug, Clone, Default)]
pub struct BulkPreview {
    pub applies: Vec<Run>,
    pub refused: Vec<NotReplayed>,
}

pub async fn preview(db: &Db, action: BulkAction, selected: Vec<Run>) -> Result<BulkPreview, OpsError> {
    let mut out = BulkPreview::default();
    for run in selected {
        match check(db, action, &run).await {
            Ok(()) => out.applies.push(run),
            Err(OpsError::Store(e)) => return Err(OpsError::Store(e)),
            Err(e) => out.refused.push(NotReplayed { run_id: run.id.clone(), reason: e.to_string() }),
        }
    }
    Ok(out)
}

/// What a bulk action did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BulkOutcome {
    pub action: Option<BulkAction>,
    pub done: Vec<String>,
    /// Not applicable any more (changed since the preview), each with why.
    pub refused: Vec<NotReplayed>,
    /// The database failed; trying again may work.
    pub failed: Vec<NotReplayed>,
    /// Put back to work, but RabbitMQ could not be reached (a sweeper publishes them).
    pub unpublished: usize,
}

impl BulkOutcome {
    fn record<T>(&mut self, id: &str, r: Result<T, OpsError>) {
        match r {
            Ok(_) => self.done.push(id.to_string()),
            Err(OpsError::Store(e)) => self.failed.push(NotReplayed { run_id: id.to_string(), reason: e.to_string() }),
            Err(e) => self.refused.push(NotReplayed { run_id: id.to_string(), reason: e.to_string() }),
        }
    }
}

/// Applies `action` to each run of `ids` (at most [`MAX_RUNS`]), each as the
/// one-run operation does, then records one audit entry for the batch.
pub async fn apply(
    db: &Db,
    publisher: &Publisher,
    action: BulkAction,
    ids: &[String],
    actor: &str,
    reason: Option<&str>,
) -> Result<BulkOutcome, OpsError> {
    if ids.len() > MAX_RUNS {
        return Err(OpsError::Invalid(format!("at most {MAX_RUNS} runs per bulk action; {} were sent", ids.len())));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if action.needs_reason() && reason.is_none() {
        return Err(OpsError::Invalid(format!("a bulk {action} needs a reason")));
    }
    let (selected, missing) = load(db, ids).await?;
    let mut out = BulkOutcome { action: Some(action), ..Default::default() };
    for id in missing {
        out.refused.push(NotReplayed { reason: format!("no run {id}"), run_id: id });
    }
    let mut held = Vec::new();
    for run in selected {
        let id = run.id.clone();
        match action {
            BulkAction::Replay | BulkAction::Recheck => {
                let r = if action == BulkAction::Replay {
                    actions::replay(db, publisher, &id, actor, reason).await
                } else {
                    actions::recheck(db, publisher, &id, actor, reason).await
                };
                if r.as_ref().is_ok_and(|r| !r.published) {
                    out.unpublished += 1;
                }
                out.record(&id, r);
            }
            BulkAction::Discard => {
                let r = actions::discard(db, &id, actor, reason.unwrap_or_default()).await;
                out.record(&id, r);
            }
            BulkAction::Cancel if run.state == RunState::Held => held.push(id),
            BulkAction::Cancel => {
                let r = crate::cancel_run(db, publisher, &id, actor, reason.unwrap_or_default()).await;
                out.record(&id, r);
            }
            BulkAction::Release => held.push(id),
        }
    }
    if !held.is_empty() {
        act_on_held(db, action == BulkAction::Release, &held, actor, reason, &mut out).await?;
    }
    audit::record(
        db,
        NewEntry {
            actor,
            action: ACTION_BULK,
            target_kind: "runs",
            target_id: action.as_str(),
            reason,
            details: Some(json!({
                "action": action,
                "count": out.done.len(),
                "selected": ids.len(),
                "refused": out.refused.len(),
                "failed": out.failed.len(),
                "runs": out.done,
            })),
        },
    )
    .await?;
    tracing::info!(actor, action = action.as_str(), count = out.done.len(), "bulk action on runs");
    Ok(out)
}

/// Releases or cancels held runs by id, in one transaction with one entry,
/// as the guard's release and cancel by filter do (the same action names).
async fn act_on_held(
    db: &Db,
    release: bool,
    ids: &[String],
    actor: &str,
    reason: Option<&str>,
    out: &mut BulkOutcome,
) -> Result<(), OpsError> {
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    let mut done = Vec::new();
    for id in ids {
        let ok = if release {
            guard_store::release(&txn, id).await?.is_some()
        } else {
            guard_store::cancel(&txn, id, actor).await?
        };
        if ok {
            done.push(id.clone());
        } else {
            out.refused.push(NotReplayed { run_id: id.clone(), reason: format!("run {id} is no longer held") });
        }
    }
    audit::record(
        &txn,
        NewEntry {
            actor,
            action: if release { crate::safety::ACTION_RELEASE } else { crate::safety::ACTION_CANCEL },
            target_kind: "held_runs",
            target_id: "selected runs",
            reason,
            details: Some(json!({ "count": done.len(), "runs": done })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    out.done.extend(done);
    Ok(())
}
