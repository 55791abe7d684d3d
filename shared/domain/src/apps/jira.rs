//! Jira Cloud's part of an event.

use super::{AppRequest, Fields, VendorApp};
use crate::event_type::EventType;
use crate::vendor::VendorKind;
use serde::{Deserialize, Serialize};

/// Jira Cloud: products granted at creation, and groups by `groupId` (never by name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraApp {
    pub products: Vec<String>,
    pub groups: Vec<String>,
}

impl JiraApp {
    pub(super) fn parse(ty: EventType, f: &mut Fields) -> Self {
        f.only(&["products", "groups"]);
        let products = f.names("products");
        let groups = f.names("groups");
        if ty == EventType::Joiner
            && products.as_ref().is_none_or(|p| p.is_empty())
            && f.get("products").is_none_or(|p| p.is_array())
        {
            f.problem("products", "must name at least one product (e.g. jira-software) for a joiner");
        }
        if ty == EventType::Mover && groups.is_none() && !f.has("groups") {
            f.problem("groups", "is required for a mover (the groups the person should end up in)");
        }
        for (i, g) in groups.iter().flatten().enumerate() {
            if !looks_like_group_id(g) {
                f.problem(&format!("groups[{i}]"), "must be a Jira groupId (a UUID), not a group name");
            }
        }
        JiraApp { products: products.unwrap_or_default(), groups: groups.unwrap_or_default() }
    }
}

impl VendorApp for JiraApp {
    const VENDOR: VendorKind = VendorKind::Jira;
    const BY_LOGIN: bool = false;
    const SCIM_REFUSAL: Option<&'static str> = None;

    fn of(app: &AppRequest) -> Option<&Self> {
        match app {
            AppRequest::Jira(a) => Some(a),
            _ => None,
        }
    }

    /// What two SCIM groups giving Jira give together: their products and groups.
    fn unite(&mut self, more: &Self) {
        super::add_missing(&mut self.products, &more.products);
        super::add_missing(&mut self.groups, &more.groups);
    }

    fn login(&self) -> Option<&str> {
        None
    }

    fn set_login(&mut self, _login: &str) -> bool {
        false
    }
}

fn looks_like_group_id(s: &str) -> bool {
    // Jira group ids are UUIDs; accepting only that shape catches the common
    // mistake of sending a group *name*, which Jira has deprecated as an identifier.
    uuid::Uuid::parse_str(s).is_ok()
}
