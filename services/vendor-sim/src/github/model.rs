//! GitHub's entities: user accounts (which exist whether or not they belong to the org), the
//! org's members with their role, invitations, teams with their members, and outside
//! collaborators.

use serde::Deserialize;

use crate::token::Token;

/// A GitHub account. Accounts exist independently of the organization.
#[derive(Clone, Debug)]
pub(super) struct User {
    pub(super) id: u64,
    pub(super) login: String,
    pub(super) name: Option<String>,
    /// The public e-mail on the profile; an e-mail invitation to it reaches this account.
    pub(super) email: Option<String>,
    pub(super) two_factor: bool,
    pub(super) created_at: String,
    pub(super) token: Option<Token>,
}

/// A role in the organization, as `org-membership.role` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum OrgRole {
    Admin,
    Member,
    /// Not an org member in GitHub's sense: absent from list-members, present in get-membership.
    BillingManager,
}

impl OrgRole {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
            OrgRole::BillingManager => "billing_manager",
        }
    }
}

/// The role an invitation grants, as `organization-invitation.role` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum InviteRole {
    Admin,
    DirectMember,
    BillingManager,
}

impl InviteRole {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            InviteRole::Admin => "admin",
            InviteRole::DirectMember => "direct_member",
            InviteRole::BillingManager => "billing_manager",
        }
    }

    /// The membership an accepted invitation gives (and what get-membership shows while pending).
    pub(super) fn org_role(self) -> OrgRole {
        match self {
            InviteRole::Admin => OrgRole::Admin,
            InviteRole::DirectMember => OrgRole::Member,
            InviteRole::BillingManager => OrgRole::BillingManager,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InvitationState {
    Pending,
    Accepted,
    Cancelled,
}

impl InvitationState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            InvitationState::Pending => "pending",
            InvitationState::Accepted => "accepted",
            InvitationState::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Invitation {
    pub(super) id: u64,
    /// The invitee's account: set when invited by id, or by an e-mail an account has.
    pub(super) user_id: Option<u64>,
    /// Set when invited by e-mail (null when invited by login, as GitHub shows it).
    pub(super) email: Option<String>,
    pub(super) role: InviteRole,
    pub(super) team_ids: Vec<u64>,
    pub(super) inviter_id: u64,
    pub(super) created_at: String,
    pub(super) state: InvitationState,
}

/// A member's role in a team, as `team-membership.role` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TeamRole {
    Member,
    Maintainer,
}

impl TeamRole {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            TeamRole::Member => "member",
            TeamRole::Maintainer => "maintainer",
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Team {
    pub(super) id: u64,
    pub(super) slug: String,
    pub(super) name: String,
    pub(super) description: Option<String>,
    /// Members in joining order.
    pub(super) members: Vec<(u64, TeamRole)>,
}

impl Team {
    pub(super) fn role_of(&self, user_id: u64) -> Option<TeamRole> {
        self.members.iter().find(|(id, _)| *id == user_id).map(|(_, r)| *r)
    }
}

/// The authenticated caller, put in request extensions by the guard.
#[derive(Clone, Debug)]
pub(super) struct Caller {
    pub(super) user_id: u64,
    /// The caller's role in the org, if any.
    pub(super) role: Option<OrgRole>,
}

impl Caller {
    pub(super) fn is_admin(&self) -> bool {
        self.role == Some(OrgRole::Admin)
    }
}
