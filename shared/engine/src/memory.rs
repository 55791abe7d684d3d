//! An in-memory [`Journal`], for fast tests of workflows and of [`crate::Steps`].
//!
//! It keeps the journal's contract as the SQL journal does: steps by
//! position, a step's attempts counted and kept in its history, a finished
//! attempt's output kept, a read recorded as succeeded in one write, and
//! every write refused with [`StorageError::LeaseLost`] (nothing written)
//! unless its writer holds the run. Who holds a run is said with
//! [`MemoryJournal::hold`] (a claim) and [`MemoryJournal::drop_hold`] (the
//! run ended or was handed back).

use crate::storage::{Journal, StepRecord, StepWrite, StorageError, StorageResult};
use async_trait::async_trait;
use chrono::Utc;
use lifecycle_domain::StepStatus;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// One attempt, as the in-memory history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryAttempt {
    pub attempt: i32,
    pub run_attempt: i32,
    pub status: StepStatus,
    pub output: Option<String>,
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    /// run id -> the worker holding it.
    holders: HashMap<String, String>,
    /// (run id, key) -> the step.
    steps: HashMap<(String, String), StepRecord>,
    next_id: i64,
}

#[derive(Default)]
pub struct MemoryJournal {
    state: Mutex<State>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// `owner` holds `run_id` now (it claimed it, or took it over).
    pub fn hold(&self, run_id: &str, owner: &str) {
        self.lock().holders.insert(run_id.to_string(), owner.to_string());
    }

    /// Nobody holds `run_id` (it ended, or was handed back).
    pub fn drop_hold(&self, run_id: &str) {
        self.lock().holders.remove(run_id);
    }

    /// The attempts of a step, oldest first, from its history.
    pub fn history(step: &StepRecord) -> Vec<MemoryAttempt> {
        step.history.as_deref().and_then(|h| serde_json::from_str(h).ok()).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock poisons nothing we rely on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an attempt to the step `w` names, guarded by the lease.
    fn write(&self, w: StepWrite<'_>, status: StepStatus, output: Option<&str>, ms: i64) -> StorageResult<StepRecord> {
        let mut st = self.lock();
        held(&st, w.run_id, w.owner)?;
        let now = Utc::now();
        let key = (w.run_id.to_string(), w.key.to_string());
        let stored = st.steps.get(&key).cloned();
        let number = stored.as_ref().map_or(0, |s| s.attempts) + 1;
        let mut history = stored.as_ref().map(Self::history).unwrap_or_default();
        history.push(MemoryAttempt {
            attempt: number,
            run_attempt: w.run_attempt,
            status,
            output: output.map(str::to_string),
            error: None,
        });
        let finished = output.is_some().then_some(now);
        let step = match stored {
            None => {
                st.next_id += 1;
                StepRecord {
                    id: st.next_id,
                    run_id: w.run_id.to_string(),
                    key: w.key.to_string(),
                    position: w.position,
                    idempotency_key: format!("{}:{}", w.run_id, w.key),
                    status,
                    attempts: number,
                    output: output.map(str::to_string),
                    last_error: None,
                    started_at: now - chrono::Duration::milliseconds(ms),
                    finished_at: finished,
                    history: Some(encode(&history)),
                }
            }
            Some(prev) => StepRecord {
                status,
                attempts: number,
                history: Some(encode(&history)),
                output: if output.is_some() { output.map(str::to_string) } else { prev.output.clone() },
                finished_at: if output.is_some() { finished } else { prev.finished_at },
                last_error: if output.is_some() { None } else { prev.last_error.clone() },
                ..prev
            },
        };
        st.steps.insert(key, step.clone());
        Ok(step)
    }
}

fn encode(history: &[MemoryAttempt]) -> String {
    serde_json::to_string(history).expect("attempts always serialize")
}

fn held(st: &State, run_id: &str, owner: &str) -> StorageResult<()> {
    match st.holders.get(run_id) {
        Some(holder) if holder == owner => Ok(()),
        _ => Err(StorageError::LeaseLost),
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn load(&self, run_id: &str) -> StorageResult<Vec<StepRecord>> {
        let mut steps: Vec<StepRecord> = self.lock().steps.values().filter(|s| s.run_id == run_id).cloned().collect();
        steps.sort_by_key(|s| (s.position, s.id));
        Ok(steps)
    }

    async fn begin(&self, step: StepWrite<'_>) -> StorageResult<StepRecord> {
        self.write(step, StepStatus::Running, None, 0)
    }

    async fn finish(
        &self,
        begun: &StepRecord,
        owner: &str,
        output: Option<&str>,
        error: Option<&str>,
        _duration_ms: i64,
    ) -> StorageResult<StepRecord> {
        let mut st = self.lock();
        held(&st, &begun.run_id, owner)?;
        let status = if error.is_some() { StepStatus::Failed } else { StepStatus::Succeeded };
        let mut history = Self::history(begun);
        if let Some(last) = history.last_mut() {
            last.status = status;
            last.output = output.map(str::to_string);
            last.error = error.map(str::to_string);
        }
        let step = StepRecord {
            status,
            finished_at: Some(Utc::now()),
            last_error: error.map(str::to_string),
            output: output.map(str::to_string).or_else(|| begun.output.clone()),
            history: Some(encode(&history)),
            ..begun.clone()
        };
        st.steps.insert((begun.run_id.clone(), begun.key.clone()), step.clone());
        Ok(step)
    }

    async fn record_read(&self, step: StepWrite<'_>, output: &str, duration_ms: i64) -> StorageResult<StepRecord> {
        self.write(step, StepStatus::Succeeded, Some(output), duration_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write<'a>(key: &'a str, owner: &'a str, previous: Option<&'a StepRecord>) -> StepWrite<'a> {
        StepWrite { run_id: "run-1", owner, key, position: 1, previous, run_attempt: 1 }
    }

    /// The contract the SQL journal keeps too: begun, finished, re-begun, and
    /// nothing written by a worker that does not hold the run.
    #[tokio::test]
    async fn writes_belong_to_the_holder_and_keep_every_attempt() {
        let j = MemoryJournal::new();
        assert!(matches!(j.begin(write("create_user", "w1", None)).await, Err(StorageError::LeaseLost)));
        j.hold("run-1", "w1");
        let begun = j.begin(write("create_user", "w1", None)).await.unwrap();
        assert_eq!((begun.status, begun.attempts), (StepStatus::Running, 1));
        let failed = j.finish(&begun, "w1", None, Some("HTTP 503"), 5).await.unwrap();
        assert_eq!((failed.status, failed.last_error.as_deref()), (StepStatus::Failed, Some("HTTP 503")));
        let again = j.begin(write("create_user", "w1", Some(&failed))).await.unwrap();
        let done = j.finish(&again, "w1", Some("55"), None, 5).await.unwrap();
        assert_eq!((done.status, done.attempts, done.output.as_deref()), (StepStatus::Succeeded, 2, Some("55")));
        assert_eq!(MemoryJournal::history(&done).len(), 2);

        j.hold("run-1", "w2");
        assert!(matches!(j.finish(&again, "w1", Some("56"), None, 5).await, Err(StorageError::LeaseLost)));
        let read = j.record_read(write("find_user", "w2", None), "7", 3).await.unwrap();
        assert_eq!((read.status, read.output.as_deref()), (StepStatus::Succeeded, Some("7")));
        let keys: Vec<String> = j.load("run-1").await.unwrap().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["create_user", "find_user"]);
        assert_eq!(j.load("run-1").await.unwrap()[0].output.as_deref(), Some("55"), "w1's late write was refused");
    }
}
