//! Jira joiner, mover and leaver workflows, as journaled steps.

use super::client::{Client, GroupRef, ScimClient, ScimUser, User};
use super::groups::{
    addressable, converge_groups, current_groups, left_without_id, resolve_groups, GroupChanges, GroupInfo,
};
use super::messages::{
    cannot_reactivate, directory_names_another, exists_without_access, labels, lacks_products, list_or_none,
    no_user_to_move, nobody_to_remove, only_hidden_matches,
};
use crate::catalog::Cached;
use crate::http::HttpError;
use lifecycle_domain::apps::JiraApp;
use lifecycle_domain::EmployeeEmail;
use lifecycle_engine::{Access, Outcome, RunSpec, StepError, Steps};
use serde::{Deserialize, Serialize};

pub struct Jira {
    pub(super) client: Client,
    pub(super) scim: Option<ScimClient>,
    /// The site's groups (`/group/bulk`), kept for `catalog_max_age`.
    pub(super) groups: Cached<Vec<GroupRef>>,
    /// What directory reads learnt and keep (the credential's own account).
    pub(super) seen: super::Seen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum How {
    /// Jira showed the address.
    Found,
    /// Jira hides the address; the SCIM directory named the account.
    FoundInDirectory,
    Created,
    /// Existed deactivated; reactivated through the SCIM directory.
    Reactivated,
    /// `POST /user` answered 201 with an account that already existed (one the search showed
    /// with its address hidden): Jira does so "if the user exists and has access to Jira".
    /// Nothing was created.
    ExistedAtCreate,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct UserRef {
    pub(super) account_id: String,
    pub(super) how: How,
    /// Accounts with a hidden address that the search also returned (left alone).
    #[serde(default)]
    pub(super) hidden_matches: usize,
    /// For a user we created: its groups as the create's answer listed them (a product's
    /// default groups), `None` when the answer counted more than it listed.
    #[serde(default)]
    pub(super) groups_at_creation: Option<Vec<GroupInfo>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FoundUser {
    account_id: String,
    active: bool,
    #[serde(default)]
    via_directory: bool,
    /// Found by walking every user of the site (a deactivated account the search cannot show).
    #[serde(default)]
    via_all_users: bool,
}

impl FoundUser {
    /// How it was found, for an outcome, when it was not the search.
    fn how_found(&self) -> &'static str {
        if self.via_directory {
            " (found through the SCIM directory: Jira's user search does not show this address)"
        } else if self.via_all_users {
            " (found among all of the site's users: Jira's user search lists active users only)"
        } else {
            ""
        }
    }
}

/// How the leaver ended the person's access.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "path", rename_all = "snake_case")]
enum Ended {
    /// `PATCH /Users/{id}` `active=false` in the SCIM directory.
    DeactivatedInDirectory { scim_id: String, changed: bool },
    /// `DELETE /user`.
    SiteAccessRemoved { changed: bool },
    /// Already deactivated, and Jira refuses to remove the site access of this account.
    AlreadyDeactivated { refusal: String },
}

/// Where a look-up found the person's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// `GET /user/search` showed the address.
    Search,
    /// The SCIM directory named the account (`atlassianAccountId`).
    Directory,
    /// `GET /users/search` listed it: an account the search does not show (deactivated).
    AllUsers,
}

/// How far a look-up goes when the search shows nobody with the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    /// The search, then the SCIM directory when one is configured. Enough before a create:
    /// `POST /user` itself says whether an account exists (its 201 is then that account, its
    /// 400 an account without access), so a new person costs no walk of every user.
    BeforeCreate,
    /// Also every user of the site (`GET /users/search`): a mover or leaver must find a
    /// deactivated account, which the search never shows.
    Everywhere,
}

/// Who an address belongs to in Jira.
// One per look-up, taken apart at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Identity {
    /// The person's user, how it was found, and the directory's answer for the address when
    /// the look-up asked it (`Some(None)`: asked, and it has no such user).
    Found {
        user: User,
        via: Via,
        directory: Option<Option<ScimUser>>,
    },
    /// No shown address matched, but these (active) people's addresses are hidden.
    Hidden(Vec<User>),
    Absent,
}

impl Jira {
    /// Groups checked first (an unknown id fails before anything is created), then the user
    /// (found, reactivated or created with its products), then each missing group.
    ///
    /// For a new person that is three requests with one group: the search, `POST /user`, and
    /// `POST /group/user` (the groups come from the cached catalogue); with a SCIM directory
    /// configured, the directory is asked too (the search shows active users only, so a
    /// deactivated account is found only there). The answers are the proof: the create's 201 is
    /// the user, active, with the products it asked for; each add's 201 is the membership. No
    /// verification reads them again.
    pub(super) async fn joiner(&self, run: &RunSpec, app: &JiraApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let groups = resolve_groups(&self.client, &self.groups, &app.groups).await?;
        let (products, wanted) = (&app.products, &groups);
        let user: UserRef = steps
            .run("ensure_user", |_| async move {
                let hidden = match self.identify(email, Reach::BeforeCreate).await? {
                    Identity::Found { user, via, directory } => return self.adopt(email, user, via, directory).await,
                    Identity::Hidden(people) => people,
                    Identity::Absent => Vec::new(),
                };
                // Atlassian allows one account per address: if one of the hidden people (or a
                // deactivated account) is this person, Jira answers with it or refuses, and
                // nothing is duplicated.
                match c.create_user(email, products).await {
                    Ok(u) => self.created(email, u, hidden),
                    Err(e @ HttpError::Rejected { .. }) => {
                        // An earlier attempt may have created it and lost the answer.
                        if let Identity::Found { user, via, directory } =
                            self.identify(email, Reach::BeforeCreate).await?
                        {
                            return self.adopt(email, user, via, directory).await;
                        }
                        // "If the user exists but does not have access to Jira, the operation
                        // returns a 400": every user of the site tells whether one does.
                        if let Some(existing) = c.find_anywhere(email).await? {
                            return Err(StepError::needs_person(exists_without_access(
                                email,
                                &existing,
                                &said(&e),
                                products,
                                wanted,
                            )));
                        }
                        if hidden.is_empty() {
                            return Err(StepError::permanent(format!(
                                "Jira refused to create a user for {email}: {}. Fix the event (apps.jira.products must be Jira product keys such as jira-software), or, if an account with this address exists without access to Jira (one whose address is hidden is not found by lifecycle), give it access in admin.atlassian.com > Directory > Users; then replay this run.",
                                said(&e)
                            )));
                        }
                        Err(StepError::needs_person(format!(
                            "Jira refused to create a user for {email} ({}): an Atlassian account with this address most likely exists already, but its owner hides their email address (privacy settings), so Jira's API cannot tell which account it is. Account(s) with a hidden address that matched the search: {}. Nothing was changed. Find the person in admin.atlassian.com > Directory > Users and give them access there (groups: {}), or ask them to make their address visible, or configure vendors.jira.scim so lifecycle can find them through the directory; then replay this run.",
                            said(&e),
                            hidden.iter().map(User::label).collect::<Vec<_>>().join(", "),
                            labels(wanted),
                        )))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        let account_id = user.account_id.clone();
        let aid = account_id.as_str();
        // What the user has now. A user this run created has what the create's answer showed:
        // the products it asked for, and the groups listed there (none in the simulator; Jira
        // may put a new user in a product's default group). An existing user is read afresh on
        // every attempt, groups and products in one request (not journaled: after a person
        // grants a missing product, the replay must see it).
        let (current, missing_products) = match (&user.how, &user.groups_at_creation) {
            (How::Created, Some(groups)) => (groups.clone(), Vec::new()),
            (How::Created, None) => (current_groups(&self.client, aid).await?.0, Vec::new()),
            _ => {
                let Some(u) = c
                    .get_user(aid, "groups,applicationRoles")
                    .await
                    .map_err(|e| StepError::from(e).context("read the user's groups and products"))?
                else {
                    return Err(StepError::transient(format!(
                        "Jira does not show user {aid} ({email}) any more, although it was found for this run; checking again later"
                    )));
                };
                let current = match u.groups.as_ref().and_then(|g| g.complete()) {
                    Some(listed) => addressable(listed).0,
                    // The expansion counted more than it listed: ask for the list itself.
                    None => current_groups(&self.client, aid).await?.0,
                };
                let have: Vec<&str> =
                    u.application_roles.iter().flat_map(|r| &r.items).map(|r| r.key.as_str()).collect();
                let missing = app.products.iter().filter(|p| !have.contains(&p.as_str())).cloned().collect();
                (current, missing)
            }
        };
        let changes = converge_groups(&self.client, &self.groups, steps, aid, &groups, current, false).await?;

        let summary = joiner_summary(&user, email, &app.products, &changes);
        if !missing_products.is_empty() {
            return Ok(Outcome::needs_person(lacks_products(&summary, &missing_products), Some(Access::Active)));
        }
        Ok(Outcome::done(summary, Access::Active))
    }

    /// Converges the user's groups to exactly the event's: adds what is missing, removes the rest.
    pub(super) async fn mover(&self, run: &RunSpec, app: &JiraApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        let email = &run.input.employee.email;
        let groups = resolve_groups(&self.client, &self.groups, &app.groups).await?;
        let Some(user) = self.find_user(email, steps).await? else {
            return Ok(Outcome::needs_person(no_user_to_move(email), Some(Access::Absent)));
        };
        let (current, without_id) = current_groups(&self.client, &user.account_id).await?;
        let changes =
            converge_groups(&self.client, &self.groups, steps, &user.account_id, &groups, current, true).await?;
        let (mut note, access) = if user.active {
            (String::new(), Access::Active)
        } else {
            (" (the account is deactivated)".to_string(), Access::Deactivated)
        };
        note.push_str(user.how_found());
        Ok(Outcome::done(
            format!(
                "Jira user {} ({email}){note}: {}{}",
                user.account_id,
                changes.describe(),
                left_without_id(&without_id)
            ),
            access,
        ))
    }

    /// Every group removed, then the access ended: through the SCIM directory when one is
    /// configured and manages the account (deactivated, not deleted), else `DELETE /user`.
    ///
    /// Without a directory: the search, `GET /user/groups`, one `DELETE /group/user` a group,
    /// and `DELETE /user`, whose 204 is the proof (no verification reads the user again).
    pub(super) async fn leaver(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let c = &self.client;
        let email = &run.input.employee.email;
        let Some(user) = self.find_user(email, steps).await? else {
            return Ok(Outcome::done(nobody_to_remove(email), Access::Absent));
        };
        let account_id = user.account_id.clone();
        let (current, without_id) = current_groups(&self.client, &account_id).await?;
        let changes = converge_groups(&self.client, &self.groups, steps, &account_id, &[], current, true).await?;
        let who = format!("{email} (Jira user {account_id}){}", user.how_found());
        let mut groups_note = if changes.removed.is_empty() {
            format!("{who} was in no group")
        } else {
            format!("removed {who} from {} group(s) ({})", changes.removed.len(), changes.removed.join(", "))
        };
        groups_note.push_str(&left_without_id(&without_id));

        let aid = account_id.as_str();
        // `None`: no directory, or it does not manage this account.
        let in_directory: Option<Ended> = match &self.scim {
            Some(scim) => {
                steps
                    .run("deactivate_in_directory", |_| async move {
                        let Some(su) = scim.find_by_user_name(email).await? else {
                            return Ok(None);
                        };
                        if su.account_id() != Some(aid) {
                            return Err(StepError::needs_person(directory_names_another(email, su.account_id(), aid)));
                        }
                        if !su.active {
                            return Ok(Some(Ended::DeactivatedInDirectory { scim_id: su.id, changed: false }));
                        }
                        // The answer is the directory user as it now is: the proof.
                        let after = scim.set_active(&su.id, false).await?;
                        if after.active {
                            return Err(StepError::transient(format!(
                                "the SCIM directory answered the deactivation of {email} ({}) with the user still active; trying again later",
                                after.id
                            )));
                        }
                        Ok(Some(Ended::DeactivatedInDirectory { scim_id: after.id, changed: true }))
                    })
                    .await?
            }
            None => None,
        };
        let ended = match in_directory {
            Some(ended) => ended,
            None => {
                let changes_done = groups_note.as_str();
                steps
                .run("remove_site_access", |attempt| async move {
                    if attempt.in_doubt && c.get_user(aid, "").await?.is_none() {
                        return Ok(Ended::SiteAccessRemoved { changed: false });
                    }
                    match c.remove_from_site(aid).await {
                        Ok(()) => Ok(Ended::SiteAccessRemoved { changed: true }),
                        Err(HttpError::NotFound { .. }) => Ok(Ended::SiteAccessRemoved { changed: false }),
                        Err(e @ HttpError::Rejected { .. }) => {
                            // Read afresh: a person may have deactivated the account since.
                            if c.get_user(aid, "").await?.is_some_and(|u| !u.active) {
                                return Ok(Ended::AlreadyDeactivated { refusal: said(&e) });
                            }
                            Err(StepError::needs_person(format!(
                                "{changes_done}, but Jira refused to remove their site access: {}. The account is most likely managed by your identity provider through SCIM, which DELETE /user cannot remove. Deactivate it in the identity provider or in admin.atlassian.com > Directory > Users, or configure vendors.jira.scim so lifecycle deactivates it through SCIM, then replay this run.",
                                said(&e)
                            )))
                        }
                        Err(e) => Err(e.into()),
                    }
                })
                .await?
            }
        };

        let why_delete = if self.scim.is_some() {
            "the SCIM directory does not manage this account"
        } else {
            "no SCIM directory is configured"
        };
        Ok(match ended {
            Ended::DeactivatedInDirectory { scim_id, changed } => {
                let what = if changed { "deactivated" } else { "found already deactivated" };
                Outcome::done(
                    format!("{groups_note}, then {what} the account through the SCIM directory (PATCH /Users/{scim_id} active=false): it is inactive, not deleted"),
                    Access::Deactivated,
                )
            }
            Ended::SiteAccessRemoved { changed } => {
                let what = if changed { "removed their site access" } else { "found their site access already removed" };
                Outcome::done(
                    format!("{groups_note}, then {what} with DELETE /user ({why_delete}); the Atlassian account itself remains"),
                    Access::Removed,
                )
            }
            Ended::AlreadyDeactivated { refusal } => Outcome::done(
                format!("{groups_note}; the account was already deactivated, and Jira refuses to remove its site access ({refusal}), so it stays inactive"),
                Access::Deactivated,
            ),
        })
    }

    /// The person's user for a mover or leaver; a person is needed when only hidden addresses
    /// matched. A read: journaled with its answer (one write), so that a retry acts on the same account.
    async fn find_user(&self, email: &EmployeeEmail, steps: &mut Steps) -> Result<Option<FoundUser>, StepError> {
        steps
            .read("find_user", |_| async move {
                match self.identify(email, Reach::Everywhere).await? {
                    Identity::Found { user, via, .. } => Ok(Some(FoundUser {
                        account_id: user.account_id,
                        active: user.active,
                        via_directory: via == Via::Directory,
                        via_all_users: via == Via::AllUsers,
                    })),
                    Identity::Absent => Ok(None),
                    Identity::Hidden(people) => Err(StepError::needs_person(only_hidden_matches(email, &people))),
                }
            })
            .await
    }

    /// Jira's user for `email`: the search's exact (shown) match; else the account the SCIM
    /// directory names for that address (when one is configured); else, with
    /// [`Reach::Everywhere`], the account every user of the site lists with that shown address.
    /// A hidden address is never matched.
    ///
    /// The search (findUsers) "returns a list of active users" and shows hidden addresses as
    /// `null`: a deactivated account, or one whose address is hidden, is found only by the
    /// directory or (deactivated, address shown) by walking `GET /users/search`. `GET /user`
    /// then confirms the account is on the site (a removed one is listed by getAllUsers too).
    pub(super) async fn identify(&self, email: &EmployeeEmail, reach: Reach) -> Result<Identity, StepError> {
        let c = &self.client;
        let lookup = c.find_by_email(email).await?;
        if let Some(user) = lookup.found {
            return Ok(Identity::Found { user, via: Via::Search, directory: None });
        }
        let mut directory = None;
        if let Some(scim) = &self.scim {
            let su = scim.find_by_user_name(email).await?;
            if let Some(account_id) = su.as_ref().and_then(ScimUser::account_id) {
                if let Some(user) = c.get_user(account_id, "").await? {
                    return Ok(Identity::Found { user, via: Via::Directory, directory: Some(su) });
                }
            }
            directory = Some(su);
        }
        if reach == Reach::Everywhere {
            if let Some(listed) = c.find_anywhere(email).await? {
                if let Some(user) = c.get_user(&listed.account_id, "").await? {
                    return Ok(Identity::Found { user, via: Via::AllUsers, directory });
                }
            }
        }
        Ok(if lookup.hidden.is_empty() { Identity::Absent } else { Identity::Hidden(lookup.hidden) })
    }

    /// An existing user for a joiner: active as is, or reactivated through the directory.
    /// `directory`: the directory's answer when the look-up already asked it.
    async fn adopt(
        &self,
        email: &EmployeeEmail,
        u: User,
        via: Via,
        directory: Option<Option<ScimUser>>,
    ) -> Result<UserRef, StepError> {
        let how = if via == Via::Search { How::Found } else { How::FoundInDirectory };
        if u.active {
            return Ok(UserRef { account_id: u.account_id, how, hidden_matches: 0, groups_at_creation: None });
        }
        if let Some(scim) = &self.scim {
            let su = match directory {
                Some(answer) => answer,
                None => scim.find_by_user_name(email).await?,
            };
            if let Some(su) = su.filter(|su| su.account_id() == Some(u.account_id.as_str())) {
                scim.set_active(&su.id, true).await?;
                return Ok(UserRef {
                    account_id: u.account_id,
                    how: How::Reactivated,
                    hidden_matches: 0,
                    groups_at_creation: None,
                });
            }
        }
        Err(StepError::needs_person(cannot_reactivate(email, &u.account_id, self.scim.is_some())))
    }

    /// What `POST /user`'s 201 means. Jira answers 201 for a new user, and also "if the user
    /// exists and has access to Jira" (createUser), with that user. The look-up ran first, so
    /// an existing account gets here only when the search could not show it: deactivated (a
    /// new user is active), or its address hidden (one of the hidden accounts the search
    /// returned). Either way nothing was created, and the outcome says so.
    fn created(&self, email: &EmployeeEmail, u: User, hidden: Vec<User>) -> Result<UserRef, StepError> {
        if !u.active {
            return Err(StepError::needs_person(format!(
                "Jira answered POST /user with an existing account instead of creating one (it does so when the person already has access to Jira); nothing was created. {}",
                cannot_reactivate(email, &u.account_id, self.scim.is_some())
            )));
        }
        if hidden.iter().any(|h| h.account_id == u.account_id) {
            return Ok(UserRef {
                account_id: u.account_id,
                how: How::ExistedAtCreate,
                hidden_matches: hidden.len() - 1,
                groups_at_creation: None,
            });
        }
        let groups_at_creation =
            u.groups.as_ref().map_or(Some(Vec::new()), |g| g.complete().map(|listed| addressable(listed).0));
        Ok(UserRef { groups_at_creation, account_id: u.account_id, how: How::Created, hidden_matches: hidden.len() })
    }
}

/// What Jira said, to embed in a sentence of ours (no trailing full stop).
fn said(e: &HttpError) -> String {
    e.message().trim().trim_end_matches('.').to_string()
}

/// What a joiner did, for its outcome (and for a plan's stop, which repeats the run's message).
pub(super) fn joiner_summary(
    user: &UserRef,
    email: &EmployeeEmail,
    products: &[String],
    changes: &GroupChanges,
) -> String {
    let account_id = &user.account_id;
    let what = match user.how {
        How::Created => format!(
            "created Jira user {account_id} ({email}) with products {} (Jira sent the invitation)",
            list_or_none(products)
        ),
        How::Found => format!("found existing Jira user {account_id} ({email})"),
        How::FoundInDirectory => format!(
            "found existing Jira user {account_id} ({email}) through the SCIM directory (Jira hides their address)"
        ),
        How::Reactivated => format!("reactivated Jira user {account_id} ({email}) through the SCIM directory"),
        How::ExistedAtCreate => format!(
            "found existing Jira user {account_id} ({email}): Jira answered POST /user with this account, which already existed with its address hidden (Jira answers 201 when the person already has access to Jira), so nothing was created"
        ),
    };
    let mut summary = format!("{what}; {}", changes.describe());
    if user.hidden_matches > 0 {
        summary.push_str(&format!(
            "; {} account(s) whose address Jira hides also matched the search: they belong to other people (Atlassian allows one account per address) and were not touched",
            user.hidden_matches
        ));
    }
    summary
}
