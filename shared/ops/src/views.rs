//! Read-only views of runs, their step timelines, and events.

use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_store::entity::run::Model as Run;
use lifecycle_store::runs::RunFilter;
use lifecycle_store::{events, runs, steps, Db};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub event_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub employee_email: String,
    pub employee_id: Option<String>,
    pub state: RunState,
    pub attempts: i32,
    pub access: Option<lifecycle_domain::Access>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub blocked_by: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub replays: i32,
    pub replayed_at: Option<DateTime<Utc>>,
    /// Set when an operator discarded the (dead) run; it then leaves `dead list`.
    pub discarded_at: Option<DateTime<Utc>>,
    pub discard_reason: Option<String>,
    /// When its event happened and when it takes effect (absent: not given).
    pub occurred_at: Option<DateTime<Utc>>,
    pub effective_at: Option<DateTime<Utc>>,
    /// The newer event that superseded it.
    pub superseded_by: Option<String>,
    /// When a worker first claimed it (absent: it has not started).
    pub started_at: Option<DateTime<Utc>>,
}

impl From<Run> for RunSummary {
    fn from(r: Run) -> Self {
        let input: Value = serde_json::from_str(&r.input).unwrap_or(Value::Null);
        let employee_id = input.pointer("/employee/id").and_then(Value::as_str).map(str::to_string);
        let waiting = matches!(r.state, RunState::Scheduled | RunState::Queued | RunState::RetryScheduled);
        RunSummary {
            run_id: r.id,
            event_id: r.event_id,
            vendor: r.vendor,
            workflow: r.workflow,
            employee_email: r.person_key,
            employee_id,
            state: r.state,
            attempts: r.attempts,
            access: r.access,
            outcome: r.outcome,
            last_error: r.last_error,
            blocked_by: r.blocked_by,
            next_attempt_at: waiting.then_some(r.next_attempt_at),
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            replays: r.replays,
            replayed_at: r.replayed_at,
            discarded_at: r.discarded_at,
            discard_reason: r.discard_reason,
            occurred_at: r.occurred_at,
            effective_at: r.effective_at,
            superseded_by: r.superseded_by,
            started_at: r.started_at,
        }
    }
}

pub async fn list_runs(db: &Db, filter: &RunFilter) -> Result<Vec<RunSummary>, OpsError> {
    Ok(runs::list(db, filter).await?.into_iter().map(RunSummary::from).collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct StepAttemptView {
    pub attempt: i32,
    pub run_attempt: i32,
    /// `succeeded`, `failed`, or `running` (`interrupted` once the run moved on:
    /// the worker died or shut down while the step was in flight).
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub output: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub key: String,
    pub position: i32,
    pub idempotency_key: String,
    pub status: lifecycle_domain::StepStatus,
    pub attempts: i32,
    /// What the step produced: the vendor ids.
    pub output: Option<Value>,
    pub last_error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub history: Vec<StepAttemptView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub input: Value,
    pub steps: Vec<StepView>,
    /// Operators' edits of its input, oldest first (the first's `before` is
    /// the original input): see `crate::edit`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<crate::edit::EditView>,
}

pub async fn run_detail(db: &Db, run_id: &str) -> Result<RunDetail, OpsError> {
    let run = runs::get(db, run_id).await?.ok_or_else(|| OpsError::NotFound(format!("no run {run_id}")))?;
    let running = run.state == RunState::Running;
    let input = serde_json::from_str(&run.input).unwrap_or(Value::Null);
    let journal = steps::load(db, run_id).await?;
    let steps = journal
        .into_iter()
        .map(|s| {
            let history = steps::history(&s)
                .iter()
                .map(|a| StepAttemptView {
                    attempt: a.attempt,
                    run_attempt: a.run_attempt,
                    status: if a.status == steps::RUNNING && !(running && a.run_attempt == run.attempts) {
                        "interrupted".into()
                    } else {
                        a.status.to_string()
                    },
                    started_at: a.started_at,
                    finished_at: a.finished_at,
                    duration_ms: a.duration_ms,
                    error: a.error.clone(),
                    output: a.output.as_deref().and_then(|o| serde_json::from_str(o).ok()),
                })
                .collect();
            StepView {
                key: s.key,
                position: s.position,
                idempotency_key: s.idempotency_key,
                status: s.status,
                attempts: s.attempts,
                output: s.output.as_deref().and_then(|o| serde_json::from_str(o).ok()),
                last_error: s.last_error,
                started_at: s.started_at,
                finished_at: s.finished_at,
                history,
            }
        })
        .collect();
    let edits = crate::edit::edits_of(db, run_id).await?;
    Ok(RunDetail { run: RunSummary::from(run), input, steps, edits })
}

#[derive(Debug, Clone, Serialize)]
pub struct EventDetail {
    pub event_id: String,
    pub source: String,
    pub idempotency_key: String,
    pub event_type: String,
    pub received_at: DateTime<Utc>,
    /// The payload as received, with anything that looks like a credential redacted.
    pub payload: Value,
    pub response_status: i32,
    pub runs: Vec<RunSummary>,
}

pub async fn event_detail(db: &Db, event_id: &str) -> Result<EventDetail, OpsError> {
    let e = events::get(db, event_id).await?.ok_or_else(|| OpsError::NotFound(format!("no event {event_id}")))?;
    let mut payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
    redact(&mut payload);
    let runs = runs::for_event(db, event_id).await?.into_iter().map(RunSummary::from).collect();
    Ok(EventDetail {
        event_id: e.id,
        source: e.source,
        idempotency_key: e.idempotency_key,
        event_type: e.event_type,
        received_at: e.received_at,
        payload,
        response_status: e.response_status,
        runs,
    })
}

/// Blanks values whose key names a credential. Intake events carry none by
/// contract; webhook payloads and future sources might.
pub fn redact(v: &mut Value) {
    const SECRET_KEYS: [&str; 9] = [
        "password",
        "secret",
        "token",
        "api_token",
        "apikey",
        "api_key",
        "authorization",
        "client_secret",
        "http_auth_password",
    ];
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let k = k.to_lowercase();
                if SECRET_KEYS
                    .iter()
                    .any(|s| k == *s || k.ends_with(&format!("_{s}")) || k.contains("password") || k.contains("secret"))
                {
                    *val = Value::String("[redacted]".into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credential_fields_at_any_depth() {
        let mut v = serde_json::json!({"employee": {"email": "a@b.co"}, "meta": {"http_auth_password": "x", "api_token": "y", "nested": [{"client_secret": "z"}]}});
        redact(&mut v);
        let s = v.to_string();
        assert!(!s.contains("\"x\"") && !s.contains("\"y\"") && !s.contains("\"z\""), "{s}");
        assert!(s.contains("a@b.co"));
    }
}
