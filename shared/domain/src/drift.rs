//! Drift: what a vendor did that lifecycle did not ask for.
//!
//! [`DriftKind`] is what the `drift.kind` column holds: a sea-orm active enum
//! stored as the same snake_case words as before it was typed.

use sea_orm::sea_query::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, EnumIter, DeriveActiveEnum,
)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(64))")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum DriftKind {
    /// An account appeared with no HR joiner event for its address.
    #[sea_orm(string_value = "user_added_outside_hr")]
    UserAddedOutsideHr,
    /// An account was deactivated and lifecycle could not take care of what followed.
    #[sea_orm(string_value = "user_deactivated_outside")]
    UserDeactivatedOutside,
    /// An account was reactivated with no HR joiner event.
    #[sea_orm(string_value = "user_reactivated_outside")]
    UserReactivatedOutside,
    /// An account was deleted at the vendor.
    #[sea_orm(string_value = "user_deleted")]
    UserDeleted,
}

impl DriftKind {
    pub const ALL: [DriftKind; 4] = [
        DriftKind::UserAddedOutsideHr,
        DriftKind::UserDeactivatedOutside,
        DriftKind::UserReactivatedOutside,
        DriftKind::UserDeleted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DriftKind::UserAddedOutsideHr => "user_added_outside_hr",
            DriftKind::UserDeactivatedOutside => "user_deactivated_outside",
            DriftKind::UserReactivatedOutside => "user_reactivated_outside",
            DriftKind::UserDeleted => "user_deleted",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a kind of drift (known: {known})", known = DriftKind::ALL.map(DriftKind::as_str).join(", "))]
pub struct UnknownDriftKind(pub String);

impl FromStr for DriftKind {
    type Err = UnknownDriftKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownDriftKind(s.to_string()))
    }
}

impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    #[test]
    fn a_kind_has_one_name_in_the_column_the_json_and_the_text() {
        assert_eq!(DriftKind::iter().collect::<Vec<_>>(), DriftKind::ALL, "ALL lists every kind");
        let stored = ["user_added_outside_hr", "user_deactivated_outside", "user_reactivated_outside", "user_deleted"];
        for (k, word) in DriftKind::ALL.into_iter().zip(stored) {
            assert_eq!(k.to_value(), word, "stored as before");
            assert_eq!(serde_json::to_value(k).unwrap(), word, "serialized as its name");
            assert_eq!(word.parse::<DriftKind>().unwrap(), k);
        }
        let err = "user_gone".parse::<DriftKind>().unwrap_err().to_string();
        assert!(err.contains("'user_gone'") && err.contains("user_deleted"), "{err}");
    }
}
