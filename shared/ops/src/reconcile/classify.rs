//! Classify: the findings of one pass, from the accounts read at a vendor and
//! what lifecycle knows. Pure, so every rule is tested without a vendor.

use super::known::{Known, Latest};
use super::FindingKind;
use lifecycle_config::ReconcileSettings;
use lifecycle_domain::apps::AppRequest;
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_engine::{Account, AccountStatus};
use lifecycle_store::reconcile::Seen;
use std::collections::{BTreeSet, HashSet};

/// What one account is found to be, in words, or nothing to report.
type Judged = Option<(FindingKind, String)>;

/// The findings of one pass: one per account that differs from what
/// lifecycle knows, and one per person provisioned at the vendor whose
/// account is not there; by kind, then account.
pub fn classify(
    vendor: VendorKind,
    accounts: &[Account],
    known: &Known,
    settings: &ReconcileSettings,
    desired_access: impl Fn(&AppRequest) -> Option<BTreeSet<String>>,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut present: HashSet<String> = HashSet::new();
    for account in accounts {
        let key = account_key(account);
        let person = known.person_of(account);
        let judged = match &person {
            None => unmanaged(vendor, account, &key, settings),
            Some(p) => {
                present.insert(p.clone());
                judge(vendor, account, &key, p, known, settings, &desired_access)
            }
        };
        if let Some((kind, detail)) = judged {
            seen.push(Seen {
                kind,
                account_key: key,
                vendor_account_id: Some(account.vendor_id.clone()),
                person_key: person,
                detail,
            });
        }
    }
    seen.extend(missing_accounts(vendor, known, &present));
    // By the kind's word, as the findings were always listed (and as the store orders them).
    seen.sort_by(|a, b| (a.kind.as_str(), &a.account_key).cmp(&(b.kind.as_str(), &b.account_key)));
    seen
}

fn account_key(account: &Account) -> String {
    account.email.clone().or_else(|| account.login.clone()).unwrap_or_else(|| account.vendor_id.clone()).to_lowercase()
}

fn list(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "nothing".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// An account no event names: unmanaged, unless the allowlist knows it.
fn unmanaged(vendor: VendorKind, account: &Account, key: &str, settings: &ReconcileSettings) -> Judged {
    if settings.allows(vendor, key) {
        return None;
    }
    let why = account.protected.as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
    Some((
        FindingKind::Unmanaged,
        format!(
            "{vendor} account {} ({}) is named by no event{why}; if it is meant to exist, add it to [reconcile] \
             allowlist",
            account.name,
            account.status.as_str()
        ),
    ))
}

/// The account of a person lifecycle knows. Not judged while their run at
/// the vendor is at work (it will change the account), nor when their latest
/// run there did not succeed (the run says what is wrong).
fn judge(
    vendor: VendorKind,
    account: &Account,
    key: &str,
    person: &str,
    known: &Known,
    settings: &ReconcileSettings,
    desired_access: &impl Fn(&AppRequest) -> Option<BTreeSet<String>>,
) -> Judged {
    let here = known.at_vendor.get(person);
    if here.is_some_and(Latest::at_work) {
        return None;
    }
    if let Some(left) = leaver(here, known.anywhere.get(person)) {
        return orphaned(vendor, account, left, here.is_some());
    }
    let Some(latest) = here.filter(|l| l.state == RunState::Succeeded) else {
        // Known to HR, never (successfully) provisioned here by lifecycle:
        // the account was made by hand, or the run says what went wrong.
        let by_hand = here.is_none() && !settings.allows(vendor, key);
        return by_hand.then(|| {
            let detail = format!(
                "{} is known to HR but no event gave them {vendor}; the account was made outside lifecycle",
                account.name
            );
            (FindingKind::Unmanaged, detail)
        });
    };
    if account.status == AccountStatus::Deactivated {
        let detail = format!(
            "the account of {} is deactivated, but {} asks for it to be active",
            account.name,
            latest.describe()
        );
        return Some((FindingKind::Missing, detail));
    }
    let want = latest.input.as_ref().and_then(|i| desired_access(&i.app))?;
    drifted(account, latest, &want)
}

/// The run that says the person left: their latest at the vendor, else (when
/// lifecycle never managed them there) their latest anywhere, once done.
fn leaver<'a>(here: Option<&'a Latest>, anywhere: Option<&'a Latest>) -> Option<&'a Latest> {
    match here {
        Some(l) => Some(l).filter(|l| l.workflow == Workflow::Leaver),
        None => anywhere.filter(|l| l.workflow == Workflow::Leaver && !l.at_work()),
    }
}

/// The account of someone who left: orphaned while it still gives access.
fn orphaned(vendor: VendorKind, account: &Account, left: &Latest, managed_here: bool) -> Judged {
    if !account.status.has_access() {
        return None;
    }
    let because = if managed_here {
        format!("their latest {vendor} event was a leaver ({})", left.describe())
    } else {
        format!("they left ({}) and lifecycle never managed this {vendor} account", left.describe())
    };
    let protected =
        account.protected.as_ref().map(|p| format!("; it cannot be removed by lifecycle: {p}")).unwrap_or_default();
    Some((
        FindingKind::Orphaned,
        format!("{} is {} at {vendor} although {because}{protected}", account.name, account.status.as_str()),
    ))
}

/// An active account whose access is not what the latest run asked for.
fn drifted(account: &Account, latest: &Latest, want: &BTreeSet<String>) -> Judged {
    if *want == account.access {
        return None;
    }
    let lacks: BTreeSet<String> = want.difference(&account.access).cloned().collect();
    let extra: BTreeSet<String> = account.access.difference(want).cloned().collect();
    Some((
        FindingKind::Drifted,
        format!(
            "{} has {} where {} asks for {} (lacks: {}; extra: {})",
            account.name,
            list(&account.access),
            latest.describe(),
            list(want),
            list(&lacks),
            list(&extra)
        ),
    ))
}

/// People a joiner or mover provisioned at the vendor who have no account there.
fn missing_accounts<'a>(
    vendor: VendorKind,
    known: &'a Known,
    present: &'a HashSet<String>,
) -> impl Iterator<Item = Seen> + 'a {
    known.at_vendor.iter().filter(|(person, _)| !present.contains(*person)).filter_map(move |(person, latest)| {
        let provisioned =
            matches!(latest.workflow, Workflow::Joiner | Workflow::Mover) && latest.state == RunState::Succeeded;
        provisioned.then(|| Seen {
            kind: FindingKind::Missing,
            account_key: person.clone(),
            vendor_account_id: None,
            person_key: Some(person.clone()),
            detail: format!("{person} has no {vendor} account, but {} gave them one", latest.describe()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_fixtures::{account, input, kinds, known, latest, role};
    use serde_json::json;

    #[test]
    fn each_kind_of_difference_is_found_and_nothing_else() {
        let k = known(&[
            ("ada@example.com", Workflow::Joiner, RunState::Succeeded),
            ("grace@example.com", Workflow::Joiner, RunState::Succeeded),
            ("alan@example.com", Workflow::Leaver, RunState::Succeeded),
            ("kate@example.com", Workflow::Joiner, RunState::Succeeded),
            ("lin@example.com", Workflow::Mover, RunState::Succeeded),
            ("old@example.com", Workflow::Leaver, RunState::Succeeded),
        ]);
        let accounts = vec![
            account("ada@example.com", AccountStatus::Active, &["Sales Rep"]),
            account("grace@example.com", AccountStatus::Active, &["Admin"]),
            account("alan@example.com", AccountStatus::Active, &["Sales Rep"]),
            account("lin@example.com", AccountStatus::Deactivated, &["Sales Rep"]),
            account("old@example.com", AccountStatus::Deactivated, &[]),
            account("svc-backup@example.com", AccountStatus::Active, &[]),
        ];
        let seen = classify(VendorKind::Pipedrive, &accounts, &k, &ReconcileSettings::default(), role);
        assert_eq!(
            kinds(&seen),
            vec![
                ("drifted".into(), "grace@example.com".into()),
                ("missing".into(), "kate@example.com".into()),
                ("missing".into(), "lin@example.com".into()),
                ("orphaned".into(), "alan@example.com".into()),
                ("unmanaged".into(), "svc-backup@example.com".into()),
            ]
        );
        let drifted = &seen[0];
        assert!(drifted.detail.contains("lacks: Sales Rep; extra: Admin"), "{}", drifted.detail);
        assert_eq!(drifted.person_key.as_deref(), Some("grace@example.com"));
        assert!(seen[1].vendor_account_id.is_none(), "a missing account has no id at the vendor");
    }

    /// A login-based vendor's members carry a login and no address: they are tied to the
    /// person whose latest run there named that login (in any case), and judged as anyone.
    #[test]
    fn an_account_known_by_login_is_tied_to_the_person_of_that_login() {
        let mut k = Known::default();
        for (email, workflow, login) in
            [("ada@example.com", Workflow::Leaver, "Ada-GH"), ("grace@example.com", Workflow::Joiner, "grace-gh")]
        {
            let l = latest(workflow, RunState::Succeeded, input("github", email, json!({ "login": login })));
            k.anywhere.insert(email.to_string(), l.clone());
            k.at_vendor(l);
        }
        let member = |login: &str| Account {
            login: Some(login.into()),
            email: None,
            name: login.into(),
            ..account("x", AccountStatus::Active, &[])
        };
        let accounts = vec![member("ada-gh"), member("grace-gh"), member("octocat")];
        let seen = classify(VendorKind::Github, &accounts, &k, &ReconcileSettings::default(), |_| None);
        assert_eq!(kinds(&seen), vec![("orphaned".into(), "ada-gh".into()), ("unmanaged".into(), "octocat".into())]);
        assert_eq!(seen[0].person_key.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn the_allowlist_silences_unmanaged_accounts_only() {
        let k = known(&[("alan@example.com", Workflow::Leaver, RunState::Succeeded)]);
        let settings = ReconcileSettings { allowlist: vec!["*@example.com".into()], ..Default::default() };
        let accounts = vec![
            account("svc@example.com", AccountStatus::Active, &[]),
            account("alan@example.com", AccountStatus::Active, &[]),
        ];
        let seen = classify(VendorKind::Pipedrive, &accounts, &k, &settings, role);
        assert_eq!(kinds(&seen), vec![("orphaned".into(), "alan@example.com".into())]);
    }

    #[test]
    fn a_person_whose_run_is_at_work_or_did_not_succeed_is_not_judged() {
        let k = known(&[
            ("ada@example.com", Workflow::Leaver, RunState::Queued),
            ("grace@example.com", Workflow::Joiner, RunState::RetryScheduled),
            ("alan@example.com", Workflow::Joiner, RunState::Dead),
            ("kate@example.com", Workflow::Joiner, RunState::NeedsManualAction),
        ]);
        let accounts = vec![
            account("ada@example.com", AccountStatus::Active, &["Sales Rep"]),
            account("alan@example.com", AccountStatus::Active, &["Admin"]),
        ];
        let seen = classify(VendorKind::Pipedrive, &accounts, &k, &ReconcileSettings::default(), role);
        assert_eq!(kinds(&seen), vec![], "runs at work will change the accounts; failed ones say what is wrong");
    }

    #[test]
    fn someone_who_left_keeps_no_account_lifecycle_never_made() {
        // Known from a Jira leaver only; a Pipedrive account made by hand.
        let mut k = Known::default();
        let jira = latest(
            Workflow::Leaver,
            RunState::Succeeded,
            input("jira", "ada@example.com", json!({ "products": [], "groups": [] })),
        );
        k.anywhere.insert("ada@example.com".into(), jira);
        let accounts = vec![account("ada@example.com", AccountStatus::Invited, &[])];
        let seen = classify(VendorKind::Pipedrive, &accounts, &k, &ReconcileSettings::default(), role);
        assert_eq!(kinds(&seen), vec![("orphaned".into(), "ada@example.com".into())]);
        assert!(seen[0].detail.contains("never managed"), "{}", seen[0].detail);
    }
}
