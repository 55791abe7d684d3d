//! The words of Jira's outcomes and of a person's tasks: what the runs end with and what
//! plans repeat, written once for both.

use super::client::User;
use super::groups::GroupInfo;
use lifecycle_domain::EmployeeEmail;

/// A joiner's task when the existing user lacks products the event names.
pub(super) fn lacks_products(summary: &str, missing: &[String]) -> String {
    format!(
        "{summary}. The user lacks access to {}: Jira's REST API grants products only when it creates a user, so grant it in admin.atlassian.com > Products (or add the user to the product's access group), then replay this run.",
        missing.join(", ")
    )
}

/// A mover's task when the person has no user: there are no groups to change.
pub(super) fn no_user_to_move(email: &EmployeeEmail) -> String {
    format!("no Jira user has the address {email}, so there are no groups to change; send a joiner event to create the account")
}

/// A leaver of someone without a user: done, nothing to remove.
pub(super) fn nobody_to_remove(email: &EmployeeEmail) -> String {
    format!("no Jira user has the address {email}; nothing to remove")
}

/// A mover's or leaver's task when only accounts with a hidden address matched.
pub(super) fn only_hidden_matches(email: &EmployeeEmail, people: &[User]) -> String {
    format!(
        "no Jira user shows the address {email}, but {} account(s) that hide their address (privacy settings) matched the search: {}. Jira's API cannot tell whether one of them is this person, so nothing was changed. Make the change by hand in admin.atlassian.com > Directory > Users (or configure vendors.jira.scim so lifecycle can find the person through the directory), then replay this run.",
        people.len(),
        people.iter().map(User::label).collect::<Vec<_>>().join(", ")
    )
}

/// A joiner's task when the person's account is deactivated and the directory cannot reactivate it.
pub(super) fn cannot_reactivate(email: &EmployeeEmail, account_id: &str, scim_configured: bool) -> String {
    let why = if scim_configured { ", and the SCIM directory does not manage it" } else { "" };
    format!(
        "{email} already has a Jira account ({account_id}), but it is deactivated, and Jira's REST API cannot reactivate accounts{why}: reactivate it in admin.atlassian.com > Directory > Users (or in your identity provider), then replay this run."
    )
}

/// A joiner's task when Jira refused the create and an account with the address exists
/// without access to Jira (removed from the site, or never given a product).
pub(super) fn exists_without_access(
    email: &EmployeeEmail,
    existing: &User,
    refusal: &str,
    products: &[String],
    groups: &[GroupInfo],
) -> String {
    format!(
        "{email} already has an Atlassian account ({}), but it has no access to Jira (it was removed from the site, or given no product), and for such an account Jira refuses POST /user ({refusal}); nothing was created. Give the account access to Jira in admin.atlassian.com > Directory > Users (products: {}), then replay this run: it will then give the groups ({}).",
        existing.label(),
        list_or_none(products),
        labels(groups)
    )
}

pub(super) fn labels(groups: &[GroupInfo]) -> String {
    list_or_none(&groups.iter().map(GroupInfo::label).collect::<Vec<_>>())
}

/// A leaver's task when the directory's user for the address is another account than Jira's.
pub(super) fn directory_names_another(email: &EmployeeEmail, directory_account: Option<&str>, found: &str) -> String {
    format!(
        "the SCIM directory's user {email} is Atlassian account {}, but the Jira user found for this address is {found}: check in admin.atlassian.com > Directory > Users which account is the person's, deactivate it there, then replay this run. Groups were already removed.",
        directory_account.unwrap_or("(none)")
    )
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
