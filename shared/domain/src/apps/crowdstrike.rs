//! CrowdStrike Falcon's part of an event.

use super::Fields;
use crate::event::EventType;
use serde::{Deserialize, Serialize};

/// CrowdStrike Falcon: role ids, case-sensitive (e.g. `falcon_analyst`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrowdstrikeApp {
    pub roles: Vec<String>,
}

impl CrowdstrikeApp {
    /// What two SCIM groups giving CrowdStrike give together: their roles.
    pub fn unite(&mut self, more: &Self) {
        super::add_missing(&mut self.roles, &more.roles);
    }

    pub(super) fn parse(ty: EventType, f: &mut Fields) -> Self {
        f.only(&["roles"]);
        let roles = f.names("roles");
        match (&roles, ty) {
            (None, EventType::Joiner | EventType::Mover) if !f.has("roles") => {
                f.problem("roles", "is required for a joiner or a mover")
            }
            (Some(r), EventType::Joiner) if r.is_empty() => {
                f.problem("roles", "must name at least one role for a joiner")
            }
            _ => {}
        }
        CrowdstrikeApp { roles: roles.unwrap_or_default() }
    }
}
