//! `POST /v1/hr/{source}` (docs/contract.md §2): HR systems' own signed
//! webhooks — BambooHR, HiBob, Personio (issue 27).
//!
//! The fast path does only what must happen before answering, in this order:
//! read the body (413 past `[hris] max_body_bytes`); verify its signature
//! over the raw bytes with each configured tenant's secret, before anything
//! is parsed (401, counted in `lifecycle_hris_signature_failures_total`, and
//! a wrong one counted by the listener's throttle); parse it (400); check
//! that the payload's company is the verifying tenant's (401); then keep the
//! delivery ([`lifecycle_ops::hris::accept`]) and answer 200 once it is
//! committed. A ping is answered and kept nowhere; a repeat (the source's
//! retry) is answered as the first was and stores nothing new. Reading the
//! employee and making events happens afterwards, in the producer's
//! processing loop, so a slow HRIS API never costs the source's deadline.

use crate::problem::Problem;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lifecycle_hris::{DeliveryKind, SignatureError, SourceKind, Sources};
use lifecycle_ops::hris::Inserted;
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::{info, warn};

/// What the receivers need: the configured sources, the body limit, and the
/// processing loop's wake-up.
pub struct HrisIntake {
    pub sources: Sources,
    pub max_body_bytes: usize,
    /// Notified when a delivery is stored: the processing loop starts at once.
    pub wake: Arc<Notify>,
}

pub async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive_inner(&state, &source, &headers, body).await {
        Ok(r) => r,
        Err(problem) => {
            warn!(source, status = problem.status(), problem = problem.slug(), detail = %problem.detail(), "hr delivery refused");
            problem.into_response()
        }
    }
}

async fn receive_inner(state: &AppState, source: &str, headers: &HeaderMap, body: Body) -> Result<Response, Problem> {
    let not_configured = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no HR source {source:?} is configured here ([hris.<source>]: bamboohr, hibob, personio)"),
        )
    };
    let kind: SourceKind = source.parse().map_err(|_| not_configured())?;
    let hris = &state.hris;
    let src = hris.sources.get(kind).ok_or_else(not_configured)?;
    let bytes = super::events::read_body(headers, body, hris.max_body_bytes).await?;

    // Nothing of the body is read before this.
    let verified = src.verify(headers, &bytes, chrono::Utc::now()).map_err(|e| refused(kind, &e))?;
    let invalid =
        |detail: String| Problem::new(StatusCode::BAD_REQUEST, "invalid-delivery", "Invalid delivery", detail);
    let delivery = src.parse(&bytes).map_err(|e| invalid(format!("{kind}: {}", e.0)))?;
    if delivery.employee_id.as_ref().is_some_and(|id| id.len() > 255) {
        return Err(invalid(format!("{kind}: the employee id is longer than 255 characters")));
    }
    // A ping (HiBob's set-up test) names no company: verified, answered, kept nowhere.
    if delivery.kind == DeliveryKind::Ping {
        info!(source = %kind, tenant = %verified.tenant, "hr webhook ping answered");
        metrics::counter!("lifecycle_hris_deliveries_total", "source" => kind.as_str(), "outcome" => "ping")
            .increment(1);
        return Ok(json(StatusCode::OK, serde_json::json!({"status": "ok"}), false));
    }
    // The signature named the tenant; the payload must be about that tenant's
    // company, or one tenant's secret could speak for another company.
    if src.company_id(&verified.tenant) != Some(delivery.company_id.as_str()) {
        metrics::counter!("lifecycle_hris_signature_failures_total", "source" => kind.as_str(), "reason" => "company")
            .increment(1);
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "the delivery's company is not the one its signature belongs to",
        )
        .wrong_credential());
    }
    let inserted =
        lifecycle_ops::hris::accept(&state.db, kind, &verified.tenant, &delivery, &bytes).await.map_err(|e| {
            Problem::store_unavailable(
                &e,
                "keeping an hr delivery",
                "the delivery could not be stored; nothing was kept, the sender's retry will be",
            )
        })?;
    match inserted {
        Inserted::Stored(id) => {
            hris.wake.notify_one();
            info!(source = %kind, tenant = %verified.tenant, delivery = %id, r#type = %delivery.type_name, "hr delivery stored");
            Ok(json(StatusCode::OK, serde_json::json!({"status": "accepted", "delivery_id": id}), false))
        }
        Inserted::Existing(id) => {
            info!(source = %kind, tenant = %verified.tenant, delivery = %id, "repeated hr delivery; not kept again");
            Ok(json(StatusCode::OK, serde_json::json!({"status": "duplicate", "delivery_id": id}), true))
        }
    }
}

/// 401 for a signature that does not hold; the reason is counted and logged,
/// never the signature or a secret.
fn refused(kind: SourceKind, e: &SignatureError) -> Problem {
    metrics::counter!("lifecycle_hris_signature_failures_total", "source" => kind.as_str(), "reason" => e.reason())
        .increment(1);
    let problem = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", e.to_string());
    match e {
        // No signature at all is no guess at one (as a missing credential elsewhere).
        SignatureError::Missing(_) => problem,
        _ => problem.wrong_credential(),
    }
}

fn json(status: StatusCode, body: serde_json::Value, replayed: bool) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}
