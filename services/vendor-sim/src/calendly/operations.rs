//! The operations of Calendly's API v2 the simulator plays, as Calendly's definition gives them,
//! and the query parameters each takes: a parameter its operation does not take, or one given
//! twice, is Calendly's 400 `Invalid Argument` naming it. What each value may be is checked
//! where it is read (`wire::PageReq`, the handlers).
//!
//! The definition (`../shared/vendor-specs/calendly/`): the speakeasy Go SDK generated from
//! Calendly's OpenAPI (docVersion 2.0.0), whose method names are the operation ids below, and
//! the developer.calendly.com reference pages rendered from `calendly-api.yaml`. `role` on the
//! membership list came with the 2025-02-28 release ("additional filtering"); nothing else
//! was added to these operations since.

use super::wire::{ApiError, Params};

/// One operation: method, route (as the router has it), the definition's id, its query.
pub(super) struct Operation {
    pub(super) method: &'static str,
    pub(super) route: &'static str,
    pub(super) id: &'static str,
    pub(super) query: &'static [&'static str],
}

pub(super) const OPERATIONS: &[Operation] = &[
    Operation { method: "GET", route: "/users/me", id: "GetMyUserAccount", query: &[] },
    Operation { method: "GET", route: "/users/{uuid}", id: "GetUser", query: &[] },
    Operation {
        method: "GET",
        route: "/organization_memberships",
        id: "GetOrganizationMemberships",
        query: &["count", "email", "organization", "page_token", "role", "user"],
    },
    Operation {
        method: "GET",
        route: "/organization_memberships/{uuid}",
        id: "GetOrganizationsUUIDMemberships",
        query: &[],
    },
    Operation {
        method: "DELETE",
        route: "/organization_memberships/{uuid}",
        id: "DeleteOrganizationsUUIDMemberships",
        query: &[],
    },
    Operation {
        method: "GET",
        route: "/organizations/{uuid}/invitations",
        id: "GetOrganizationsUUIDInvitations",
        query: &["count", "email", "page_token", "sort", "status"],
    },
    Operation {
        method: "POST",
        route: "/organizations/{uuid}/invitations",
        id: "PostOrganizationsUUIDInvitations",
        query: &[],
    },
    Operation {
        method: "GET",
        route: "/organizations/{org_uuid}/invitations/{uuid}",
        id: "GetOrganizationsOrgUUIDInvitationsUUID",
        query: &[],
    },
    Operation {
        method: "DELETE",
        route: "/organizations/{org_uuid}/invitations/{uuid}",
        id: "RevokeUsersOrganizationInvitation",
        query: &[],
    },
];

pub(super) fn find(method: &str, route: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.method == method && op.route == route)
}

/// Every parameter is one the operation takes, each given once.
pub(super) fn check_query(op: &Operation, params: &Params) -> Result<(), ApiError> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in params.pairs() {
        let refused = if !op.query.contains(&name.as_str()) {
            "is not a valid parameter"
        } else if seen.contains(&name.as_str()) {
            "must be given once"
        } else {
            seen.push(name);
            continue;
        };
        tracing::debug!(operation = op.id, parameter = %name, refused, "calendly: query off the definition");
        return Err(ApiError::invalid(name, refused));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_once_and_the_queries_as_the_definition_lists_them() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            assert!(OPERATIONS[i + 1..].iter().all(|b| (a.method, a.route) != (b.method, b.route)), "{}", a.id);
        }
        assert_eq!(OPERATIONS.len(), 9);
        let q = |m, r| find(m, r).map(|op| op.query);
        assert_eq!(q("GET", "/organization_memberships").map(<[_]>::len), Some(6));
        assert_eq!(q("POST", "/organizations/{uuid}/invitations"), Some(&[][..]));
        assert_eq!(q("PATCH", "/organization_memberships/{uuid}"), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused_by_name() {
        let op = find("GET", "/organizations/{uuid}/invitations").unwrap();
        let params = |q: &str| Params::from_uri(&format!("/x?{q}").parse().unwrap()).unwrap();
        assert!(check_query(op, &params("status=pending&email=a%40b.c&count=100&sort=created_at:asc")).is_ok());
        let e = check_query(op, &params("status=pending&organization=x")).unwrap_err();
        assert_eq!(e.details, [("organization".to_owned(), "is not a valid parameter".to_owned())]);
        let e = check_query(op, &params("count=1&count=2")).unwrap_err();
        assert_eq!(e.details[0].0, "count");
    }
}
