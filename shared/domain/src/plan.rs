//! Plans: what a run would do at its vendor, from reads only.
//!
//! [`StopState`] is where a plan says the run would stop short: one of the two
//! states a run ends in without doing everything, named as the run's state is
//! (`needs_manual_action`, `dead`), so a plan and the run that follows agree.

use crate::run::RunState;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopState {
    /// The vendor's API cannot do it: a person must (the message says what).
    NeedsManualAction,
    /// The run would give up (the message says why).
    Dead,
}

impl StopState {
    pub const ALL: [StopState; 2] = [StopState::NeedsManualAction, StopState::Dead];

    /// The state the run would end in.
    pub const fn run_state(self) -> RunState {
        match self {
            StopState::NeedsManualAction => RunState::NeedsManualAction,
            StopState::Dead => RunState::Dead,
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.run_state().as_str()
    }
}

impl fmt::Display for StopState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Named as the run's state is, in the JSON and in the text.
    #[test]
    fn a_stop_is_named_as_the_state_the_run_would_end_in() {
        for s in StopState::ALL {
            assert!(s.run_state().is_terminal());
            assert_eq!(serde_json::to_value(s).unwrap(), s.run_state().as_str());
            assert_eq!(s.to_string(), s.run_state().to_string());
        }
        assert_eq!(serde_json::to_value(StopState::NeedsManualAction).unwrap(), "needs_manual_action");
        assert_eq!(serde_json::to_value(StopState::Dead).unwrap(), "dead");
    }
}
