//! The vendors lifecycle knows how to drive.
//!
//! [`VendorKind`] is what the `vendor` columns (runs, drift) hold: a sea-orm
//! active enum stored as the lower-case name the API and the CLI print.

use sea_orm::sea_query::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Declares [`VendorKind`] from one line per vendor: its variant and the name
/// stored, serialized, printed and parsed. Adding a vendor is a line here.
macro_rules! vendor_kinds {
    ($($variant:ident => $name:tt,)+) => {
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, EnumIter, DeriveActiveEnum,
        )]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
        #[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
        pub enum VendorKind {
            $(
                #[sea_orm(string_value = $name)]
                #[serde(rename = $name)]
                #[cfg_attr(feature = "clap", value(name = $name))]
                $variant,
            )+
        }

        impl VendorKind {
            pub const ALL: [VendorKind; [$($name),+].len()] = [$(VendorKind::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(VendorKind::$variant => $name,)+
                }
            }
        }
    };
}

vendor_kinds! {
    Pipedrive => "pipedrive",
    Crowdstrike => "crowdstrike",
    Jira => "jira",
    Calendly => "calendly",
    Circleci => "circleci",
    Github => "github",
}

#[derive(Debug, thiserror::Error)]
#[error("unknown vendor '{0}'; known vendors: {known}", known = known_names())]
pub struct UnknownVendor(pub String);

fn known_names() -> String {
    VendorKind::ALL.map(VendorKind::as_str).join(", ")
}

impl FromStr for VendorKind {
    type Err = UnknownVendor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VendorKind::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownVendor(s.to_string()))
    }
}

impl fmt::Display for VendorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    /// One name per vendor everywhere: the column, the JSON, `as_str`, the parser.
    #[test]
    fn a_vendor_has_one_name_in_the_column_the_json_and_the_text() {
        assert_eq!(VendorKind::iter().collect::<Vec<_>>(), VendorKind::ALL, "ALL lists every vendor");
        for v in VendorKind::ALL {
            assert_eq!(v.to_value(), v.as_str(), "stored as its name");
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str(), "serialized as its name");
            assert_eq!(v.as_str().parse::<VendorKind>().unwrap(), v);
        }
        assert!("myspace".parse::<VendorKind>().is_err());
    }

    /// What sets vendors apart is answered for each, in one place.
    #[test]
    fn login_based_vendors_are_the_vcs_ones_and_scim_maps_all_but_circleci() {
        let by_login: Vec<VendorKind> = VendorKind::ALL.into_iter().filter(|v| v.knows_people_by_login()).collect();
        assert_eq!(by_login, [VendorKind::Circleci, VendorKind::Github]);
        let unmappable: Vec<VendorKind> = VendorKind::ALL.into_iter().filter(|v| !v.scim_can_map()).collect();
        assert_eq!(unmappable, [VendorKind::Circleci]);
    }

    /// The command line takes the same names (`--vendor pipedrive`).
    #[cfg(feature = "clap")]
    #[test]
    fn the_command_line_takes_the_same_names() {
        use clap::ValueEnum;
        for v in VendorKind::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.as_str());
        }
        assert_eq!(VendorKind::value_variants(), VendorKind::ALL);
    }
}
