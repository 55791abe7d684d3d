//! The Jira site (and its organisation's SCIM directory) in memory and what can be done to it.
//! Accounts are kept in insertion order, so that pages are stable, with indexes by account id,
//! address and API token.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::model::{AccountType, Caller, Group, Invitation, NewUser, User};
use super::wire::{unknown_product, ApiError, Credential};
use super::PRODUCTS;
use crate::extract::valid_email;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::sim::rfc3339_ms;
use crate::token::Token;
use crate::Config;

const RATE_REQUESTS: u32 = 100;
const RATE_WINDOW_MS: u64 = 1_000;
/// The key the SCIM API is rate limited under (one token per directory).
pub(super) const SCIM_RATE_KEY: &str = "scim";

/// The Jira site plus its organisation's SCIM directory.
#[derive(Clone, Debug)]
pub struct State {
    /// Insertion order, so that pages are stable.
    pub(super) users: BTreeMap<u64, User>,
    pub(super) by_account: HashMap<String, u64>,
    /// Lower-cased address -> user (addresses are unique per Atlassian account).
    pub(super) by_email: HashMap<String, u64>,
    /// API token -> user.
    pub(super) tokens: HashMap<Token, u64>,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) invitations: Vec<Invitation>,
    pub(super) next_seq: u64,
    pub(super) directory_id: String,
    pub(super) scim_token: Token,
    pub(super) limiter: Limiter,
    /// When set, every 429 says `Retry-After: N` instead of the seconds left in the window.
    pub(super) retry_after_secs: Option<u32>,
}

impl State {
    /// No accounts or groups yet; the directory, its token and the limiter as the flags say.
    pub(super) fn empty(config: &Config) -> Self {
        let flags = &config.jira;
        State {
            users: BTreeMap::new(),
            by_account: HashMap::new(),
            by_email: HashMap::new(),
            tokens: HashMap::new(),
            groups: BTreeMap::new(),
            invitations: Vec::new(),
            next_seq: 1,
            directory_id: flags.scim_directory_id.clone(),
            scim_token: flags.scim_token.clone(),
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_REQUESTS,
                window_ms: RATE_WINDOW_MS,
                daily_requests: None,
            }),
            retry_after_secs: None,
        }
    }

    pub(super) fn user_by_seq(&self, seq: u64) -> Option<&User> {
        self.users.get(&seq)
    }

    pub(super) fn user(&self, account_id: &str) -> Option<&User> {
        self.by_account.get(account_id).and_then(|s| self.user_by_seq(*s))
    }

    pub(super) fn user_mut(&mut self, account_id: &str) -> Option<&mut User> {
        let seq = *self.by_account.get(account_id)?;
        self.users.get_mut(&seq)
    }

    /// A user the Jira REST API can see: on this site.
    pub(super) fn site_user(&self, account_id: &str) -> Result<&User, ApiError> {
        self.user(account_id).filter(|u| u.site_access).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "Specified user does not exist or you do not have required permissions",
            )
        })
    }

    pub(super) fn user_by_email(&self, email: &str) -> Option<&User> {
        self.by_email.get(&email.to_lowercase()).and_then(|s| self.user_by_seq(*s))
    }

    pub(super) fn scim_user(&self, scim_id: &str) -> Option<&User> {
        self.users.values().find(|u| u.scim_id.as_deref() == Some(scim_id))
    }

    pub(super) fn authenticate(&self, credential: &Credential) -> Option<Caller> {
        let token = match credential {
            Credential::Basic { token, .. } | Credential::Bearer(token) => token,
        };
        let user = self.user_by_seq(*self.tokens.get(token)?)?;
        if let Credential::Basic { email, .. } = credential {
            if !user.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email)) {
                return None;
            }
        }
        (user.active && user.site_access)
            .then(|| Caller { account_id: user.account_id.clone(), site_admin: user.site_admin })
    }

    pub(super) fn groups_of(&self, account_id: &str) -> Vec<&Group> {
        let mut groups: Vec<&Group> = self.groups.values().filter(|g| g.members.contains(account_id)).collect();
        groups.sort_by_key(|g| g.name.to_lowercase());
        groups
    }

    pub(super) fn insert_group(&mut self, group_id: Option<String>, name: String, null_id: bool) -> String {
        let group_id = group_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let group = Group { group_id: group_id.clone(), name, members: BTreeSet::new(), null_id };
        self.groups.insert(group_id.clone(), group);
        group_id
    }

    pub(super) fn add_member(&mut self, group_id: &str, account_id: &str) -> bool {
        self.groups.get_mut(group_id).is_some_and(|g| g.members.insert(account_id.to_owned()))
    }

    pub(super) fn insert_user(&mut self, input: NewUser, now: i64) -> Result<String, ApiError> {
        let email = input.email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
        match (&email, input.account_type) {
            (None, AccountType::Atlassian | AccountType::Customer) => {
                return Err(ApiError::field("emailAddress", "You must specify an email address."))
            }
            (Some(e), _) if !valid_email(e) => {
                return Err(ApiError::field("emailAddress", "You must specify a valid email address."))
            }
            (Some(e), _) if self.user_by_email(e).is_some() => {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "A user with that email address already exists."))
            }
            _ => {}
        }
        for p in &input.products {
            if !PRODUCTS.iter().any(|(k, _)| k == p) {
                return Err(unknown_product(p));
            }
        }
        let account_id = input.account_id.unwrap_or_else(|| format!("712020:{}", uuid::Uuid::new_v4()));
        if account_id.trim().is_empty() || self.by_account.contains_key(&account_id) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "accountId must be non-empty and unique"));
        }
        if let Some(token) = &input.api_token {
            if token.is_empty() || self.tokens.contains_key(token) {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "api token must be non-empty and unique"));
            }
        }
        let display_name = input
            .display_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .or_else(|| email.as_deref().and_then(|e| e.split('@').next()).map(str::to_owned))
            .unwrap_or_else(|| "Unnamed".to_owned());
        let seq = self.next_seq;
        self.next_seq += 1;
        let user = User {
            account_id: account_id.clone(),
            account_type: input.account_type,
            email: email.clone(),
            email_visible: input.email_visible,
            display_name,
            active: input.active,
            site_access: input.site_access,
            products: if input.site_access { input.products } else { BTreeSet::new() },
            site_admin: input.site_admin,
            scim_id: input.scim_managed.then(|| uuid::Uuid::new_v4().to_string()),
            api_token: input.api_token,
            time_zone: "UTC".into(),
            locale: "en_US".into(),
            created_ms: now,
            modified_ms: now,
        };
        if let Some(e) = &email {
            self.by_email.insert(e.to_lowercase(), seq);
        }
        if let Some(t) = &user.api_token {
            self.tokens.insert(t.clone(), seq);
        }
        self.by_account.insert(account_id.clone(), seq);
        self.users.insert(seq, user);
        Ok(account_id)
    }

    /// What `GET /_sim/state` shows: every account (site access or not) and where it is.
    pub(super) fn snapshot_json(&self) -> Value {
        let users: Vec<Value> = self.users.values().map(|u| self.snapshot_user(u)).collect();
        let mut groups: Vec<&Group> = self.groups.values().collect();
        groups.sort_by_key(|g| g.name.to_lowercase());
        let memberships: Vec<Value> = groups
            .iter()
            .flat_map(|g| g.members.iter().map(move |a| json!({ "groupId": g.group_id, "accountId": a })))
            .collect();
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| json!({ "groupId": g.group_id, "name": g.name, "members": g.members, "nullGroupId": g.null_id }))
            .collect();
        let invitations: Vec<Value> = self
            .invitations
            .iter()
            .map(|i| json!({ "emailAddress": i.email, "accountId": i.account_id, "at": rfc3339_ms(i.at_ms) }))
            .collect();
        json!({
            "users": users,
            "groups": groups,
            "memberships": memberships,
            "invitations": invitations,
            "scim": { "directoryId": self.directory_id },
        })
    }

    pub(super) fn snapshot_user(&self, u: &User) -> Value {
        json!({
            "accountId": u.account_id,
            "accountType": u.account_type.as_str(),
            "emailAddress": u.email,
            "emailVisible": u.email_visible,
            "displayName": u.display_name,
            "active": u.active,
            "siteAccess": u.site_access,
            "products": u.products,
            "groups": self.groups_of(&u.account_id).iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(),
            "siteAdmin": u.site_admin,
            "scimManaged": u.scim_id.is_some(),
            "scimId": u.scim_id,
            "hasApiToken": u.api_token.is_some(),
        })
    }

    /// A partial update of the knobs (`/_sim/config`); a bad patch changes nothing.
    pub(super) fn configure_knobs(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(map) = patch else {
            return Err("expected an object like {\"rate_limit\": {...}, \"retry_after_secs\": 2}".into());
        };
        // Validate everything before changing anything.
        let mut limiter = self.limiter.clone();
        let mut retry_after = self.retry_after_secs;
        for (knob, value) in map {
            match knob.as_str() {
                "rate_limit" => limiter.configure(value)?,
                "retry_after_secs" => {
                    retry_after = match value {
                        Value::Null => None,
                        v => Some(
                            v.as_u64()
                                .and_then(|n| u32::try_from(n).ok())
                                .filter(|n| *n >= 1)
                                .ok_or("retry_after_secs must be a positive integer or null")?,
                        ),
                    }
                }
                other => return Err(format!("unknown knob {other:?} (known: rate_limit, retry_after_secs)")),
            }
        }
        self.limiter = limiter;
        self.retry_after_secs = retry_after;
        Ok(())
    }
}
