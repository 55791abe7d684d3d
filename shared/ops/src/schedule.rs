//! Scheduled runs for operators: what is coming (by day, in the operator's
//! time zone), and cancelling what has not started. A cancel is audited in the
//! same transaction as the change, like a replay.

use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_broker::Publisher;
use lifecycle_domain::{VendorKind, Workflow};
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::time::{self, Cancelled};
use lifecycle_store::{events, runs, Db, StoreError};
use serde::Serialize;
use serde_json::json;

pub const ACTION_CANCEL_RUN: &str = "run.cancel";
pub const ACTION_CANCEL_EVENT: &str = "event.cancel";

/// One scheduled run in the upcoming view.
#[derive(Debug, Clone, Serialize)]
pub struct UpcomingRun {
    pub run_id: String,
    pub event_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub employee_email: String,
    /// When it starts, in the view's time zone (RFC 3339 with its offset).
    pub starts_at: String,
    /// When its event takes effect, in the view's time zone.
    pub effective_at: Option<String>,
}

/// The runs starting on one day of the view's time zone.
#[derive(Debug, Clone, Serialize)]
pub struct UpcomingDay {
    /// `2026-12-31`.
    pub date: String,
    pub runs: Vec<UpcomingRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upcoming {
    pub time_zone: String,
    pub days: u32,
    pub total: usize,
    pub by_day: Vec<UpcomingDay>,
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, OpsError> {
    jiff::tz::TimeZone::get(name.trim()).map_err(|e| {
        OpsError::Invalid(format!("time zone {name:?} is not an IANA time zone name like Europe/Berlin: {e}"))
    })
}

fn local(t: DateTime<Utc>, tz: &jiff::tz::TimeZone) -> jiff::ZonedDateTime {
    let ts = jiff::Timestamp::from_microsecond(t.timestamp_micros()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned_datetime(tz.clone())
}

/// Scheduled runs starting within `days`, grouped by day in `tz_name`.
pub async fn upcoming(db: &Db, days: u32, tz_name: &str) -> Result<Upcoming, OpsError> {
    let tz = time_zone(tz_name)?;
    if days == 0 || days > 366 {
        return Err(OpsError::Invalid("days must be between 1 and 366".into()));
    }
    let until = Utc::now() + chrono::Duration::days(i64::from(days));
    let runs = time::scheduled_until(db, until, 10_000).await?;
    let total = runs.len();
    let mut by_day: Vec<UpcomingDay> = Vec::new();
    for r in runs {
        let starts = local(r.next_attempt_at, &tz);
        let date = starts.date().to_string();
        let run = UpcomingRun {
            run_id: r.id,
            event_id: r.event_id,
            vendor: r.vendor,
            workflow: r.workflow,
            employee_email: r.person_key,
            starts_at: starts.timestamp().display_with_offset(starts.offset()).to_string(),
            effective_at: r.effective_at.map(|e| {
                let z = local(e, &tz);
                z.timestamp().display_with_offset(z.offset()).to_string()
            }),
        };
        match by_day.last_mut() {
            Some(d) if d.date == date => d.runs.push(run),
            _ => by_day.push(UpcomingDay { date, runs: vec![run] }),
        }
    }
    Ok(Upcoming { time_zone: tz.iana_name().unwrap_or(tz_name).to_string(), days, total, by_day })
}

/// A cancel's reason, trimmed; it is required (it goes to the runs and the audit log).
fn required_reason(reason: &str) -> Result<&str, OpsError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(OpsError::Invalid("a cancel needs a reason".into()));
    }
    Ok(reason)
}

/// Cancels one run that has not started (scheduled, or queued and never
/// claimed); refused once it has. Audited.
pub async fn cancel_run(
    db: &Db,
    publisher: &Publisher,
    run_id: &str,
    actor: &str,
    reason: &str,
) -> Result<Cancelled, OpsError> {
    let reason = required_reason(reason)?;
    let run = runs::get(db, run_id).await?.ok_or_else(|| OpsError::NotFound(format!("no run {run_id}")))?;
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    let c = time::cancel_run(&txn, run_id, &format!("{actor} ({reason})")).await?;
    if c.cancelled.is_empty() {
        return Err(OpsError::Refused(format!(
            "run {run_id} is {}: only a run that has not started (scheduled, or queued and not yet claimed) can be cancelled",
            run.state
        )));
    }
    audit::record(
        &txn,
        NewEntry {
            actor,
            action: ACTION_CANCEL_RUN,
            target_kind: "run",
            target_id: run_id,
            reason: Some(reason),
            details: Some(json!({ "state_before": run.state, "vendor": run.vendor, "workflow": run.workflow })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    lifecycle_engine::wake_next(
        &lifecycle_store::engine::Storage::new(db.clone()),
        publisher,
        run.vendor,
        &run.person_key,
        run.seq,
    )
    .await;
    tracing::info!(run_id, actor, "run cancelled");
    Ok(c)
}

/// Cancels an event's runs that have not started; the answer names those
/// that had. Audited (one entry for the event).
pub async fn cancel_event(
    db: &Db,
    publisher: &Publisher,
    event_id: &str,
    actor: &str,
    reason: &str,
) -> Result<Cancelled, OpsError> {
    cancel_event_scoped(db, publisher, None, event_id, actor, reason).await
}

/// [`cancel_event`] for a caller that may only reach events from `source`
/// (the HR intake's tokens: `intake`): another source's event is answered
/// as if it did not exist, and nothing changes. Audited likewise.
pub async fn cancel_event_from(
    db: &Db,
    publisher: &Publisher,
    source: &str,
    event_id: &str,
    actor: &str,
    reason: &str,
) -> Result<Cancelled, OpsError> {
    cancel_event_scoped(db, publisher, Some(source), event_id, actor, reason).await
}

async fn cancel_event_scoped(
    db: &Db,
    publisher: &Publisher,
    source: Option<&str>,
    event_id: &str,
    actor: &str,
    reason: &str,
) -> Result<Cancelled, OpsError> {
    let reason = required_reason(reason)?;
    match events::get(db, event_id).await? {
        Some(e) if source.is_none_or(|s| e.source == s) => {}
        _ => return Err(OpsError::NotFound(format!("no event {event_id}"))),
    }
    let txn = lifecycle_store::begin_write(db).await.map_err(StoreError::from)?;
    let c = time::cancel_event(&txn, event_id, &format!("{actor} ({reason})")).await?;
    audit::record(
        &txn,
        NewEntry {
            actor,
            action: ACTION_CANCEL_EVENT,
            target_kind: "event",
            target_id: event_id,
            reason: Some(reason),
            details: Some(json!({ "cancelled": c.cancelled, "started": c.started })),
        },
    )
    .await?;
    txn.commit().await.map_err(StoreError::from)?;
    lifecycle_engine::wake_after(&lifecycle_store::engine::Storage::new(db.clone()), publisher, &c.cancelled).await;
    tracing::info!(event_id, actor, cancelled = c.cancelled.len(), started = c.started.len(), "event cancelled");
    Ok(c)
}
