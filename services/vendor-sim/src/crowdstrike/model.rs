//! CrowdStrike's entities: users (roles held apart from the user entity), roles, API clients
//! and the access tokens issued to them.

use std::collections::BTreeSet;

use crate::token::Token;

#[derive(Clone, Debug)]
pub(super) struct User {
    /// The id (Falcon's `uuid`).
    pub(super) uuid: String,
    /// The login e-mail (Falcon's `uid`).
    pub(super) username: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    /// Role ids, case-sensitive.
    pub(super) roles: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub(super) struct Role {
    pub(super) id: String,
    pub(super) display_name: String,
    pub(super) description: String,
}

#[derive(Clone, Debug)]
pub(super) struct ApiClient {
    pub(super) client_id: String,
    pub(super) secret: Token,
    pub(super) name: String,
    pub(super) scopes: BTreeSet<String>,
}

/// What an issued access token grants: the API client it stands for, until it expires.
#[derive(Clone, Debug)]
pub(super) struct Grant {
    pub(super) client_id: String,
    pub(super) expires_at_ms: i64,
}

pub(super) struct NewUser {
    /// The id to give (seeds only); a new UUID otherwise.
    pub(super) uuid: Option<String>,
    pub(super) username: Option<String>,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
}
