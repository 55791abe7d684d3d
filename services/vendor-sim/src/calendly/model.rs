//! Calendly's entities: accounts (which outlive memberships), the organization's memberships
//! and invitations, and how their UUIDs are made.

use crate::token::Token;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Owner,
    Admin,
    User,
}

impl Role {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    /// The `role` filter's values.
    pub(super) fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    pub(super) fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InvitationStatus {
    Pending,
    Accepted,
    Declined,
    Revoked,
}

impl InvitationStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Revoked => "revoked",
        }
    }

    /// The statuses the list endpoint filters on (revoked invitations are not listed).
    pub(super) fn listed(s: &str) -> Option<InvitationStatus> {
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
pub(super) struct User {
    pub(super) uuid: String,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) slug: String,
    pub(super) timezone: String,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) token: Option<Token>,
}

#[derive(Clone, Debug)]
pub(super) struct Membership {
    /// Creation order; what cursors point at.
    pub(super) seq: u64,
    pub(super) uuid: String,
    pub(super) user: String,
    pub(super) role: Role,
    pub(super) created_at: String,
    pub(super) updated_at: String,
}

#[derive(Clone, Debug)]
pub(super) struct Invitation {
    pub(super) seq: u64,
    pub(super) uuid: String,
    pub(super) email: String,
    pub(super) status: InvitationStatus,
    /// The account that accepted it.
    pub(super) user: Option<String>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) last_sent_at: String,
}

/// The authenticated caller, put in request extensions by the guard (`handlers.rs`).
#[derive(Clone, Debug)]
pub(super) struct Caller {
    pub(super) user: String,
    /// The caller's role in the organization; `None` when they are not a member.
    pub(super) role: Option<Role>,
}

/// `http://HOST:PORT/calendly`: the base URIs are built from, as the caller reached us.
#[derive(Clone, Debug)]
pub(super) struct Base(pub(super) String);

/// What a UUID identifies; part of how it is made, so kinds never collide.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Organization = 1,
    User = 2,
    Membership = 3,
    Invitation = 4,
}

/// 16 upper-case hex digits that look random but are deterministic and unique per (kind, n):
/// the splitmix64 finalizer is a bijection.
pub(super) fn make_uuid(kind: Kind, n: u64) -> String {
    let mut z = ((kind as u64) << 56) ^ n ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    format!("{z:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
