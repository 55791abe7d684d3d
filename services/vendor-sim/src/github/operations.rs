//! GitHub's operations as its published definition has them: each one's query parameters
//! ([`OPERATIONS`], [`check_query`]) and request body fields ([`check_body`]).

use axum::body::Bytes;
use serde_json::{Map, Value};

use super::wire::{ApiError, Params, MAX_PER_PAGE};
use crate::extract::{self};

/// A query parameter's schema in the definition.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    /// `per-page`: an integer; the simulator refuses values outside 1..=100.
    PerPage,
    /// `page`: a 1-based integer.
    Page,
    /// A string with an enum.
    Enum(&'static [&'static str]),
}

pub(super) struct Operation {
    pub(super) method: &'static str,
    pub(super) route: &'static str,
    pub(super) id: &'static str,
    /// The `resource` named in a 422 about this operation's input.
    pub(super) resource: &'static str,
    pub(super) query: &'static [(&'static str, Kind)],
}

const PAGED: [(&str, Kind); 2] = [("per_page", Kind::PerPage), ("page", Kind::Page)];
const TWO_FA: Kind = Kind::Enum(&["2fa_disabled", "2fa_insecure", "all"]);

/// The 17 operations of the definition the simulator plays, by operationId.
pub(super) const OPERATIONS: &[Operation] = &[
    Operation { method: "GET", route: "/user", id: "users/get-authenticated", resource: "User", query: &[] },
    Operation { method: "GET", route: "/users/{username}", id: "users/get-by-username", resource: "User", query: &[] },
    Operation {
        method: "GET",
        route: "/orgs/{org}/members",
        id: "orgs/list-members",
        resource: "Organization",
        query: &[("filter", TWO_FA), ("role", Kind::Enum(&["all", "admin", "member"])), PAGED[0], PAGED[1]],
    },
    Operation {
        method: "GET",
        route: "/orgs/{org}/memberships/{username}",
        id: "orgs/get-membership-for-user",
        resource: "OrganizationMembership",
        query: &[],
    },
    Operation {
        method: "PUT",
        route: "/orgs/{org}/memberships/{username}",
        id: "orgs/set-membership-for-user",
        resource: "OrganizationMembership",
        query: &[],
    },
    Operation {
        method: "DELETE",
        route: "/orgs/{org}/memberships/{username}",
        id: "orgs/remove-membership-for-user",
        resource: "OrganizationMembership",
        query: &[],
    },
    Operation {
        method: "GET",
        route: "/orgs/{org}/invitations",
        id: "orgs/list-pending-invitations",
        resource: "OrganizationInvitation",
        query: &[
            PAGED[0],
            PAGED[1],
            ("role", Kind::Enum(&["all", "admin", "direct_member", "billing_manager", "hiring_manager"])),
            ("invitation_source", Kind::Enum(&["all", "member", "scim"])),
        ],
    },
    Operation {
        method: "POST",
        route: "/orgs/{org}/invitations",
        id: "orgs/create-invitation",
        resource: "OrganizationInvitation",
        query: &[],
    },
    Operation {
        method: "DELETE",
        route: "/orgs/{org}/invitations/{invitation_id}",
        id: "orgs/cancel-invitation",
        resource: "OrganizationInvitation",
        query: &[],
    },
    Operation {
        method: "GET",
        route: "/orgs/{org}/invitations/{invitation_id}/teams",
        id: "orgs/list-invitation-teams",
        resource: "OrganizationInvitation",
        query: &PAGED,
    },
    Operation {
        method: "GET",
        route: "/orgs/{org}/outside_collaborators",
        id: "orgs/list-outside-collaborators",
        resource: "Organization",
        query: &[("filter", TWO_FA), PAGED[0], PAGED[1]],
    },
    Operation {
        method: "DELETE",
        route: "/orgs/{org}/outside_collaborators/{username}",
        id: "orgs/remove-outside-collaborator",
        resource: "Organization",
        query: &[],
    },
    Operation {
        method: "GET",
        route: "/orgs/{org}/teams",
        id: "teams/list",
        resource: "Team",
        query: &[PAGED[0], PAGED[1], ("team_type", Kind::Enum(&["all", "enterprise", "organization"]))],
    },
    Operation {
        method: "GET",
        route: "/orgs/{org}/teams/{team_slug}/members",
        id: "teams/list-members-in-org",
        resource: "Team",
        query: &[("role", Kind::Enum(&["member", "maintainer", "all"])), PAGED[0], PAGED[1]],
    },
    Operation {
        method: "GET",
        route: "/orgs/{org}/teams/{team_slug}/memberships/{username}",
        id: "teams/get-membership-for-user-in-org",
        resource: "TeamMember",
        query: &[],
    },
    Operation {
        method: "PUT",
        route: "/orgs/{org}/teams/{team_slug}/memberships/{username}",
        id: "teams/add-or-update-membership-for-user-in-org",
        resource: "TeamMember",
        query: &[],
    },
    Operation {
        method: "DELETE",
        route: "/orgs/{org}/teams/{team_slug}/memberships/{username}",
        id: "teams/remove-membership-for-user-in-org",
        resource: "TeamMember",
        query: &[],
    },
];

pub(super) fn find(method: &str, route: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.method == method && op.route == route)
}

/// Every parameter is one the operation declares, given once, with a value its schema allows
/// (per_page 1 to 100): else GitHub's 422 `validation-error` naming it.
pub(super) fn check_query(op: &Operation, params: &Params) -> Result<(), ApiError> {
    for (name, value) in params.pairs() {
        let Some((_, kind)) = op.query.iter().find(|(n, _)| n == name) else {
            let known: Vec<&str> = op.query.iter().map(|(n, _)| *n).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            return Err(ApiError::invalid(
                op.resource,
                name,
                "invalid",
                Some(format!("{name} is not a parameter of {} (it takes: {known})", op.id)),
            ));
        };
        if params.all(name).len() > 1 {
            return Err(ApiError::invalid(op.resource, name, "invalid", Some(format!("{name} may be given once"))));
        }
        let bad = match kind {
            Kind::PerPage => value.parse::<usize>().ok().filter(|n| (1..=MAX_PER_PAGE).contains(n)).is_none(),
            Kind::Page => value.parse::<usize>().ok().filter(|n| *n >= 1).is_none(),
            Kind::Enum(values) => !values.contains(&value.as_str()),
        };
        if bad {
            let allowed = match kind {
                Kind::PerPage => format!("an integer from 1 to {MAX_PER_PAGE}"),
                Kind::Page => "a positive integer".to_owned(),
                Kind::Enum(values) => format!("one of {}", values.join(", ")),
            };
            return Err(ApiError::invalid(
                op.resource,
                name,
                "invalid",
                Some(format!("{name} must be {allowed}, not {value:?}")),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// A body field's schema.
#[derive(Clone, Copy, Debug)]
pub(super) enum Field {
    Int,
    Str,
    IntArray,
    Enum(&'static [&'static str]),
}

/// The body as the operation's object schema: unknown fields, wrong types and values off an
/// enum are 422s naming the field.
pub(super) fn check_body(
    resource: &str,
    body: &Bytes,
    empty: extract::Empty,
    fields: &[(&str, Field)],
) -> Result<Map<String, Value>, ApiError> {
    let map = extract::json_object(body, empty)?;
    for (key, value) in &map {
        let Some((_, kind)) = fields.iter().find(|(n, _)| n == key) else {
            let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            return Err(ApiError::invalid(
                resource,
                key,
                "invalid",
                Some(format!("{key} is not a field of this request (known: {})", known.join(", "))),
            ));
        };
        let ok = match kind {
            Field::Int => value.as_u64().is_some(),
            Field::Str => value.is_string(),
            Field::IntArray => value.as_array().is_some_and(|a| a.iter().all(|v| v.as_u64().is_some())),
            Field::Enum(values) => value.as_str().is_some_and(|s| values.contains(&s)),
        };
        if !ok {
            let expected = match kind {
                Field::Int => "an integer".to_owned(),
                Field::Str => "a string".to_owned(),
                Field::IntArray => "an array of integers".to_owned(),
                Field::Enum(values) => format!("one of {}", values.join(", ")),
            };
            return Err(ApiError::invalid(resource, key, "invalid", Some(format!("{key} must be {expected}"))));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests;
