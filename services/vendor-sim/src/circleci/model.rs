//! CircleCI's entities: users, orgs (by UUID, with their VCS slug), each org's roster in joining
//! order, and groups. Rosters are what people do in the web app (no API reads or writes them):
//! they decide what `/me/collaborations` lists, whom `/user/{id}` shows and who may read groups.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

use crate::token::Token;

/// An org member's CircleCI role (not their VCS role).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Role {
    Admin,
    Contributor,
    Viewer,
}

impl Role {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Contributor => "contributor",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct User {
    pub(super) id: String,
    pub(super) login: String,
    pub(super) name: String,
    pub(super) avatar_url: String,
    /// Personal API token, if the user has one the simulator knows.
    pub(super) token: Option<Token>,
    pub(super) seq: u64,
}

#[derive(Clone, Debug)]
pub(super) struct Org {
    pub(super) id: String,
    pub(super) slug: String,
    pub(super) name: String,
    pub(super) vcs_type: &'static str,
    pub(super) avatar_url: String,
    pub(super) seq: u64,
}

/// An org's members in the order they joined (that order is what pages follow).
#[derive(Clone, Debug, Default)]
pub(super) struct Roster {
    pub(super) order: BTreeMap<u64, String>,
    pub(super) members: HashMap<String, (u64, Role)>,
}

#[derive(Clone, Debug)]
pub(super) struct Group {
    pub(super) id: String,
    pub(super) org_id: String,
    pub(super) name: String,
    pub(super) description: String,
    /// Kept for `/_sim/state`; the API shows no group's members ("Members not included").
    pub(super) members: BTreeSet<String>,
}

/// The authenticated caller, put in request extensions by the guard (`handlers.rs`).
#[derive(Clone, Debug)]
pub(super) struct Caller {
    pub(super) user_id: String,
}
