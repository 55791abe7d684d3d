//! Runs as the bulk operations take them (whole rows, not views): what a
//! filter selects for a replay, a re-check or a bulk action.

use crate::views::StepView;
use crate::OpsError;
use lifecycle_store::steps;

pub use lifecycle_store::runs::{counts, Run, RunFilter};
pub use lifecycle_store::time::Cancelled;

/// The runs `filter` selects, newest first, as [`crate::replay_all`] and
/// [`crate::recheck_all`] take them.
pub async fn select(db: &crate::db::Db, filter: &RunFilter) -> Result<Vec<Run>, OpsError> {
    Ok(lifecycle_store::runs::list(db, filter).await?)
}

/// The step's last attempt succeeded: a replay does not repeat it.
pub fn succeeded(step: &StepView) -> bool {
    step.status == steps::SUCCEEDED
}
