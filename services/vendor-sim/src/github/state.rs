//! The GitHub tenant in memory: accounts, the one organization's members, invitations, teams and
//! outside collaborators, plus the two rate limits (primary per hour, secondary on writes per
//! minute), what `/_sim/state` shows and the `/_sim/config` knobs.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::model::{Caller, Invitation, InvitationState, OrgRole, Team, User};
use super::{ORG_ID, ORG_LOGIN};
use crate::ratelimit::Decision;
use crate::token::Token;
use crate::Config;

/// GitHub's primary limit for a personal access token: 5,000 requests an hour.
pub(super) const PRIMARY_LIMIT: u32 = 5000;
pub(super) const PRIMARY_WINDOW_SECS: u64 = 3600;
/// The secondary limit on content-creating requests: 80 a minute.
pub(super) const SECONDARY_WRITES_PER_MINUTE: u32 = 80;
pub(super) const SECONDARY_RETRY_AFTER_SECS: u64 = 60;

/// The knobs and counters of both limits, per user (GitHub counts per user, not per token).
#[derive(Clone, Debug)]
pub(super) struct Limits {
    pub(super) enabled: bool,
    pub(super) primary_limit: u32,
    pub(super) primary_window_secs: u64,
    pub(super) secondary_writes_per_minute: u32,
    pub(super) secondary_retry_after_secs: u64,
    /// User id -> (window start ms, requests counted).
    primary: HashMap<u64, (i64, u32)>,
    writes: HashMap<u64, (i64, u32)>,
}

/// What the limits say about one request.
pub(super) enum Verdict {
    /// Allowed; the primary limit's state after counting it.
    Allowed(Decision),
    /// The hour's budget is spent (403, remaining 0).
    Primary(Decision),
    /// Too many writes this minute (403 with retry-after).
    Secondary(Decision),
}

impl Limits {
    fn new(enabled: bool) -> Self {
        Limits {
            enabled,
            primary_limit: PRIMARY_LIMIT,
            primary_window_secs: PRIMARY_WINDOW_SECS,
            secondary_writes_per_minute: SECONDARY_WRITES_PER_MINUTE,
            secondary_retry_after_secs: SECONDARY_RETRY_AFTER_SECS,
            primary: HashMap::new(),
            writes: HashMap::new(),
        }
    }

    fn window_ms(&self) -> i64 {
        self.primary_window_secs as i64 * 1000
    }

    fn decision(&self, used: u32, window_start: i64, allowed: bool) -> Decision {
        let reset_at_ms = window_start + self.window_ms();
        Decision {
            allowed,
            limit: self.primary_limit,
            remaining: self.primary_limit.saturating_sub(used),
            reset_at_ms,
            daily_limit: None,
            daily_remaining: None,
            retry_at_ms: reset_at_ms,
        }
    }

    /// The primary limit's state for `user` without counting anything.
    pub(super) fn peek(&self, user: Option<u64>, now_ms: i64) -> Decision {
        let start = now_ms - now_ms.rem_euclid(self.window_ms());
        let used =
            user.and_then(|u| self.primary.get(&u)).filter(|(s, _)| self.enabled && *s == start).map_or(0, |(_, n)| *n);
        self.decision(used, start, true)
    }

    /// Count one request of `user` (a write also against the secondary limit).
    pub(super) fn check(&mut self, user: u64, write: bool, now_ms: i64) -> Verdict {
        if !self.enabled {
            return Verdict::Allowed(self.peek(None, now_ms));
        }
        let window = self.window_ms();
        let start = now_ms - now_ms.rem_euclid(window);
        let (limit, writes_limit) = (self.primary_limit, self.secondary_writes_per_minute);
        let usage = self.primary.entry(user).or_insert((start, 0));
        if usage.0 != start {
            *usage = (start, 0);
        }
        if usage.1 >= limit {
            let used = usage.1;
            return Verdict::Primary(Decision { remaining: 0, ..self.decision(used, start, false) });
        }
        usage.1 += 1;
        let used = usage.1;
        if write {
            let minute = now_ms - now_ms.rem_euclid(60_000);
            let w = self.writes.entry(user).or_insert((minute, 0));
            if w.0 != minute {
                *w = (minute, 0);
            }
            if w.1 >= writes_limit {
                return Verdict::Secondary(self.decision(used, start, false));
            }
            w.1 += 1;
        }
        Verdict::Allowed(self.decision(used, start, true))
    }

    /// Give back a request that did not count (a 304 Not Modified).
    pub(super) fn refund(&mut self, user: u64) {
        if let Some(usage) = self.primary.get_mut(&user) {
            usage.1 = usage.1.saturating_sub(1);
        }
    }

    pub(super) fn config_json(&self) -> Value {
        json!({
            "rate_limit": { "enabled": self.enabled },
            "primary_limit": self.primary_limit,
            "primary_window_secs": self.primary_window_secs,
            "secondary_writes_per_minute": self.secondary_writes_per_minute,
            "secondary_retry_after_secs": self.secondary_retry_after_secs,
        })
    }

    /// A partial update, checked in full before anything changes; counters start afresh.
    pub(super) fn configure(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(map) = patch else {
            return Err("expected an object like {\"primary_limit\": 5000}".into());
        };
        let mut next = self.clone();
        let positive = |knob: &str, v: &Value| -> Result<u64, String> {
            v.as_u64()
                .filter(|n| *n >= 1 && *n <= u64::from(u32::MAX))
                .ok_or(format!("{knob} must be a positive integer"))
        };
        for (knob, value) in &map {
            match knob.as_str() {
                "rate_limit" => {
                    let Value::Object(rl) = value else {
                        return Err("rate_limit must be an object like {\"enabled\": false}".into());
                    };
                    for (k, v) in rl {
                        match (k.as_str(), v.as_bool()) {
                            ("enabled", Some(b)) => next.enabled = b,
                            ("enabled", None) => return Err("rate_limit.enabled must be a boolean".into()),
                            (other, _) => {
                                return Err(format!(
                                    "unknown rate_limit knob {other:?} (known: enabled; the limits are primary_limit, \
                                     primary_window_secs, secondary_writes_per_minute)"
                                ))
                            }
                        }
                    }
                }
                "primary_limit" => next.primary_limit = positive(knob, value)? as u32,
                "primary_window_secs" => next.primary_window_secs = positive(knob, value)?,
                "secondary_writes_per_minute" => next.secondary_writes_per_minute = positive(knob, value)? as u32,
                "secondary_retry_after_secs" => next.secondary_retry_after_secs = positive(knob, value)?,
                other => {
                    return Err(format!(
                        "unknown knob {other:?} (known: rate_limit, primary_limit, primary_window_secs, \
                         secondary_writes_per_minute, secondary_retry_after_secs)"
                    ))
                }
            }
        }
        next.primary.clear();
        next.writes.clear();
        *self = next;
        Ok(())
    }
}

/// The GitHub tenant: one organization (`sim-org`) and the accounts around it.
#[derive(Clone, Debug)]
pub struct State {
    pub(super) users: BTreeMap<u64, User>,
    /// Lower-cased login -> user id (logins are case-insensitive on GitHub).
    pub(super) logins: HashMap<String, u64>,
    pub(super) tokens: HashMap<Token, u64>,
    /// The org's members (billing managers included) in joining order.
    pub(super) members: Vec<(u64, OrgRole)>,
    pub(super) invitations: BTreeMap<u64, Invitation>,
    pub(super) teams: BTreeMap<u64, Team>,
    /// Outside collaborators (user ids): repository access without membership.
    pub(super) outside: Vec<u64>,
    pub(super) next_user_id: u64,
    pub(super) next_team_id: u64,
    pub(super) next_invitation_id: u64,
    pub(super) limits: Limits,
}

impl State {
    pub(super) fn empty(config: &Config) -> Self {
        State {
            users: BTreeMap::new(),
            logins: HashMap::new(),
            tokens: HashMap::new(),
            members: Vec::new(),
            invitations: BTreeMap::new(),
            teams: BTreeMap::new(),
            outside: Vec::new(),
            next_user_id: 2001,
            next_team_id: 101,
            next_invitation_id: 5001,
            limits: Limits::new(!config.no_rate_limits),
        }
    }

    pub(super) fn user_by_login(&self, login: &str) -> Option<&User> {
        self.users.get(self.logins.get(&login.trim().to_lowercase())?)
    }

    pub(super) fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.values().find(|u| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email)))
    }

    pub(super) fn role_of(&self, user_id: u64) -> Option<OrgRole> {
        self.members.iter().find(|(id, _)| *id == user_id).map(|(_, r)| *r)
    }

    pub(super) fn admin_count(&self) -> usize {
        self.members.iter().filter(|(_, r)| *r == OrgRole::Admin).count()
    }

    /// The pending invitation that reaches this account (by id, or by an e-mail it has).
    pub(super) fn pending_for_user(&self, user: &User) -> Option<&Invitation> {
        self.invitations.values().find(|i| {
            i.state == InvitationState::Pending
                && (i.user_id == Some(user.id)
                    || (i.email.is_some()
                        && i.email.as_deref().map(str::to_lowercase) == user.email.as_deref().map(str::to_lowercase)))
        })
    }

    pub(super) fn pending_for_email(&self, email: &str) -> Option<&Invitation> {
        self.invitations.values().find(|i| {
            i.state == InvitationState::Pending
                && (i.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email))
                    || i.user_id
                        .and_then(|u| self.users.get(&u))
                        .and_then(|u| u.email.as_deref())
                        .is_some_and(|e| e.eq_ignore_ascii_case(email)))
        })
    }

    pub(super) fn team_by_slug(&self, slug: &str) -> Option<&Team> {
        self.teams.values().find(|t| t.slug.eq_ignore_ascii_case(slug))
    }

    pub(super) fn team_id_by_slug(&self, slug: &str) -> Option<u64> {
        self.team_by_slug(slug).map(|t| t.id)
    }

    /// Teams in the order teams/list gives them: by name.
    pub(super) fn teams_by_name(&self) -> Vec<&Team> {
        let mut teams: Vec<&Team> = self.teams.values().collect();
        teams.sort_by_key(|t| (t.name.to_lowercase(), t.id));
        teams
    }

    pub(super) fn authenticate(&self, token: &str) -> Option<Caller> {
        let user_id = *self.tokens.get(token)?;
        Some(Caller { user_id, role: self.role_of(user_id) })
    }

    pub(super) fn insert_user(
        &mut self,
        login: &str,
        name: Option<&str>,
        email: Option<&str>,
        id: Option<u64>,
        token: Option<Token>,
        created_at: &str,
    ) -> Result<u64, String> {
        let login = login.trim();
        if !valid_login(login) {
            return Err(format!(
                "login {login:?} is not a GitHub login (1 to 39 letters, digits or single hyphens, not at either end)"
            ));
        }
        if self.logins.contains_key(&login.to_lowercase()) {
            return Err(format!("a user with login {login:?} already exists"));
        }
        if let Some(e) = email {
            if !crate::extract::valid_email(e) {
                return Err(format!("{e:?} is not an e-mail address"));
            }
            if self.user_by_email(e).is_some() {
                return Err(format!("another account already has the e-mail {e}"));
            }
        }
        if let Some(t) = &token {
            if t.is_empty() || self.tokens.contains_key(t) {
                return Err(format!("{login}: token must be non-empty and unique"));
            }
        }
        let id = match id {
            Some(0) => return Err("ids start at 1".into()),
            Some(id) if self.users.contains_key(&id) || id == ORG_ID => {
                return Err(format!("id {id} is taken"));
            }
            Some(id) => id,
            None => {
                while self.users.contains_key(&self.next_user_id) {
                    self.next_user_id += 1;
                }
                self.next_user_id
            }
        };
        self.next_user_id = self.next_user_id.max(id + 1);
        if let Some(t) = &token {
            self.tokens.insert(t.clone(), id);
        }
        self.logins.insert(login.to_lowercase(), id);
        self.users.insert(
            id,
            User {
                id,
                login: login.to_owned(),
                name: name.map(str::to_owned),
                email: email.map(str::to_owned),
                two_factor: true,
                created_at: created_at.to_owned(),
                token,
            },
        );
        Ok(id)
    }

    /// Makes an account a member (or changes nothing and says so).
    pub(super) fn join(&mut self, user_id: u64, role: OrgRole) -> Result<(), String> {
        if self.role_of(user_id).is_some() {
            return Err(format!("user {user_id} is already a member of {ORG_LOGIN}"));
        }
        // A member is no longer an outside collaborator.
        self.outside.retain(|id| *id != user_id);
        self.members.push((user_id, role));
        Ok(())
    }

    /// Removes a member from the org and from every team.
    pub(super) fn leave(&mut self, user_id: u64) {
        self.members.retain(|(id, _)| *id != user_id);
        for team in self.teams.values_mut() {
            team.members.retain(|(id, _)| *id != user_id);
        }
    }

    pub(super) fn insert_team(
        &mut self,
        name: &str,
        slug: Option<&str>,
        description: Option<&str>,
        id: Option<u64>,
    ) -> Result<u64, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("a team needs a name".into());
        }
        let slug = slug.map_or_else(|| slugify(name), |s| s.trim().to_lowercase());
        if slug.is_empty() || !slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("slug {slug:?}: letters, digits, '-' and '_' only"));
        }
        if self.team_by_slug(&slug).is_some() || self.teams.values().any(|t| t.name.eq_ignore_ascii_case(name)) {
            return Err(format!("a team named {name:?} (slug {slug:?}) already exists"));
        }
        let id = match id {
            Some(0) => return Err("ids start at 1".into()),
            Some(id) if self.teams.contains_key(&id) => return Err(format!("team id {id} is taken")),
            Some(id) => id,
            None => {
                while self.teams.contains_key(&self.next_team_id) {
                    self.next_team_id += 1;
                }
                self.next_team_id
            }
        };
        self.next_team_id = self.next_team_id.max(id + 1);
        let description = description.map(str::to_owned);
        self.teams.insert(id, Team { id, slug, name: name.to_owned(), description, members: Vec::new() });
        Ok(id)
    }

    pub(super) fn new_invitation_id(&mut self) -> u64 {
        let id = self.next_invitation_id;
        self.next_invitation_id += 1;
        id
    }

    /// The invitee accepts (what they do on github.com): a member with the invited role, in the
    /// invitation's teams.
    pub(super) fn accept(&mut self, invitation_id: u64, user_id: u64) -> Result<(), String> {
        let inv = self.invitations.get(&invitation_id).ok_or("no such invitation")?.clone();
        self.join(user_id, inv.role.org_role())?;
        for team_id in &inv.team_ids {
            if let Some(team) = self.teams.get_mut(team_id) {
                if team.role_of(user_id).is_none() {
                    team.members.push((user_id, super::model::TeamRole::Member));
                }
            }
        }
        if let Some(i) = self.invitations.get_mut(&invitation_id) {
            i.state = InvitationState::Accepted;
            i.user_id = Some(user_id);
        }
        Ok(())
    }

    /// What `GET /_sim/state` shows: never a token.
    pub(super) fn snapshot_json(&self) -> Value {
        let login = |id: &u64| self.users.get(id).map(|u| u.login.clone());
        json!({
            "organization": { "login": ORG_LOGIN, "id": ORG_ID },
            "users": self.users.values().map(|u| json!({
                "id": u.id, "login": u.login, "name": u.name, "email": u.email,
                "two_factor": u.two_factor, "has_token": u.token.is_some(),
            })).collect::<Vec<_>>(),
            "members": self.members.iter().map(|(id, role)| json!({
                "id": id, "login": login(id), "role": role.as_str(),
            })).collect::<Vec<_>>(),
            "invitations": self.invitations.values().map(|i| json!({
                "id": i.id,
                "login": i.user_id.as_ref().and_then(login),
                "user_id": i.user_id,
                "email": i.email,
                "role": i.role.as_str(),
                "team_ids": i.team_ids,
                "teams": i.team_ids.iter().filter_map(|t| self.teams.get(t).map(|t| t.slug.clone())).collect::<Vec<_>>(),
                "created_at": i.created_at,
                "state": i.state.as_str(),
            })).collect::<Vec<_>>(),
            "teams": self.teams.values().map(|t| json!({
                "id": t.id, "slug": t.slug, "name": t.name, "description": t.description,
                "members": t.members.iter().map(|(id, role)| json!({
                    "id": id, "login": login(id), "role": role.as_str(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "outside_collaborators": self.outside.iter().map(|id| json!({
                "id": id, "login": login(id),
            })).collect::<Vec<_>>(),
        })
    }
}

/// GitHub's login rule: 1 to 39 characters, ASCII letters, digits and single hyphens, not
/// starting or ending with a hyphen.
pub(super) fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 39
        && login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--")
}

/// A team's slug as GitHub makes it from the name.
pub(super) fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}
