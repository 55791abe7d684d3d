//! Pipedrive's part of an event.

use super::Fields;
use crate::event::EventType;
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
