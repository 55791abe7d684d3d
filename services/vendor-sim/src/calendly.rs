//! Calendly (`/calendly`): one organization, its memberships and invitations, and users.
//!
//! Faithful to `shared/vendor-guides/calendly.txt`, quirks included:
//! - auth is a Personal Access Token as `Authorization: Bearer`; a token belongs to a user;
//! - there is no "list users": `GET /users/me` gives the token owner and its
//!   `current_organization`; members are enumerated through `GET /organization_memberships`;
//! - both lists take an `email` filter (Calendly's API has it; the guide does not show it):
//!   `GET /organization_memberships?organization=<uri>&email=<address>` and
//!   `GET /organizations/{uuid}/invitations?email=<address>` answer only the items whose
//!   (member's) address is that one, compared case-insensitively, in the same paginated
//!   envelope; an empty `email` is an `Invalid Argument`;
//! - identifiers are full URIs built from the simulator's own base as the caller reached it
//!   (`http://HOST:PORT/calendly/users/AAAA`). Where a URI is expected (`organization` and `user`
//!   query parameters), a bare UUID is refused with Calendly's `Invalid Argument` error, and the
//!   organization URI must match exactly the one `/users/me` returned (anything else is a 404);
//! - listing memberships or invitations, inviting, revoking and removing need an admin or owner
//!   token (403 `Permission Denied` otherwise); `GET /users/{uuid}` needs the same organization or
//!   an admin;
//! - a user joins by invitation only: `POST /organizations/{uuid}/invitations` creates a *pending*
//!   invitation and no membership. The invitee "accepts" through the control API
//!   (`accept_invitations` in `/_sim/seed`), which creates the user (or reuses their account)
//!   and a `user` membership. Inviting a member or someone already invited is a 409;
//! - only pending invitations can be revoked (400 otherwise); revoked invitations disappear from
//!   listings (they stay in `/_sim/state` with status `revoked`);
//! - the owner's membership cannot be deleted (403); removing a membership keeps the user's
//!   Calendly account (it stays in `users`, with no organization);
//! - cursor pagination: `count` (default 20, at most 100; more is a 400) and an opaque
//!   `page_token`; `pagination` carries `count`, `next_page`, `next_page_token`,
//!   `previous_page`, `previous_page_token` (null when there is none). Cursors point *after an
//!   item*, so deleting while paging does not skip anyone;
//! - 60 requests per minute per token (120 on the enterprise plan), in windows aligned to the
//!   minute; every authenticated response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//!   `X-RateLimit-Reset` (seconds until the window resets, a delta); a 429 adds `Retry-After`
//!   (seconds);
//! - errors are `{"title", "message", "details"?: [{"parameter", "message"}]}`.
//!
//! UUIDs are 16 upper-case hex digits, distinct across kinds (a user's UUID is never a
//! membership's), so a client mixing up kinds of ids does not pass a test by accident.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State as AxState};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::http::{bearer, valid_email, Op};
use crate::ratelimit::{Decision, Limiter, RateLimitConfig, RateLimitStyle};
use crate::registry::{self, Vendor, VendorSim};
use crate::sim::{now_ms, rfc3339_ms, Sim};
use crate::{Config, Fixture};

const VENDOR: Vendor = Vendor::Calendly;

pub const DEFAULT_ADMIN_TOKEN: &str = "calendly-admin-token";
/// The token owner: an admin member of the organization; survives every reset.
pub const ADMIN_NAME: &str = "Sim Admin";
pub const ADMIN_EMAIL: &str = "admin@sim.example";
/// The organization's owner; survives every reset and cannot be removed.
pub const OWNER_NAME: &str = "Sim Owner";
pub const OWNER_EMAIL: &str = "owner@sim.example";
const ORG_NAME: &str = "Sim Organization";

const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;
const WINDOW_MS: u64 = 60_000;

// ---------------------------------------------------------------------------------------------
// Flags

/// Calendly's plan tier: it sets the rate limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Free, Standard and Teams: 60 requests per minute.
    #[default]
    Standard,
    /// 120 requests per minute.
    Enterprise,
}

impl Plan {
    pub fn requests_per_minute(self) -> u32 {
        match self {
            Plan::Standard => 60,
            Plan::Enterprise => 120,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Plan::Standard => "standard",
            Plan::Enterprise => "enterprise",
        }
    }
}

/// Calendly's start-up flags. The group and argument ids are prefixed: every vendor's flags
/// are flattened into one command, which needs unique ids.
#[derive(Clone, clap::Args)]
#[group(id = "calendly_flags")]
pub struct Flags {
    /// Personal access token of the organization's built-in admin ("Sim Admin"). Never logged.
    #[arg(
        id = "calendly_admin_token",
        long = "calendly-admin-token",
        value_name = "TOKEN",
        env = "SIM_CALENDLY_ADMIN_TOKEN",
        default_value = DEFAULT_ADMIN_TOKEN,
        hide_env_values = true
    )]
    pub admin_token: String,

    /// The organization's plan: `standard` (60 requests per minute) or `enterprise` (120).
    #[arg(
        id = "calendly_plan",
        long = "calendly-plan",
        value_name = "PLAN",
        env = "SIM_CALENDLY_PLAN",
        value_enum,
        default_value_t = Plan::Standard
    )]
    pub plan: Plan,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { admin_token: DEFAULT_ADMIN_TOKEN.to_owned(), plan: Plan::Standard }
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags").field("admin_token", &"<redacted>").field("plan", &self.plan).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Owner,
    Admin,
    User,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvitationStatus {
    Pending,
    Accepted,
    Declined,
    Revoked,
}

impl InvitationStatus {
    fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Revoked => "revoked",
        }
    }

    /// The statuses the list endpoint filters on (revoked invitations are not listed).
    fn listed(s: &str) -> Option<InvitationStatus> {
        match s {
            "pending" => Some(InvitationStatus::Pending),
            "accepted" => Some(InvitationStatus::Accepted),
            "declined" => Some(InvitationStatus::Declined),
            _ => None,
        }
    }
}

/// A Calendly account. Accounts outlive memberships.
#[derive(Clone, Debug)]
struct User {
    uuid: String,
    name: String,
    email: String,
    slug: String,
    timezone: String,
    created_at: String,
    updated_at: String,
    token: Option<String>,
}

#[derive(Clone, Debug)]
struct Membership {
    /// Creation order; what cursors point at.
    seq: u64,
    uuid: String,
    user: String,
    role: Role,
    created_at: String,
    updated_at: String,
}

#[derive(Clone, Debug)]
struct Invitation {
    seq: u64,
    uuid: String,
    email: String,
    status: InvitationStatus,
    /// The account that accepted it.
    user: Option<String>,
    created_at: String,
    updated_at: String,
    last_sent_at: String,
}

/// The authenticated caller, put in request extensions by [`guard`].
#[derive(Clone, Debug)]
struct Caller {
    user: String,
    /// The caller's role in the organization; `None` when they are not a member.
    role: Option<Role>,
}

impl Caller {
    fn require_manager(&self) -> Result<(), ApiError> {
        if self.role.is_some_and(Role::manages) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// `http://HOST:PORT/calendly`: the base URIs are built from, as the caller reached us.
#[derive(Clone, Debug)]
struct Base(String);

// ---------------------------------------------------------------------------------------------
// State

/// The Calendly tenant: one organization.
#[derive(Clone, Debug)]
pub struct State {
    org_uuid: String,
    org_created_at: String,
    plan: Plan,
    users: BTreeMap<String, User>,
    /// Lower-cased email -> user uuid.
    emails: HashMap<String, String>,
    /// Token -> user uuid.
    tokens: HashMap<String, String>,
    /// By `seq`, i.e. in creation order.
    memberships: BTreeMap<u64, Membership>,
    invitations: BTreeMap<u64, Invitation>,
    next_seq: u64,
    limiter: Limiter,
    /// The base of the most recent request, for rendering URIs in `/_sim/state` and seeds.
    base: String,
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let now = rfc3339_ms(now_ms());
        let plan = config.calendly.plan;
        let mut state = State {
            org_uuid: make_uuid(Kind::Organization, 1),
            org_created_at: now.clone(),
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
        };
        // The owner and the token owner exist in every fixture: an organization always has an
        // owner, and the admin owns the credential.
        let owner = state.insert_user(OWNER_NAME, OWNER_EMAIL, None, &now);
        state.insert_membership(&owner, Role::Owner, &now);
        let admin = state.insert_user(ADMIN_NAME, ADMIN_EMAIL, Some(config.calendly.admin_token.clone()), &now);
        state.insert_membership(&admin, Role::Admin, &now);
        if fixture == Fixture::Default {
            let grace = state.insert_user("Grace Hopper", "grace@example.com", None, &now);
            state.insert_membership(&grace, Role::User, &now);
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: Seed| state.apply_seed(seed))
    }

    fn snapshot(&self) -> Value {
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

    fn config(&self) -> Value {
        json!({ "plan": self.plan.as_str(), "rate_limit": self.limiter.config() })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
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

    fn injected_error(&self, _uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let decision = self.limiter.exhausted(bearer(headers).as_deref(), now_ms);
            return CalendlyLimits::rejection(&decision, now_ms);
        }
        ApiError::for_status(status).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        Router::new()
            .route("/users/me", get(me))
            .route("/users/{uuid}", get(get_user))
            .route("/organization_memberships", get(list_memberships))
            .route("/organization_memberships/{uuid}", get(get_membership).delete(remove_membership))
            .route("/organizations/{uuid}/invitations", get(list_invitations).post(invite))
            .route("/organizations/{org_uuid}/invitations/{uuid}", delete(revoke_invitation))
            .route_layer(from_fn_with_state(sim, guard))
            .method_not_allowed_fallback(|| async {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "This method is not allowed.")
            })
            .fallback(|| async { ApiError::not_found() })
    }
}

/// What a UUID identifies; part of how it is made, so kinds never collide.
#[derive(Clone, Copy)]
enum Kind {
    Organization = 1,
    User = 2,
    Membership = 3,
    Invitation = 4,
}

/// 16 upper-case hex digits that look random but are deterministic and unique per (kind, n):
/// the splitmix64 finalizer is a bijection.
fn make_uuid(kind: Kind, n: u64) -> String {
    let mut z = ((kind as u64) << 56) ^ n ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    format!("{z:016X}")
}

fn org_uri(base: &str, uuid: &str) -> String {
    format!("{base}/organizations/{uuid}")
}

fn user_uri(base: &str, uuid: &str) -> String {
    format!("{base}/users/{uuid}")
}

fn membership_uri(base: &str, uuid: &str) -> String {
    format!("{base}/organization_memberships/{uuid}")
}

fn invitation_uri(base: &str, org: &str, uuid: &str) -> String {
    format!("{base}/organizations/{org}/invitations/{uuid}")
}

impl State {
    /// For in-process tests: the organization gets a new identity (as when the token's user
    /// now belongs to another organization), its members and invitations kept. A URI a
    /// client cached from `/users/me` is then a 404; `/users/me` gives the new one.
    pub fn change_organization(&mut self) {
        let seq = self.take_seq();
        self.org_uuid = make_uuid(Kind::Organization, seq);
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn insert_user(&mut self, name: &str, email: &str, token: Option<String>, now: &str) -> String {
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

    fn insert_membership(&mut self, user: &str, role: Role, now: &str) -> u64 {
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

    fn insert_invitation(&mut self, email: &str, status: InvitationStatus, now: &str) -> u64 {
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

    fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.get(self.emails.get(&email.to_lowercase())?)
    }

    fn membership_of(&self, user: &str) -> Option<&Membership> {
        self.memberships.values().find(|m| m.user == user)
    }

    fn membership_by_email(&self, email: &str) -> Option<&Membership> {
        self.user_by_email(email).and_then(|u| self.membership_of(&u.uuid))
    }

    fn membership_by_uuid(&self, uuid: &str) -> Option<&Membership> {
        self.memberships.values().find(|m| m.uuid == uuid)
    }

    fn pending_invitation(&self, email: &str) -> Option<&Invitation> {
        self.invitations.values().find(|i| i.status == InvitationStatus::Pending && i.email.eq_ignore_ascii_case(email))
    }

    fn authenticate(&self, token: &str) -> Option<Caller> {
        let user = self.users.get(self.tokens.get(token)?)?;
        Some(Caller { user: user.uuid.clone(), role: self.membership_of(&user.uuid).map(|m| m.role) })
    }

    fn user_json(&self, base: &str, u: &User) -> Value {
        let mut v = self.nested_user_json(base, u);
        v["current_organization"] =
            self.membership_of(&u.uuid).map_or(Value::Null, |_| org_uri(base, &self.org_uuid).into());
        v["resource_type"] = "User".into();
        v
    }

    /// A user as nested in a membership.
    fn nested_user_json(&self, base: &str, u: &User) -> Value {
        json!({
            "uri": user_uri(base, &u.uuid),
            "name": u.name,
            "slug": u.slug,
            "email": u.email,
            "scheduling_url": format!("{base}/scheduling/{}", u.slug),
            "timezone": u.timezone,
            "avatar_url": null,
            "locale": "en",
            "created_at": u.created_at,
            "updated_at": u.updated_at,
        })
    }

    fn membership_json(&self, base: &str, m: &Membership) -> Value {
        let user = &self.users[&m.user];
        json!({
            "uri": membership_uri(base, &m.uuid),
            "role": m.role.as_str(),
            "user": self.nested_user_json(base, user),
            "organization": org_uri(base, &self.org_uuid),
            "created_at": m.created_at,
            "updated_at": m.updated_at,
        })
    }

    fn invitation_json(&self, base: &str, i: &Invitation) -> Value {
        let mut v = json!({
            "uri": invitation_uri(base, &self.org_uuid, &i.uuid),
            "organization": org_uri(base, &self.org_uuid),
            "email": i.email,
            "status": i.status.as_str(),
            "created_at": i.created_at,
            "updated_at": i.updated_at,
            "last_sent_at": i.last_sent_at,
        });
        if let Some(user) = &i.user {
            v["user"] = user_uri(base, user).into();
        }
        v
    }

    /// The invitee accepts: their account (existing or new) becomes a `user` member.
    fn accept(&mut self, email: &str, name: Option<String>, now: &str) -> Result<u64, String> {
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

    fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
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

fn slugify(name: &str, uuid: &str) -> String {
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
fn name_from_email(email: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// Seed format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    members: Vec<SeedMember>,
    #[serde(default)]
    invitations: Vec<SeedInvitation>,
    #[serde(default)]
    accept_invitations: Vec<Accept>,
    #[serde(default)]
    decline_invitations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedMember {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedInvitation {
    email: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Accept {
    Email(String),
    Person {
        email: String,
        #[serde(default)]
        name: Option<String>,
    },
}

// ---------------------------------------------------------------------------------------------
// Errors and request helpers

/// A Calendly error: `{"title", "message", "details"?}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    title: &'static str,
    message: String,
    details: Vec<(String, String)>,
}

impl ApiError {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, title, message: message.into(), details: Vec::new() }
    }

    fn invalid(parameter: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid Argument",
            message: "The supplied parameters are invalid.".into(),
            details: vec![(parameter.to_owned(), message.into())],
        }
    }

    fn unauthenticated() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthenticated", "The access token is invalid")
    }

    fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Permission Denied", "You do not have permission to access this resource.")
    }

    fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Resource Not Found", "The server could not find the requested resource.")
    }

    fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => ApiError::unauthenticated(),
            403 => ApiError::forbidden(),
            404 => ApiError::not_found(),
            400 => ApiError::new(status, "Invalid Argument", "The supplied parameters are invalid."),
            s if s >= 500 => ApiError::new(
                status,
                "Internal Server Error",
                "The server encountered an unexpected condition that prevented it from fulfilling the request.",
            ),
            _ => ApiError::new(status, "Error", status.canonical_reason().unwrap_or("Error")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "title": self.title, "message": self.message });
        if !self.details.is_empty() {
            body["details"] = self.details.iter().map(|(p, m)| json!({ "parameter": p, "message": m })).collect();
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn resource(value: Value) -> Response {
    Json(json!({ "resource": value })).into_response()
}

/// The query string as pairs, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Invalid Argument", "The query string is malformed."))
    }
}

/// `http://HOST/calendly`, from the `Host` the caller used.
fn request_base(headers: &HeaderMap, config: &Config) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(|| config.listen.to_string(), str::to_owned);
    format!("http://{host}{}", VENDOR.prefix())
}

/// Where a full URI is expected: a bare UUID (or anything that is not an absolute http(s) URI)
/// is an Invalid Argument.
fn expect_uri<'a>(parameter: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(r) if r.contains('/') && !r.starts_with('/') => Ok(value),
        _ => Err(ApiError::invalid(parameter, "must be a valid URI (a full resource URI, not a bare UUID)")),
    }
}

/// The `email` filter of the two lists, lower-cased for a case-insensitive exact match.
fn email_filter(params: &Params) -> Result<Option<String>, ApiError> {
    match params.get("email") {
        None => Ok(None),
        Some(e) if e.trim().is_empty() => Err(ApiError::invalid("email", "must not be empty")),
        Some(e) => Ok(Some(e.to_lowercase())),
    }
}

/// Percent-encodes a query component (everything but RFC 3986 unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pagination

const TOKEN_SALT: u64 = 0x5DEE_CE66_D1CE_4E5B;

/// Where a page starts: after an item, before an item, or at the beginning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    Start,
    After(u64),
    Before(u64),
}

/// Opaque page tokens, bound to one list (`m` memberships, `i` invitations).
fn encode_token(list: char, cursor: Cursor) -> String {
    let (dir, seq) = match cursor {
        Cursor::After(s) => ('n', s),
        Cursor::Before(s) => ('p', s),
        Cursor::Start => ('n', 0),
    };
    format!("{list}{dir}{:016x}", seq ^ TOKEN_SALT)
}

fn decode_token(list: char, token: &str) -> Option<Cursor> {
    let mut chars = token.chars();
    if chars.next()? != list {
        return None;
    }
    let dir = chars.next()?;
    let hex = chars.as_str();
    if hex.len() != 16 {
        return None;
    }
    let seq = u64::from_str_radix(hex, 16).ok()? ^ TOKEN_SALT;
    match dir {
        'n' => Some(Cursor::After(seq)),
        'p' => Some(Cursor::Before(seq)),
        _ => None,
    }
}

struct PageReq {
    list: char,
    count: usize,
    cursor: Cursor,
}

impl PageReq {
    fn parse(list: char, params: &Params) -> Result<Self, ApiError> {
        let count = match params.get("count") {
            None | Some("") => DEFAULT_COUNT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|c| (1..=MAX_COUNT).contains(c))
                .ok_or_else(|| ApiError::invalid("count", format!("must be an integer from 1 to {MAX_COUNT}")))?,
        };
        let cursor = match params.get("page_token") {
            None | Some("") => Cursor::Start,
            Some(raw) => decode_token(list, raw).ok_or_else(|| ApiError::invalid("page_token", "is invalid"))?,
        };
        Ok(PageReq { list, count, cursor })
    }

    /// One page of `items` (in `seq` order) in Calendly's collection envelope.
    fn respond<T>(
        &self,
        items: &[&T],
        seq: impl Fn(&T) -> u64,
        render: impl Fn(&T) -> Value,
        base: &str,
        path: &str,
        params: &Params,
    ) -> Response {
        let page: Vec<&T> = match self.cursor {
            Cursor::Start => items.iter().take(self.count).copied().collect(),
            Cursor::After(after) => items.iter().filter(|i| seq(i) > after).take(self.count).copied().collect(),
            Cursor::Before(before) => {
                let earlier: Vec<&T> = items.iter().filter(|i| seq(i) < before).copied().collect();
                earlier[earlier.len().saturating_sub(self.count)..].to_vec()
            }
        };
        let next = page.last().map(|l| seq(l)).filter(|last| items.iter().any(|i| seq(i) > *last));
        let previous = page.first().map(|f| seq(f)).filter(|first| items.iter().any(|i| seq(i) < *first));
        let next_token = next.map(|s| encode_token(self.list, Cursor::After(s)));
        let previous_token = previous.map(|s| encode_token(self.list, Cursor::Before(s)));
        let link = |token: &Option<String>| -> Value {
            match token {
                None => Value::Null,
                Some(t) => {
                    let mut query: Vec<String> = params
                        .0
                        .iter()
                        .filter(|(k, _)| k != "page_token" && k != "count")
                        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                        .collect();
                    query.insert(0, format!("count={}", self.count));
                    query.push(format!("page_token={}", encode(t)));
                    format!("{base}{path}?{}", query.join("&")).into()
                }
            }
        };
        let collection: Vec<Value> = page.iter().map(|i| render(i)).collect();
        Json(json!({
            "collection": collection,
            "pagination": {
                "count": collection.len(),
                "next_page": link(&next_token),
                "next_page_token": next_token,
                "previous_page": link(&previous_token),
                "previous_page_token": previous_token,
            },
        }))
        .into_response()
    }
}

// ---------------------------------------------------------------------------------------------
// Auth and rate limiting

/// How Calendly renders rate-limit decisions: a per-minute window, `X-RateLimit-Reset` in
/// seconds from now, and `Retry-After` on a 429.
pub struct CalendlyLimits;

impl RateLimitStyle for CalendlyLimits {
    fn headers(d: &Decision, now_ms: i64, headers: &mut HeaderMap) {
        let reset_in = ((d.reset_at_ms - now_ms).max(0) + 999) / 1000;
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset_in));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "You have exceeded the rate limit for this access token. Please wait before retrying.",
        )
        .into_response();
        Self::headers(d, now_ms, response.headers_mut());
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs(now_ms)));
        response
    }
}

/// Authenticate, then rate-limit per token; every response after auth gets the headers.
async fn guard(AxState(sim): AxState<Sim>, mut req: Request, next: Next) -> Response {
    let token = bearer(req.headers());
    let base = request_base(req.headers(), sim.config());
    let now = now_ms();
    let (caller, decision) = {
        let mut world = sim.lock();
        let cal = &mut world.tenants.calendly;
        if cal.base != base {
            cal.base.clone_from(&base);
        }
        let Some((token, caller)) = token.as_deref().and_then(|t| cal.authenticate(t).map(|c| (t, c))) else {
            return ApiError::unauthenticated().into_response();
        };
        (caller, cal.limiter.check(token, now))
    };
    if !decision.allowed {
        return CalendlyLimits::rejection(&decision, now);
    }
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(Base(base));
    let mut response = next.run(req).await;
    CalendlyLimits::headers(&decision, now, response.headers_mut());
    response
}

// ---------------------------------------------------------------------------------------------
// Handlers: users

async fn me(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
) -> ApiResult {
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    let user = cal.users.get(&caller.user).ok_or_else(ApiError::unauthenticated)?;
    Ok(resource(cal.user_json(&base, user)))
}

async fn get_user(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(uuid): Path<String>,
) -> ApiResult {
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    let user = cal.users.get(&uuid).ok_or_else(ApiError::not_found)?;
    // Admins see anyone; others only people of their own organization.
    let same_org = caller.role.is_some() && cal.membership_of(&uuid).is_some();
    if !(caller.role.is_some_and(Role::manages) || same_org || caller.user == uuid) {
        return Err(ApiError::forbidden());
    }
    Ok(resource(cal.user_json(&base, user)))
}

// ---------------------------------------------------------------------------------------------
// Handlers: memberships

async fn list_memberships(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    params: Params,
) -> ApiResult {
    let page = PageReq::parse('m', &params)?;
    let organization = params.get("organization").map(|o| expect_uri("organization", o)).transpose()?;
    let user = params.get("user").map(|u| expect_uri("user", u)).transpose()?;
    let email = email_filter(&params)?;
    if organization.is_none() && user.is_none() {
        return Err(ApiError::invalid("organization", "is required (or user)"));
    }
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    if let Some(org) = organization {
        // Must match exactly the URI /users/me returned.
        if org != org_uri(&base, &cal.org_uuid) {
            return Err(ApiError::not_found());
        }
        caller.require_manager()?;
    }
    let user_uuid = match user {
        None => None,
        Some(u) => {
            let found = cal.users.keys().find(|uuid| user_uri(&base, uuid) == u).cloned();
            // Only managers may look at other people's memberships.
            if found.as_deref() != Some(caller.user.as_str()) {
                caller.require_manager()?;
            }
            Some(found.unwrap_or_default())
        }
    };
    let items: Vec<&Membership> = cal
        .memberships
        .values()
        .filter(|m| user_uuid.as_ref().is_none_or(|u| &m.user == u))
        .filter(|m| email.as_ref().is_none_or(|e| cal.users[&m.user].email.to_lowercase() == *e))
        .collect();
    Ok(page.respond(&items, |m| m.seq, |m| cal.membership_json(&base, m), &base, "/organization_memberships", &params))
}

async fn get_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(uuid): Path<String>,
) -> ApiResult {
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    let m = cal.membership_by_uuid(&uuid).ok_or_else(ApiError::not_found)?;
    if m.user != caller.user {
        caller.require_manager()?;
    }
    Ok(resource(cal.membership_json(&base, m)))
}

async fn remove_membership(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path(uuid): Path<String>,
    op: Op,
) -> ApiResult {
    caller.require_manager()?;
    let mut world = sim.lock();
    let world = &mut *world;
    let cal = &mut world.tenants.calendly;
    let m = cal.membership_by_uuid(&uuid).ok_or_else(ApiError::not_found)?.clone();
    if m.role == Role::Owner {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Permission Denied",
            "The owner of the organization cannot be removed. Transfer ownership first.",
        ));
    }
    cal.memberships.remove(&m.seq);
    // The Calendly account stays; only the membership goes.
    let user = &cal.users[&m.user];
    let mut details = Map::new();
    details.insert("membership_uuid".into(), m.uuid.clone().into());
    details.insert("user_uuid".into(), m.user.clone().into());
    details.insert("email".into(), user.email.clone().into());
    details.insert("role".into(), m.role.as_str().into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "membership.delete", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Handlers: invitations

async fn list_invitations(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org): Path<String>,
    params: Params,
) -> ApiResult {
    let page = PageReq::parse('i', &params)?;
    let status = match params.get("status") {
        None | Some("") => None,
        Some(s) => Some(
            InvitationStatus::listed(s)
                .ok_or_else(|| ApiError::invalid("status", "must be one of pending, accepted, declined"))?,
        ),
    };
    let email = email_filter(&params)?;
    let world = sim.lock();
    let cal = &world.tenants.calendly;
    if org != cal.org_uuid {
        return Err(ApiError::not_found());
    }
    caller.require_manager()?;
    let items: Vec<&Invitation> = cal
        .invitations
        .values()
        .filter(|i| i.status != InvitationStatus::Revoked && status.is_none_or(|s| i.status == s))
        .filter(|i| email.as_ref().is_none_or(|e| i.email.to_lowercase() == *e))
        .collect();
    let path = format!("/organizations/{org}/invitations");
    Ok(page.respond(&items, |i| i.seq, |i| cal.invitation_json(&base, i), &base, &path, &params))
}

async fn invite(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Extension(Base(base)): Extension<Base>,
    Path(org): Path<String>,
    op: Op,
    body: Bytes,
) -> ApiResult {
    let email = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(obj)) => match obj.get("email") {
            Some(Value::String(e)) if valid_email(e.trim()) => e.trim().to_owned(),
            Some(Value::String(_)) => return Err(ApiError::invalid("email", "is not a valid email address")),
            None | Some(Value::Null) => return Err(ApiError::invalid("email", "is required")),
            Some(_) => return Err(ApiError::invalid("email", "must be a string")),
        },
        Ok(_) => return Err(ApiError::invalid("body", "must be a JSON object")),
        Err(_) => return Err(ApiError::invalid("body", "is not valid JSON")),
    };
    let mut world = sim.lock();
    let world = &mut *world;
    let cal = &mut world.tenants.calendly;
    if org != cal.org_uuid {
        return Err(ApiError::not_found());
    }
    caller.require_manager()?;
    if cal.membership_by_email(&email).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Already a Member",
            format!("{email} is already a member of this organization."),
        ));
    }
    if cal.pending_invitation(&email).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Already Invited",
            format!("{email} already has a pending invitation to this organization."),
        ));
    }
    let now = rfc3339_ms(now_ms());
    let seq = cal.insert_invitation(&email, InvitationStatus::Pending, &now);
    let inv = &cal.invitations[&seq];
    let data = cal.invitation_json(&base, inv);
    let mut details = Map::new();
    details.insert("invitation_uuid".into(), inv.uuid.clone().into());
    details.insert("email".into(), email.into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "invitation.create", details);
    Ok((StatusCode::CREATED, Json(json!({ "resource": data }))).into_response())
}

async fn revoke_invitation(
    AxState(sim): AxState<Sim>,
    Extension(caller): Extension<Caller>,
    Path((org, uuid)): Path<(String, String)>,
    op: Op,
) -> ApiResult {
    let mut world = sim.lock();
    let world = &mut *world;
    let cal = &mut world.tenants.calendly;
    if org != cal.org_uuid {
        return Err(ApiError::not_found());
    }
    caller.require_manager()?;
    let inv = cal
        .invitations
        .values_mut()
        .find(|i| i.uuid == uuid && i.status != InvitationStatus::Revoked)
        .ok_or_else(ApiError::not_found)?;
    if inv.status != InvitationStatus::Pending {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid Argument",
            message: format!(
                "Only pending invitations can be revoked; this invitation is {}. Remove the membership instead.",
                inv.status.as_str()
            ),
            details: Vec::new(),
        });
    }
    inv.status = InvitationStatus::Revoked;
    inv.updated_at = rfc3339_ms(now_ms());
    let mut details = Map::new();
    details.insert("invitation_uuid".into(), inv.uuid.clone().into());
    details.insert("email".into(), inv.email.clone().into());
    world.journal.mutation(VENDOR, &op.method, &op.path, "invitation.revoke", details);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn uuids_are_distinct_across_kinds() {
        let mut seen = std::collections::HashSet::new();
        for kind in [Kind::Organization, Kind::User, Kind::Membership, Kind::Invitation] {
            for n in 0..1000 {
                let id = make_uuid(kind, n);
                assert_eq!(id.len(), 16);
                assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
                assert!(seen.insert(id));
            }
        }
    }

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_list() {
        for cursor in [Cursor::After(7), Cursor::Before(123_456)] {
            let t = encode_token('m', cursor);
            assert_eq!(decode_token('m', &t), Some(cursor));
            assert_eq!(decode_token('i', &t), None);
        }
        assert_eq!(decode_token('m', "mn123"), None);
        assert_eq!(decode_token('m', "garbage-garbage-garbage"), None);
    }

    #[test]
    fn bare_uuids_are_not_uris() {
        assert!(expect_uri("organization", "BBBBBBBBBBBBBBBB").is_err());
        assert!(expect_uri("organization", "http://").is_err());
        assert!(expect_uri("organization", "http://h:1/calendly/organizations/B").is_ok());
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

    #[test]
    fn plan_knob_sets_the_limit_and_rate_limit_refines_it() {
        let mut s = state();
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
