//! What a Pipedrive tenant holds before any request: the built-in admin (always), the
//! default fixture, and what `POST /_sim/seed` adds.

use serde::Deserialize;
use serde_json::{json, Number, Value};

use super::model::{Access, DealStatus, NewUser, User};
use super::v1::parse_access;
use super::wire::{flag_value, v1_time};
use super::{State, ADMIN_EMAIL, ADMIN_NAME, ADMIN_USER_ID};
use crate::token::Token;
use crate::Config;

impl State {
    /// User 1, the admin who owns the admin token: in every tenant, after every reset.
    pub(super) fn add_built_in_admin(&mut self, config: &Config, now: i64) {
        let admin = User {
            id: ADMIN_USER_ID,
            name: ADMIN_NAME.to_owned(),
            email: ADMIN_EMAIL.to_owned(),
            phone: None,
            active: true,
            access: Access::company_admin(),
            role: None,
            created: v1_time(now),
            modified: v1_time(now),
            timezone_name: "UTC".to_owned(),
            locale: "en_US".to_owned(),
            default_currency: "USD".to_owned(),
            has_created_company: true,
            api_token: Some(config.pipedrive.admin_token.clone()),
        };
        self.index_user(&admin);
        self.users.insert(admin.id, admin);
    }

    pub(super) fn load_default_fixture(&mut self, now: i64) {
        for name in ["Sales Rep", "Sales Manager", "Admin"] {
            self.insert_role(name.to_owned(), None);
        }
        let manager = self.role_id_by_name("Sales Manager");
        let grace = NewUser {
            name: Some("Grace Hopper".into()),
            email: Some("grace@example.com".into()),
            role_id: manager,
            ..NewUser::default()
        };
        // The fixture is valid by construction; a failure here would be a bug in it.
        if let Err(e) = self.insert_user(grace, now) {
            tracing::error!(error = %e.error, "pipedrive default fixture is invalid");
        }
    }

    pub(super) fn apply_seed(&mut self, seed: Seed, now: i64) -> Result<Value, String> {
        let mut roles = Vec::new();
        for r in seed.roles {
            if r.name.trim().is_empty() {
                return Err("roles: name must not be empty".into());
            }
            if self.role_id_by_name(&r.name).is_some() {
                return Err(format!("roles: a role named {:?} already exists", r.name));
            }
            if let Some(parent) = r.parent_role_id {
                self.role(parent).map_err(|_| format!("roles: parent_role_id {parent} does not exist"))?;
            }
            let id = self.insert_role(r.name, r.parent_role_id);
            roles.push(self.role_json(&self.roles[&id]));
        }

        let mut users = Vec::new();
        for u in seed.users {
            let role_id = match (u.role, u.role_id) {
                (Some(_), Some(_)) => return Err("users: give role or role_id, not both".into()),
                (Some(name), None) => {
                    Some(self.role_id_by_name(&name).ok_or_else(|| format!("users: no role named {name:?}"))?)
                }
                (None, id) => id,
            };
            let is_admin = match &u.is_admin {
                None => None,
                Some(v) => Some(flag_value(v).ok_or("users: is_admin must be 0, 1 or a boolean")?),
            };
            // `is_admin` (what the seed always took) is shorthand for an `access` list.
            let access = match (is_admin, &u.access) {
                (Some(_), Some(_)) => return Err("users: give is_admin or access, not both".into()),
                (Some(true), None) => Some(Access::company_admin()),
                (Some(false), None) => None,
                (None, Some(list)) => {
                    Some(parse_access(list).map_err(|e| format!("users: {}: access: {}", u.email, e.error))?)
                }
                (None, None) => None,
            };
            let email = u.email.clone();
            let input = NewUser {
                name: Some(u.name),
                email: Some(u.email),
                active: u.active_flag,
                access,
                role_id,
                phone: u.phone,
                locale: u.locale,
                timezone_name: u.timezone_name,
                default_currency: u.default_currency,
                api_token: u.api_token,
            };
            let id = self.insert_user(input, now).map_err(|e| format!("users: {email}: {}", e.error))?;
            users.push(self.user_state(&self.users[&id]));
        }

        let mut deals = Vec::new();
        for d in seed.deals {
            let owner = match (&d.owner_email, d.user_id) {
                (Some(email), None) => *self
                    .emails
                    .get(&email.to_lowercase())
                    .ok_or_else(|| format!("deals: no user with email {email:?}"))?,
                (None, Some(id)) => {
                    self.user(id).map_err(|_| format!("deals: no user with id {id}"))?;
                    id
                }
                _ => return Err("deals: give exactly one of owner_email or user_id".into()),
            };
            let status = match d.status.as_deref() {
                None => DealStatus::Open,
                Some(s) => DealStatus::parse(s).ok_or_else(|| format!("deals: invalid status {s:?}"))?,
            };
            let id = self.insert_deal(
                d.title,
                owner,
                status,
                d.value.unwrap_or_else(|| Number::from(0)),
                d.currency.unwrap_or_else(|| "USD".into()),
                now,
            );
            deals.push(self.seeded_deal_json(&self.deals[&id]));
        }
        Ok(json!({ "users": users, "roles": roles, "deals": deals }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    pub(super) users: Vec<SeedUser>,
    #[serde(default)]
    pub(super) roles: Vec<SeedRole>,
    #[serde(default)]
    pub(super) deals: Vec<SeedDeal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedUser {
    pub(super) name: String,
    pub(super) email: String,
    #[serde(default)]
    pub(super) active_flag: Option<bool>,
    /// 1/0 or a boolean: an admin as [`Access::company_admin`] has it, or Sales access only.
    #[serde(default)]
    pub(super) is_admin: Option<Value>,
    /// The user's `access[]` as the API shows it (`app`, `admin`, `permission_set_id`).
    #[serde(default)]
    pub(super) access: Option<Value>,
    #[serde(default)]
    pub(super) role: Option<String>,
    #[serde(default)]
    pub(super) role_id: Option<i64>,
    #[serde(default)]
    pub(super) api_token: Option<Token>,
    #[serde(default)]
    pub(super) phone: Option<String>,
    #[serde(default)]
    pub(super) locale: Option<String>,
    #[serde(default)]
    pub(super) timezone_name: Option<String>,
    #[serde(default)]
    pub(super) default_currency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedRole {
    pub(super) name: String,
    #[serde(default)]
    pub(super) parent_role_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedDeal {
    pub(super) title: String,
    #[serde(default)]
    pub(super) owner_email: Option<String>,
    #[serde(default)]
    pub(super) user_id: Option<i64>,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) value: Option<Number>,
    #[serde(default)]
    pub(super) currency: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::DEFAULT_ADMIN_TOKEN;
    use super::*;
    use crate::registry::VendorSim;
    use crate::Fixture;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_admin_grace_and_three_roles() {
        let s = state();
        assert_eq!(s.users.len(), 2);
        assert_eq!(s.roles.len(), 3);
        let grace = s.users.values().find(|u| u.email == "grace@example.com");
        let grace = grace.expect("grace is in the fixture");
        assert_eq!(grace.role.map(|h| h.role_id), s.role_id_by_name("Sales Manager"));
        assert!(s.authenticate(DEFAULT_ADMIN_TOKEN).is_some_and(|c| c.is_admin));
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = s.users.len();
        let err = s
            .seed(json!({"users": [
                {"name": "Ada", "email": "ada@example.com"},
                {"name": "Dup", "email": "ADA@example.com"}
            ]}))
            .unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(s.users.len(), before);
    }
}
