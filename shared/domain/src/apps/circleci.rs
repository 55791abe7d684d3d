//! CircleCI's part of an event.

use super::Fields;
use crate::event::EventType;
use serde::{Deserialize, Serialize};

/// CircleCI: the person's VCS login (`apps.circleci.login`), which names them in the steps a person is
/// asked to take (CircleCI's API publishes no membership operation: docs/vendors/circleci.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircleciApp {
    pub login: Option<String>,
}

impl CircleciApp {
    pub(super) fn parse(_ty: EventType, f: &mut Fields) -> Self {
        f.only(&["login"]);
        let login = f.name("login");
        if login.is_none() && !f.has("login") {
            f.problem(
                "login",
                "is required (the person's VCS login, which CircleCI and its VCS organization know them by)",
            );
        }
        CircleciApp { login }
    }
}
