//! The vendors lifecycle knows how to drive.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VendorKind {
    Pipedrive,
    Crowdstrike,
    Jira,
    Calendly,
    Circleci,
}

impl VendorKind {
    pub const ALL: [VendorKind; 5] =
        [VendorKind::Pipedrive, VendorKind::Crowdstrike, VendorKind::Jira, VendorKind::Calendly, VendorKind::Circleci];

    pub fn as_str(self) -> &'static str {
        match self {
            VendorKind::Pipedrive => "pipedrive",
            VendorKind::Crowdstrike => "crowdstrike",
            VendorKind::Jira => "jira",
            VendorKind::Calendly => "calendly",
            VendorKind::Circleci => "circleci",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown vendor '{0}'; known vendors: pipedrive, crowdstrike, jira, calendly, circleci")]
pub struct UnknownVendor(pub String);

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
