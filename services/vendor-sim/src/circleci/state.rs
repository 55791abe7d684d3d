//! The CircleCI tenant in memory and what can be done to it: users, orgs and their rosters,
//! groups, all numbered from one sequence (what page tokens point at).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::model::{Caller, Group, Org, Role, Roster, User};
use super::wire::ApiError;
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::token::Token;
use crate::Config;

const RATE_REQUESTS: u32 = 1000;
const RATE_WINDOW_MS: u64 = 60_000;

/// The CircleCI tenant: users, orgs, memberships and groups.
#[derive(Clone, Debug)]
pub struct State {
    pub(super) users: BTreeMap<String, User>,
    /// Lower-cased login -> user id (logins are unique here, case-insensitively).
    pub(super) logins: HashMap<String, String>,
    /// Personal API token -> user id.
    pub(super) tokens: HashMap<Token, String>,
    pub(super) orgs: BTreeMap<String, Org>,
    /// Lower-cased slug -> org id.
    pub(super) slugs: HashMap<String, String>,
    /// Org id -> its members.
    pub(super) rosters: HashMap<String, Roster>,
    /// Groups by creation order.
    pub(super) groups: BTreeMap<u64, Group>,
    pub(super) next_seq: u64,
    pub(super) limiter: Limiter,
}

impl State {
    /// No users or orgs yet; the limiter as the flags say.
    pub(super) fn empty(config: &Config) -> Self {
        State {
            users: BTreeMap::new(),
            logins: HashMap::new(),
            tokens: HashMap::new(),
            orgs: BTreeMap::new(),
            slugs: HashMap::new(),
            rosters: HashMap::new(),
            groups: BTreeMap::new(),
            next_seq: 1,
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_REQUESTS,
                window_ms: RATE_WINDOW_MS,
                daily_requests: None,
            }),
        }
    }

    pub(super) fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub(super) fn insert_org(&mut self, slug: &str, name: Option<&str>, id: Option<&str>) -> Result<String, String> {
        let slug = slug.trim();
        let (vcs, org_name) = slug.split_once('/').ok_or_else(|| format!("slug {slug:?} is not VCS/NAME"))?;
        let vcs_type = match vcs {
            "gh" | "github" => "github",
            "bb" | "bitbucket" => "bitbucket",
            "circleci" => "circleci",
            other => return Err(format!("slug {slug:?}: unknown VCS {other:?} (gh, bb or circleci)")),
        };
        if org_name.is_empty() || org_name.contains('/') {
            return Err(format!("slug {slug:?} is not VCS/NAME"));
        }
        let short = match vcs_type {
            "github" => "gh",
            "bitbucket" => "bb",
            other => other,
        };
        let slug = format!("{short}/{org_name}");
        if self.slugs.contains_key(&slug.to_lowercase()) {
            return Err(format!("an org with slug {slug:?} already exists"));
        }
        let id = self.new_id(id)?;
        if self.orgs.contains_key(&id) {
            return Err(format!("an org with id {id} already exists"));
        }
        let seq = self.seq();
        let org = Org {
            id: id.clone(),
            name: name.map(str::to_owned).unwrap_or_else(|| org_name.to_owned()),
            avatar_url: format!("https://avatars.example/{slug}"),
            slug: slug.clone(),
            vcs_type,
            seq,
        };
        self.slugs.insert(slug.to_lowercase(), id.clone());
        self.orgs.insert(id.clone(), org);
        self.rosters.insert(id.clone(), Roster::default());
        Ok(id)
    }

    pub(super) fn insert_user(
        &mut self,
        login: &str,
        name: Option<&str>,
        id: Option<&str>,
        token: Option<Token>,
    ) -> Result<String, String> {
        let login = login.trim();
        if login.is_empty() || login.contains('/') || login.chars().any(char::is_whitespace) {
            return Err(format!("login {login:?} must be a non-empty VCS login"));
        }
        if self.logins.contains_key(&login.to_lowercase()) {
            return Err(format!("a user with login {login:?} already exists"));
        }
        if let Some(t) = &token {
            if t.is_empty() || self.tokens.contains_key(t) {
                return Err("token must be non-empty and unique".into());
            }
        }
        let id = self.new_id(id)?;
        if self.users.contains_key(&id) {
            return Err(format!("a user with id {id} already exists"));
        }
        let seq = self.seq();
        let user = User {
            id: id.clone(),
            login: login.to_owned(),
            name: name.map(str::to_owned).unwrap_or_else(|| login.to_owned()),
            avatar_url: format!("https://avatars.example/u/{login}"),
            token,
            seq,
        };
        self.logins.insert(login.to_lowercase(), id.clone());
        if let Some(t) = &user.token {
            self.tokens.insert(t.clone(), id.clone());
        }
        self.users.insert(id.clone(), user);
        Ok(id)
    }

    pub(super) fn insert_group(
        &mut self,
        org_id: &str,
        name: &str,
        description: &str,
        members: &[&str],
        id: Option<&str>,
    ) -> Result<String, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("a group needs a name".into());
        }
        if self.groups.values().any(|g| g.org_id == org_id && g.name.eq_ignore_ascii_case(name)) {
            return Err(format!("the org already has a group named {name:?}"));
        }
        let roster = self.rosters.get(org_id).ok_or_else(|| format!("no org {org_id}"))?;
        for m in members {
            if !roster.members.contains_key(*m) {
                return Err(format!("user {m} is not a member of the group's org"));
            }
        }
        let id = self.new_id(id)?;
        let seq = self.seq();
        let members = members.iter().map(|m| (*m).to_owned()).collect();
        let group = Group {
            id: id.clone(),
            org_id: org_id.to_owned(),
            name: name.to_owned(),
            description: description.trim().to_owned(),
            members,
        };
        self.groups.insert(seq, group);
        Ok(id)
    }

    pub(super) fn join(&mut self, org_id: &str, user_id: &str, role: Role) -> Result<(), String> {
        let seq = self.seq();
        let roster = self.rosters.get_mut(org_id).ok_or_else(|| format!("no org {org_id}"))?;
        if roster.members.contains_key(user_id) {
            return Err(format!("user {user_id} is already a member of org {org_id}"));
        }
        roster.order.insert(seq, user_id.to_owned());
        roster.members.insert(user_id.to_owned(), (seq, role));
        Ok(())
    }

    /// A given id (must be a UUID) or a fresh one, lower case.
    pub(super) fn new_id(&self, given: Option<&str>) -> Result<String, String> {
        match given {
            Some(raw) => uuid::Uuid::parse_str(raw.trim())
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| format!("id {raw:?} is not a UUID")),
            None => Ok(uuid::Uuid::new_v4().hyphenated().to_string()),
        }
    }

    /// An org by slug or id, for seeds.
    pub(super) fn org_ref(&self, key: &str) -> Option<String> {
        let key = key.trim().to_lowercase();
        if self.orgs.contains_key(&key) {
            return Some(key);
        }
        let alias = key.strip_prefix("github/").map(|n| format!("gh/{n}"));
        let alias = alias.or_else(|| key.strip_prefix("bitbucket/").map(|n| format!("bb/{n}")));
        self.slugs.get(alias.as_deref().unwrap_or(&key)).cloned()
    }

    pub(super) fn user_by_login(&self, login: &str) -> Option<&User> {
        self.users.get(self.logins.get(&login.trim().to_lowercase())?)
    }

    pub(super) fn role_of(&self, org_id: &str, user_id: &str) -> Option<Role> {
        self.rosters.get(org_id)?.members.get(user_id).map(|(_, r)| *r)
    }

    /// The org named by a path segment, for a caller who must be its admin (the groups
    /// endpoints). Only an org UUID finds an org: a slug (or a name) is 404, like any unknown
    /// org.
    pub(super) fn admin_org(&self, caller: &Caller, raw: &str) -> Result<&Org, ApiError> {
        let org = self.orgs.get(&raw.to_ascii_lowercase()).ok_or_else(|| ApiError::no_such("Organization"))?;
        match self.role_of(&org.id, &caller.user_id) {
            Some(Role::Admin) => Ok(org),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// The token owner sees itself and everyone who shares one of its orgs.
    pub(super) fn can_see(&self, viewer: &str, target: &str) -> bool {
        viewer == target
            || self.rosters.values().any(|r| r.members.contains_key(viewer) && r.members.contains_key(target))
    }

    /// What `GET /_sim/state` shows: who is in which org and group, never a token.
    pub(super) fn snapshot_json(&self) -> Value {
        let mut orgs: Vec<&Org> = self.orgs.values().collect();
        orgs.sort_by_key(|o| o.seq);
        let mut users: Vec<&User> = self.users.values().collect();
        users.sort_by_key(|u| u.seq);
        let memberships: Vec<Value> = orgs
            .iter()
            .flat_map(|org| {
                let roster = self.rosters.get(&org.id);
                roster.into_iter().flat_map(move |r| {
                    r.order.values().filter_map(move |user_id| {
                        let (_, role) = r.members.get(user_id)?;
                        let user = self.users.get(user_id)?;
                        Some(json!({
                            "org_id": org.id,
                            "org_slug": org.slug,
                            "user_id": user.id,
                            "login": user.login,
                            "role": role.as_str(),
                        }))
                    })
                })
            })
            .collect();
        let groups: Vec<Value> = self
            .groups
            .values()
            .map(|g| {
                let members: Vec<Value> = g
                    .members
                    .iter()
                    .filter_map(|id| self.users.get(id))
                    .map(|u| json!({ "id": u.id, "login": u.login }))
                    .collect();
                json!({
                    "id": g.id,
                    "org_id": g.org_id,
                    "name": g.name,
                    "description": g.description,
                    "member_count": members.len(),
                    "members": members,
                })
            })
            .collect();
        json!({
            "orgs": orgs.iter().map(|o| json!({
                "id": o.id, "slug": o.slug, "name": o.name, "vcs_type": o.vcs_type,
            })).collect::<Vec<_>>(),
            "users": users.iter().map(|u| json!({
                "id": u.id, "login": u.login, "name": u.name, "has_token": u.token.is_some(),
            })).collect::<Vec<_>>(),
            "memberships": memberships,
            "groups": groups,
        })
    }
}
