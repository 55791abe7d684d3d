//! What Pipedrive's user webhooks mean to lifecycle (`POST /v1/webhooks/pipedrive`,
//! docs/contract.md §2). The producer's route authenticates, parses
//! (`lifecycle_domain::pipedrive_webhook`), stores and answers; the decisions are
//! Pipedrive's, so they live here, beside its workflows.
//!
//! What a user delivery means:
//! - deactivated outside our workflows: a `reassign_deals` run, to the
//!   successor of the person's last HR leaver event, else the fallback owner;
//!   not when our own leaver did it, nor when a reassignment is already open;
//! - reactivated without an HR joiner: drift `user_reactivated_outside`;
//! - added without an HR joiner: drift `user_added_outside_hr`;
//! - deleted: drift `user_deleted`, and waiting runs that cannot succeed end.
//!
//! [`decide`] is pure: it judges a [`Snapshot`] of what lifecycle knows of
//! the person, which the producer reads (through `lifecycle_ops`) before, and
//! the producer stores the [`Plan`] after.

use chrono::{DateTime, Duration as Age, Utc};
use lifecycle_domain::apps::{AppRequest, PipedriveApp};
use lifecycle_domain::pipedrive_webhook::{UserChange, WebhookAction};
use lifecycle_domain::{
    Access, DriftKind, Employee, EmployeeEmail, EventType, RunInput, RunState, VendorKind, Workflow,
};
use serde_json::Value;

/// The `events.source` of webhook deliveries; keys are unique per source.
pub const SOURCE: &str = "pipedrive_webhook";
/// The vendor whose webhooks these are: the snapshot's runs are its runs.
pub const VENDOR: VendorKind = VendorKind::Pipedrive;

/// A leaver run that succeeded this recently explains a deactivation:
/// Pipedrive delivers within seconds and retries for about three minutes.
const OWN_LEAVER_WINDOW_MINUTES: i64 = 60;

/// What lifecycle knows of the person a delivery is about, read before [`decide`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every [`VENDOR`] run for the person, newest first (none without an address).
    pub runs: Vec<PersonRun>,
    /// The id of the person's latest HR joiner event.
    pub joiner: Option<String>,
    /// The successor named by the person's latest HR leaver event.
    pub successor: Option<EmployeeEmail>,
    /// When the delivery is judged.
    pub now: DateTime<Utc>,
}

/// One of the person's runs, as [`decide`] reads it.
#[derive(Debug, Clone)]
pub struct PersonRun {
    pub id: String,
    pub workflow: Workflow,
    pub state: RunState,
    pub dispatch_seq: i64,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run a delivery starts, for [`VENDOR`].
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub workflow: Workflow,
    pub person_key: String,
    pub input: RunInput,
}

/// Drift a delivery reveals at [`VENDOR`].
#[derive(Debug, Clone)]
pub struct Drift {
    pub kind: DriftKind,
    pub vendor_user_id: Option<String>,
    /// Normalized.
    pub email: Option<String>,
    pub details: String,
}

/// A waiting run a delivery ends: to `state`, read at `dispatch_seq` (if it
/// moved on since, it is left alone).
#[derive(Debug, Clone)]
pub struct Ending {
    pub run_id: String,
    pub dispatch_seq: i64,
    pub state: RunState,
    pub outcome: String,
    pub access: Option<Access>,
}

/// What one delivery leads to.
pub struct Plan {
    pub event_type: &'static str,
    pub runs: Vec<NewRun>,
    pub drift: Vec<Drift>,
    pub endings: Vec<Ending>,
    /// Why, in words: stored with the delivery and answered to Pipedrive.
    pub note: String,
}

impl Plan {
    fn new(event_type: &'static str, note: String) -> Self {
        Plan { event_type, runs: Vec::new(), drift: Vec::new(), endings: Vec::new(), note }
    }
}

/// What a user delivery means, from what lifecycle knows of the person
/// (`known`: their runs at Pipedrive and their HR events). The caller stores the plan.
pub fn decide(change: &UserChange, known: &Snapshot) -> Plan {
    let u = &change.user;
    let who = match &u.email {
        Some(e) => format!("Pipedrive user {} ({e})", u.id),
        None => format!("Pipedrive user {} (no e-mail address in the delivery)", u.id),
    };
    let drift = |kind: DriftKind, details: String| Drift {
        kind,
        vendor_user_id: Some(u.id.clone()),
        email: u.email.as_ref().map(EmployeeEmail::normalized),
        details,
    };
    let person_runs = &known.runs;
    let recent = |r: &PersonRun| r.finished_at.is_some_and(|t| known.now - t < Age::minutes(OWN_LEAVER_WINDOW_MINUTES));
    // Under way: a `scheduled` run has done nothing yet (its day may be weeks
    // away), so it explains no change seen at Pipedrive today; nor does one
    // awaiting an approver, nor one the blast-radius guard holds.
    let unfinished = |r: &PersonRun| {
        !matches!(r.state, RunState::Scheduled | RunState::AwaitingApproval | RunState::Held)
            && RunState::UNFINISHED.contains(&r.state)
    };

    match change.action {
        WebhookAction::Added => {
            if u.email.is_none() {
                let mut p = Plan::new(
                    "pipedrive.user_added",
                    format!("{who} was added; without an address it cannot be matched to an HR joiner"),
                );
                p.drift.push(drift(DriftKind::UserAddedOutsideHr, p.note.clone()));
                return p;
            }
            match &known.joiner {
                Some(j) => {
                    Plan::new("pipedrive.user_added", format!("{who} was added; HR joiner event {j} explains it"))
                }
                None => {
                    let mut p = Plan::new(
                        "pipedrive.user_added",
                        format!("{who} was added in Pipedrive ({}) with no HR joiner event for that address: check who should have this account", source_words(change)),
                    );
                    p.drift.push(drift(DriftKind::UserAddedOutsideHr, p.note.clone()));
                    p
                }
            }
        }
        WebhookAction::Updated if change.is_deactivation() => {
            let Some(email) = &u.email else {
                let mut p = Plan::new("pipedrive.user_deactivated", format!("{who} was deactivated; without an address lifecycle cannot reassign their open deals: reassign them in Pipedrive"));
                p.drift.push(drift(DriftKind::UserDeactivatedOutside, p.note.clone()));
                return p;
            };
            let own_leaver = person_runs.iter().find(|r| {
                r.workflow == Workflow::Leaver && (unfinished(r) || (r.state == RunState::Succeeded && recent(r)))
            });
            if let Some(r) = own_leaver {
                return Plan::new(
                    "pipedrive.user_deactivated",
                    format!("{who} was deactivated by lifecycle's leaver run {} ({}), which moves their open deals itself; no reassignment started", r.id, r.state),
                );
            }
            if let Some(r) = person_runs.iter().find(|r| r.workflow == Workflow::ReassignDeals && unfinished(r)) {
                return Plan::new(
                    "pipedrive.user_deactivated",
                    format!("{who} was deactivated; reassignment run {} is already under way (another delivery of the same change); no second one started", r.id),
                );
            }
            let successor = known.successor.clone();
            let to = match &successor {
                Some(s) => format!("to {s}, the successor named by their last HR leaver event"),
                None => "to the configured fallback owner (no HR leaver event names a successor)".to_string(),
            };
            let input = RunInput {
                event_type: EventType::Leaver,
                occurred_at: None,
                employee: Employee {
                    id: format!("pipedrive-user:{}", u.id),
                    email: email.clone(),
                    given_name: u.name.clone(),
                    family_name: None,
                },
                successor_email: successor.filter(|s| s != email),
                app: AppRequest::Pipedrive(PipedriveApp::default()),
            };
            let mut p = Plan::new(
                "pipedrive.user_deactivated",
                format!("{who} was deactivated outside lifecycle ({}); Pipedrive does not move their open deals, so a reassignment run moves them {to}", source_words(change)),
            );
            p.drift.push(drift(DriftKind::UserDeactivatedOutside, p.note.clone()));
            p.runs.push(NewRun {
                id: uuid::Uuid::now_v7().to_string(),
                workflow: Workflow::ReassignDeals,
                person_key: email.normalized(),
                input,
            });
            p
        }
        WebhookAction::Updated if u.active_before == Some(false) && u.active_after == Some(true) => {
            let ours = person_runs.iter().find(|r| r.workflow == Workflow::Joiner && (unfinished(r) || recent(r)));
            match ours {
                Some(r) => Plan::new(
                    "pipedrive.user_reactivated",
                    format!("{who} was reactivated by lifecycle's joiner run {}", r.id),
                ),
                None => {
                    let mut p = Plan::new(
                        "pipedrive.user_reactivated",
                        format!("{who} was reactivated in Pipedrive ({}) without an HR joiner: check who should have this account", source_words(change)),
                    );
                    p.drift.push(drift(DriftKind::UserReactivatedOutside, p.note.clone()));
                    p
                }
            }
        }
        WebhookAction::Updated => {
            Plan::new("pipedrive.user_updated", format!("{who} was updated; nothing for lifecycle to do"))
        }
        WebhookAction::Deleted => {
            let when = known.now.format("%Y-%m-%d %H:%M UTC");
            let mut p = Plan::new("pipedrive.user_deleted", String::new());
            for r in person_runs.iter().filter(|r| RunState::WAITING.contains(&r.state)) {
                let ending = match r.workflow {
                    // The leaver's goal — no access — is what the deletion achieved.
                    Workflow::Leaver => Some((RunState::Succeeded, format!("{who} was deleted in Pipedrive ({when}) before this leaver ran: they have no Pipedrive access; nothing left to do. Their open deals were not moved by lifecycle: check in Pipedrive that they have an active owner."), Some(Access::Absent))),
                    Workflow::Mover => Some((RunState::NeedsManualAction, format!("{who} was deleted in Pipedrive ({when}) before this mover ran, so there is no account to change: send a joiner event if they should have Pipedrive again."), None)),
                    Workflow::ReassignDeals => Some((RunState::NeedsManualAction, format!("{who} was deleted in Pipedrive ({when}) before their open deals were reassigned: check in Pipedrive who owns their former deals and give them an active owner."), None)),
                    // A waiting joiner can still do what HR asked: create the account.
                    Workflow::Joiner => None,
                };
                if let Some((state, outcome, access)) = ending {
                    p.endings.push(Ending {
                        run_id: r.id.clone(),
                        dispatch_seq: r.dispatch_seq,
                        state,
                        outcome,
                        access,
                    });
                }
            }
            p.note = match p.endings.len() {
                0 => format!("{who} was deleted in Pipedrive ({})", source_words(change)),
                n => format!("{who} was deleted in Pipedrive ({}); {n} waiting run(s) that can no longer do their work were ended", source_words(change)),
            };
            p.drift.push(drift(DriftKind::UserDeleted, p.note.clone()));
            p
        }
    }
}

fn source_words(change: &UserChange) -> &'static str {
    match change.change_source.as_deref() {
        Some("app") => "in the Pipedrive app",
        Some("api") => "through Pipedrive's API",
        _ => "by an unknown source",
    }
}

/// The body's hash without the attempt counters, so a retry hashes as the first delivery.
pub fn delivery_hash(value: &Value) -> String {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("retry");
        if let Some(Value::Object(meta)) = o.get_mut("meta") {
            meta.remove("attempt");
        }
    }
    lifecycle_domain::event::payload_hash(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::pipedrive_webhook::{WebhookUser, WebhookVersion};

    fn change(action: WebhookAction, before: Option<bool>, after: Option<bool>) -> UserChange {
        UserChange {
            version: WebhookVersion::V2,
            action,
            delivery_key: "d1".into(),
            user: WebhookUser {
                id: "42".into(),
                email: Some(EmployeeEmail::parse("ada@example.com").unwrap()),
                name: Some("Ada".into()),
                active_before: before,
                active_after: after,
            },
            change_source: Some("app".into()),
            attempt: 1,
        }
    }

    fn run(
        id: &str,
        workflow: Workflow,
        state: RunState,
        finished_minutes_ago: Option<i64>,
        now: DateTime<Utc>,
    ) -> PersonRun {
        PersonRun {
            id: id.into(),
            workflow,
            state,
            dispatch_seq: 3,
            finished_at: finished_minutes_ago.map(|m| now - Age::minutes(m)),
        }
    }

    #[test]
    fn a_deactivation_outside_lifecycle_starts_a_reassignment_to_the_successor() {
        let known = Snapshot {
            successor: Some(EmployeeEmail::parse("bob@example.com").unwrap()),
            now: Utc::now(),
            ..Snapshot::default()
        };
        let plan = decide(&change(WebhookAction::Updated, Some(true), Some(false)), &known);
        assert_eq!(plan.event_type, "pipedrive.user_deactivated");
        assert_eq!(plan.drift.iter().map(|d| d.kind).collect::<Vec<_>>(), [DriftKind::UserDeactivatedOutside]);
        let [r] = plan.runs.as_slice() else { panic!("one run: {:?}", plan.runs) };
        assert_eq!((r.workflow, r.person_key.as_str()), (Workflow::ReassignDeals, "ada@example.com"));
        assert_eq!(r.input.successor_email.as_ref().map(EmployeeEmail::normalized).as_deref(), Some("bob@example.com"));
    }

    #[test]
    fn our_own_recent_leaver_explains_a_deactivation_and_an_old_one_does_not() {
        let now = Utc::now();
        let deactivated = change(WebhookAction::Updated, Some(true), Some(false));
        let recent = Snapshot {
            runs: vec![run("r1", Workflow::Leaver, RunState::Succeeded, Some(5), now)],
            now,
            ..Snapshot::default()
        };
        let plan = decide(&deactivated, &recent);
        assert!(plan.runs.is_empty() && plan.drift.is_empty(), "{}", plan.note);
        assert!(plan.note.contains("r1"), "{}", plan.note);
        let old = Snapshot {
            runs: vec![run("r1", Workflow::Leaver, RunState::Succeeded, Some(120), now)],
            now,
            ..Snapshot::default()
        };
        assert_eq!(decide(&deactivated, &old).runs.len(), 1);
    }

    #[test]
    fn an_addition_is_drift_unless_an_hr_joiner_explains_it() {
        let added = change(WebhookAction::Added, None, None);
        let known = Snapshot { now: Utc::now(), ..Snapshot::default() };
        assert_eq!(
            decide(&added, &known).drift.iter().map(|d| d.kind).collect::<Vec<_>>(),
            [DriftKind::UserAddedOutsideHr]
        );
        let explained = Snapshot { joiner: Some("ev-1".into()), ..known };
        let plan = decide(&added, &explained);
        assert!(plan.drift.is_empty() && plan.note.contains("ev-1"), "{}", plan.note);
    }

    #[test]
    fn a_deletion_ends_the_waiting_runs_that_can_no_longer_work_and_keeps_a_joiner() {
        let now = Utc::now();
        let known = Snapshot {
            runs: vec![
                run("leaver", Workflow::Leaver, RunState::Queued, None, now),
                run("mover", Workflow::Mover, RunState::Queued, None, now),
                run("joiner", Workflow::Joiner, RunState::Queued, None, now),
            ],
            now,
            ..Snapshot::default()
        };
        let plan = decide(&change(WebhookAction::Deleted, None, None), &known);
        let ended: Vec<(&str, RunState, Option<Access>)> =
            plan.endings.iter().map(|e| (e.run_id.as_str(), e.state, e.access)).collect();
        assert_eq!(
            ended,
            [("leaver", RunState::Succeeded, Some(Access::Absent)), ("mover", RunState::NeedsManualAction, None)]
        );
        assert!(plan.endings.iter().all(|e| e.dispatch_seq == 3));
        assert_eq!(plan.drift.iter().map(|d| d.kind).collect::<Vec<_>>(), [DriftKind::UserDeleted]);
    }
}
