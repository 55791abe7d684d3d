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

use chrono::{Duration as Age, Utc};
use lifecycle_domain::apps::{AppRequest, PipedriveApp};
use lifecycle_domain::pipedrive_webhook::{UserChange, WebhookAction};
use lifecycle_domain::{DriftKind, Employee, EmployeeEmail, EventType, RunInput, RunState, VendorKind, Workflow};
use lifecycle_store::drift::NewDrift;
use lifecycle_store::entity::run::Model as Run;
use lifecycle_store::events::{self, NewRun};
use lifecycle_store::runs::{self, RunFilter};
use lifecycle_store::webhooks::RunEnding;
use lifecycle_store::{Db, StoreError};
use serde_json::Value;

/// The `events.source` of webhook deliveries; keys are unique per source.
pub const SOURCE: &str = "pipedrive_webhook";
const VENDOR: VendorKind = VendorKind::Pipedrive;

/// A leaver run that succeeded this recently explains a deactivation:
/// Pipedrive delivers within seconds and retries for about three minutes.
const OWN_LEAVER_WINDOW_MINUTES: i64 = 60;

/// What one delivery leads to.
pub struct Plan {
    pub event_type: &'static str,
    pub runs: Vec<NewRun>,
    pub drift: Vec<NewDrift>,
    pub endings: Vec<RunEnding>,
    /// Why, in words: stored with the delivery and answered to Pipedrive.
    pub note: String,
}

impl Plan {
    fn new(event_type: &'static str, note: String) -> Self {
        Plan { event_type, runs: Vec::new(), drift: Vec::new(), endings: Vec::new(), note }
    }
}

/// What a user delivery means, from what lifecycle knows of the person: their
/// runs at Pipedrive and their HR events. Reads only; the caller stores the plan.
pub async fn decide(db: &Db, change: &UserChange) -> Result<Plan, StoreError> {
    let u = &change.user;
    let who = match &u.email {
        Some(e) => format!("Pipedrive user {} ({e})", u.id),
        None => format!("Pipedrive user {} (no e-mail address in the delivery)", u.id),
    };
    let drift = |kind: DriftKind, details: String| NewDrift {
        vendor: VENDOR,
        kind,
        vendor_user_id: Some(u.id.clone()),
        email: u.email.as_ref().map(EmployeeEmail::normalized),
        details,
    };
    let person_runs = match &u.email {
        Some(e) => person_runs(db, e).await?,
        None => Vec::new(),
    };
    let recent = |r: &Run| r.finished_at.is_some_and(|t| Utc::now() - t < Age::minutes(OWN_LEAVER_WINDOW_MINUTES));
    // Under way: a `scheduled` run has done nothing yet (its day may be weeks
    // away), so it explains no change seen at Pipedrive today; nor does one
    // awaiting an approver, nor one the blast-radius guard holds.
    let unfinished = |r: &Run| {
        !matches!(r.state, RunState::Scheduled | RunState::AwaitingApproval | RunState::Held)
            && RunState::UNFINISHED.contains(&r.state)
    };

    match change.action {
        WebhookAction::Added => {
            let Some(email) = &u.email else {
                let mut p = Plan::new(
                    "pipedrive.user_added",
                    format!("{who} was added; without an address it cannot be matched to an HR joiner"),
                );
                p.drift.push(drift(DriftKind::UserAddedOutsideHr, p.note.clone()));
                return Ok(p);
            };
            let joiner =
                events::latest_for_person(db, events::INTAKE_SOURCE, EventType::Joiner.as_str(), &email.normalized())
                    .await?;
            match joiner {
                Some(j) => Ok(Plan::new(
                    "pipedrive.user_added",
                    format!("{who} was added; HR joiner event {} explains it", j.id),
                )),
                None => {
                    let mut p = Plan::new(
                        "pipedrive.user_added",
                        format!("{who} was added in Pipedrive ({}) with no HR joiner event for that address: check who should have this account", source_words(change)),
                    );
                    p.drift.push(drift(DriftKind::UserAddedOutsideHr, p.note.clone()));
                    Ok(p)
                }
            }
        }
        WebhookAction::Updated if change.is_deactivation() => {
            let Some(email) = &u.email else {
                let mut p = Plan::new("pipedrive.user_deactivated", format!("{who} was deactivated; without an address lifecycle cannot reassign their open deals: reassign them in Pipedrive"));
                p.drift.push(drift(DriftKind::UserDeactivatedOutside, p.note.clone()));
                return Ok(p);
            };
            let own_leaver = person_runs.iter().find(|r| {
                r.workflow == Workflow::Leaver && (unfinished(r) || (r.state == RunState::Succeeded && recent(r)))
            });
            if let Some(r) = own_leaver {
                return Ok(Plan::new(
                    "pipedrive.user_deactivated",
                    format!("{who} was deactivated by lifecycle's leaver run {} ({}), which moves their open deals itself; no reassignment started", r.id, r.state),
                ));
            }
            if let Some(r) = person_runs.iter().find(|r| r.workflow == Workflow::ReassignDeals && unfinished(r)) {
                return Ok(Plan::new(
                    "pipedrive.user_deactivated",
                    format!("{who} was deactivated; reassignment run {} is already under way (another delivery of the same change); no second one started", r.id),
                ));
            }
            let successor = successor_of(db, email).await?;
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
                vendor: VENDOR,
                workflow: Workflow::ReassignDeals,
                person_key: email.normalized(),
                input: serde_json::to_string(&input).expect("a run input serializes"),
                occurred_at: None,
                effective_at: None,
                start_at: None,
            });
            Ok(p)
        }
        WebhookAction::Updated if u.active_before == Some(false) && u.active_after == Some(true) => {
            let ours = person_runs.iter().find(|r| r.workflow == Workflow::Joiner && (unfinished(r) || recent(r)));
            match ours {
                Some(r) => Ok(Plan::new(
                    "pipedrive.user_reactivated",
                    format!("{who} was reactivated by lifecycle's joiner run {}", r.id),
                )),
                None => {
                    let mut p = Plan::new(
                        "pipedrive.user_reactivated",
                        format!("{who} was reactivated in Pipedrive ({}) without an HR joiner: check who should have this account", source_words(change)),
                    );
                    p.drift.push(drift(DriftKind::UserReactivatedOutside, p.note.clone()));
                    Ok(p)
                }
            }
        }
        WebhookAction::Updated => {
            Ok(Plan::new("pipedrive.user_updated", format!("{who} was updated; nothing for lifecycle to do")))
        }
        WebhookAction::Deleted => {
            let when = Utc::now().format("%Y-%m-%d %H:%M UTC");
            let mut p = Plan::new("pipedrive.user_deleted", String::new());
            for r in person_runs.iter().filter(|r| RunState::WAITING.contains(&r.state)) {
                let ending = match r.workflow {
                    // The leaver's goal — no access — is what the deletion achieved.
                    Workflow::Leaver => Some((RunState::Succeeded, format!("{who} was deleted in Pipedrive ({when}) before this leaver ran: they have no Pipedrive access; nothing left to do. Their open deals were not moved by lifecycle: check in Pipedrive that they have an active owner."), Some("absent"))),
                    Workflow::Mover => Some((RunState::NeedsManualAction, format!("{who} was deleted in Pipedrive ({when}) before this mover ran, so there is no account to change: send a joiner event if they should have Pipedrive again."), None)),
                    Workflow::ReassignDeals => Some((RunState::NeedsManualAction, format!("{who} was deleted in Pipedrive ({when}) before their open deals were reassigned: check in Pipedrive who owns their former deals and give them an active owner."), None)),
                    // A waiting joiner can still do what HR asked: create the account.
                    Workflow::Joiner => None,
                };
                if let Some((state, outcome, access)) = ending {
                    p.endings.push(RunEnding {
                        run_id: r.id.clone(),
                        dispatch_seq: r.dispatch_seq,
                        state,
                        outcome,
                        access: access.map(str::to_string),
                    });
                }
            }
            p.note = match p.endings.len() {
                0 => format!("{who} was deleted in Pipedrive ({})", source_words(change)),
                n => format!("{who} was deleted in Pipedrive ({}); {n} waiting run(s) that can no longer do their work were ended", source_words(change)),
            };
            p.drift.push(drift(DriftKind::UserDeleted, p.note.clone()));
            Ok(p)
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

/// Every Pipedrive run for the person, newest first.
async fn person_runs(db: &Db, email: &EmployeeEmail) -> Result<Vec<Run>, StoreError> {
    let filter =
        RunFilter { vendor: Some(VENDOR), employee: Some(email.normalized()), limit: Some(500), ..Default::default() };
    Ok(runs::list(db, &filter).await?.into_iter().filter(|r| r.person_key == email.normalized()).collect())
}

/// The successor named by the person's most recent HR leaver event.
async fn successor_of(db: &Db, email: &EmployeeEmail) -> Result<Option<EmployeeEmail>, StoreError> {
    let leaver =
        events::latest_for_person(db, events::INTAKE_SOURCE, EventType::Leaver.as_str(), &email.normalized()).await?;
    Ok(leaver
        .and_then(|e| serde_json::from_str::<Value>(&e.payload).ok())
        .and_then(|v| v.get("successor_email").and_then(Value::as_str).map(str::to_string))
        .and_then(|s| EmployeeEmail::parse(&s).ok()))
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
