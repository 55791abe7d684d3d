//! What the GitHub tenant holds before any request: the org owner who owns the token (always),
//! the default fixture, and what `POST /_sim/seed` adds.
//!
//! Seed format (every list optional; applied in this order, all or nothing):
//!
//! ```json
//! {"github": {
//!   "users": [{"login": "kim-gh", "name": "Kim", "email": "kim@example.com", "id": 3001,
//!              "token": "kim-token", "two_factor": true}],
//!   "members": [{"login": "kim-gh", "role": "member"}],
//!   "teams": [{"name": "Data", "slug": "data", "description": "...", "id": 77,
//!              "members": ["kim-gh", {"login": "grace-gh", "role": "maintainer"}]}],
//!   "invitations": [{"login": "ada-gh", "role": "direct_member", "teams": ["platform"]},
//!                   {"email": "new@example.com", "role": "admin"}],
//!   "outside_collaborators": ["linus-gh"],
//!   "accept_invitations": ["ada-gh", "hedy@example.com", {"email": "x@example.com", "login": "x-gh"}]
//! }}
//! ```
//!
//! Users are GitHub accounts (not members): `login` required (GitHub's rules), `id` from 2001
//! when absent, `email` the profile's public address (an e-mail invitation to it reaches the
//! account), `two_factor` true by default, `token` to call as them. Members: `role` `admin`,
//! `member` (default) or `billing_manager`. Teams: `slug` made from the name when absent, ids
//! from 101; members must be org members (`role` `member` (default) or `maintainer`).
//! Invitations: `login` or `email`, `role` `admin`, `direct_member` (default) or
//! `billing_manager`, `teams` by slug; ids from 5001; the inviter is `sim-admin`.
//! Outside collaborators must not be members. `accept_invitations` is what an invitee does on
//! github.com: a login or an e-mail with a pending invitation (an object with `login` (and
//! `name`) creates the account for an e-mail no account has); they become a member with the
//! invited role and join the invitation's teams.

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{Invitation, InvitationState, InviteRole, OrgRole, TeamRole};
use super::{State, ADMIN_LOGIN, ADMIN_USER_ID, MEMBER_TOKEN};
use crate::sim::{now_ms, rfc3339_s};
use crate::token::Token;
use crate::Config;

const FIXTURE_CREATED_AT: &str = "2020-01-01T00:00:00Z";

impl State {
    /// The token's owner exists in every fixture, an owner (admin) of `sim-org`.
    pub(super) fn add_built_ins(&mut self, config: &Config) {
        let admin = self.insert_user(
            ADMIN_LOGIN,
            Some("Sim Admin"),
            Some("admin@sim.example"),
            Some(ADMIN_USER_ID),
            Some(config.github.admin_token.clone()),
            FIXTURE_CREATED_AT,
        );
        if let Err(e) = admin.and_then(|id| self.join(id, OrgRole::Admin)) {
            tracing::error!(error = %e, "github built-in owner is invalid (is the admin token empty?)");
        }
    }

    /// Accounts grace-gh (101, member, token `github-member-token`), alan-gh (102, member),
    /// ada-gh (103, no membership: the contract's joiner), linus-gh (104, outside
    /// collaborator), margaret-gh (105, member without 2FA); teams platform (11: grace, alan),
    /// security (12: alan as maintainer), sales-eng (13: nobody); a pending e-mail invitation
    /// (5001) for hedy@example.com, direct_member, to security. sim-admin is the only owner.
    pub(super) fn load_default_fixture(&mut self) -> Result<(), String> {
        let at = FIXTURE_CREATED_AT;
        let grace = self.insert_user(
            "grace-gh",
            Some("Grace Hopper"),
            Some("grace@example.com"),
            Some(101),
            Some(MEMBER_TOKEN.into()),
            at,
        )?;
        let alan = self.insert_user("alan-gh", Some("Alan Turing"), Some("alan@example.com"), Some(102), None, at)?;
        self.insert_user("ada-gh", Some("Ada Lovelace"), Some("ada@example.com"), Some(103), None, at)?;
        let linus =
            self.insert_user("linus-gh", Some("Linus Torvalds"), Some("linus@example.com"), Some(104), None, at)?;
        let margaret = self.insert_user(
            "margaret-gh",
            Some("Margaret Hamilton"),
            Some("margaret@example.com"),
            Some(105),
            None,
            at,
        )?;
        if let Some(m) = self.users.get_mut(&margaret) {
            m.two_factor = false;
        }
        self.join(grace, OrgRole::Member)?;
        self.join(alan, OrgRole::Member)?;
        self.join(margaret, OrgRole::Member)?;
        self.outside.push(linus);
        let platform = self.insert_team("Platform", Some("platform"), Some("Runs the platform."), Some(11))?;
        let security = self.insert_team("Security", Some("security"), Some("Keeps it safe."), Some(12))?;
        self.insert_team("Sales Engineering", Some("sales-eng"), None, Some(13))?;
        self.add_to_team(platform, grace, TeamRole::Member)?;
        self.add_to_team(platform, alan, TeamRole::Member)?;
        self.add_to_team(security, alan, TeamRole::Maintainer)?;
        let id = self.new_invitation_id();
        self.invitations.insert(
            id,
            Invitation {
                id,
                user_id: None,
                email: Some("hedy@example.com".into()),
                role: InviteRole::DirectMember,
                team_ids: vec![security],
                inviter_id: ADMIN_USER_ID,
                created_at: at.to_owned(),
                state: InvitationState::Pending,
            },
        );
        Ok(())
    }

    fn add_to_team(&mut self, team_id: u64, user_id: u64, role: TeamRole) -> Result<(), String> {
        if !matches!(self.role_of(user_id), Some(OrgRole::Admin | OrgRole::Member)) {
            return Err(format!("user {user_id} must be an organization member to join a team"));
        }
        let team = self.teams.get_mut(&team_id).ok_or_else(|| format!("no team {team_id}"))?;
        if team.role_of(user_id).is_some() {
            return Err(format!("user {user_id} is already in team {}", team.slug));
        }
        team.members.push((user_id, role));
        Ok(())
    }

    fn login_id(&self, section: &str, login: &str) -> Result<u64, String> {
        self.user_by_login(login).map(|u| u.id).ok_or_else(|| format!("{section}: no user with login {login:?}"))
    }

    pub(super) fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let now = rfc3339_s(now_ms());
        let mut users = Vec::new();
        for u in seed.users {
            let id = self
                .insert_user(&u.login, u.name.as_deref(), u.email.as_deref(), u.id, u.token, &now)
                .map_err(|e| format!("users: {e}"))?;
            if let (Some(false), Some(user)) = (u.two_factor, self.users.get_mut(&id)) {
                user.two_factor = false;
            }
            users.push(json!({ "id": id, "login": u.login.trim() }));
        }
        let mut members = Vec::new();
        for m in seed.members {
            let id = self.login_id("members", &m.login)?;
            let role = m.role.unwrap_or(OrgRole::Member);
            if self.users.get(&id).and_then(|u| self.pending_for_user(u)).is_some() {
                return Err(format!("members: {} has a pending invitation; accept it instead", m.login));
            }
            self.join(id, role).map_err(|_| format!("members: {} is already a member", m.login))?;
            members.push(json!({ "id": id, "login": m.login, "role": role.as_str() }));
        }
        let mut teams = Vec::new();
        for t in seed.teams {
            let id = self
                .insert_team(&t.name, t.slug.as_deref(), t.description.as_deref(), t.id)
                .map_err(|e| format!("teams: {e}"))?;
            for m in t.members {
                let (login, role) = match m {
                    SeedTeamMember::Login(l) => (l, TeamRole::Member),
                    SeedTeamMember::WithRole { login, role } => (login, role.unwrap_or(TeamRole::Member)),
                };
                let user = self.login_id("teams", &login)?;
                self.add_to_team(id, user, role).map_err(|e| format!("teams: {login}: {e}"))?;
            }
            let team = &self.teams[&id];
            teams.push(json!({ "id": id, "slug": team.slug, "name": team.name, "member_count": team.members.len() }));
        }
        let mut invitations = Vec::new();
        for i in seed.invitations {
            let (user_id, email) = match (&i.login, &i.email) {
                (Some(login), None) => (Some(self.login_id("invitations", login)?), None),
                (None, Some(email)) => {
                    let email = email.trim().to_owned();
                    if !crate::extract::valid_email(&email) {
                        return Err(format!("invitations: {email:?} is not an e-mail address"));
                    }
                    (self.user_by_email(&email).map(|u| u.id), Some(email))
                }
                _ => return Err("invitations: give exactly one of login and email".into()),
            };
            if let Some(id) = user_id {
                if self.role_of(id).is_some() {
                    return Err(format!("invitations: user {id} is already a member"));
                }
                if self.users.get(&id).and_then(|u| self.pending_for_user(u)).is_some() {
                    return Err(format!("invitations: user {id} already has a pending invitation"));
                }
            }
            if let Some(e) = &email {
                if self.pending_for_email(e).is_some() {
                    return Err(format!("invitations: {e} already has a pending invitation"));
                }
            }
            let mut team_ids = Vec::new();
            for slug in &i.teams {
                team_ids.push(self.team_id_by_slug(slug).ok_or_else(|| format!("invitations: no team {slug:?}"))?);
            }
            let id = self.new_invitation_id();
            let role = i.role.unwrap_or(InviteRole::DirectMember);
            let invitation = Invitation {
                id,
                user_id,
                email: email.clone(),
                role,
                team_ids: team_ids.clone(),
                inviter_id: ADMIN_USER_ID,
                created_at: now.clone(),
                state: InvitationState::Pending,
            };
            self.invitations.insert(id, invitation);
            invitations.push(json!({ "id": id, "user_id": user_id, "email": email, "role": role.as_str(),
                                     "team_ids": team_ids }));
        }
        let mut outside = Vec::new();
        for login in seed.outside_collaborators {
            let id = self.login_id("outside_collaborators", &login)?;
            if self.role_of(id).is_some() {
                return Err(format!("outside_collaborators: {login} is a member"));
            }
            if !self.outside.contains(&id) {
                self.outside.push(id);
            }
            outside.push(json!({ "id": id, "login": login }));
        }
        let mut accepted = Vec::new();
        for a in seed.accept_invitations {
            let (key, new_login, name) = match a {
                SeedAccept::Key(k) => (k, None, None),
                SeedAccept::Account { email, login, name } => (email, Some(login), name),
            };
            let (invitation_id, user_id) = self.acceptor(&key, new_login.as_deref(), name.as_deref(), &now)?;
            self.accept(invitation_id, user_id).map_err(|e| format!("accept_invitations: {e}"))?;
            let role = self.role_of(user_id).map(OrgRole::as_str);
            let login = self.users.get(&user_id).map(|u| u.login.clone());
            accepted.push(json!({ "invitation_id": invitation_id, "id": user_id, "login": login, "role": role }));
        }
        Ok(json!({
            "users": users, "members": members, "teams": teams, "invitations": invitations,
            "outside_collaborators": outside, "accepted": accepted,
        }))
    }

    /// The pending invitation `key` (a login or an e-mail) names, and the account accepting it
    /// (created for an e-mail no account has, when a login is given).
    fn acceptor(
        &mut self,
        key: &str,
        new_login: Option<&str>,
        name: Option<&str>,
        now: &str,
    ) -> Result<(u64, u64), String> {
        let key = key.trim();
        if let Some(u) = self.user_by_login(key).cloned() {
            let inv = self.pending_for_user(&u).ok_or_else(|| format!("accept_invitations: {key} is not invited"))?;
            return Ok((inv.id, u.id));
        }
        let inv = self
            .pending_for_email(key)
            .map(|i| (i.id, i.user_id))
            .ok_or_else(|| format!("accept_invitations: no pending invitation for {key:?}"))?;
        let user_id = match (inv.1, self.user_by_email(key).map(|u| u.id), new_login) {
            (Some(id), _, _) | (None, Some(id), _) => id,
            (None, None, Some(login)) => self
                .insert_user(login, name, Some(key), None, None, now)
                .map_err(|e| format!("accept_invitations: {e}"))?,
            (None, None, None) => {
                return Err(format!(
                    "accept_invitations: no account has {key}; give {{\"email\": \"{key}\", \"login\": \"...\"}}"
                ))
            }
        };
        Ok((inv.0, user_id))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    users: Vec<SeedUser>,
    #[serde(default)]
    members: Vec<SeedMember>,
    #[serde(default)]
    teams: Vec<SeedTeam>,
    #[serde(default)]
    invitations: Vec<SeedInvitation>,
    #[serde(default)]
    outside_collaborators: Vec<String>,
    #[serde(default)]
    accept_invitations: Vec<SeedAccept>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedUser {
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    token: Option<Token>,
    #[serde(default)]
    two_factor: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedMember {
    login: String,
    #[serde(default)]
    role: Option<OrgRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedTeam {
    name: String,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    members: Vec<SeedTeamMember>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SeedTeamMember {
    Login(String),
    WithRole { login: String, role: Option<TeamRole> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedInvitation {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    role: Option<InviteRole>,
    #[serde(default)]
    teams: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SeedAccept {
    Key(String),
    Account { email: String, login: String, name: Option<String> },
}

#[cfg(test)]
mod tests {
    use super::super::{DEFAULT_ADMIN_TOKEN, ORG_ID};
    use super::*;
    use crate::registry::VendorSim;
    use crate::Fixture;

    fn state() -> State {
        State::new(&Config::default(), Fixture::Default)
    }

    #[test]
    fn default_fixture_has_one_owner_three_teams_and_an_email_invitation() {
        let s = state();
        assert_eq!(s.admin_count(), 1);
        assert_eq!(s.role_of(ADMIN_USER_ID), Some(OrgRole::Admin));
        assert_eq!(s.tokens.get(DEFAULT_ADMIN_TOKEN), Some(&ADMIN_USER_ID));
        assert_eq!(s.tokens.get(MEMBER_TOKEN), Some(&101));
        assert_eq!(s.teams.keys().copied().collect::<Vec<_>>(), [11, 12, 13]);
        assert!(s.role_of(103).is_none(), "ada-gh is an account, not a member");
        assert_eq!(s.outside, [104]);
        assert!(s.pending_for_email("HEDY@example.com").is_some());
        assert!(!s.users.contains_key(&ORG_ID));
    }

    #[test]
    fn empty_fixture_keeps_only_the_owner() {
        let s = State::new(&Config::default(), Fixture::Empty);
        assert_eq!(s.users.len(), 1);
        assert_eq!(s.members, [(ADMIN_USER_ID, OrgRole::Admin)]);
        assert!(s.teams.is_empty() && s.invitations.is_empty());
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = s.users.len();
        let err = s
            .seed(json!({"users": [{"login": "kim-gh"}], "teams": [{"name": "Data", "members": ["kim-gh"]}]}))
            .unwrap_err();
        assert!(err.contains("member"), "{err}");
        assert_eq!(s.users.len(), before);
    }

    #[test]
    fn seeding_then_accepting_an_invitation_makes_a_member_in_its_teams() {
        let mut s = state();
        let out = s
            .seed(json!({
                "invitations": [{"login": "ada-gh", "role": "admin", "teams": ["platform"]}],
                "accept_invitations": ["ada-gh", {"email": "hedy@example.com", "login": "hedy-gh"}]
            }))
            .unwrap();
        assert_eq!(out["accepted"][0]["role"], "admin");
        assert_eq!(s.role_of(103), Some(OrgRole::Admin));
        assert!(s.teams[&11].role_of(103).is_some());
        let hedy = s.user_by_login("hedy-gh").unwrap().id;
        assert_eq!(s.role_of(hedy), Some(OrgRole::Member));
        assert!(s.teams[&12].role_of(hedy).is_some());
        assert!(s.pending_for_email("hedy@example.com").is_none());
    }
}
