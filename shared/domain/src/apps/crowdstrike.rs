//! CrowdStrike Falcon's part of an event.

use super::{AppRequest, Fields, VendorApp};
use crate::event_type::EventType;
use crate::vendor::VendorKind;
use serde::{Deserialize, Serialize};

/// CrowdStrike Falcon: role ids, case-sensitive (e.g. `falcon_analyst`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrowdstrikeApp {
    pub roles: Vec<String>,
}

impl CrowdstrikeApp {
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

impl VendorApp for CrowdstrikeApp {
    const VENDOR: VendorKind = VendorKind::Crowdstrike;
    const BY_LOGIN: bool = false;
    const SCIM_REFUSAL: Option<&'static str> = None;

    fn of(app: &AppRequest) -> Option<&Self> {
        match app {
            AppRequest::Crowdstrike(a) => Some(a),
            _ => None,
        }
    }

    /// What two SCIM groups giving CrowdStrike give together: their roles.
    fn unite(&mut self, more: &Self) {
        super::add_missing(&mut self.roles, &more.roles);
    }

    fn login(&self) -> Option<&str> {
        None
    }

    fn set_login(&mut self, _login: &str) -> bool {
        false
    }
}
