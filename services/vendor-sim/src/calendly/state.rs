//! The Calendly organization in memory and what can be done to it: accounts, memberships and
//! invitations, indexed by address and token, all numbered from one sequence (what cursors
//! point at).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::model::{make_uuid, Caller, Invitation, InvitationStatus, Kind, Membership, Role, User};
use super::wire::{membership_uri, org_uri};
use super::{Plan, ORG_NAME, VENDOR};
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::token::Token;
use crate::Config;

const WINDOW_MS: u64 = 60_000;

/// The Calendly tenant: one organization.
#[derive(Clone, Debug)]
pub struct State {
    pub(super) org_uuid: String,
    pub(super) org_created_at: String,
    pub(super) plan: Plan,
    pub(super) users: BTreeMap<String, User>,
    /// Lower-cased email -> user uuid.
    pub(super) emails: HashMap<String, String>,
    /// Token -> user uuid.
    pub(super) tokens: HashMap<Token, String>,
    /// By `seq`, i.e. in creation order.
    pub(super) memberships: BTreeMap<u64, Membership>,
    pub(super) invitations: BTreeMap<u64, Invitation>,
    pub(super) next_seq: u64,
    pub(super) limiter: Limiter,
    /// The base of the most recent request, for rendering URIs in `/_sim/state` and seeds.
    pub(super) base: String,
}

impl State {
    /// No accounts yet; plan and limiter as the flags say, URIs on the listening address until
    /// a request shows the address callers use.
    pub(super) fn empty(config: &Config, now: &str) -> Self {
        let plan = config.calendly.plan;
        State {
            org_uuid: make_uuid(Kind::Organization, 1),
            org_created_at: now.to_owned(),
            plan,
            users: BTreeMap::new(),
            emails: HashMap::new(),
            tokens: HashMap::new(),
            memberships: BTreeMap::new(),
            invitations: BTreeMap::new(),
            next_seq: 1,
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: plan.requests_per_minute(),
                window_ms: WINDOW_MS,
                daily_requests: None,
            }),
            base: format!("http://{}{}", config.listen, VENDOR.prefix()),
        }
    }

    /// For in-process tests: the organization gets a new identity (as when the token's user
    /// now belongs to another organization), its members and invitations kept. A URI a
    /// client cached from `/users/me` is then a 404; `/users/me` gives the new one.
    pub fn change_organization(&mut self) {
        let seq = self.take_seq();
        self.org_uuid = make_uuid(Kind::Organization, seq);
    }

    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(super) fn insert_user(&mut self, name: &str, email: &str, token: Option<Token>, now: &str) -> String {
        let seq = self.take_seq();
        let uuid = make_uuid(Kind::User, seq);
        let slug = slugify(name, &uuid);
        if let Some(t) = &token {
            self.tokens.insert(t.clone(), uuid.clone());
        }
        self.emails.insert(email.to_lowercase(), uuid.clone());
        self.users.insert(
            uuid.clone(),
            User {
                uuid: uuid.clone(),
                name: name.to_owned(),
                email: email.to_owned(),
                slug,
                timezone: "UTC".into(),
                created_at: now.to_owned(),
                updated_at: now.to_owned(),
                token,
            },
        );
        uuid
    }

    pub(super) fn insert_membership(&mut self, user: &str, role: Role, now: &str) -> u64 {
        let seq = self.take_seq();
        let uuid = make_uuid(Kind::Membership, seq);
        self.memberships.insert(
            seq,
            Membership {
                seq,
                uuid,
                user: user.to_owned(),
                role,
                created_at: now.to_owned(),
                updated_at: now.to_owned(),
            },
        );
        seq
    }

    pub(super) fn insert_invitation(&mut self, email: &str, status: InvitationStatus, now: &str) -> u64 {
        let seq = self.take_seq();
        let uuid = make_uuid(Kind::Invitation, seq);
        self.invitations.insert(
            seq,
            Invitation {
                seq,
                uuid,
                email: email.to_owned(),
                status,
                user: None,
                created_at: now.to_owned(),
                updated_at: now.to_owned(),
                last_sent_at: now.to_owned(),
            },
        );
        seq
    }

    pub(super) fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.get(self.emails.get(&email.to_lowercase())?)
    }

    pub(super) fn membership_of(&self, user: &str) -> Option<&Membership> {
        self.memberships.values().find(|m| m.user == user)
    }

    pub(super) fn membership_by_email(&self, email: &str) -> Option<&Membership> {
        self.user_by_email(email).and_then(|u| self.membership_of(&u.uuid))
    }

    pub(super) fn membership_by_uuid(&self, uuid: &str) -> Option<&Membership> {
        self.memberships.values().find(|m| m.uuid == uuid)
    }

    pub(super) fn pending_invitation(&self, email: &str) -> Option<&Invitation> {
        self.invitations.values().find(|i| i.status == InvitationStatus::Pending && i.email.eq_ignore_ascii_case(email))
    }

    pub(super) fn authenticate(&self, token: &str) -> Option<Caller> {
        let user = self.users.get(self.tokens.get(token)?)?;
        Some(Caller { user: user.uuid.clone(), role: self.membership_of(&user.uuid).map(|m| m.role) })
    }

    /// The invitee accepts: their account (existing or new) becomes a `user` member.
    pub(super) fn accept(&mut self, email: &str, name: Option<String>, now: &str) -> Result<u64, String> {
        let seq = self
            .pending_invitation(email)
            .map(|i| i.seq)
            .ok_or_else(|| format!("accept_invitations: no pending invitation for {email}"))?;
        let user = match self.user_by_email(email) {
            Some(u) => u.uuid.clone(),
            None => {
                let name = name.unwrap_or_else(|| name_from_email(email));
                self.insert_user(&name, email, None, now)
            }
        };
        if self.membership_of(&user).is_some() {
            return Err(format!("accept_invitations: {email} is already a member"));
        }
        let membership = self.insert_membership(&user, Role::User, now);
        if let Some(inv) = self.invitations.get_mut(&seq) {
            inv.status = InvitationStatus::Accepted;
            inv.user = Some(user);
            inv.updated_at = now.to_owned();
        }
        Ok(membership)
    }

    /// What `GET /_sim/state` shows, URIs built from the last base a caller used.
    pub(super) fn snapshot_json(&self) -> Value {
        let base = &self.base;
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                let mut v = self.user_json(base, u);
                v["uuid"] = u.uuid.clone().into();
                v["has_token"] = u.token.is_some().into();
                v
            })
            .collect();
        let memberships: Vec<Value> = self
            .memberships
            .values()
            .map(|m| {
                let user = &self.users[&m.user];
                json!({
                    "uuid": m.uuid,
                    "uri": membership_uri(base, &m.uuid),
                    "role": m.role.as_str(),
                    "email": user.email,
                    "name": user.name,
                    "user_uuid": user.uuid,
                    "created_at": m.created_at,
                })
            })
            .collect();
        let invitations: Vec<Value> = self
            .invitations
            .values()
            .map(|i| {
                let mut v = self.invitation_json(base, i);
                v["uuid"] = i.uuid.clone().into();
                v
            })
            .collect();
        json!({
            "organization": {
                "uuid": self.org_uuid,
                "uri": org_uri(base, &self.org_uuid),
                "name": ORG_NAME,
                "plan": self.plan.as_str(),
                "created_at": self.org_created_at,
            },
            "users": users,
            "memberships": memberships,
            "invitations": invitations,
        })
    }

    /// A partial update of the knobs (`/_sim/config`); a bad patch changes nothing.
    pub(super) fn configure_knobs(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(map) = patch else {
            return Err("expected an object like {\"plan\": \"enterprise\"} or {\"rate_limit\": {...}}".into());
        };
        let (mut plan, mut limiter) = (self.plan, self.limiter.clone());
        // The plan first: an explicit rate_limit in the same patch refines it.
        if let Some(value) = map.get("plan") {
            plan = serde_json::from_value(value.clone())
                .map_err(|_| format!("plan must be \"standard\" or \"enterprise\", not {value}"))?;
            limiter.configure(json!({ "requests": plan.requests_per_minute() }))?;
        }
        for (knob, value) in map {
            match knob.as_str() {
                "plan" => {}
                "rate_limit" => limiter.configure(value)?,
                other => return Err(format!("unknown knob {other:?} (known: plan, rate_limit)")),
            }
        }
        self.plan = plan;
        self.limiter = limiter;
        Ok(())
    }
}

pub(super) fn slugify(name: &str, uuid: &str) -> String {
    let mut slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if slug.is_empty() {
        slug = "user".into();
    }
    // Slugs are unique; a suffix from the uuid keeps them so.
    format!("{slug}-{}", &uuid[..6].to_lowercase())
}

/// "ada.lovelace@example.com" -> "Ada Lovelace".
pub(super) fn name_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let words: Vec<String> = local
        .split(['.', '_', '-', '+'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect();
    if words.is_empty() {
        local.to_owned()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::VendorSim;
    use crate::Fixture;

    #[test]
    fn plan_knob_sets_the_limit_and_rate_limit_refines_it() {
        let mut s = State::new(&Config::default(), Fixture::Default);
        s.configure(json!({"plan": "enterprise"})).unwrap();
        assert_eq!(s.limiter.config().requests, 120);
        s.configure(json!({"plan": "standard", "rate_limit": {"window_ms": 5000}})).unwrap();
        assert_eq!((s.limiter.config().requests, s.limiter.config().window_ms), (60, 5000));
        assert!(s.configure(json!({"plan": "gold"})).is_err());
        assert_eq!(s.plan, Plan::Standard, "a refused patch changes nothing");
    }

    #[test]
    fn names_come_from_emails_when_not_given() {
        assert_eq!(name_from_email("ada.lovelace@example.com"), "Ada Lovelace");
        assert_eq!(name_from_email("x@example.com"), "X");
    }
}
