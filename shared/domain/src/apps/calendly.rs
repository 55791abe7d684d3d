//! Calendly's part of an event.

use super::{AppRequest, Fields, VendorApp};
use crate::event_type::EventType;
use crate::vendor::VendorKind;
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

impl VendorApp for CalendlyApp {
    const VENDOR: VendorKind = VendorKind::Calendly;
    const BY_LOGIN: bool = false;
    const SCIM_REFUSAL: Option<&'static str> = None;

    fn of(app: &AppRequest) -> Option<&Self> {
        match app {
            AppRequest::Calendly(a) => Some(a),
            _ => None,
        }
    }

    /// Membership only: nothing to unite.
    fn unite(&mut self, _more: &Self) {}

    fn login(&self) -> Option<&str> {
        None
    }

    fn set_login(&mut self, _login: &str) -> bool {
        false
    }
}
