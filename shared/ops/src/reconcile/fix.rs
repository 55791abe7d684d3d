//! Fixes: each open finding turned into the event that makes the account
//! right (orphaned → leaver, missing → joiner, drifted → mover), judged
//! again when made, since the person may have changed since the pass.

use super::known::{Known, Latest};
use super::{FindingKind, ACTION_FIX, SOURCE};
use crate::intake::{self, Submission, Submitted};
use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_config::ScheduleSettings;
use lifecycle_domain::apps::AppRequest;
use lifecycle_domain::{Event, RunState, VendorKind, Workflow};
use lifecycle_store::audit::{self, NewEntry};
use lifecycle_store::reconcile::{self as store, FindingFilter};
use lifecycle_store::Db;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What a fix did, or (dry run) would do, for one finding.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    pub finding_id: String,
    pub vendor: VendorKind,
    pub kind: FindingKind,
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
        match prepare(db, &f, &mut knowledge).await? {
            Err(skipped) => summary.skipped.push(skipped),
            Ok(mut ready) => {
                if !dry_run {
                    let (event_id, run_id) = make(db, schedule, guard, &f, &ready, actor).await?;
                    ready.fix.event_id = Some(event_id);
                    ready.fix.run_id = run_id;
                }
                summary.fixed.push(ready.fix);
            }
        }
        progress(&f.id);
    }
    Ok(summary)
}

/// A fix judged still right: its event, and what the summary says of it.
struct Ready {
    fix: Fix,
    payload: Value,
    event: Event,
}

impl Skipped {
    fn of(f: &store::Finding, reason: String) -> Self {
        Skipped {
            finding_id: f.id.clone(),
            account: f.account_key.clone(),
            reason,
            person_changed: false,
            latest_event: None,
        }
    }

    fn person_changed(f: &store::Finding, reason: String, latest: Option<PersonEvent>) -> Self {
        Skipped { person_changed: true, latest_event: latest, ..Skipped::of(f, reason) }
    }
}

/// Judges `f` again as things stand now, and makes its event; or says why
/// it is left as it is. Reads only.
async fn prepare(
    db: &Db,
    f: &store::Finding,
    knowledge: &mut HashMap<VendorKind, Known>,
) -> Result<Result<Ready, Skipped>, OpsError> {
    let Some(workflow) = f.kind.fix_workflow() else {
        return Ok(Err(Skipped::of(f, "an unmanaged account is for a person to judge (or to allowlist)".into())));
    };
    if let Some(event) = &f.fix_event_id {
        return Ok(Err(Skipped::of(f, format!("already fixed by event {event}; the next pass will tell"))));
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
        if let Some(skipped) = changed_since(db, f, workflow, person, known, &latest_event).await? {
            return Ok(Err(skipped));
        }
    }
    let payload = match fix_event(f, workflow, known) {
        Ok(p) => p,
        Err(reason) => return Ok(Err(Skipped::of(f, reason))),
    };
    let event = match Event::parse(&payload) {
        Ok(e) => e,
        Err(errors) => {
            let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect();
            let reason = format!("the event a fix would send is invalid ({})", fields.join("; "));
            return Ok(Err(Skipped::of(f, reason)));
        }
    };
    let fix = Fix {
        finding_id: f.id.clone(),
        vendor: f.vendor,
        kind: f.kind,
        account: f.account_key.clone(),
        workflow,
        occurred_at: f.last_seen_at,
        latest_event,
        event_id: None,
        run_id: None,
    };
    Ok(Ok(Ready { fix, payload, event }))
}

/// Why `person` is not who the pass judged any more, if they are not: an
/// event about them came after the pass, or their latest one no longer
/// implies `workflow`.
async fn changed_since(
    db: &Db,
    f: &store::Finding,
    workflow: Workflow,
    person: &str,
    known: &Known,
    latest_event: &Option<PersonEvent>,
) -> Result<Option<Skipped>, OpsError> {
    if let Some(newer) = store::event_since(db, person, f.last_seen_at, SOURCE).await? {
        let newer = PersonEvent::of_event(&newer);
        let reason = format!(
            "{person} changed since the pass that saw this (at {}): {} came after it; a new pass judges them again",
            f.last_seen_at.format("%Y-%m-%d %H:%M:%S UTC"),
            newer.describe()
        );
        return Ok(Some(Skipped::person_changed(f, reason, Some(newer))));
    }
    Ok(still_holds(f, workflow, person, known).err().map(|why| {
        let reason = format!("{person} changed since the pass that saw this: {why}; a new pass judges them again");
        Skipped::person_changed(f, reason, latest_event.clone())
    }))
}

/// Submits the fix's event (its runs admitted as any event's), marks the
/// finding fixed and audits it: the event's id and its run's.
async fn make(
    db: &Db,
    schedule: &ScheduleSettings,
    guard: &lifecycle_store::safety::Guard,
    f: &store::Finding,
    ready: &Ready,
    actor: &str,
) -> Result<(String, Option<String>), OpsError> {
    let key = format!("fix:{}", f.id);
    let hash = lifecycle_domain::event::payload_hash(&ready.payload);
    let submission = Submission {
        source: SOURCE,
        idempotency_key: &key,
        payload: &ready.payload,
        payload_hash: &hash,
        event: &ready.event,
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
    let details = json!({
        "vendor": f.vendor,
        "kind": f.kind,
        "account": f.account_key,
        "workflow": ready.fix.workflow,
        "event_id": event_id,
        "run_id": run_id,
    });
    let entry = NewEntry {
        actor,
        action: ACTION_FIX,
        target_kind: "finding",
        target_id: &f.id,
        reason: None,
        details: Some(details),
    };
    audit::record(db, entry).await?;
    tracing::info!(finding = %f.id, vendor = f.vendor.as_str(), kind = %f.kind, %event_id, actor, "finding fixed");
    Ok((event_id, run_id))
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
    use crate::reconcile::test_fixtures::{input, known, latest};

    #[test]
    fn a_fix_is_the_persons_latest_request_as_an_intake_event() {
        let k = known(&[("grace@example.com", Workflow::Joiner, RunState::Succeeded)]);
        let f = store::Finding {
            id: "f-1".into(),
            vendor: VendorKind::Pipedrive,
            kind: FindingKind::Drifted,
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
            kind: kind.parse().unwrap(),
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
