//! What an event asks for: a leaf, so that each vendor's part of an event
//! (the `apps` modules) can name it without importing the event it is part of.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Joiner,
    Mover,
    Leaver,
    /// Withdraws what is still scheduled (or queued, not started) for the
    /// employee, at the vendors `apps` names or at all of them. Makes no runs.
    Cancel,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Joiner => "joiner",
            EventType::Mover => "mover",
            EventType::Leaver => "leaver",
            EventType::Cancel => "cancel",
        }
    }

    /// The workflow its runs execute; a cancel has no runs.
    pub fn workflow(self) -> Option<crate::Workflow> {
        match self {
            EventType::Joiner => Some(crate::Workflow::Joiner),
            EventType::Mover => Some(crate::Workflow::Mover),
            EventType::Leaver => Some(crate::Workflow::Leaver),
            EventType::Cancel => None,
        }
    }
}
