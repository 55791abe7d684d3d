//! Pipedrive's entities: users (each with at most one role), roles, deals.

use serde_json::Number;

use super::wire::ApiError;
use crate::token::Token;

#[derive(Clone, Debug)]
pub(super) struct User {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) phone: Option<String>,
    pub(super) active: bool,
    pub(super) is_admin: bool,
    pub(super) role: Option<Holding>,
    /// ISO 8601, formatted once when set.
    pub(super) created: String,
    pub(super) modified: String,
    pub(super) timezone_name: String,
    pub(super) locale: String,
    pub(super) default_currency: String,
    pub(super) has_created_company: bool,
    pub(super) api_token: Option<Token>,
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
    /// ISO 8601, formatted once when set.
    pub(super) add_time: String,
    pub(super) update_time: String,
}

/// Everything needed to create a user (from `POST /users` or a seed).
#[derive(Debug, Default)]
pub(super) struct NewUser {
    pub(super) name: Option<String>,
    pub(super) email: Option<String>,
    pub(super) active: Option<bool>,
    pub(super) is_admin: Option<bool>,
    pub(super) role_id: Option<i64>,
    pub(super) phone: Option<String>,
    pub(super) locale: Option<String>,
    pub(super) timezone_name: Option<String>,
    pub(super) default_currency: Option<String>,
    pub(super) api_token: Option<Token>,
}

/// The authenticated caller, put in request extensions by [`guard`](super::handlers::guard).
#[derive(Clone, Copy, Debug)]
pub(super) struct Caller {
    pub(super) user_id: i64,
    pub(super) is_admin: bool,
}

impl Caller {
    pub(super) fn require_admin(self, what: &str) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }
}
