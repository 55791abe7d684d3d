//! Jira's entities: Atlassian accounts as the site knows them (type, privacy, site access,
//! products, SCIM management), groups, and the invitations `POST /user` sends.

use std::collections::BTreeSet;

use crate::token::Token;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AccountType {
    Atlassian,
    App,
    Customer,
}

impl AccountType {
    pub(super) fn parse(s: &str) -> Option<AccountType> {
        match s {
            "atlassian" => Some(AccountType::Atlassian),
            "app" => Some(AccountType::App),
            "customer" => Some(AccountType::Customer),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            AccountType::Atlassian => "atlassian",
            AccountType::App => "app",
            AccountType::Customer => "customer",
        }
    }
}

/// An Atlassian account as the site knows it.
#[derive(Clone, Debug)]
pub(super) struct User {
    pub(super) account_id: String,
    pub(super) account_type: AccountType,
    /// The real address; shown only when `email_visible`.
    pub(super) email: Option<String>,
    pub(super) email_visible: bool,
    pub(super) display_name: String,
    /// False once deactivated (through SCIM or the admin console).
    pub(super) active: bool,
    /// False after `DELETE /user`: the account exists but is not on this site.
    pub(super) site_access: bool,
    pub(super) products: BTreeSet<String>,
    pub(super) site_admin: bool,
    /// The SCIM directory's id for this user, when the directory manages the account.
    pub(super) scim_id: Option<String>,
    pub(super) api_token: Option<Token>,
    pub(super) time_zone: String,
    pub(super) locale: String,
    pub(super) created_ms: i64,
    pub(super) modified_ms: i64,
}

impl User {
    pub(super) fn shown_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_visible)
    }
}

#[derive(Clone, Debug)]
pub(super) struct Group {
    /// The simulator's key for the group, and the `groupId` Jira shows unless `null_id`.
    pub(super) group_id: String,
    pub(super) name: String,
    /// Account ids, in a stable order.
    pub(super) members: BTreeSet<String>,
    /// Jira answers this group with `groupId: null` (the definitions make it nullable): it can
    /// be addressed by name only.
    pub(super) null_id: bool,
}

impl Group {
    /// The `groupId` Jira shows.
    pub(super) fn shown_id(&self) -> Option<&str> {
        (!self.null_id).then_some(self.group_id.as_str())
    }
}

#[derive(Clone, Debug)]
pub(super) struct Invitation {
    pub(super) email: String,
    pub(super) account_id: String,
    pub(super) at_ms: i64,
}

/// The authenticated caller, put in request extensions by the guard (`handlers.rs`).
#[derive(Clone, Debug)]
pub(super) struct Caller {
    pub(super) account_id: String,
    pub(super) site_admin: bool,
}

/// What a user needs to exist (from `POST /user` or a seed).
#[derive(Debug)]
pub(super) struct NewUser {
    pub(super) account_id: Option<String>,
    pub(super) account_type: AccountType,
    pub(super) email: Option<String>,
    pub(super) email_visible: bool,
    pub(super) display_name: Option<String>,
    pub(super) active: bool,
    pub(super) site_access: bool,
    pub(super) products: BTreeSet<String>,
    pub(super) site_admin: bool,
    pub(super) scim_managed: bool,
    pub(super) api_token: Option<Token>,
}

impl NewUser {
    pub(super) fn person(email: &str, name: &str) -> Self {
        NewUser {
            account_id: None,
            account_type: AccountType::Atlassian,
            email: Some(email.to_owned()),
            email_visible: true,
            display_name: Some(name.to_owned()),
            active: true,
            site_access: true,
            products: BTreeSet::new(),
            site_admin: false,
            scim_managed: false,
            api_token: None,
        }
    }
}
