//! The Falcon tenant in memory and what can be done to it: users by uid and by username,
//! roles, API clients and the tokens issued to them, and the knobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::model::{ApiClient, Grant, NewUser, Role, User};
use super::wire::{role_json, state_user_json, ApiError};
use super::{CUSTOMER_ID, REGIONS};
use crate::extract::valid_email;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::sim::{now_ms, rfc3339_ms};
use crate::token::Token;
use crate::Config;

const RATE_WINDOW_MS: u64 = 60_000;

/// The Falcon tenant.
#[derive(Clone, Debug)]
pub struct State {
    /// Users in creation order.
    pub(super) users: BTreeMap<u64, User>,
    /// User id (`uuid`) -> key in `users`.
    pub(super) by_uuid: HashMap<String, u64>,
    /// Lower-cased username -> key in `users`.
    pub(super) by_username: HashMap<String, u64>,
    pub(super) next_user: u64,
    pub(super) roles: BTreeMap<String, Role>,
    pub(super) clients: BTreeMap<String, ApiClient>,
    /// Issued access tokens.
    pub(super) tokens: HashMap<Token, Grant>,
    pub(super) tokens_issued: u64,
    pub(super) token_ttl_secs: u64,
    pub(super) region: String,
    pub(super) limiter: Limiter,
}

impl State {
    /// No users, roles or clients yet; token lifetime, region and limiter as the flags say.
    pub(super) fn empty(config: &Config) -> Self {
        let flags = &config.crowdstrike;
        State {
            users: BTreeMap::new(),
            by_uuid: HashMap::new(),
            by_username: HashMap::new(),
            next_user: 1,
            roles: BTreeMap::new(),
            clients: BTreeMap::new(),
            tokens: HashMap::new(),
            tokens_issued: 0,
            token_ttl_secs: flags.token_ttl_secs.max(1),
            region: flags.region.clone(),
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: flags.rate_limit_per_minute.max(1),
                window_ms: RATE_WINDOW_MS,
                daily_requests: None,
            }),
        }
    }

    /// The API client a valid, unexpired token belongs to.
    pub(super) fn authenticate(&self, token: &str, now: i64) -> Option<&ApiClient> {
        let grant = self.tokens.get(token).filter(|g| g.expires_at_ms > now)?;
        self.clients.get(&grant.client_id)
    }

    pub(super) fn issue(&mut self, client_id: &str, now: i64) -> Token {
        self.tokens.retain(|_, g| g.expires_at_ms > now);
        let token = Token::new(format!("cs-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()));
        let expires_at_ms = now + (self.token_ttl_secs as i64) * 1000;
        self.tokens.insert(token.clone(), Grant { client_id: client_id.to_owned(), expires_at_ms });
        self.tokens_issued += 1;
        token
    }

    pub(super) fn user_by_uuid(&self, uuid: &str) -> Option<&User> {
        self.by_uuid.get(uuid).and_then(|k| self.users.get(k))
    }

    /// The user with this id; an unknown one is a 404 (the definition declares no 404 for
    /// these operations; this is what we play, and the client reads it as "gone").
    pub(super) fn user_key(&self, uuid: &str) -> Result<u64, ApiError> {
        self.by_uuid.get(uuid).copied().ok_or_else(|| ApiError::not_found(format!("user {uuid} not found")))
    }

    /// The display name of a role (its id when it has none).
    pub(super) fn role_name(&self, id: &str) -> String {
        self.roles.get(id).map(|r| r.display_name.clone()).unwrap_or_else(|| id.to_owned())
    }

    /// A new user. The login (`uid` at the API) is an e-mail address, unique ignoring case: a
    /// taken one is a 400 (createUserV1 declares 201, 400, 403, 429 and 500 only). The names
    /// are optional at the API; seeds always give them.
    pub(super) fn insert_user(&mut self, input: NewUser) -> Result<u64, ApiError> {
        let username = required_text(input.username, "uid")?;
        if !valid_email(&username) {
            return Err(ApiError::bad_request(format!("uid {username:?} must be a valid email address")));
        }
        let first_name = input.first_name.map(|s| s.trim().to_owned()).unwrap_or_default();
        let last_name = input.last_name.map(|s| s.trim().to_owned()).unwrap_or_default();
        if self.by_username.contains_key(&username.to_lowercase()) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("user with uid {username} already exists")));
        }
        let uid = match input.uuid {
            Some(uid) => {
                if uuid::Uuid::parse_str(&uid).is_err() || self.by_uuid.contains_key(&uid) {
                    return Err(ApiError::bad_request(format!("uid {uid:?} must be a new UUID")));
                }
                uid
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let now = rfc3339_ms(now_ms());
        let key = self.next_user;
        self.next_user += 1;
        self.by_uuid.insert(uid.clone(), key);
        self.by_username.insert(username.to_lowercase(), key);
        self.users.insert(
            key,
            User {
                uuid: uid,
                username,
                first_name,
                last_name,
                created_at: now.clone(),
                updated_at: now,
                roles: BTreeSet::new(),
            },
        );
        Ok(key)
    }

    /// What `GET /_sim/state` shows: never a secret or a token.
    pub(super) fn snapshot_json(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                let mut v = state_user_json(u);
                v["roles"] = json!(u.roles);
                v
            })
            .collect();
        let roles: Vec<Value> = self.roles.values().map(role_json).collect();
        let assignments: Vec<Value> = self
            .users
            .values()
            .flat_map(|u| u.roles.iter().map(|r| json!({ "user_uuid": u.uuid, "username": u.username, "role_id": r })))
            .collect();
        let clients: Vec<Value> = self
            .clients
            .values()
            .map(|c| json!({ "client_id": c.client_id, "name": c.name, "scopes": c.scopes }))
            .collect();
        let now = now_ms();
        json!({
            "customer_id": CUSTOMER_ID,
            "region": self.region,
            "users": users,
            "roles": roles,
            "role_assignments": assignments,
            "api_clients": clients,
            "tokens": {
                "issued": self.tokens_issued,
                "active": self.tokens.values().filter(|g| g.expires_at_ms > now).count(),
            },
        })
    }

    /// A partial update of the knobs (`/_sim/config`); a bad patch changes nothing.
    pub(super) fn configure_knobs(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(map) = patch else {
            return Err("expected an object like {\"token_ttl_secs\": 2}".into());
        };
        // Validate everything first, so a bad patch changes nothing.
        let mut next = self.clone();
        for (knob, value) in map {
            match knob.as_str() {
                "rate_limit" => next.limiter.configure(value)?,
                "token_ttl_secs" => {
                    next.token_ttl_secs =
                        value.as_u64().filter(|s| *s >= 1).ok_or("token_ttl_secs must be a positive integer")?;
                }
                "region" => {
                    let region = value
                        .as_str()
                        .filter(|r| REGIONS.contains(r))
                        .ok_or_else(|| format!("region must be one of {}", REGIONS.join(", ")))?;
                    next.region = region.to_owned();
                }
                other => return Err(format!("unknown knob {other:?} (known: rate_limit, token_ttl_secs, region)")),
            }
        }
        *self = next;
        Ok(())
    }
}

pub(super) fn required_text(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required")))
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_CLIENT_ID;
    use super::*;
    use crate::registry::VendorSim;
    use crate::Fixture;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn usernames_are_unique_ignoring_case() {
        let mut s = state();
        let err = s
            .insert_user(NewUser {
                uuid: None,
                username: Some("GRACE@example.com".into()),
                first_name: Some("G".into()),
                last_name: Some("H".into()),
            })
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message().contains("already exists"), "{}", err.message());
    }

    #[test]
    fn tokens_expire() {
        let mut s = state();
        let t = s.issue(DEFAULT_CLIENT_ID, 1_000);
        assert!(s.authenticate(t.expose(), 1_000 + 1_799_999).is_some());
        assert!(s.authenticate(t.expose(), 1_000 + 1_800_000).is_none());
    }
}
