//! What a Falcon tenant holds before any request: the built-in roles and the default API
//! client (always), the default fixture, and what `POST /_sim/seed` adds.

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{ApiClient, NewUser, Role};
use super::wire::{role_json, state_user_json};
use super::{Flags, State, SCOPE_READ, SCOPE_WRITE};
use crate::token::Token;

/// Falcon's predefined roles: (id, display name, description). Present in every tenant.
const BUILTIN_ROLES: &[(&str, &str, &str)] = &[
    ("falcon_admin", "Falcon Administrator", "Full access to the Falcon console, users and settings"),
    ("falcon_analyst", "Falcon Analyst", "Investigate and respond to detections"),
    ("falcon_analyst_read_only", "Falcon Analyst - Read Only", "View detections and hosts"),
    ("detection_monitor", "Detection Monitor", "View and monitor detections"),
    ("falcon_console_guest", "Falcon Console Guest", "Read-only access to dashboards"),
    ("remote_responder", "Real Time Responder - Read Only Analyst", "Run read-only Real Time Response commands"),
    ("endpoint_manager", "Endpoint Manager", "Manage sensors, host groups and prevention policies"),
    ("firewall_manager", "Firewall Manager", "Manage firewall policies and rule groups"),
];

impl State {
    /// Falcon's predefined roles and the API client the flags describe: in every tenant.
    pub(super) fn add_built_ins(&mut self, flags: &Flags) {
        for (id, name, description) in BUILTIN_ROLES {
            self.roles.insert(
                (*id).to_owned(),
                Role { id: (*id).to_owned(), display_name: (*name).to_owned(), description: (*description).to_owned() },
            );
        }
        self.clients.insert(
            flags.client_id.clone(),
            ApiClient {
                client_id: flags.client_id.clone(),
                secret: flags.client_secret.clone(),
                name: "lifecycle".to_owned(),
                scopes: [SCOPE_READ, SCOPE_WRITE].iter().map(|s| (*s).to_owned()).collect(),
            },
        );
    }

    pub(super) fn load_default_fixture(&mut self) {
        let people = [
            ("grace@example.com", "Grace", "Hopper", &["falcon_admin", "falcon_analyst"][..]),
            ("alan@example.com", "Alan", "Turing", &["detection_monitor"][..]),
        ];
        for (username, first, last, roles) in people {
            let input = NewUser {
                uuid: None,
                username: Some(username.to_owned()),
                first_name: Some(first.to_owned()),
                last_name: Some(last.to_owned()),
            };
            match self.insert_user(input) {
                Ok(key) => {
                    if let Some(u) = self.users.get_mut(&key) {
                        u.roles = roles.iter().map(|r| (*r).to_owned()).collect();
                    }
                }
                Err(e) => tracing::error!(error = %e.message(), "crowdstrike default fixture is invalid"),
            }
        }
    }

    pub(super) fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let mut roles = Vec::new();
        for r in seed.roles {
            if r.id.trim().is_empty() || r.id.trim() != r.id {
                return Err(format!("roles: invalid role id {:?}", r.id));
            }
            if self.roles.contains_key(&r.id) {
                return Err(format!("roles: a role with id {:?} already exists", r.id));
            }
            let role = Role {
                display_name: r.display_name.unwrap_or_else(|| r.id.clone()),
                description: r.description.unwrap_or_default(),
                id: r.id,
            };
            roles.push(role_json(&role));
            self.roles.insert(role.id.clone(), role);
        }
        let mut users = Vec::new();
        for u in seed.users {
            let username = u.username.clone();
            let key = self
                .insert_user(NewUser {
                    uuid: u.uid,
                    username: Some(u.username),
                    first_name: Some(u.first_name),
                    last_name: Some(u.last_name),
                })
                .map_err(|e| format!("users: {username}: {}", e.message()))?;
            for r in &u.roles {
                if !self.roles.contains_key(r) {
                    return Err(format!("users: {username}: no role with id {r:?} (role ids are case-sensitive)"));
                }
            }
            let user = self.users.get_mut(&key).ok_or("users: lost a user")?;
            user.roles = u.roles.into_iter().collect();
            let mut v = state_user_json(user);
            v["roles"] = json!(user.roles);
            users.push(v);
        }
        let mut clients = Vec::new();
        for c in seed.api_clients {
            if c.client_id.is_empty() || c.client_secret.is_empty() {
                return Err("api_clients: client_id and client_secret must not be empty".into());
            }
            if self.clients.contains_key(&c.client_id) {
                return Err(format!("api_clients: {:?} already exists", c.client_id));
            }
            for s in &c.scopes {
                if s != SCOPE_READ && s != SCOPE_WRITE {
                    return Err(format!("api_clients: unknown scope {s:?} ({SCOPE_READ} or {SCOPE_WRITE})"));
                }
            }
            let client = ApiClient {
                name: c.name.unwrap_or_else(|| c.client_id.clone()),
                client_id: c.client_id,
                secret: c.client_secret,
                scopes: c.scopes.into_iter().collect(),
            };
            clients.push(json!({ "client_id": client.client_id, "name": client.name, "scopes": client.scopes }));
            self.clients.insert(client.client_id.clone(), client);
        }
        Ok(json!({ "roles": roles, "users": users, "api_clients": clients }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    pub(super) roles: Vec<SeedRole>,
    #[serde(default)]
    pub(super) users: Vec<SeedUser>,
    #[serde(default)]
    pub(super) api_clients: Vec<SeedClient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedRole {
    pub(super) id: String,
    #[serde(default)]
    pub(super) display_name: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedUser {
    pub(super) username: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    #[serde(default)]
    pub(super) roles: Vec<String>,
    /// The user's id (Falcon's `uuid`; `uid` in our control API since before).
    #[serde(default)]
    pub(super) uid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedClient {
    pub(super) client_id: String,
    pub(super) client_secret: Token,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_CLIENT_ID;
    use super::*;
    use crate::registry::VendorSim;
    use crate::{Config, Fixture};

    #[test]
    fn default_fixture_has_the_builtin_roles_two_users_and_the_api_client() {
        let s = State::new(&Config::default(), Fixture::Default);
        for r in ["falcon_admin", "falcon_analyst", "detection_monitor", "falcon_console_guest"] {
            assert!(s.roles.contains_key(r), "{r}");
        }
        assert_eq!(s.users.len(), 2);
        assert!(s.clients.contains_key(DEFAULT_CLIENT_ID));
        let empty = State::new(&Config::default(), Fixture::Empty);
        assert!(empty.users.is_empty());
        assert_eq!(empty.roles.len(), BUILTIN_ROLES.len(), "built-in roles exist in every tenant");
    }
}
