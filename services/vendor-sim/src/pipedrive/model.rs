//! Pipedrive's entities: users (each with at most one role and an `access` entry per app),
//! roles, deals.

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::token::Token;

/// The apps a user's `access[]` may name (SDK model `UserAccess`, `UserAccessAppConst`).
pub(super) const APPS: &[&str] = &["global", "sales", "campaigns", "projects", "account_settings", "partnership"];

#[derive(Clone, Debug)]
pub(super) struct User {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) phone: Option<String>,
    pub(super) active: bool,
    pub(super) access: Vec<Access>,
    pub(super) role: Option<Holding>,
    /// `YYYY-MM-DD HH:MM:SS` (the definition's format), formatted once when set.
    pub(super) created: String,
    pub(super) modified: String,
    pub(super) timezone_name: String,
    pub(super) locale: String,
    pub(super) default_currency: String,
    pub(super) has_created_company: bool,
    pub(super) api_token: Option<Token>,
}

impl User {
    /// An admin: `admin` on the `global` app (the company account) or on `sales`. Pipedrive's
    /// user model has no single admin flag any more (`is_admin` was removed).
    pub(super) fn is_admin(&self) -> bool {
        self.access.iter().any(|a| a.admin && matches!(a.app.as_str(), "global" | "sales"))
    }
}

/// One entry of a user's `access[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct Access {
    pub(super) app: String,
    pub(super) admin: bool,
    pub(super) permission_set_id: String,
}

impl Access {
    /// The app's access, with the simulator's stand-in permission set when none is named.
    pub(super) fn new(app: &str, admin: bool, permission_set_id: Option<String>) -> Self {
        let kind = if admin { "admin" } else { "regular" };
        Access {
            app: app.to_owned(),
            admin,
            permission_set_id: permission_set_id.unwrap_or_else(|| format!("sim-{app}-{kind}")),
        }
    }

    /// What `POST /users` gives without `access`: the definition's default, `[{app: sales}]`.
    pub(super) fn default_for_new_user() -> Vec<Access> {
        vec![Access::new("sales", false, None)]
    }

    /// An admin of the company, as the definition's example shows one.
    pub(super) fn company_admin() -> Vec<Access> {
        ["sales", "global", "account_settings"].iter().map(|app| Access::new(app, true, None)).collect()
    }
}

/// A user's (single) role assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Holding {
    pub(super) assignment_id: i64,
    pub(super) role_id: i64,
}

#[derive(Clone, Debug)]
pub(super) struct Role {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) parent_role_id: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DealStatus {
    Open,
    Won,
    Lost,
    Deleted,
}

impl DealStatus {
    pub(super) fn parse(s: &str) -> Option<DealStatus> {
        match s {
            "open" => Some(DealStatus::Open),
            "won" => Some(DealStatus::Won),
            "lost" => Some(DealStatus::Lost),
            "deleted" => Some(DealStatus::Deleted),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            DealStatus::Open => "open",
            DealStatus::Won => "won",
            DealStatus::Lost => "lost",
            DealStatus::Deleted => "deleted",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Deal {
    pub(super) id: i64,
    pub(super) title: String,
    pub(super) value: Number,
    pub(super) currency: String,
    pub(super) status: DealStatus,
    pub(super) owner: i64,
    /// Every owner the deal had, in order; appended only when the owner actually changes.
    pub(super) owner_history: Vec<i64>,
    pub(super) is_archived: bool,
    /// Unix milliseconds.
    pub(super) add_ms: i64,
    pub(super) update_ms: i64,
    /// The other fields of API v2's deal a `PATCH` set (`pipeline_id`, `label_ids`, ...), as
    /// sent: the simulator keeps them and shows them, and does nothing else with them.
    pub(super) extra: Map<String, Value>,
}

/// Everything needed to create a user (from `POST /users` or a seed).
#[derive(Debug, Default)]
pub(super) struct NewUser {
    /// `POST /users` takes none (the person sets it): the address stands in for it.
    pub(super) name: Option<String>,
    pub(super) email: Option<String>,
    pub(super) active: Option<bool>,
    pub(super) access: Option<Vec<Access>>,
    pub(super) role_id: Option<i64>,
    pub(super) phone: Option<String>,
    pub(super) locale: Option<String>,
    pub(super) timezone_name: Option<String>,
    pub(super) default_currency: Option<String>,
    pub(super) api_token: Option<Token>,
}

/// The authenticated caller, put in request extensions by the guard (`handlers.rs`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Caller {
    pub(super) user_id: i64,
    pub(super) is_admin: bool,
}
