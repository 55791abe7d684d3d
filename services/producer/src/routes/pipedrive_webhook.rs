//! `POST /v1/webhooks/pipedrive` (docs/contract.md §2): Pipedrive's user webhooks.
//!
//! The fast path does only what must happen before answering: check the
//! Basic credentials, read and parse the body, read what lifecycle knows of
//! the person (`lifecycle_ops::pipedrive_webhook::person`), ask the Pipedrive
//! module what the delivery means over that snapshot
//! (`lifecycle_vendors::pipedrive::webhook::decide`, pure), and store — in one
//! transaction — the delivery (an `events` row keyed by its delivery
//! identity), the run it starts, the drift it reveals and the waiting runs it
//! ends. Then 200. The work itself is the worker's.

use crate::problem::Problem;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lifecycle_config::Secret;
use lifecycle_domain::pipedrive_webhook::{self, UserChange, Webhook};
use lifecycle_domain::{EmployeeEmail, VendorKind, Workflow};
use lifecycle_ops::pipedrive_webhook::{self as store, Delivery, Recorded, StoredDelivery};
use lifecycle_vendors::pipedrive::webhook::{self as pipedrive, decide, delivery_hash, Plan, Snapshot, SOURCE, VENDOR};
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, info, warn};

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
    // No span and no trace for a caller without valid credentials: it may not
    // choose a trace to join (`traceparent`) nor fill the collector.
    if state.pipedrive_webhook.as_deref().is_none_or(|creds| authenticate(creds, &headers).is_err()) {
        return receive_traced(&state, &headers, body).await;
    }
    // A trace of its own (or the caller's): a run it starts joins it.
    let span = tracing::info_span!(
        "pipedrive.webhook",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/v1/webhooks/pipedrive",
        http.response.status_code = tracing::field::Empty
    );
    lifecycle_telemetry::continue_from(&span, super::events::traceparent(&headers));
    let response = tracing::Instrument::instrument(receive_traced(&state, &headers, body), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

async fn receive_traced(state: &AppState, headers: &HeaderMap, body: Body) -> Response {
    match receive_inner(state, headers, body).await {
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

    if let Some(existing) = store::find(&state.db, SOURCE, &change.delivery_key).await.map_err(internal)? {
        return Ok(duplicate(existing, &hash, &change));
    }

    let plan = decide(&change, &snapshot(state, &change).await.map_err(internal)?);
    let event_id = uuid::Uuid::now_v7().to_string();
    let answer = Answer {
        status: "accepted",
        event_id: event_id.clone(),
        delivery: change.delivery_key.clone(),
        action: plan.event_type.to_string(),
        runs: plan.runs.iter().map(|r| RunRef { run_id: r.id.clone(), vendor: VENDOR, workflow: r.workflow }).collect(),
        ended_runs: plan.endings.iter().map(|e| e.run_id.clone()).collect(),
        note: plan.note.clone(),
    };
    let body = serde_json::to_string(&answer).expect("the answer serializes");
    let delivery = Delivery {
        event_id: event_id.clone(),
        source: SOURCE.into(),
        key: change.delivery_key.clone(),
        payload_hash: hash.clone(),
        event_type: plan.event_type.into(),
        email: change.user.email.as_ref().map(EmployeeEmail::normalized),
        payload: value.to_string(),
        response_status: StatusCode::OK.as_u16(),
        response_body: body.clone(),
    };
    let (run_count, event_type, note) = (plan.runs.len(), plan.event_type, plan.note.clone());
    match record(state, delivery, plan).await.map_err(internal)? {
        Recorded::Created { ended } => {
            if run_count > 0 {
                state.relay_wake.notify_one();
            }
            metrics::counter!("lifecycle_webhooks_total", "source" => SOURCE, "outcome" => event_type).increment(1);
            info!(
                event_id = %event_id, delivery = %change.delivery_key, action = event_type,
                runs = run_count, ended = ended.len(), note = %note,
                "pipedrive webhook accepted"
            );
            Ok(json(StatusCode::OK, body, false))
        }
        Recorded::Existing(existing) => Ok(duplicate(*existing, &hash, &change)),
    }
}

/// What lifecycle knows of the delivery's person, for [`decide`]: nothing
/// without an address to know them by.
async fn snapshot(state: &AppState, change: &UserChange) -> Result<Snapshot, lifecycle_ops::db::StoreError> {
    let now = chrono::Utc::now();
    let Some(email) = &change.user.email else { return Ok(Snapshot { now, ..Snapshot::default() }) };
    let person = store::person(&state.db, VENDOR, email).await?;
    let runs = person
        .runs
        .into_iter()
        .map(|r| pipedrive::PersonRun {
            id: r.id,
            workflow: r.workflow,
            state: r.state,
            dispatch_seq: r.dispatch_seq,
            finished_at: r.finished_at,
        })
        .collect();
    Ok(Snapshot { runs, joiner: person.joiner, successor: person.successor, now })
}

/// Stores the delivery and what `plan` says it leads to.
async fn record(state: &AppState, delivery: Delivery, plan: Plan) -> Result<Recorded, lifecycle_ops::db::StoreError> {
    let starts = plan
        .runs
        .into_iter()
        .map(|r| store::Start {
            id: r.id,
            vendor: VENDOR,
            workflow: r.workflow,
            person_key: r.person_key,
            input: r.input,
        })
        .collect();
    let drift = plan
        .drift
        .into_iter()
        .map(|d| store::Drift {
            vendor: VENDOR,
            kind: d.kind,
            vendor_user_id: d.vendor_user_id,
            email: d.email,
            details: d.details,
        })
        .collect();
    let ends = plan
        .endings
        .into_iter()
        .map(|e| store::End {
            run_id: e.run_id,
            dispatch_seq: e.dispatch_seq,
            state: e.state,
            outcome: e.outcome,
            access: e.access,
        })
        .collect();
    store::record(&state.db, &state.publisher, delivery, starts, drift, ends).await
}

/// A delivery seen before (Pipedrive's retry, or a second send): answered
/// as the first was, and not acted on again.
fn duplicate(existing: StoredDelivery, hash: &str, change: &UserChange) -> Response {
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
        .map_err(|_| unauthorized("the Basic credentials are not valid base64").wrong_credential())?;
    let (user, pass) = match decoded.iter().position(|&b| b == b':') {
        Some(i) => (&decoded[..i], &decoded[i + 1..]),
        None => (&decoded[..], &[][..]),
    };
    // Both compared, each in constant time, with no early exit between them.
    let ok = creds.username.matches(user) & creds.password.matches(pass);
    if ok {
        Ok(())
    } else {
        // Wrong credentials: the throttle counts them (missing ones are no verdict).
        Err(unauthorized("the Basic credentials are not valid").wrong_credential())
    }
}

fn json(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

fn internal(e: lifecycle_ops::db::StoreError) -> Problem {
    Problem::store_unavailable(
        &e,
        "receiving a pipedrive webhook",
        "the delivery could not be stored; nothing was kept, Pipedrive will retry it",
    )
}
