//! The Pipedrive tenant in memory and what can be done to it. Every operation keeps the
//! indexes (emails, tokens) in step with the users.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Number, Value};

use super::model::{Access, Caller, Deal, DealStatus, Holding, NewUser, Role, User};
use super::v1::assignment_json;
use super::wire::{v1_time, ApiError};
use crate::extract::valid_email;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::sim::rfc3339_s;
use crate::token::Token;
use crate::Config;

const FIRST_USER_ID: i64 = 1001;
const FIRST_ROLE_ID: i64 = 1;
const FIRST_DEAL_ID: i64 = 100_001;
const FIRST_ASSIGNMENT_ID: i64 = 1;
const RATE_REQUESTS: u32 = 80;
const RATE_WINDOW_MS: u64 = 2_000;
const RATE_DAILY: u32 = 80_000;

/// The Pipedrive tenant.
#[derive(Clone, Debug)]
pub struct State {
    pub(super) users: BTreeMap<i64, User>,
    /// Lower-cased email -> user id (emails are unique within the company, case-insensitively).
    pub(super) emails: HashMap<String, i64>,
    /// API token -> user id.
    pub(super) tokens: HashMap<Token, i64>,
    pub(super) roles: BTreeMap<i64, Role>,
    pub(super) deals: BTreeMap<i64, Deal>,
    pub(super) next_user_id: i64,
    pub(super) next_role_id: i64,
    pub(super) next_deal_id: i64,
    pub(super) next_assignment_id: i64,
    pub(super) limiter: Limiter,
}

impl State {
    /// No users, roles or deals yet; the limiter as the flags say.
    pub(super) fn empty(config: &Config) -> Self {
        State {
            users: BTreeMap::new(),
            emails: HashMap::new(),
            tokens: HashMap::new(),
            roles: BTreeMap::new(),
            deals: BTreeMap::new(),
            next_user_id: FIRST_USER_ID,
            next_role_id: FIRST_ROLE_ID,
            next_deal_id: FIRST_DEAL_ID,
            next_assignment_id: FIRST_ASSIGNMENT_ID,
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_REQUESTS,
                window_ms: RATE_WINDOW_MS,
                daily_requests: Some(RATE_DAILY),
            }),
        }
    }

    pub(super) fn authenticate(&self, token: &str) -> Option<Caller> {
        let user = self.users.get(self.tokens.get(token)?)?;
        user.active.then_some(Caller { user_id: user.id, is_admin: user.is_admin() })
    }

    pub(super) fn index_user(&mut self, user: &User) {
        self.emails.insert(user.email.to_lowercase(), user.id);
        if let Some(token) = &user.api_token {
            self.tokens.insert(token.clone(), user.id);
        }
    }

    pub(super) fn user(&self, id: i64) -> Result<&User, ApiError> {
        self.users.get(&id).ok_or_else(|| ApiError::not_found("User not found"))
    }

    pub(super) fn role(&self, id: i64) -> Result<&Role, ApiError> {
        self.roles.get(&id).ok_or_else(|| ApiError::not_found("Role not found"))
    }

    pub(super) fn role_id_by_name(&self, name: &str) -> Option<i64> {
        self.roles.values().find(|r| r.name == name).map(|r| r.id)
    }

    pub(super) fn email_taken(&self, email: &str, except: Option<i64>) -> bool {
        self.emails.get(&email.to_lowercase()).is_some_and(|&id| Some(id) != except)
    }

    pub(super) fn other_active_admin_exists(&self, except: i64) -> bool {
        self.users.values().any(|u| u.id != except && u.active && u.is_admin())
    }

    pub(super) fn insert_user(&mut self, input: NewUser, now: i64) -> Result<i64, ApiError> {
        let email = input
            .email
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| ApiError::bad_request("email is required"))?;
        if !valid_email(&email) {
            return Err(ApiError::bad_request("email is not a valid email address"));
        }
        if self.email_taken(&email, None) {
            return Err(ApiError::bad_request("user with this email already exists"));
        }
        if let Some(role_id) = input.role_id {
            self.role(role_id).map_err(|_| ApiError::bad_request(format!("role_id {role_id} does not exist")))?;
        }
        if let Some(token) = &input.api_token {
            if token.is_empty() || self.tokens.contains_key(token) {
                return Err(ApiError::bad_request("api_token must be non-empty and unique"));
            }
        }
        // The person names themselves when they accept the invitation; until then, the address.
        let name = input.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).unwrap_or_else(|| email.clone());
        let id = self.next_user_id;
        self.next_user_id += 1;
        let role = input.role_id.map(|role_id| self.new_holding(role_id));
        let user = User {
            id,
            name,
            email,
            phone: input.phone,
            active: input.active.unwrap_or(true),
            access: input.access.unwrap_or_else(Access::default_for_new_user),
            role,
            created: v1_time(now),
            modified: v1_time(now),
            timezone_name: input.timezone_name.unwrap_or_else(|| "UTC".into()),
            locale: input.locale.unwrap_or_else(|| "en_US".into()),
            default_currency: input.default_currency.unwrap_or_else(|| "USD".into()),
            has_created_company: false,
            api_token: input.api_token,
        };
        self.index_user(&user);
        self.users.insert(id, user);
        Ok(id)
    }

    pub(super) fn new_holding(&mut self, role_id: i64) -> Holding {
        let assignment_id = self.next_assignment_id;
        self.next_assignment_id += 1;
        Holding { assignment_id, role_id }
    }

    pub(super) fn insert_role(&mut self, name: String, parent_role_id: Option<i64>) -> i64 {
        let id = self.next_role_id;
        self.next_role_id += 1;
        self.roles.insert(id, Role { id, name, parent_role_id });
        id
    }

    pub(super) fn insert_deal(
        &mut self,
        title: String,
        owner: i64,
        status: DealStatus,
        value: Number,
        currency: String,
        now: i64,
    ) -> i64 {
        let id = self.next_deal_id;
        self.next_deal_id += 1;
        self.deals.insert(
            id,
            Deal {
                id,
                title,
                value,
                currency,
                status,
                owner,
                owner_history: vec![owner],
                is_archived: false,
                add_ms: now,
                update_ms: now,
                extra: Map::new(),
            },
        );
        id
    }

    /// Put `user_id` in `role_id` (moving them out of any other role), or out of every role.
    /// Returns the role they held before.
    pub(super) fn set_role(&mut self, user_id: i64, role_id: Option<i64>) -> Option<i64> {
        let current = self.users.get(&user_id).and_then(|u| u.role);
        if current.map(|h| h.role_id) == role_id {
            return role_id;
        }
        let holding = role_id.map(|r| self.new_holding(r));
        if let Some(user) = self.users.get_mut(&user_id) {
            user.role = holding;
        }
        current.map(|h| h.role_id)
    }

    pub(super) fn assignment_count(&self, role_id: i64) -> usize {
        self.users.values().filter(|u| u.role.is_some_and(|h| h.role_id == role_id)).count()
    }

    /// A user as `/_sim/state` and `/_sim/seed` show it: as the API does, plus `is_admin` (1 or
    /// 0, which the state showed before Pipedrive dropped it) and whether it has a token.
    pub(super) fn user_state(&self, u: &User) -> Value {
        let mut v = self.user_json(u, None);
        v["is_admin"] = u8::from(u.is_admin()).into();
        v["has_api_token"] = u.api_token.is_some().into();
        v
    }

    /// What `GET /_sim/state` shows: everything but the tokens themselves.
    pub(super) fn snapshot_json(&self) -> Value {
        let users: Vec<Value> = self.users.values().map(|u| self.user_state(u)).collect();
        let roles: Vec<Value> = self.roles.values().map(|r| self.role_json(r)).collect();
        let assignments: Vec<Value> =
            self.users.values().filter_map(|u| u.role.map(|h| assignment_json(u.id, h))).collect();
        let deals: Vec<Value> = self
            .deals
            .values()
            .map(|d| {
                json!({
                    "id": d.id,
                    "title": d.title,
                    "value": d.value,
                    "currency": d.currency,
                    "status": d.status.as_str(),
                    "user_id": d.owner,
                    "owner_id": d.owner,
                    "owner_history": d.owner_history,
                    "is_archived": d.is_archived,
                    "add_time": rfc3339_s(d.add_ms),
                    "update_time": rfc3339_s(d.update_ms),
                })
            })
            .collect();
        json!({
            "users": users,
            "roles": roles,
            "role_assignments": assignments,
            "deals": deals,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::VendorSim;
    use crate::{Config, Fixture};

    use super::State;

    #[test]
    fn email_uniqueness_ignores_case() {
        let s = State::new(&Config::default(), Fixture::Default);
        assert!(s.email_taken("GRACE@example.com", None));
        assert!(!s.email_taken("GRACE@example.com", s.emails.get("grace@example.com").copied()));
    }
}
