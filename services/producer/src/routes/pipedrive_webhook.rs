//! `POST /v1/webhooks/pipedrive` (CONTRACT §2): Pipedrive's user webhooks.
//!
//! The fast path does only what must happen before answering: check the
//! Basic credentials, read and parse the body, decide, and store — in one
//! transaction — the delivery (an `events` row keyed by its delivery
//! identity), the run it starts, the drift it reveals and the waiting runs
//! it ends. Then 200. The work itself is the worker's.
//!
//! What a user delivery means here:
//! - deactivated outside our workflows: a `reassign_deals` run, to the
//!   successor of the person's last HR leaver event, else the fallback owner;
//!   not when our own leaver did it, nor when a reassignment is already open;
//! - added without an HR joiner: drift `user_added_outside_hr`;
//! - deleted: drift `user_deleted`, and waiting runs that cannot succeed end.

use crate::problem::Problem;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{Duration as Age, Utc};
use lifecycle_config::Secret;
use lifecycle_domain::apps::{AppRequest, PipedriveApp};
use lifecycle_domain::pipedrive_webhook::{self, UserChange, Webhook, WebhookAction};
use lifecycle_domain::{Employee, EmployeeEmail, EventType, RunInput, RunState, VendorKind, Workflow};
use lifecycle_store::drift::NewDrift;
use lifecycle_store::entity::run::Model as Run;
use lifecycle_store::events::{self, Accepted, NewEvent, NewRun};
use lifecycle_store::runs::{self, RunFilter};
use lifecycle_store::webhooks::{self, RunEnding};
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, info, warn};

pub const SOURCE: &str = "pipedrive_webhook";
const VENDOR: VendorKind = VendorKind::Pipedrive;

/// A leaver run that succeeded this recently explains a deactivation:
/// Pipedrive delivers within seconds and retries for about three minutes.
const OWN_LEAVER_WINDOW_MINUTES: i64 = 60;

/// The credentials Pipedrive sends; both are compared in constant time.
pub struct BasicCredentials {
    pub username: Secret,
    pub password: Secret,
}

#[derive(Serialize)]
struct Answer {
    status: &'static str,
    event_id: String,
    delivery: String,
    action: String,
    runs: Vec<RunRef>,
    ended_runs: Vec<String>,
    note: String,
}

#[derive(Serialize)]
struct RunRef {
    run_id: String,
    vendor: VendorKind,
    workflow: Workflow,
}

pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match receive_inner(&state, &headers, body).await {
        Ok(r) => r,
        Err(problem) => {
            warn!(status = problem.status(), problem = problem.slug(), detail = %problem.detail(), "pipedrive webhook refused");
            metrics::counter!("lifecycle_webhooks_rejected_total", "source" => SOURCE, "reason" => problem.slug())
                .increment(1);
            problem.into_response()
        }
    }
}

async fn receive_inner(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, Problem> {
    let Some(creds) = state.pipedrive_webhook.as_deref() else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "the Pipedrive webhook receiver is not configured (producer.pipedrive_webhook)",
        ));
    };
    authenticate(creds, headers)?;
    super::events::require_json(headers)?;
    let limit = state.webhook_max_body_bytes;
    let bytes = super::events::read_body(headers, body, limit).await?;
    let webhook = pipedrive_webhook::parse(&bytes).map_err(|e| {
        let problem =
            Problem::new(StatusCode::BAD_REQUEST, "invalid-webhook", "Invalid Pipedrive webhook", e.to_string());
        match e.field_error() {
            Some(field) => problem.with_errors(vec![field]),
            None => problem,
        }
    })?;
    let change = match webhook {
        Webhook::Ignored { version, object, action } => {
            debug!(?version, %object, %action, "pipedrive webhook about something else; ignored");
            metrics::counter!("lifecycle_webhooks_total", "source" => SOURCE, "outcome" => "ignored").increment(1);
            return Ok(json(
                StatusCode::OK,
                serde_json::json!({"status": "ignored", "object": object, "action": action}).to_string(),
                false,
            ));
        }
        Webhook::User(change) => change,
    };
    let value: Value = serde_json::from_slice(&bytes).expect("parsed above");
    let hash = delivery_hash(&value);

    if let Some(existing) = events::find_by_key(&state.db, SOURCE, &change.delivery_key).await.map_err(internal)? {
        return Ok(duplicate(existing, &hash, &change));
    }

    let plan = decide(state, &change).await.map_err(internal)?;
    let event_id = uuid::Uuid::now_v7().to_string();
    let answer = Answer {
        status: "accepted",
        event_id: event_id.clone(),
        delivery: change.delivery_key.clone(),
        action: plan.event_type.to_string(),
        runs: plan
            .runs
            .iter()
            .map(|r| RunRef { run_id: r.id.clone(), vendor: r.vendor, workflow: r.workflow })
            .collect(),
        ended_runs: plan.endings.iter().map(|e| e.run_id.clone()).collect(),
        note: plan.note.clone(),
    };
    let body = serde_json::to_string(&answer).expect("the answer serializes");
    let new_event = NewEvent {
        id: event_id.clone(),
        source: SOURCE.into(),
        idempotency_key: change.delivery_key.clone(),
        payload_hash: hash.clone(),
        event_type: plan.event_type.into(),
        employee_id: None,
        employee_email: change.user.email.as_ref().map(EmployeeEmail::normalized),
        payload: value.to_string(),
        response_status: StatusCode::OK.as_u16() as i32,
        response_body: body.clone(),
    };
    let run_count = plan.runs.len();
    let recorded =
        webhooks::record(&state.db, new_event, plan.runs, plan.drift, plan.endings).await.map_err(internal)?;
    match recorded.accepted {
        Accepted::Created { .. } => {
            if run_count > 0 {
                state.relay_wake.notify_one();
            }
            if !recorded.ended.is_empty() {
                // Runs that waited behind the ended ones go now, not at their next re-check.
                let (db, publisher, ended) = (state.db.clone(), state.publisher.clone(), recorded.ended.clone());
                tokio::spawn(async move { wake_waiting(&db, &publisher, &ended).await });
            }
            metrics::counter!("lifecycle_webhooks_total", "source" => SOURCE, "outcome" => plan.event_type)
                .increment(1);
            info!(
                event_id = %event_id, delivery = %change.delivery_key, action = plan.event_type,
                runs = run_count, ended = recorded.ended.len(), note = %plan.note,
                "pipedrive webhook accepted"
            );
            Ok(json(StatusCode::OK, body, false))
        }
        Accepted::Existing(existing) => Ok(duplicate(*existing, &hash, &change)),
    }
}

/// A delivery seen before (Pipedrive's retry, or a second send): answered
/// as the first was, and not acted on again.
fn duplicate(existing: lifecycle_store::entity::event::Model, hash: &str, change: &UserChange) -> Response {
    if existing.payload_hash != hash {
        // Same identity, other content: still the same delivery to Pipedrive; keep the first.
        warn!(delivery = %change.delivery_key, event_id = %existing.id, "repeated pipedrive delivery differs from the first; the first stands");
    }
    metrics::counter!("lifecycle_webhooks_total", "source" => SOURCE, "outcome" => "duplicate").increment(1);
    info!(delivery = %change.delivery_key, event_id = %existing.id, attempt = change.attempt, "repeated pipedrive delivery; not acted on again");
    json(StatusCode::OK, existing.response_body, true)
}

fn authenticate(creds: &BasicCredentials, headers: &HeaderMap) -> Result<(), Problem> {
    let unauthorized = |detail: &str| {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"lifecycle\", charset=\"UTF-8\"")
    };
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .map(str::trim)
        .ok_or_else(|| unauthorized("HTTP Basic credentials are required"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| unauthorized("the Basic credentials are not valid base64"))?;
    let (user, pass) = match decoded.iter().position(|&b| b == b':') {
        Some(i) => (&decoded[..i], &decoded[i + 1..]),
        None => (&decoded[..], &[][..]),
    };
    // Both compared, each in constant time, with no early exit between them.
    let ok = creds.username.matches(user) & creds.password.matches(pass);
    if ok {
        Ok(())
    } else {
        Err(unauthorized("the Basic credentials are not valid"))
    }
}

/// What one delivery leads to.
struct Plan {
    event_type: &'static str,
    runs: Vec<NewRun>,
    drift: Vec<NewDrift>,
    endings: Vec<RunEnding>,
    /// Why, in words: stored with the delivery and answered to Pipedrive.
    note: String,
}

impl Plan {
    fn new(event_type: &'static str, note: String) -> Self {
        Plan { event_type, runs: Vec::new(), drift: Vec::new(), endings: Vec::new(), note }
    }
}

async fn decide(state: &AppState, change: &UserChange) -> Result<Plan, lifecycle_store::StoreError> {
    let u = &change.user;
    let who = match &u.email {
        Some(e) => format!("Pipedrive user {} ({e})", u.id),
        None => format!("Pipedrive user {} (no e-mail address in the delivery)", u.id),
    };
    let drift = |kind: &str, details: String| NewDrift {
        vendor: VENDOR,
        kind: kind.into(),
        vendor_user_id: Some(u.id.clone()),
        email: u.email.as_ref().map(EmployeeEmail::normalized),
        details,
    };
    let person_runs = match &u.email {
        Some(e) => person_runs(&state.db, e).await?,
        None => Vec::new(),
    };
    let recent = |r: &Run| r.finished_at.is_some_and(|t| Utc::now() - t < Age::minutes(OWN_LEAVER_WINDOW_MINUTES));
    // Under way: a `scheduled` run has done nothing yet (its day may be weeks
    // away), so it explains no change seen at Pipedrive today.
    let unfinished = |r: &Run| r.state != RunState::Scheduled && RunState::UNFINISHED.contains(&r.state);

    match change.action {
        WebhookAction::Added => {
            let Some(email) = &u.email else {
                let mut p = Plan::new(
                    "pipedrive.user_added",
                    format!("{who} was added; without an address it cannot be matched to an HR joiner"),
                );
                p.drift.push(drift("user_added_outside_hr", p.note.clone()));
                return Ok(p);
            };
            let joiner = events::latest_for_person(
                &state.db,
                super::events::SOURCE,
                EventType::Joiner.as_str(),
                &email.normalized(),
            )
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
                    p.drift.push(drift("user_added_outside_hr", p.note.clone()));
                    Ok(p)
                }
            }
        }
        WebhookAction::Updated if change.is_deactivation() => {
            let Some(email) = &u.email else {
                let mut p = Plan::new("pipedrive.user_deactivated", format!("{who} was deactivated; without an address lifecycle cannot reassign their open deals: reassign them in Pipedrive"));
                p.drift.push(drift("user_deactivated_outside", p.note.clone()));
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
            let successor = successor_of(state, email).await?;
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
            p.drift.push(drift("user_deactivated_outside", p.note.clone()));
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
                    p.drift.push(drift("user_reactivated_outside", p.note.clone()));
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
            p.drift.push(drift("user_deleted", p.note.clone()));
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
async fn person_runs(db: &lifecycle_store::Db, email: &EmployeeEmail) -> Result<Vec<Run>, lifecycle_store::StoreError> {
    let filter =
        RunFilter { vendor: Some(VENDOR), employee: Some(email.normalized()), limit: Some(500), ..Default::default() };
    Ok(runs::list(db, &filter).await?.into_iter().filter(|r| r.person_key == email.normalized()).collect())
}

/// The successor named by the person's most recent HR leaver event.
async fn successor_of(
    state: &AppState,
    email: &EmployeeEmail,
) -> Result<Option<EmployeeEmail>, lifecycle_store::StoreError> {
    let leaver =
        events::latest_for_person(&state.db, super::events::SOURCE, EventType::Leaver.as_str(), &email.normalized())
            .await?;
    Ok(leaver
        .and_then(|e| serde_json::from_str::<Value>(&e.payload).ok())
        .and_then(|v| v.get("successor_email").and_then(Value::as_str).map(str::to_string))
        .and_then(|s| EmployeeEmail::parse(&s).ok()))
}

async fn wake_waiting(db: &lifecycle_store::Db, publisher: &lifecycle_broker::Publisher, ended: &[String]) {
    for id in ended {
        let Ok(Some(run)) = runs::get(db, id).await else { continue };
        lifecycle_engine::wake_next(db, publisher, run.vendor, &run.person_key, run.seq).await;
    }
}

/// The body's hash without the attempt counters, so a retry hashes as the first delivery.
fn delivery_hash(value: &Value) -> String {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("retry");
        if let Some(Value::Object(meta)) = o.get_mut("meta") {
            meta.remove("attempt");
        }
    }
    lifecycle_domain::event::payload_hash(&v)
}

fn json(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

fn internal(e: lifecycle_store::StoreError) -> Problem {
    tracing::error!(error = %e, "database error while receiving a pipedrive webhook");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        "the delivery could not be stored; nothing was kept, Pipedrive will retry it",
    )
}
