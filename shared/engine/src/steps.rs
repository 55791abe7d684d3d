//! The API workflows are written in: named, journaled steps.

use crate::StepError;
use lifecycle_store::steps::{self as journal, Step};
use lifecycle_store::Db;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What a step's closure learns about the attempt it is.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1 for the first attempt of this step.
    pub number: i32,
    /// An earlier attempt began and did not record success: its effect may
    /// or may not have happened at the vendor (the worker died, or the vendor
    /// applied the change and failed the response). Look before acting.
    pub in_doubt: bool,
}

/// A run's journal, as its workflow sees it.
///
/// `steps.run("create_user", |attempt| async { ... })` executes the closure
/// only if the step has not already succeeded in an earlier attempt of the
/// run; otherwise it returns the recorded output without calling the vendor.
/// Keys must be unique within a run and derived only from the run's input and
/// earlier steps' outputs (`reassign_deal:42`), so a retry meets the same keys.
pub struct Steps {
    db: Db,
    run_id: String,
    vendor: &'static str,
    run_attempt: i32,
    records: HashMap<String, Step>,
    /// The highest position in the journal: a new step goes after it, so a
    /// step keeps the position it first ran at, whatever a retry revisits.
    last_position: i32,
    shutdown: CancellationToken,
    executed: u32,
}

impl Steps {
    pub(crate) async fn load(
        db: Db,
        run_id: &str,
        vendor: &'static str,
        run_attempt: i32,
        shutdown: CancellationToken,
    ) -> Result<Self, StepError> {
        let records: HashMap<String, Step> =
            journal::load(&db, run_id).await?.into_iter().map(|s| (s.key.clone(), s)).collect();
        let last_position = records.values().map(|s| s.position).max().unwrap_or(0);
        Ok(Self { db, run_id: run_id.to_string(), vendor, run_attempt, records, last_position, shutdown, executed: 0 })
    }

    /// Runs (or replays) the step `key`.
    pub async fn run<T, F, Fut>(&mut self, key: impl Into<String>, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Attempt) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let key = key.into();
        let previous = match self.records.get(&key) {
            Some(rec) if rec.status == journal::SUCCEEDED => {
                let out = rec.output.as_deref().unwrap_or("null");
                return serde_json::from_str(out).map_err(|e| {
                    StepError::permanent(format!("the journal entry of step {key} cannot be read by this version: {e}"))
                });
            }
            Some(rec) => rec.attempts,
            None => 0,
        };
        if self.shutdown.is_cancelled() {
            return Err(StepError::Interrupted);
        }
        let position = match self.records.get(&key) {
            Some(rec) => rec.position,
            None => {
                self.last_position += 1;
                self.last_position
            }
        };
        let begun =
            journal::begin(&self.db, &self.run_id, &key, position, self.records.get(&key), self.run_attempt).await?;
        let attempt = Attempt { number: begun.attempts, in_doubt: previous > 0 };
        let kind = step_kind(&key).to_string();
        let span = tracing::info_span!("step", step = %key, attempt = begun.attempts);
        let started = Instant::now();
        let result = f(attempt).instrument(span).await;
        let elapsed = started.elapsed();
        let ms = elapsed.as_millis() as i64;
        self.executed += 1;
        metrics::histogram!("lifecycle_step_duration_seconds", "vendor" => self.vendor, "step" => kind.clone())
            .record(elapsed.as_secs_f64());
        let finished = match &result {
            Ok(value) => {
                let out = serde_json::to_string(value)
                    .map_err(|e| StepError::permanent(format!("step {key} produced unserializable output: {e}")))?;
                let done = journal::finish(&self.db, &begun, Some(&out), None, ms).await?;
                metrics::counter!("lifecycle_steps_total", "vendor" => self.vendor, "step" => kind, "result" => "succeeded")
                    .increment(1);
                done
            }
            Err(e) => {
                let done = journal::finish(&self.db, &begun, None, Some(&e.to_string()), ms).await?;
                metrics::counter!("lifecycle_steps_total", "vendor" => self.vendor, "step" => kind, "result" => e.kind())
                    .increment(1);
                done
            }
        };
        self.records.insert(key, finished);
        result
    }

    /// The recorded output of a step that already succeeded, if any.
    pub fn recorded<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let rec = self.records.get(key)?;
        (rec.status == journal::SUCCEEDED).then(|| rec.output.as_deref().and_then(|o| serde_json::from_str(o).ok()))?
    }

    /// Keys starting with `prefix` whose last attempt did not record success:
    /// their effect is in doubt. A workflow that re-lists its work from the
    /// vendor (and so may not meet them again) revisits them with these.
    pub fn in_doubt(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<&Step> =
            self.records.values().filter(|r| r.key.starts_with(prefix) && r.status != journal::SUCCEEDED).collect();
        keys.sort_by_key(|r| r.position);
        keys.into_iter().map(|r| r.key.clone()).collect()
    }

    /// Keys starting with `prefix` that succeeded, in this attempt or an earlier one.
    pub fn completed(&self, prefix: &str) -> Vec<String> {
        let mut done: Vec<&Step> =
            self.records.values().filter(|r| r.key.starts_with(prefix) && r.status == journal::SUCCEEDED).collect();
        done.sort_by_key(|r| r.position);
        done.into_iter().map(|r| r.key.clone()).collect()
    }

    /// Steps executed (not replayed) in this attempt.
    pub fn executed(&self) -> u32 {
        self.executed
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// `reassign_deal:42` -> `reassign_deal`: the label metrics use, so ids do
/// not explode their cardinality.
fn step_kind(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}
