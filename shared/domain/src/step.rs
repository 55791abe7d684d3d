//! Steps of a run's journal and what a run leaves the person with.
//!
//! [`StepStatus`] is what the `steps` table's `status` column (and each
//! attempt in a step's history) holds; [`Access`] is what the `runs` table's
//! `access` column holds. Both are stored as the same strings they always
//! were, so no stored row changes.

use sea_orm::sea_query::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where one step (or one attempt of it) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumIter, DeriveActiveEnum)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum StepStatus {
    /// Begun and not finished: its effect at the vendor is in doubt until a
    /// later attempt finishes it (the worker may have died during it).
    #[sea_orm(string_value = "running")]
    Running,
    /// Done; its output is recorded and replayed instead of repeating it.
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Its attempt failed; the run's retry begins it again.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// It succeeded before an operator edited its run's input. Not `succeeded`,
    /// so the next attempt does not answer it from the journal: a read reads
    /// again, a write runs again as in doubt (it looks at the vendor before
    /// acting). Its record and its history stay.
    #[sea_orm(string_value = "edited")]
    Edited,
}

impl StepStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Edited => "edited",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The person's access at the vendor after a run: what the console's
/// employee view shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, EnumIter, DeriveActiveEnum)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum Access {
    /// Has a working account with the requested access.
    #[sea_orm(string_value = "active")]
    Active,
    /// Invited; not a user until they accept.
    #[sea_orm(string_value = "invited")]
    Invited,
    /// The account exists but cannot be used (deactivated).
    #[sea_orm(string_value = "deactivated")]
    Deactivated,
    /// No longer has an account or membership.
    #[sea_orm(string_value = "removed")]
    Removed,
    /// Never had an account there.
    #[sea_orm(string_value = "absent")]
    Absent,
}

impl Access {
    pub const fn as_str(self) -> &'static str {
        match self {
            Access::Active => "active",
            Access::Invited => "invited",
            Access::Deactivated => "deactivated",
            Access::Removed => "removed",
            Access::Absent => "absent",
        }
    }

    /// The person can no longer use the vendor (or never could).
    pub const fn is_gone(self) -> bool {
        matches!(self, Access::Deactivated | Access::Removed | Access::Absent)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    /// The stored texts are the ones rows already hold: no migration.
    #[test]
    fn stored_texts_are_unchanged() {
        let steps: Vec<String> = StepStatus::iter().map(|s| s.to_value()).collect();
        assert_eq!(steps, ["running", "succeeded", "failed", "edited"]);
        let access: Vec<String> = Access::iter().map(|a| a.to_value()).collect();
        assert_eq!(access, ["active", "invited", "deactivated", "removed", "absent"]);
        for a in Access::iter() {
            assert_eq!(a.to_value(), a.as_str());
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for s in StepStatus::iter() {
            assert_eq!(s.to_value(), s.as_str());
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
