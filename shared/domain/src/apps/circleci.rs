//! CircleCI's part of an event.

use super::Fields;
use crate::event::EventType;
use serde::{Deserialize, Serialize};

/// CircleCI: the member's VCS login (`apps.circleci.login`), which is how members are found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircleciApp {
    pub login: Option<String>,
}

impl CircleciApp {
    pub(super) fn parse(_ty: EventType, f: &mut Fields) -> Self {
        f.only(&["login"]);
        let login = f.name("login");
        if login.is_none() && !f.has("login") {
            f.problem("login", "is required (the member's VCS login, how CircleCI members are found)");
        }
        CircleciApp { login }
    }
}
