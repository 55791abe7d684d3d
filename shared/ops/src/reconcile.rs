//! Reconcile: compare each vendor's accounts with what lifecycle knows of
//! each person (their latest event and how its run ended), keep the
//! differences as findings, and, when asked, turn them into runs.
//!
//! The kinds of finding:
//! - **orphaned**: the person left (their latest event at the vendor, or
//!   anywhere, is a leaver) and the account still gives access;
//! - **missing**: a joiner or mover succeeded and the account is gone or
//!   deactivated now;
//! - **drifted**: the account's roles, groups or products differ from what
//!   the latest event asks for;
//! - **unmanaged**: no event ever named the account (service accounts, the
//!   admin); listed apart, and silenced by `[reconcile] allowlist`.
//!
//! A person whose latest run is still at work (queued, running, retrying) is
//! not judged: the run will change the account. Nor is one whose latest
//! joiner or mover did not succeed: the run itself says what is wrong.

use crate::intake::{self, Submission, Submitted};
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_config::{ReconcileSettings, ScheduleSettings};
use lifecycle_domain::apps::AppRequest;
use lifecycle_domain::{Event, RunInput, RunState, VendorKind, Workflow};
use lifecycle_engine::{Account, Connector, Progress};
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::reconcile::{self as store, FindingFilter, Seen};
use lifecycle_store::runs::Run;
use lifecycle_store::Db;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;
use tracing::Instrument;

/// `events.source` of the events a fix makes.
pub const SOURCE: &str = "reconcile";
pub const ACTION_FIX: &str = "reconcile.fix";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Orphaned,
    Missing,
    Drifted,
    Unmanaged,
}

impl FindingKind {
    pub const ALL: [FindingKind; 4] =
        [FindingKind::Orphaned, FindingKind::Missing, FindingKind::Drifted, FindingKind::Unmanaged];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Orphaned => "orphaned",
            FindingKind::Missing => "missing",
            FindingKind::Drifted => "drifted",
            FindingKind::Unmanaged => "unmanaged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The workflow a fix runs for it; none for an unmanaged account (whose
    /// it is, and whether it should exist, is for a person to say).
    pub fn fix_workflow(self) -> Option<Workflow> {
        match self {
            FindingKind::Orphaned => Some(Workflow::Leaver),
            FindingKind::Missing => Some(Workflow::Joiner),
            FindingKind::Drifted => Some(Workflow::Mover),
            FindingKind::Unmanaged => None,
        }
    }
}

/// A finding as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    pub id: String,
    pub vendor: VendorKind,
    pub kind: String,
    pub account: String,
    pub vendor_account_id: Option<String>,
    pub person: Option<String>,
    pub detail: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_by: Option<String>,
}

impl From<store::Finding> for FindingView {
    fn from(f: store::Finding) -> Self {
        Self {
            id: f.id,
            vendor: f.vendor,
            kind: f.kind,
            account: f.account_key,
            vendor_account_id: f.vendor_account_id,
            person: f.person_key,
            detail: f.detail,
            first_seen_at: f.first_seen_at,
            last_seen_at: f.last_seen_at,
            resolved_at: f.resolved_at,
            fix_event_id: f.fix_event_id,
            fixed_by: f.fixed_by,
        }
    }
}

/// What one pass over one vendor found.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub pass_id: String,
    pub vendor: VendorKind,
    pub accounts: usize,
    pub seconds: f64,
    /// The vendor's open findings after the pass.
    pub findings: Vec<FindingView>,
}

impl PassReport {
    pub fn count(&self, kind: FindingKind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind.as_str()).count()
    }

    /// "pipedrive: 412 accounts, 1 orphaned, 0 missing, 2 drifted, 3 unmanaged".
    pub fn line(&self) -> String {
        let counts: Vec<String> =
            FindingKind::ALL.iter().map(|k| format!("{} {}", self.count(*k), k.as_str())).collect();
        format!("{}: {} accounts, {}", self.vendor, self.accounts, counts.join(", "))
    }
}

/// Reads `connector`'s directory and records what differs. `slot` names a
/// scheduled pass's window: when another worker took it, nothing is read and
/// the answer is None. The vendor's failure ends the pass with its error
/// recorded ([`OpsError::Vendor`]); a vendor that cannot list its accounts at
/// all ([`Connector::not_reconcilable`]) is refused before any pass
/// ([`OpsError::Refused`]).
pub async fn reconcile(
    db: &Db,
    connector: &dyn Connector,
    settings: &ReconcileSettings,
    requested_by: &str,
    slot: Option<&str>,
    progress: &dyn Progress,
) -> Result<Option<PassReport>, OpsError> {
    let vendor = connector.vendor();
    if let Some(why) = connector.not_reconcilable() {
        // No pass: there is nothing it could read, and a pass that always fails would only alert.
        return Err(OpsError::Refused(format!("{vendor} is not reconcilable: {why}")));
    }
    let Some(pass) = store::begin_pass(db, vendor, slot, requested_by).await? else {
        return Ok(None);
    };
    let started = Instant::now();
    let accounts = match connector.directory(progress).await {
        Ok(a) => a,
        Err(e) => {
            let message = format!("could not read {vendor}'s accounts: {e}");
            store::finish_pass(db, &pass.id, None, None, Some(&message)).await?;
            metrics::counter!("lifecycle_reconcile_passes_total", "vendor" => vendor.as_str(), "result" => "failed")
                .increment(1);
            return Err(OpsError::Vendor(message));
        }
    };
    // The pass's time, taken before what lifecycle knows is read: a finding's
    // `last_seen_at`. Any event received after it is one the pass did not
    // judge from, and a fix of the finding is refused (see [`fix`]).
    let judged_at = Utc::now();
    let known = Known::load(db, vendor).await?;
    let seen = classify(vendor, &accounts, &known, settings, |app| connector.desired_access(app));
    let open = store::record(db, vendor, seen, judged_at).await?;
    store::finish_pass(db, &pass.id, Some(accounts.len()), Some(open.len()), None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let report = PassReport {
        pass_id: pass.id,
        vendor,
        accounts: accounts.len(),
        seconds,
        findings: open.into_iter().map(FindingView::from).collect(),
    };
    for kind in FindingKind::ALL {
        metrics::gauge!("lifecycle_reconcile_findings", "vendor" => vendor.as_str(), "kind" => kind.as_str())
            .set(report.count(kind) as f64);
    }
    metrics::counter!("lifecycle_reconcile_passes_total", "vendor" => vendor.as_str(), "result" => "succeeded")
        .increment(1);
    metrics::histogram!("lifecycle_reconcile_duration_seconds", "vendor" => vendor.as_str()).record(seconds);
    metrics::gauge!("lifecycle_reconcile_last_success_timestamp_seconds", "vendor" => vendor.as_str())
        .set(Utc::now().timestamp() as f64);
    tracing::info!(
        vendor = vendor.as_str(),
        accounts = report.accounts,
        findings = report.findings.len(),
        seconds,
        "reconciled"
    );
    Ok(Some(report))
}

/// A claimed request that outlives this is taken again by another worker:
/// its worker died mid-read (a 5,000-person Calendly read takes a minute).
pub const REQUEST_STALE_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// Carries out the oldest open request for a vendor of `registry` (an
/// operator's "reconcile now"), through this process's connectors: for a
/// worker, the same clients and rate limiters as its runs. None when there
/// is no request to take.
pub async fn serve_request(
    db: &Db,
    registry: &lifecycle_engine::Registry,
    settings: &ReconcileSettings,
    owner: &str,
) -> Result<Option<(store::Request, Result<PassReport, OpsError>)>, OpsError> {
    let Some(request) = store::claim_request(db, &registry.vendors(), owner, REQUEST_STALE_AFTER).await? else {
        return Ok(None);
    };
    let connector = registry.get(request.vendor).expect("claimed for a vendor of the registry");
    // A trace of its own (made here, after the claim: an empty look makes none).
    let span = tracing::info_span!("reconcile", vendor = request.vendor.as_str(), requested_by = %request.requested_by);
    let result =
        reconcile(db, &*connector, settings, &request.requested_by, None, &|_: usize| {}).instrument(span).await;
    let result = match result {
        Ok(Some(report)) => {
            store::finish_request(db, &request.id, Some(&report.pass_id), None).await?;
            Ok(report)
        }
        Ok(None) => unreachable!("a pass without a slot always starts"),
        Err(e) => {
            store::finish_request(db, &request.id, None, Some(&e.to_string())).await?;
            Err(e)
        }
    };
    Ok(Some((request, result)))
}

/// A finished pass as [`reconcile`] reported it, read back: for whoever asked a
/// worker for it.
pub async fn report_of(db: &Db, pass_id: &str) -> Result<PassReport, OpsError> {
    let pass = store::get_pass(db, pass_id).await?.ok_or_else(|| OpsError::NotFound(format!("no pass {pass_id}")))?;
    let seconds = pass.finished_at.map_or(0.0, |f| (f - pass.started_at).num_milliseconds() as f64 / 1000.0);
    let open = store::findings(db, &FindingFilter { vendor: Some(pass.vendor), ..Default::default() }).await?;
    Ok(PassReport {
        pass_id: pass.id,
        vendor: pass.vendor,
        accounts: pass.accounts.unwrap_or(0).max(0) as usize,
        seconds,
        findings: open.into_iter().map(FindingView::from).collect(),
    })
}

/// What lifecycle knows of the people at one vendor.
#[derive(Default)]
pub struct Known {
    /// Each person's latest run in force at the vendor, by lower-cased address.
    at_vendor: HashMap<String, Latest>,
    /// Each person's latest run in force at any vendor: whether they left.
    anywhere: HashMap<String, Latest>,
    /// Lower-cased vendor login -> address, from the latest runs at a vendor that knows people
    /// by login (GitHub, CircleCI): its accounts carry a login and seldom an address.
    by_login: HashMap<String, String>,
}

#[derive(Debug, Clone)]
struct Latest {
    run_id: String,
    event_id: String,
    workflow: Workflow,
    state: RunState,
    input: Option<RunInput>,
    at: DateTime<Utc>,
    /// When its event arrived.
    received_at: DateTime<Utc>,
}

impl Latest {
    fn of(run: Run) -> Self {
        Latest {
            input: serde_json::from_str(&run.input).ok(),
            received_at: run.created_at,
            event_id: run.event_id,
            run_id: run.id,
            workflow: run.workflow,
            state: run.state,
            at: run.finished_at.unwrap_or(run.created_at),
        }
    }
    fn at_work(&self) -> bool {
        matches!(self.state, RunState::Queued | RunState::Running | RunState::RetryScheduled)
    }
    fn describe(&self) -> String {
        format!("{} run {} ({}, {})", self.workflow, self.run_id, self.state, self.at.format("%Y-%m-%d %H:%M UTC"))
    }
}

impl Known {
    pub async fn load(db: &Db, vendor: VendorKind) -> Result<Self, OpsError> {
        let mut known = Known::default();
        for run in store::latest_runs(db, Some(vendor)).await? {
            known.at_vendor(Latest::of(run));
        }
        for run in store::latest_runs(db, None).await? {
            let person = run.person_key.clone();
            known.anywhere.insert(person, Latest::of(run));
        }
        Ok(known)
    }

    /// A person's latest run at the vendor, under their address and their login there.
    fn at_vendor(&mut self, latest: Latest) {
        if let Some(input) = &latest.input {
            let person = input.employee.email.normalized();
            if let Some(login) = input.app.login() {
                self.by_login.insert(login.to_lowercase(), person.clone());
            }
            self.at_vendor.insert(person, latest);
        }
    }

    /// The person's latest run in force at the vendor, else anywhere.
    fn latest(&self, person: &str) -> Option<&Latest> {
        self.at_vendor.get(person).or_else(|| self.anywhere.get(person))
    }

    /// Whose account it is: by its address, else by its login through the person's latest run
    /// at the vendor (a login-based vendor's members have no address to match).
    fn person_of(&self, account: &Account) -> Option<String> {
        let by_email = account
            .email
            .as_ref()
            .map(|e| e.to_lowercase())
            .filter(|e| self.at_vendor.contains_key(e) || self.anywhere.contains_key(e));
        by_email.or_else(|| self.by_login.get(&account.login.as_ref()?.to_lowercase()).cloned())
    }
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

/// The findings of one pass: pure, so every rule is tested without a vendor.
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
        if let Some(p) = &person {
            present.insert(p.clone());
        }
        let finding = |kind: FindingKind, detail: String| Seen {
            kind: kind.as_str().to_string(),
            account_key: key.clone(),
            vendor_account_id: Some(account.vendor_id.clone()),
            person_key: person.clone(),
            detail,
        };
        let Some(person) = &person else {
            if !settings.allows(vendor.as_str(), &key) {
                let why = account.protected.as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
                seen.push(finding(
                    FindingKind::Unmanaged,
                    format!(
                        "{vendor} account {} ({}) is named by no event{why}; if it is meant to exist, add it to \
                         [reconcile] allowlist",
                        account.name,
                        account.status.as_str()
                    ),
                ));
            }
            continue;
        };
        let here = known.at_vendor.get(person);
        if here.is_some_and(Latest::at_work) {
            continue;
        }
        let left = match here {
            Some(l) => l.workflow == Workflow::Leaver,
            None => known.anywhere.get(person).is_some_and(|l| l.workflow == Workflow::Leaver && !l.at_work()),
        };
        if left {
            if account.status.has_access() {
                let because = match here {
                    Some(l) => format!("their latest {vendor} event was a leaver ({})", l.describe()),
                    None => format!(
                        "they left ({}) and lifecycle never managed this {vendor} account",
                        known.anywhere[person].describe()
                    ),
                };
                let protected = account
                    .protected
                    .as_ref()
                    .map(|p| format!("; it cannot be removed by lifecycle: {p}"))
                    .unwrap_or_default();
                seen.push(finding(
                    FindingKind::Orphaned,
                    format!(
                        "{} is {} at {vendor} although {because}{protected}",
                        account.name,
                        account.status.as_str()
                    ),
                ));
            }
            continue;
        }
        let Some(latest) = here.filter(|l| l.state == RunState::Succeeded) else {
            // Known to HR, never (successfully) provisioned here by lifecycle:
            // the account was made by hand, or the run says what went wrong.
            if here.is_none() && !settings.allows(vendor.as_str(), &key) {
                seen.push(finding(
                    FindingKind::Unmanaged,
                    format!(
                        "{} is known to HR but no event gave them {vendor}; the account was made outside lifecycle",
                        account.name
                    ),
                ));
            }
            continue;
        };
        if account.status == lifecycle_engine::AccountStatus::Deactivated {
            seen.push(finding(
                FindingKind::Missing,
                format!(
                    "the account of {} is deactivated, but {} asks for it to be active",
                    account.name,
                    latest.describe()
                ),
            ));
            continue;
        }
        let Some(want) = latest.input.as_ref().and_then(|i| desired_access(&i.app)) else { continue };
        if want != account.access {
            let lacks: BTreeSet<String> = want.difference(&account.access).cloned().collect();
            let extra: BTreeSet<String> = account.access.difference(&want).cloned().collect();
            seen.push(finding(
                FindingKind::Drifted,
                format!(
                    "{} has {} where {} asks for {} (lacks: {}; extra: {})",
                    account.name,
                    list(&account.access),
                    latest.describe(),
                    list(&want),
                    list(&lacks),
                    list(&extra)
                ),
            ));
        }
    }
    for (person, latest) in &known.at_vendor {
        let provisioned =
            matches!(latest.workflow, Workflow::Joiner | Workflow::Mover) && latest.state == RunState::Succeeded;
        if provisioned && !present.contains(person) {
            seen.push(Seen {
                kind: FindingKind::Missing.as_str().to_string(),
                account_key: person.clone(),
                vendor_account_id: None,
                person_key: Some(person.clone()),
                detail: format!("{person} has no {vendor} account, but {} gave them one", latest.describe()),
            });
        }
    }
    seen.sort_by(|a, b| (&a.kind, &a.account_key).cmp(&(&b.kind, &b.account_key)));
    seen
}

/// Open findings (with `include_resolved`, also the ones passes no longer see).
pub async fn findings(db: &Db, filter: &FindingFilter) -> Result<Vec<FindingView>, OpsError> {
    Ok(store::findings(db, filter).await?.into_iter().map(FindingView::from).collect())
}

/// What a fix did, or (dry run) would do, for one finding.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    pub finding_id: String,
    pub vendor: VendorKind,
    pub kind: String,
    pub account: String,
    pub workflow: Workflow,
    /// The `occurred_at` of its event: the time of the pass that saw the
    /// finding, so that any later event from HR outranks the fix.
    pub occurred_at: DateTime<Utc>,
    /// The person's latest event, the one the fix is made from (a preview
    /// shows it: what the operator is about to confirm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_event: Option<PersonEvent>,
    /// The event made for it (none in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The end of a fix: each finding fixed (or that would be), and each left, with why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FixSummary {
    pub dry_run: bool,
    pub fixed: Vec<Fix>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub finding_id: String,
    pub account: String,
    pub reason: String,
    /// The person changed since the pass that saw the finding (a newer
    /// event, or their latest one no longer implies the fix): a new pass
    /// judges them again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub person_changed: bool,
    /// The person's latest event, when the skip is about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_event: Option<PersonEvent>,
}

/// A person's latest event as a fix judges it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PersonEvent {
    pub event_id: String,
    /// joiner, mover, leaver, cancel, ...
    #[serde(rename = "type")]
    pub event_type: String,
    /// Where it came from (`intake`, `scim`, `reconcile`, ...), when read from the event itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub received_at: DateTime<Utc>,
    /// Its run at the vendor (or elsewhere) and how it stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_state: Option<RunState>,
}

impl PersonEvent {
    fn of_latest(l: &Latest) -> Self {
        PersonEvent {
            event_id: l.event_id.clone(),
            event_type: l.workflow.as_str().to_string(),
            source: None,
            received_at: l.received_at,
            run_id: Some(l.run_id.clone()),
            run_state: Some(l.state),
        }
    }

    fn of_event(e: &lifecycle_store::entity::event::Model) -> Self {
        PersonEvent {
            event_id: e.id.clone(),
            event_type: e.event_type.clone(),
            source: Some(e.source.clone()),
            received_at: e.received_at,
            run_id: None,
            run_state: None,
        }
    }

    /// "leaver event 0193… (received 2026-12-07 04:50 UTC, from intake; run 0193… succeeded)".
    pub fn describe(&self) -> String {
        let mut more = vec![format!("received {}", self.received_at.format("%Y-%m-%d %H:%M:%S UTC"))];
        if let Some(s) = &self.source {
            more.push(format!("from {s}"));
        }
        if let (Some(run), Some(state)) = (&self.run_id, &self.run_state) {
            more.push(format!("run {run} {state}"));
        }
        format!("{} event {} ({})", self.event_type, self.event_id, more.join(", "))
    }
}

impl FixSummary {
    /// The skipped findings whose person changed since the pass that saw them.
    pub fn changed(&self) -> usize {
        self.skipped.iter().filter(|k| k.person_changed).count()
    }

    pub fn line(&self) -> String {
        let changed = match self.changed() {
            0 => String::new(),
            n => format!(" ({n} because the person changed since the pass; a new pass judges them again)"),
        };
        if self.dry_run {
            format!(
                "dry run: {} finding(s) would become runs, {} left as they are{changed}; run again with --yes to make \
                 them",
                self.fixed.len(),
                self.skipped.len()
            )
        } else {
            format!("{} finding(s) became runs, {} left as they are{changed}", self.fixed.len(), self.skipped.len())
        }
    }
}

/// Turns each open, unfixed finding that `filter` selects into an event with
/// its run (orphaned → leaver, missing → joiner, drifted → mover), made from
/// the person's latest event at the vendor and audited; unmanaged accounts
/// are left for a person. With `dry_run` nothing is written.
///
/// A finding is what a pass saw then: when the fix is made it is judged
/// again, and skipped (saying why, `person_changed`) when the person changed
/// since: an event about them arrived after the pass (other than a fix's), or
/// their latest event no longer implies the fix's kind (a leaver for an
/// orphaned account; a joiner or mover that succeeded for a missing or
/// drifted one). The event is dated the pass's time (`occurred_at`), not
/// now: any later event from HR outranks it.
#[allow(clippy::too_many_arguments)]
pub async fn fix(
    db: &Db,
    schedule: &ScheduleSettings,
    guard: &lifecycle_store::safety::Guard,
    filter: &FindingFilter,
    only: Option<&[String]>,
    actor: &str,
    dry_run: bool,
    mut progress: impl FnMut(&str),
) -> Result<FixSummary, OpsError> {
    let selected: Vec<store::Finding> =
        store::findings(db, &FindingFilter { include_resolved: false, ..filter.clone() })
            .await?
            .into_iter()
            .filter(|f| only.is_none_or(|ids| ids.contains(&f.id)))
            .collect();
    let mut summary = FixSummary { dry_run, ..Default::default() };
    let mut knowledge: HashMap<VendorKind, Known> = HashMap::new();
    for f in selected {
        let skip = |reason: String| Skipped {
            finding_id: f.id.clone(),
            account: f.account_key.clone(),
            reason,
            person_changed: false,
            latest_event: None,
        };
        let changed = |reason: String, latest: Option<PersonEvent>| Skipped {
            person_changed: true,
            latest_event: latest,
            ..skip(reason)
        };
        let Some(workflow) = FindingKind::parse(&f.kind).and_then(FindingKind::fix_workflow) else {
            summary.skipped.push(skip("an unmanaged account is for a person to judge (or to allowlist)".into()));
            progress(&f.id);
            continue;
        };
        if let Some(event) = &f.fix_event_id {
            summary.skipped.push(skip(format!("already fixed by event {event}; the next pass will tell")));
            progress(&f.id);
            continue;
        }
        let known = match knowledge.get(&f.vendor) {
            Some(k) => k,
            None => {
                let k = Known::load(db, f.vendor).await?;
                knowledge.entry(f.vendor).or_insert(k)
            }
        };
        let latest_event = f.person_key.as_deref().and_then(|p| known.latest(p)).map(PersonEvent::of_latest);
        if let Some(person) = f.person_key.as_deref() {
            if let Some(newer) = store::event_since(db, person, f.last_seen_at, SOURCE).await? {
                let newer = PersonEvent::of_event(&newer);
                summary.skipped.push(changed(
                    format!(
                        "{person} changed since the pass that saw this (at {}): {} came after it; a new pass judges \
                         them again",
                        f.last_seen_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        newer.describe()
                    ),
                    Some(newer),
                ));
                progress(&f.id);
                continue;
            }
            if let Err(why) = still_holds(&f, workflow, person, known) {
                summary.skipped.push(changed(
                    format!("{person} changed since the pass that saw this: {why}; a new pass judges them again"),
                    latest_event,
                ));
                progress(&f.id);
                continue;
            }
        }
        let payload = match fix_event(&f, workflow, known) {
            Ok(p) => p,
            Err(reason) => {
                summary.skipped.push(skip(reason));
                progress(&f.id);
                continue;
            }
        };
        let event = match Event::parse(&payload) {
            Ok(e) => e,
            Err(errors) => {
                let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect();
                summary.skipped.push(skip(format!("the event a fix would send is invalid ({})", fields.join("; "))));
                progress(&f.id);
                continue;
            }
        };
        let mut done = Fix {
            finding_id: f.id.clone(),
            vendor: f.vendor,
            kind: f.kind.clone(),
            account: f.account_key.clone(),
            workflow,
            occurred_at: f.last_seen_at,
            latest_event,
            event_id: None,
            run_id: None,
        };
        if !dry_run {
            let key = format!("fix:{}", f.id);
            let hash = lifecycle_domain::event::payload_hash(&payload);
            let submission = Submission {
                source: SOURCE,
                idempotency_key: &key,
                payload: &payload,
                payload_hash: &hash,
                event: &event,
                actor: SOURCE,
            };
            let (event_id, run_id) = match intake::submit(db, schedule, guard, submission).await? {
                Submitted::Created { event_id, body, .. } => (event_id, body.runs.first().map(|r| r.run_id.clone())),
                // A fix that stopped half-way before (the event stored, the
                // finding not yet marked): the same event, not a second one.
                Submitted::Existing(e) => {
                    let run = lifecycle_store::runs::for_event(db, &e.id).await?.into_iter().next().map(|r| r.id);
                    (e.id, run)
                }
            };
            store::mark_fixed(db, &f.id, &event_id, actor).await?;
            audit::record(
                db,
                NewEntry {
                    actor,
                    action: ACTION_FIX,
                    target_kind: "finding",
                    target_id: &f.id,
                    reason: None,
                    details: Some(json!({
                        "vendor": f.vendor,
                        "kind": f.kind,
                        "account": f.account_key,
                        "workflow": workflow,
                        "event_id": event_id,
                        "run_id": run_id,
                    })),
                },
            )
            .await?;
            tracing::info!(finding = %f.id, vendor = f.vendor.as_str(), kind = %f.kind, %event_id, actor, "finding fixed");
            done.event_id = Some(event_id);
            done.run_id = run_id;
        }
        summary.fixed.push(done);
        progress(&f.id);
    }
    Ok(summary)
}

/// Whether the person's latest run in force (`known`, read when the fix is
/// made) still implies `workflow`, the fix of `f`'s kind: a leaver (at the
/// vendor, or anywhere when lifecycle never managed them there) for an
/// orphaned account; a joiner or mover that succeeded at the vendor for a
/// missing or drifted one. Nor is a person whose run is at work judged.
fn still_holds(f: &store::Finding, workflow: Workflow, person: &str, known: &Known) -> Result<(), String> {
    let here = known.at_vendor.get(person);
    let anywhere = known.anywhere.get(person);
    if let Some(l) = here.filter(|l| l.at_work()).or(anywhere.filter(|l| here.is_none() && l.at_work())) {
        return Err(format!("their {} is at work and will change the account", l.describe()));
    }
    let holds = match workflow {
        Workflow::Leaver => match here {
            Some(l) => l.workflow == Workflow::Leaver,
            None => anywhere.is_some_and(|l| l.workflow == Workflow::Leaver),
        },
        Workflow::Joiner | Workflow::Mover => here.is_some_and(|l| {
            matches!(l.workflow, Workflow::Joiner | Workflow::Mover) && l.state == RunState::Succeeded
        }),
        _ => false,
    };
    if holds {
        return Ok(());
    }
    let kind = &f.kind;
    match here.or(anywhere) {
        Some(l) => Err(format!("their latest event, the {}, no longer makes this {kind} (a {workflow})", l.describe())),
        None => Err(format!("no event about them is in force any more for this {kind} (a {workflow})")),
    }
}

/// The intake JSON of the event that fixes `f`: the person as their latest
/// event at the vendor (or anywhere) names them, the vendor's request from
/// that event (a leaver found only by its account asks for the account).
fn fix_event(f: &store::Finding, workflow: Workflow, known: &Known) -> Result<Value, String> {
    let person = f.person_key.as_deref().ok_or("the account belongs to nobody lifecycle knows")?;
    let input = known
        .latest(person)
        .and_then(|l| l.input.as_ref())
        .ok_or_else(|| format!("no event about {person} can be read to make the fix from"))?;
    let app = match (&input.app, workflow) {
        (app, _) if app.vendor() == f.vendor => app_json(app),
        // Known from another vendor's events only: a leaver needs nothing
        // of the vendor but how it finds the account.
        (_, Workflow::Leaver) => json!({}),
        _ => return Err(format!("no {} event about {person} says what they should have", f.vendor)),
    };
    let mut employee = json!({ "id": input.employee.id, "email": input.employee.email.normalized() });
    if let Some(g) = &input.employee.given_name {
        employee["given_name"] = json!(g);
    }
    if let Some(fam) = &input.employee.family_name {
        employee["family_name"] = json!(fam);
    }
    let mut event = json!({
        "type": workflow.as_str(),
        // The pass's time, not now: any event HR sends later outranks the fix.
        "occurred_at": f.last_seen_at.to_rfc3339(),
        "employee": employee,
        "apps": { f.vendor.as_str(): app },
    });
    if let Some(s) = &input.successor_email {
        event["successor_email"] = json!(s.normalized());
    }
    Ok(event)
}

/// An app request as the intake's `apps.<vendor>` object.
fn app_json(app: &AppRequest) -> Value {
    let mut v = serde_json::to_value(app).expect("an app request serializes");
    if let Some(obj) = v.as_object_mut() {
        obj.remove("vendor");
        obj.retain(|_, v| !v.is_null());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_engine::AccountStatus;

    fn input(vendor: &str, email: &str, app: Value) -> RunInput {
        let mut app = app;
        app["vendor"] = json!(vendor);
        serde_json::from_value(json!({
            "event_type": "joiner",
            "employee": { "id": "E-1", "email": email },
            "app": app,
        }))
        .expect("a run input")
    }

    fn latest(workflow: Workflow, state: RunState, input: RunInput) -> Latest {
        Latest {
            run_id: "run-1".into(),
            event_id: "event-1".into(),
            workflow,
            state,
            input: Some(input),
            at: Utc::now(),
            received_at: Utc::now(),
        }
    }

    fn account(email: &str, status: AccountStatus, access: &[&str]) -> Account {
        Account {
            vendor_id: format!("id-{email}"),
            email: Some(email.into()),
            login: None,
            name: email.into(),
            status,
            access: access.iter().map(|s| s.to_string()).collect(),
            protected: None,
        }
    }

    /// Pipedrive's terms: the role name is the access.
    fn role(app: &AppRequest) -> Option<BTreeSet<String>> {
        match app {
            AppRequest::Pipedrive(p) => Some(p.role.iter().cloned().collect()),
            _ => None,
        }
    }

    fn known(people: &[(&str, Workflow, RunState)]) -> Known {
        let mut k = Known::default();
        for (email, workflow, state) in people {
            let l = latest(*workflow, *state, input("pipedrive", email, json!({ "role": "Sales Rep" })));
            k.at_vendor.insert(email.to_string(), l.clone());
            k.anywhere.insert(email.to_string(), l);
        }
        k
    }

    fn kinds(seen: &[Seen]) -> Vec<(String, String)> {
        seen.iter().map(|s| (s.kind.clone(), s.account_key.clone())).collect()
    }

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

    #[test]
    fn a_fix_is_the_persons_latest_request_as_an_intake_event() {
        let k = known(&[("grace@example.com", Workflow::Joiner, RunState::Succeeded)]);
        let f = store::Finding {
            id: "f-1".into(),
            vendor: VendorKind::Pipedrive,
            kind: "drifted".into(),
            account_key: "grace@example.com".into(),
            vendor_account_id: Some("7".into()),
            person_key: Some("grace@example.com".into()),
            detail: String::new(),
            first_seen_at: Utc::now() - chrono::Duration::hours(3),
            last_seen_at: Utc::now() - chrono::Duration::hours(1),
            resolved_at: None,
            fix_event_id: None,
            fixed_by: None,
            fixed_at: None,
        };
        let event = fix_event(&f, Workflow::Mover, &k).expect("a fix event");
        assert_eq!(event["type"], "mover");
        assert_eq!(event["occurred_at"], json!(f.last_seen_at.to_rfc3339()), "dated the pass's time, not now");
        assert_eq!(event["apps"], json!({ "pipedrive": { "role": "Sales Rep" } }));
        assert_eq!(event["employee"], json!({ "id": "E-1", "email": "grace@example.com" }));
        let parsed = Event::parse(&event).expect("the intake takes it");
        assert_eq!(parsed.apps.len(), 1);
    }

    fn finding(kind: &str, person: &str) -> store::Finding {
        store::Finding {
            id: format!("f-{kind}"),
            vendor: VendorKind::Pipedrive,
            kind: kind.into(),
            account_key: person.into(),
            vendor_account_id: None,
            person_key: Some(person.into()),
            detail: String::new(),
            first_seen_at: Utc::now(),
            last_seen_at: Utc::now(),
            resolved_at: None,
            fix_event_id: None,
            fixed_by: None,
            fixed_at: None,
        }
    }

    #[test]
    fn a_fix_holds_only_while_the_latest_event_still_implies_its_kind() {
        let k = known(&[
            ("ada@example.com", Workflow::Joiner, RunState::Succeeded),
            ("alan@example.com", Workflow::Leaver, RunState::Succeeded),
            ("lin@example.com", Workflow::Mover, RunState::Running),
            ("kate@example.com", Workflow::Joiner, RunState::Dead),
        ]);
        let holds = |kind: &str, person: &str| {
            let workflow = FindingKind::parse(kind).and_then(FindingKind::fix_workflow).unwrap();
            still_holds(&finding(kind, person), workflow, person, &k)
        };
        assert_eq!(holds("missing", "ada@example.com"), Ok(()));
        assert_eq!(holds("drifted", "ada@example.com"), Ok(()));
        assert_eq!(holds("orphaned", "alan@example.com"), Ok(()));
        // Left since the pass said missing: no joiner gives the access back.
        let left = holds("missing", "alan@example.com").unwrap_err();
        assert!(left.contains("leaver run run-1") && left.contains("no longer makes this missing"), "{left}");
        // Joined again since the pass said orphaned: no leaver takes it away.
        let back = holds("orphaned", "ada@example.com").unwrap_err();
        assert!(back.contains("joiner run run-1"), "{back}");
        assert!(holds("drifted", "lin@example.com").unwrap_err().contains("is at work"));
        assert!(holds("missing", "kate@example.com").is_err(), "a joiner that did not succeed gave nothing");
        assert!(holds("missing", "nobody@example.com").unwrap_err().contains("no event about them"));
        // Known from another vendor only: a leaver there still orphans the account here, a joiner does not.
        let mut elsewhere = Known::default();
        let jira = |w| {
            latest(w, RunState::Succeeded, input("jira", "ada@example.com", json!({ "products": [], "groups": [] })))
        };
        elsewhere.anywhere.insert("ada@example.com".into(), jira(Workflow::Leaver));
        let f = finding("orphaned", "ada@example.com");
        assert_eq!(still_holds(&f, Workflow::Leaver, "ada@example.com", &elsewhere), Ok(()));
        elsewhere.anywhere.insert("ada@example.com".into(), jira(Workflow::Joiner));
        assert!(still_holds(&f, Workflow::Leaver, "ada@example.com", &elsewhere).is_err());
    }
}
