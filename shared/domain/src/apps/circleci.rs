//! CircleCI's part of an event.

use super::{AppRequest, Fields, VendorApp};
use crate::event_type::EventType;
use crate::vendor::VendorKind;
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

impl VendorApp for CircleciApp {
    const VENDOR: VendorKind = VendorKind::Circleci;
    /// Members are known by their VCS login.
    const BY_LOGIN: bool = true;
    const SCIM_REFUSAL: Option<&'static str> = Some("it needs each person's own VCS login, which a group cannot give");

    fn of(app: &AppRequest) -> Option<&Self> {
        match app {
            AppRequest::Circleci(a) => Some(a),
            _ => None,
        }
    }

    /// The login only, which is the person's own: nothing to unite.
    fn unite(&mut self, _more: &Self) {}

    fn login(&self) -> Option<&str> {
        self.login.as_deref()
    }

    fn set_login(&mut self, login: &str) -> bool {
        self.login = Some(login.to_string());
        true
    }
}
