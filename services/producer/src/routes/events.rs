//! `POST /v1/events` (docs/contract.md §1) and `GET /v1/events/{id}`.

use crate::problem::Problem;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lifecycle_config::IntakeToken;
use lifecycle_domain::event::payload_hash;
use lifecycle_domain::event::BodyError;
use lifecycle_domain::{Event, IdempotencyKey};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_ops::intake::{self, StoredEvent, Submission, Submitted};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, info_span, warn, Instrument};

pub const SOURCE: &str = intake::INTAKE_SOURCE;

/// The answer to `POST /v1/events/{id}/cancel`.
#[derive(Serialize)]
struct CancelBody {
    cancelled: Vec<String>,
    started: Vec<String>,
}

/// Checks, in order: credentials (401), media type (415), idempotency key
/// (400), size (413), JSON (400), repeated keys (400), the event's fields (400), then the key
/// against earlier requests (replay or 422). Nothing is written unless every
/// check passed.
pub async fn accept(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    // No span and no trace for a caller without a valid token: it may not
    // choose a trace to join (`traceparent`) nor fill the collector.
    if authenticate(&state, &headers).is_err() {
        return accept_traced(&state, &headers, body).await;
    }
    // The trace starts here, or continues the caller's (`traceparent`); the
    // runs stored below keep this span's context (see `lifecycle_telemetry::traces`).
    let span = info_span!(
        "intake",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/v1/events",
        http.response.status_code = tracing::field::Empty
    );
    lifecycle_telemetry::continue_from(&span, traceparent(&headers));
    let response = accept_traced(&state, &headers, body).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// The caller's W3C `traceparent` header, when it sent one.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

async fn accept_traced(state: &AppState, headers: &HeaderMap, body: Body) -> Response {
    match accept_inner(state, headers, body).await {
        Ok(response) => response,
        Err(problem) => {
            warn!(status = problem.status(), problem = problem.slug(), detail = %problem.detail(), "event rejected");
            metrics::counter!("lifecycle_events_rejected_total", "reason" => problem.slug()).increment(1);
            problem.into_response()
        }
    }
}

async fn accept_inner(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, Problem> {
    let actor = format!("intake:{}", authenticate(state, headers)?.label);
    require_json(headers)?;
    let key = match headers.get("idempotency-key") {
        None => return Err(bad_key("the Idempotency-Key header is required (1 to 255 visible ASCII characters)")),
        Some(v) => IdempotencyKey::parse(v.as_bytes()).map_err(|e| bad_key(&e.to_string()))?,
    };
    let bytes = read_body(headers, body, state.max_body_bytes).await?;
    let (value, event) = parse_event(&bytes)?;
    let hash = payload_hash(&value);

    let submission = Submission {
        source: SOURCE,
        idempotency_key: key.as_str(),
        payload: &value,
        payload_hash: &hash,
        event: &event,
        actor: &actor,
    };
    let submitted = intake::accept(&state.intake, &state.publisher, &state.schedule, &state.vendors.safety, submission)
        .await
        .map_err(internal)?;
    match submitted {
        Submitted::Created { event_id, intake, body } => {
            state.relay_wake.notify_one();
            metrics::counter!("lifecycle_events_accepted_total", "type" => event.event_type.as_str()).increment(1);
            let scheduled = intake.runs.iter().filter(|r| r.state == RunState::Scheduled).count();
            let superseded = intake.runs.iter().filter(|r| r.state == RunState::Superseded).count();
            info!(
                event_id = %event_id, event_type = event.event_type.as_str(), runs = intake.runs.len(), scheduled, superseded,
                replaced = intake.replaced.len(), "event accepted"
            );
            let body = serde_json::to_string(&body).expect("the answer always serializes");
            Ok(json_response(StatusCode::ACCEPTED, body, false))
        }
        // The key was used before (or a race with the same key was lost): answer as the first was.
        Submitted::Existing(existing) => replay_or_conflict(*existing, &hash),
    }
}

/// `POST /v1/events/{id}/cancel`: withdraws the event's runs that have not
/// started; 200 with which were cancelled and which had already started.
/// Only events sent through the intake: another source's (SCIM, a webhook,
/// a reconcile fix) is 404, as for `GET`. Audited, naming the token's label.
pub async fn cancel(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result = async {
        let token = authenticate(&state, &headers)?;
        let actor = format!("intake:{}", token.label);
        let reason = format!("POST /v1/events/{id}/cancel");
        let c = lifecycle_ops::cancel_event_from(&state.db, &state.publisher, SOURCE, &id, &actor, &reason)
            .await
            .map_err(|e| match e {
                lifecycle_ops::OpsError::NotFound(_) => {
                    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no event {id}"))
                }
                other => Problem::store_unavailable(
                    &other,
                    "cancelling an event",
                    "the cancel could not be stored; nothing changed, retry",
                ),
            })?;
        info!(event_id = %id, actor, cancelled = c.cancelled.len(), started = c.started.len(), "event cancelled");
        metrics::counter!("lifecycle_runs_cancelled_total").increment(c.cancelled.len() as u64);
        let body = CancelBody { cancelled: c.cancelled, started: c.started };
        Ok(json_response(StatusCode::OK, serde_json::to_string(&body).expect("serializes"), false))
    }
    .await;
    result.unwrap_or_else(|problem: Problem| {
        warn!(status = problem.status(), problem = problem.slug(), detail = %problem.detail(), "cancel refused");
        problem.into_response()
    })
}

/// The body as JSON and as an event: 400 naming what is wrong (not JSON,
/// repeated keys, each invalid field).
pub(crate) fn parse_event(bytes: &[u8]) -> Result<(Value, Event), Problem> {
    Event::parse_body(bytes).map_err(|e| match e {
        BodyError::MalformedJson(detail) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON", detail)
        }
        BodyError::Invalid { detail, errors } => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-event", "Invalid event", detail).with_errors(errors)
        }
    })
}

fn replay_or_conflict(existing: StoredEvent, hash: &str) -> Result<Response, Problem> {
    if existing.payload_hash != hash {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused with another payload",
            format!(
                "the Idempotency-Key was first used for event {} with a different body; use a new key for a new event",
                existing.id
            ),
        ));
    }
    metrics::counter!("lifecycle_events_replayed_total").increment(1);
    let status = StatusCode::from_u16(existing.response_status as u16).unwrap_or(StatusCode::ACCEPTED);
    Ok(json_response(status, existing.response_body, true))
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// The intake token presented, if it is one of ours (401 otherwise).
pub(crate) fn authenticate<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a IntakeToken, Problem> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| Problem::unauthorized("an Authorization: Bearer <token> header is required"))?;
    // Check every token (no early exit), each in constant time.
    let matched =
        state
            .intake_tokens
            .iter()
            .fold(None, |found, t| if t.token.matches(presented.as_bytes()) { Some(t) } else { found });
    // A wrong token: the throttle counts it (a missing one is no verdict).
    matched.ok_or_else(|| Problem::unauthorized("the bearer token is not valid").wrong_credential())
}

pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    // A compressed body would otherwise be parsed as if it were plain JSON.
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| v.to_str().map_or(true, |v| v.split(',').any(|c| !c.trim().eq_ignore_ascii_case("identity"))));
    if encoded {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "content encodings are not accepted: send the body uncompressed, without Content-Encoding",
        )
        .with_header(header::ACCEPT_ENCODING, "identity"));
    }
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.type_() == mime::APPLICATION && m.subtype() == mime::JSON);
    if ok {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the event as Content-Type: application/json",
        ))
    }
}

fn bad_key(detail: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-idempotency-key", "Invalid Idempotency-Key", detail.to_owned())
}

/// Reads the body, refusing one over `limit` with 413: at once when its
/// `Content-Length` says so, else as soon as the stream passes the limit.
pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<axum::body::Bytes, Problem> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        drain(body, DRAIN_CAP).await;
        return Err(too_large(limit));
    }
    match read_limited(body, limit).await {
        Ok(b) => Ok(b),
        Err(Some(rest)) => {
            drain(rest, DRAIN_CAP).await;
            Err(too_large(limit))
        }
        // The body broke off (a client that went away, or the listener's
        // own size cap): nothing usable arrived.
        Err(None) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            "Unreadable body",
            "the request body could not be read completely",
        )),
    }
}

/// How much of an oversized body is read and discarded before answering 413,
/// so that an ordinary client finishes sending and sees the answer instead of
/// a reset connection. Beyond it the connection is simply closed.
pub(crate) const DRAIN_CAP: usize = 1024 * 1024;

async fn drain(body: Body, cap: usize) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > cap {
            break;
        }
    }
}

/// Reads at most `limit` bytes; past it, returns the rest of the body to
/// drain. `Err(None)`: the body failed before its end.
async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, Option<Body>> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return Err(None) };
        if buf.len() + chunk.len() > limit {
            return Err(Some(Body::from_stream(stream)));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Body too large",
        format!("the body must be at most {} KiB", limit / 1024),
    )
}

fn internal(e: lifecycle_ops::db::StoreError) -> Problem {
    Problem::store_unavailable(
        &e,
        "accepting an event",
        "the event could not be stored; nothing was kept, retry with the same Idempotency-Key",
    )
}

#[derive(Serialize)]
pub struct EventStatus {
    event_id: String,
    event_type: String,
    received_at: String,
    runs: Vec<RunStatus>,
}

#[derive(Serialize)]
pub struct RunStatus {
    run_id: String,
    vendor: VendorKind,
    workflow: Workflow,
    state: RunState,
    attempts: i32,
    outcome: Option<String>,
    last_error: Option<String>,
}

/// The event's runs and where they are: for the sender to follow up.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<EventStatus>, Problem> {
    authenticate(&state, &headers)?;
    let not_found = || Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no event {id}"));
    let (event, runs) = intake::event_runs(&state.db, SOURCE, &id)
        .await
        .map_err(|e| Problem::store_unavailable(&e, "reading an event", "the event could not be read; retry"))?
        .ok_or_else(not_found)?;
    Ok(Json(EventStatus {
        event_id: event.id,
        event_type: event.event_type,
        received_at: event.received_at.to_rfc3339(),
        runs: runs
            .into_iter()
            .map(|r| RunStatus {
                run_id: r.id,
                vendor: r.vendor,
                workflow: r.workflow,
                state: r.state,
                attempts: r.attempts,
                outcome: r.outcome,
                last_error: r.last_error,
            })
            .collect(),
    }))
}
