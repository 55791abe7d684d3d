//! What a Jira site holds before any request: the built-in site admin (always), the default
//! fixture (the groups of the example event in docs/contract.md §1, a SCIM-managed user, a hidden address, an app and a
//! customer), and what `POST /_sim/seed` adds: groups (one Jira answers with a null `groupId`
//! with `nullGroupId`), users, and `grantAccess`, what an admin does in admin.atlassian.com to
//! give an existing account access to Jira (back), which no REST request can.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{AccountType, NewUser};
use super::wire::group_name;
use super::{Flags, State, ADMIN_ACCOUNT_ID, ADMIN_NAME, FIXTURE_GROUPS, PRODUCTS, SOFTWARE_USERS_GROUP_ID};
use crate::token::Token;

const ADMINS_GROUP_ID: &str = "9a7e2c41-3b5d-4e8f-a1c6-7d0b2e9f4a38";
const ENGINEERING_GROUP_ID: &str = "e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24";

impl State {
    /// The site admin who owns the API token: in every site, after every reset.
    pub(super) fn add_built_in_admin(&mut self, flags: &Flags, now: i64) {
        let admin = NewUser {
            account_id: Some(ADMIN_ACCOUNT_ID.to_owned()),
            site_admin: true,
            api_token: Some(flags.admin_token.clone()),
            products: ["jira-software".to_owned()].into(),
            ..NewUser::person(&flags.admin_email, ADMIN_NAME)
        };
        // The built-in admin is valid by construction.
        if let Err(e) = self.insert_user(admin, now) {
            tracing::error!(error = %e.message(), "jira admin is invalid");
        }
    }

    pub(super) fn load_default_fixture(&mut self, now: i64) {
        for (id, name) in FIXTURE_GROUPS {
            self.insert_group(Some((*id).to_owned()), (*name).to_owned(), false);
        }
        let software: BTreeSet<String> = ["jira-software".to_owned()].into();
        for gid in [SOFTWARE_USERS_GROUP_ID, ADMINS_GROUP_ID] {
            self.add_member(gid, ADMIN_ACCOUNT_ID);
        }
        let people = [
            // A visible address, managed by the SCIM directory.
            NewUser {
                account_id: Some("5b10ac8d82e05b22cc7d4ef5".into()),
                products: software.clone(),
                scim_managed: true,
                ..NewUser::person("grace@example.com", "Grace Hopper")
            },
            // Hides their address: it reads `null` in every response.
            NewUser {
                account_id: Some("712020:6f1c0b7e-4c1d-4f0e-9a55-2f0d8c1b7a11".into()),
                email_visible: false,
                products: software,
                ..NewUser::person("alex.private@example.com", "Alex Private")
            },
            // An app account: no address at all.
            NewUser {
                account_id: Some("557058:f58131cb-b67d-43c7-b30d-6b58d40bd077".into()),
                account_type: AccountType::App,
                email: None,
                ..NewUser::person("", "Automation for Jira")
            },
            // A service desk customer.
            NewUser {
                account_id: Some("qm:2c3a9f1e-6b7d-4e8a-9c0f-1d2e3f4a5b6c:0e1f2a3b".into()),
                account_type: AccountType::Customer,
                ..NewUser::person("casey@customer.example", "Casey Customer")
            },
        ];
        for person in people {
            // The fixture is valid by construction; a failure here would be a bug in it.
            if let Err(e) = self.insert_user(person, now) {
                tracing::error!(error = %e.message(), "jira default fixture is invalid");
            }
        }
        for (gid, account) in [
            (SOFTWARE_USERS_GROUP_ID, "5b10ac8d82e05b22cc7d4ef5"),
            (ENGINEERING_GROUP_ID, "5b10ac8d82e05b22cc7d4ef5"),
            (SOFTWARE_USERS_GROUP_ID, "712020:6f1c0b7e-4c1d-4f0e-9a55-2f0d8c1b7a11"),
        ] {
            self.add_member(gid, account);
        }
    }

    pub(super) fn apply_seed(&mut self, seed: Seed, now: i64) -> Result<Value, String> {
        let mut groups = Vec::new();
        for g in seed.groups {
            let name = g.name.trim().to_owned();
            if name.is_empty() {
                return Err("groups: name must not be empty".into());
            }
            if self.groups.values().any(|x| x.name.eq_ignore_ascii_case(&name)) {
                return Err(format!("groups: a group named {name:?} already exists"));
            }
            if let Some(id) = &g.group_id {
                if id.trim().is_empty() || self.groups.contains_key(id) {
                    return Err(format!("groups: groupId {id:?} is empty or taken"));
                }
            }
            let id = self.insert_group(g.group_id, name, g.null_group_id.unwrap_or(false));
            let group = &self.groups[&id];
            // Our interface: the key the seed's users name the group by, even when Jira shows none.
            let mut shown = group_name(group);
            shown["groupId"] = group.group_id.clone().into();
            shown["nullGroupId"] = group.null_id.into();
            groups.push(shown);
        }

        let mut users = Vec::new();
        for u in seed.users {
            let account_type = match u.account_type.as_deref() {
                None => AccountType::Atlassian,
                Some(t) => AccountType::parse(t).ok_or_else(|| format!("users: invalid accountType {t:?}"))?,
            };
            let label = u.email_address.clone().or_else(|| u.display_name.clone()).unwrap_or_default();
            for gid in &u.groups {
                if !self.groups.contains_key(gid) {
                    return Err(format!("users: {label}: no group with groupId {gid:?} (groups are given by id)"));
                }
            }
            let input = NewUser {
                account_id: u.account_id,
                account_type,
                email: u.email_address,
                email_visible: u.email_visible.unwrap_or(true),
                display_name: u.display_name,
                active: u.active.unwrap_or(true),
                site_access: u.site_access.unwrap_or(true),
                products: u.products.unwrap_or_default().into_iter().collect(),
                site_admin: u.site_admin.unwrap_or(false),
                scim_managed: u.scim_managed.unwrap_or(false),
                api_token: u.api_token,
            };
            let id = self.insert_user(input, now).map_err(|e| format!("users: {label}: {}", e.message()))?;
            for gid in &u.groups {
                self.add_member(gid, &id);
            }
            let user = self.user(&id).ok_or("users: the new user vanished")?;
            users.push(self.snapshot_user(user));
        }

        let mut granted = Vec::new();
        for g in seed.grant_access {
            let Some(account_id) = self.user_by_email(&g.email_address).map(|u| u.account_id.clone()) else {
                return Err(format!("grantAccess: no account has the address {:?}", g.email_address));
            };
            if let Some(p) = g.products.iter().find(|p| !PRODUCTS.iter().any(|(k, _)| k == *p)) {
                return Err(format!("grantAccess: {}: unknown product {p:?}", g.email_address));
            }
            let user = self.user_mut(&account_id).ok_or("grantAccess: the account vanished")?;
            user.site_access = true;
            user.products = g.products.into_iter().collect();
            user.modified_ms = now;
            let user = self.user(&account_id).ok_or("grantAccess: the account vanished")?;
            granted.push(self.snapshot_user(user));
        }
        Ok(json!({ "groups": groups, "users": users, "granted": granted }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    pub(super) groups: Vec<SeedGroup>,
    #[serde(default)]
    pub(super) users: Vec<SeedUser>,
    #[serde(default, rename = "grantAccess")]
    pub(super) grant_access: Vec<SeedGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SeedGroup {
    pub(super) name: String,
    #[serde(default)]
    pub(super) group_id: Option<String>,
    /// Jira answers this group with `groupId: null`.
    #[serde(default)]
    pub(super) null_group_id: Option<bool>,
}

/// An existing account given access to Jira (back): site access and these products.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SeedGrant {
    pub(super) email_address: String,
    #[serde(default)]
    pub(super) products: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SeedUser {
    #[serde(default)]
    pub(super) account_id: Option<String>,
    #[serde(default)]
    pub(super) account_type: Option<String>,
    #[serde(default)]
    pub(super) email_address: Option<String>,
    #[serde(default)]
    pub(super) email_visible: Option<bool>,
    #[serde(default)]
    pub(super) display_name: Option<String>,
    #[serde(default)]
    pub(super) active: Option<bool>,
    #[serde(default)]
    pub(super) site_access: Option<bool>,
    #[serde(default)]
    pub(super) products: Option<Vec<String>>,
    #[serde(default)]
    pub(super) groups: Vec<String>,
    #[serde(default)]
    pub(super) scim_managed: Option<bool>,
    #[serde(default)]
    pub(super) site_admin: Option<bool>,
    #[serde(default)]
    pub(super) api_token: Option<Token>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::wire::{Credential, Expand};
    use super::super::DEFAULT_ADMIN_TOKEN;
    use super::*;
    use crate::registry::VendorSim;
    use crate::{Config, Fixture};

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_the_contract_group_an_admin_and_a_hidden_address() {
        let s = state();
        assert_eq!(s.groups[SOFTWARE_USERS_GROUP_ID].name, "jira-software-users");
        let admin = s.user(ADMIN_ACCOUNT_ID).unwrap();
        assert!(admin.site_admin);
        let hidden = s.user_by_email("alex.private@example.com").unwrap();
        assert_eq!(hidden.shown_email(), None);
        assert!(s.user_json(hidden, Expand::default()).get("emailAddress").is_none(), "left out, not a null string");
        let app = s.users.values().find(|u| u.account_type == AccountType::App).unwrap();
        assert!(s.user_json(app, Expand::default()).get("emailAddress").is_none());
        let c = Credential::Basic { email: "ADMIN@sim.example".into(), token: DEFAULT_ADMIN_TOKEN.into() };
        assert!(s.authenticate(&c).is_some_and(|c| c.site_admin));
        let wrong = Credential::Basic { email: "grace@example.com".into(), token: DEFAULT_ADMIN_TOKEN.into() };
        assert!(s.authenticate(&wrong).is_none(), "the email must be the token owner's");
        assert!(s.authenticate(&Credential::Bearer(DEFAULT_ADMIN_TOKEN.into())).is_some());
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = s.users.len();
        let err = s
            .seed(json!({"users": [
                {"emailAddress": "ada@example.com"},
                {"emailAddress": "x@example.com", "groups": ["jira-software-users"]}
            ]}))
            .unwrap_err();
        assert!(err.contains("groups are given by id"), "{err}");
        assert_eq!(s.users.len(), before);
    }
}
