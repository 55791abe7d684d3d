//! What a Calendly organization holds before any request: its owner and the admin who owns the
//! token (always), the default fixture, and what `POST /_sim/seed` adds (members, invitations,
//! and invitees accepting or declining).

use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{InvitationStatus, Role};
use super::state::name_from_email;
use super::{State, ADMIN_EMAIL, ADMIN_NAME, OWNER_EMAIL, OWNER_NAME};
use crate::extract::valid_email;
use crate::sim::{now_ms, rfc3339_ms};
use crate::token::Token;
use crate::Config;

impl State {
    /// The owner and the token owner exist in every fixture: an organization always has an
    /// owner, and the admin owns the credential.
    pub(super) fn add_built_ins(&mut self, config: &Config, now: &str) {
        let owner = self.insert_user(OWNER_NAME, OWNER_EMAIL, None, now);
        self.insert_membership(&owner, Role::Owner, now);
        let admin = self.insert_user(ADMIN_NAME, ADMIN_EMAIL, Some(config.calendly.admin_token.clone()), now);
        self.insert_membership(&admin, Role::Admin, now);
    }

    pub(super) fn load_default_fixture(&mut self, now: &str) {
        let grace = self.insert_user("Grace Hopper", "grace@example.com", None, now);
        self.insert_membership(&grace, Role::User, now);
    }

    pub(super) fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let now = rfc3339_ms(now_ms());
        let base = self.base.clone();
        let mut memberships = Vec::new();
        for m in seed.members {
            let role = match m.role.as_deref().unwrap_or("user") {
                "user" => Role::User,
                "admin" => Role::Admin,
                "owner" => return Err("members: the organization already has its owner (owner@sim.example)".into()),
                other => return Err(format!("members: invalid role {other:?}: user or admin")),
            };
            let email = m.email.trim().to_owned();
            if !valid_email(&email) {
                return Err(format!("members: {email:?} is not a valid email address"));
            }
            if self.membership_by_email(&email).is_some() {
                return Err(format!("members: {email} is already a member"));
            }
            if self.pending_invitation(&email).is_some() {
                return Err(format!("members: {email} has a pending invitation; accept it instead"));
            }
            if let Some(t) = &m.token {
                if t.is_empty() || self.tokens.contains_key(t) {
                    return Err(format!("members: {email}: token must be non-empty and unique"));
                }
            }
            let user = match self.user_by_email(&email).map(|u| u.uuid.clone()) {
                Some(existing) => {
                    if let Some(t) = m.token {
                        self.tokens.insert(t.clone(), existing.clone());
                        if let Some(u) = self.users.get_mut(&existing) {
                            u.token = Some(t);
                        }
                    }
                    existing
                }
                None => {
                    let name = m.name.unwrap_or_else(|| name_from_email(&email));
                    self.insert_user(&name, &email, m.token, &now)
                }
            };
            let seq = self.insert_membership(&user, role, &now);
            memberships.push(self.membership_json(&base, &self.memberships[&seq]));
        }

        let mut invitations = Vec::new();
        for i in seed.invitations {
            let status = match i.status.as_deref().unwrap_or("pending") {
                "pending" => InvitationStatus::Pending,
                "declined" => InvitationStatus::Declined,
                "revoked" => InvitationStatus::Revoked,
                other => {
                    return Err(format!(
                        "invitations: invalid status {other:?}: pending, declined or revoked (accept with accept_invitations)"
                    ))
                }
            };
            let email = i.email.trim().to_owned();
            if !valid_email(&email) {
                return Err(format!("invitations: {email:?} is not a valid email address"));
            }
            if status == InvitationStatus::Pending {
                if self.membership_by_email(&email).is_some() {
                    return Err(format!("invitations: {email} is already a member"));
                }
                if self.pending_invitation(&email).is_some() {
                    return Err(format!("invitations: {email} already has a pending invitation"));
                }
            }
            let seq = self.insert_invitation(&email, status, &now);
            invitations.push(self.invitation_json(&base, &self.invitations[&seq]));
        }

        let mut accepted = Vec::new();
        for a in seed.accept_invitations {
            let (email, name) = match a {
                Accept::Email(e) => (e, None),
                Accept::Person { email, name } => (email, name),
            };
            let seq = self.accept(email.trim(), name, &now)?;
            accepted.push(self.membership_json(&base, &self.memberships[&seq]));
        }

        let mut declined = Vec::new();
        for email in seed.decline_invitations {
            let seq = self
                .pending_invitation(email.trim())
                .map(|i| i.seq)
                .ok_or_else(|| format!("decline_invitations: no pending invitation for {email}"))?;
            if let Some(inv) = self.invitations.get_mut(&seq) {
                inv.status = InvitationStatus::Declined;
                inv.updated_at = now.clone();
            }
            declined.push(self.invitation_json(&base, &self.invitations[&seq]));
        }

        Ok(json!({
            "memberships": memberships,
            "invitations": invitations,
            "accepted": accepted,
            "declined": declined,
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    pub(super) members: Vec<SeedMember>,
    #[serde(default)]
    pub(super) invitations: Vec<SeedInvitation>,
    #[serde(default)]
    pub(super) accept_invitations: Vec<Accept>,
    #[serde(default)]
    pub(super) decline_invitations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedMember {
    pub(super) email: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) role: Option<String>,
    #[serde(default)]
    pub(super) token: Option<Token>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeedInvitation {
    pub(super) email: String,
    #[serde(default)]
    pub(super) status: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Accept {
    Email(String),
    Person {
        email: String,
        #[serde(default)]
        name: Option<String>,
    },
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
    fn default_fixture_has_owner_admin_and_grace() {
        let s = state();
        let roles: Vec<(&str, Role)> =
            s.memberships.values().map(|m| (s.users[&m.user].email.as_str(), m.role)).collect();
        assert_eq!(roles, [(OWNER_EMAIL, Role::Owner), (ADMIN_EMAIL, Role::Admin), ("grace@example.com", Role::User)]);
        let caller = s.authenticate(DEFAULT_ADMIN_TOKEN).expect("the admin token works");
        assert_eq!(caller.role, Some(Role::Admin));
        let empty = State::new(&Config::default(), Fixture::Empty);
        assert_eq!(empty.memberships.len(), 2, "owner and admin are always there");
    }

    #[test]
    fn accepting_reuses_an_existing_account() {
        let mut s = state();
        let grace = s.membership_by_email("grace@example.com").unwrap().clone();
        s.memberships.remove(&grace.seq);
        s.seed(json!({"invitations": [{"email": "Grace@Example.com"}], "accept_invitations": ["grace@example.com"]}))
            .unwrap();
        let again = s.membership_by_email("grace@example.com").unwrap();
        assert_eq!(again.user, grace.user, "same Calendly account");
        assert_ne!(again.uuid, grace.uuid, "a new membership");
    }

    #[test]
    fn a_failed_seed_changes_nothing() {
        let mut s = state();
        let before = (s.memberships.len(), s.invitations.len());
        let err = s
            .seed(json!({"members": [{"email": "ada@example.com"}], "invitations": [{"email": "grace@example.com"}]}))
            .unwrap_err();
        assert!(err.contains("already a member"), "{err}");
        assert_eq!((s.memberships.len(), s.invitations.len()), before);
    }
}
