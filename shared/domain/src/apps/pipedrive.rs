//! Pipedrive's part of an event.

use super::{AppRequest, Fields, VendorApp};
use crate::event_type::EventType;
use crate::vendor::VendorKind;
use serde::{Deserialize, Serialize};

/// Pipedrive: one role, by name (resolved to an id through `GET /roles`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipedriveApp {
    pub role: Option<String>,
}

impl PipedriveApp {
    pub(super) fn parse(ty: EventType, f: &mut Fields) -> Self {
        f.only(&["role"]);
        let role = f.name("role");
        if role.is_none() && matches!(ty, EventType::Joiner | EventType::Mover) && !f.has("role") {
            f.problem("role", "is required for a joiner or a mover");
        }
        PipedriveApp { role }
    }
}

impl VendorApp for PipedriveApp {
    const VENDOR: VendorKind = VendorKind::Pipedrive;
    const BY_LOGIN: bool = false;
    const SCIM_REFUSAL: Option<&'static str> = None;

    fn of(app: &AppRequest) -> Option<&Self> {
        match app {
            AppRequest::Pipedrive(a) => Some(a),
            _ => None,
        }
    }

    /// One role: the first group's stays (Pipedrive holds one).
    fn unite(&mut self, _more: &Self) {}

    fn login(&self) -> Option<&str> {
        None
    }

    fn set_login(&mut self, _login: &str) -> bool {
        false
    }
}
