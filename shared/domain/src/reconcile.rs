//! Reconcile findings: the kinds of difference a pass over a vendor's
//! directory records (docs/contract.md, reconcile).
//!
//! [`FindingKind`] is what the `reconcile_findings.kind` column holds: a
//! sea-orm active enum stored as the same lower-case word the API and the
//! CLI print, so a finding read back can only be of a kind that exists.

use crate::run::Workflow;
use sea_orm::sea_query::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, EnumIter, DeriveActiveEnum,
)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum FindingKind {
    /// The person left and the account still gives access.
    #[sea_orm(string_value = "orphaned")]
    Orphaned,
    /// A joiner or mover succeeded and the account is gone or deactivated.
    #[sea_orm(string_value = "missing")]
    Missing,
    /// The account's access differs from what the latest event asks for.
    #[sea_orm(string_value = "drifted")]
    Drifted,
    /// No event ever named the account.
    #[sea_orm(string_value = "unmanaged")]
    Unmanaged,
}

impl FindingKind {
    pub const ALL: [FindingKind; 4] =
        [FindingKind::Orphaned, FindingKind::Missing, FindingKind::Drifted, FindingKind::Unmanaged];

    pub const fn as_str(self) -> &'static str {
        match self {
            FindingKind::Orphaned => "orphaned",
            FindingKind::Missing => "missing",
            FindingKind::Drifted => "drifted",
            FindingKind::Unmanaged => "unmanaged",
        }
    }

    /// None for a word that names no kind (see [`FromStr`] for the error).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The workflow a fix runs for it; none for an unmanaged account (whose
    /// it is, and whether it should exist, is for a person to say).
    pub fn fix_workflow(self) -> Option<Workflow> {
        match self {
            FindingKind::Orphaned => Some(Workflow::Leaver),
            FindingKind::Missing => Some(Workflow::Joiner),
            FindingKind::Drifted => Some(Workflow::Mover),
            FindingKind::Unmanaged => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a finding kind (orphaned, missing, drifted, unmanaged)")]
pub struct UnknownFindingKind(pub String);

impl FromStr for FindingKind {
    type Err = UnknownFindingKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownFindingKind(s.to_string()))
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    /// One name per kind everywhere: the column (the words stored before it was typed), the JSON, the text.
    #[test]
    fn a_kind_has_one_name_in_the_column_the_json_and_the_text() {
        assert_eq!(FindingKind::iter().collect::<Vec<_>>(), FindingKind::ALL, "ALL lists every kind");
        let stored = ["orphaned", "missing", "drifted", "unmanaged"];
        for (k, word) in FindingKind::ALL.into_iter().zip(stored) {
            assert_eq!(k.to_value(), word, "stored as before");
            assert_eq!(serde_json::to_value(k).unwrap(), word, "serialized as its name");
            assert_eq!(word.parse::<FindingKind>().unwrap(), k);
        }
        let err = "orphan".parse::<FindingKind>().unwrap_err().to_string();
        assert!(err.contains("'orphan'") && err.contains("unmanaged"), "{err}");
    }

    #[test]
    fn only_an_unmanaged_account_has_no_fix() {
        assert_eq!(FindingKind::Orphaned.fix_workflow(), Some(Workflow::Leaver));
        assert_eq!(FindingKind::Missing.fix_workflow(), Some(Workflow::Joiner));
        assert_eq!(FindingKind::Drifted.fix_workflow(), Some(Workflow::Mover));
        assert_eq!(FindingKind::Unmanaged.fix_workflow(), None);
    }
}
