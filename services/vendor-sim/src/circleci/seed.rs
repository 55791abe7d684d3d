//! What a CircleCI tenant holds before any request: the admin who owns the token and the org it
//! administers (always), the default fixture, and what `POST /_sim/seed` adds. Memberships are
//! seeded only: they stand for what people do in the web app, which no API operation does.

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::Role;
use super::{State, ADMIN_LOGIN, ADMIN_NAME, ADMIN_USER_ID, BB_ORG_ID, BB_ORG_SLUG, MEMBER_TOKEN, ORG_ID, ORG_SLUG};
use crate::token::Token;
use crate::Config;

impl State {
    /// The credential and what it is for: the admin, its org, its membership.
    pub(super) fn add_built_ins(&mut self, config: &Config) {
        let built_in = self
            .insert_org(ORG_SLUG, None, Some(ORG_ID))
            .and_then(|_| {
                self.insert_user(
                    ADMIN_LOGIN,
                    Some(ADMIN_NAME),
                    Some(ADMIN_USER_ID),
                    Some(config.circleci.admin_token.clone()),
                )
            })
            .and_then(|admin| self.join(ORG_ID, &admin, Role::Admin));
        if let Err(e) = built_in {
            tracing::error!(error = %e, "circleci built-in tenant is invalid (is the admin token empty?)");
        }
    }

    /// `gh/sim-org` (with the admin) plus: `grace-gh` (contributor, token `circleci-member-token`),
    /// `alan-gh` (contributor), `margaret-gh` (viewer); groups `developers` (grace, alan) and
    /// `admins` (sim-admin); and `bb/sim-org`, a Bitbucket org of the same name where the admin
    /// is only a contributor. `ada-gh` (the contract's joiner) is nobody yet.
    pub(super) fn load_default_fixture(&mut self) -> Result<(), String> {
        let grace = self.insert_user(
            "grace-gh",
            Some("Grace Hopper"),
            Some("dffac8e5-5c5f-4ee2-b2b7-4d82448d5afc"),
            Some(MEMBER_TOKEN.into()),
        )?;
        let alan =
            self.insert_user("alan-gh", Some("Alan Turing"), Some("1a527c1d-5289-4d64-b976-03e5eb5370f8"), None)?;
        let margaret = self.insert_user(
            "margaret-gh",
            Some("Margaret Hamilton"),
            Some("bdaadf2d-9cfc-401d-9e65-5f8b674d6580"),
            None,
        )?;
        self.join(ORG_ID, &grace, Role::Contributor)?;
        self.join(ORG_ID, &alan, Role::Contributor)?;
        self.join(ORG_ID, &margaret, Role::Viewer)?;
        let developers = Some("3b1c2775-a451-40e7-942f-c3b899c83456");
        self.insert_group(ORG_ID, "developers", "Build and deploy the projects.", &[&grace, &alan], developers)?;
        let admins = Some("4e83214f-da2f-4f15-b596-7d498b49b2ca");
        self.insert_group(ORG_ID, "admins", "Organization administrators.", &[ADMIN_USER_ID], admins)?;
        self.insert_org(BB_ORG_SLUG, None, Some(BB_ORG_ID))?;
        self.join(BB_ORG_ID, ADMIN_USER_ID, Role::Contributor)?;
        Ok(())
    }

    pub(super) fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let mut orgs = Vec::new();
        for o in seed.orgs {
            let id = self.insert_org(&o.slug, o.name.as_deref(), o.id.as_deref()).map_err(|e| format!("orgs: {e}"))?;
            let org = &self.orgs[&id];
            orgs.push(json!({ "id": org.id, "slug": org.slug, "name": org.name, "vcs_type": org.vcs_type }));
        }
        let mut users = Vec::new();
        for u in seed.users {
            let id = self
                .insert_user(&u.login, u.name.as_deref(), u.id.as_deref(), u.token)
                .map_err(|e| format!("users: {e}"))?;
            users.push(Self::user_json(&self.users[&id]));
        }
        let mut memberships = Vec::new();
        for m in seed.memberships {
            let org_id = self.org_ref(&m.org).ok_or_else(|| format!("memberships: no org {:?}", m.org))?;
            let user_id = self
                .user_by_login(&m.login)
                .map(|u| u.id.clone())
                .ok_or_else(|| format!("memberships: no user with login {:?}", m.login))?;
            let role = m.role.unwrap_or(Role::Contributor);
            self.join(&org_id, &user_id, role).map_err(|_| {
                format!("memberships: {:?} is already a member of {}", m.login, self.orgs[&org_id].slug)
            })?;
            memberships.push(json!({ "org_id": org_id, "user_id": user_id, "login": m.login, "role": role.as_str() }));
        }
        let mut groups = Vec::new();
        for g in seed.groups {
            let org_id = self.org_ref(&g.org).ok_or_else(|| format!("groups: no org {:?}", g.org))?;
            let mut ids = Vec::new();
            for login in &g.members {
                let user = self.user_by_login(login).ok_or_else(|| format!("groups: no user with login {login:?}"))?;
                ids.push(user.id.clone());
            }
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let description = g.description.as_deref().unwrap_or_default();
            let id = self
                .insert_group(&org_id, &g.name, description, &refs, g.id.as_deref())
                .map_err(|e| format!("groups: {e}"))?;
            groups.push(json!({ "id": id, "org_id": org_id, "name": g.name.trim(), "member_count": ids.len() }));
        }
        Ok(json!({ "orgs": orgs, "users": users, "memberships": memberships, "groups": groups }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    pub(super) orgs: Vec<SeedOrg>,
    #[serde(default)]
    pub(super) users: Vec<SeedUser>,
    #[serde(default)]
    pub(super) memberships: Vec<SeedMembership>,
    #[serde(default)]
    pub(super) groups: Vec<SeedGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedOrg {
    pub(super) slug: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedUser {
    pub(super) login: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) token: Option<Token>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedMembership {
    /// The org's slug or id.
    pub(super) org: String,
    pub(super) login: String,
    #[serde(default)]
    pub(super) role: Option<Role>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedGroup {
    pub(super) org: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) members: Vec<String>,
    #[serde(default)]
    pub(super) id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_ADMIN_TOKEN;
    use super::*;
    use crate::registry::VendorSim;
    use crate::Fixture;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_the_admin_org_and_a_same_named_bitbucket_org() {
        let s = state();
        assert_eq!(s.role_of(ORG_ID, ADMIN_USER_ID), Some(Role::Admin));
        assert_eq!(s.role_of(BB_ORG_ID, ADMIN_USER_ID), Some(Role::Contributor));
        assert_eq!(s.orgs[ORG_ID].name, s.orgs[BB_ORG_ID].name);
        assert_eq!(s.rosters[ORG_ID].members.len(), 4);
        assert!(s.user_by_login("ada-gh").is_none(), "the contract's joiner is not a member");
        assert_eq!(s.tokens.get(DEFAULT_ADMIN_TOKEN).map(String::as_str), Some(ADMIN_USER_ID));
    }

    #[test]
    fn empty_fixture_keeps_the_credential_and_its_org() {
        let s = State::new(&Config::default(), Fixture::Empty);
        assert_eq!(s.users.len(), 1);
        assert_eq!(s.orgs.len(), 1);
        assert_eq!(s.role_of(ORG_ID, ADMIN_USER_ID), Some(Role::Admin));
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = s.users.len();
        let err = s
            .seed(json!({
                "users": [{"login": "ada-gh"}],
                "memberships": [{"org": "gh/nowhere", "login": "ada-gh"}]
            }))
            .unwrap_err();
        assert!(err.contains("no org"), "{err}");
        assert_eq!(s.users.len(), before);
    }
}
