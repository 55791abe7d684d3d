//! Calendly's part of an event.

use super::Fields;
use crate::event::EventType;
use serde::{Deserialize, Serialize};

/// Calendly: membership only (roles cannot be set through the REST API).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendlyApp {}

impl CalendlyApp {
    pub(super) fn parse(_ty: EventType, f: &mut Fields) -> Self {
        f.only(&[]);
        CalendlyApp {}
    }
}
