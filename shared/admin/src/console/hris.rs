//! The HR systems' deliveries (issue 27): those that need a person first —
//! why, and the raw delivery as the source sent it — then the others, newest
//! first. Once the cause is fixed at the source, Retry (a CSRF-bound form
//! naming the delivery) makes it due again, as `lifecycle-ctl hr deliveries
//! retry` does: `lifecycle_ops::hris::retry_delivery`, audited.

use super::{check_token, when, when_opt, Page, PageError};
use crate::{AdminState, FormAction};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Form, Router};
use lifecycle_ops::hris::{self, DeliveryView};
use lifecycle_ops::query::deliveries::{DeliveryFilter, DeliveryState};
use serde::Deserialize;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/hr", get(deliveries)).route("/hr/{id}/retry", post(do_retry))
}

struct Row {
    id: String,
    received: String,
    source: String,
    tenant: String,
    type_name: String,
    employee: String,
    state: &'static str,
    attempts: i32,
    next_attempt: String,
    outcome: String,
    last_error: String,
    events: Vec<String>,
    body: String,
    /// The Retry form's token (those that need a person).
    csrf_retry: String,
}

impl Row {
    fn new(s: &AdminState, d: DeliveryView) -> Self {
        // Pretty-printed when it is JSON, else as sent.
        let body = serde_json::from_str::<serde_json::Value>(&d.body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(d.body);
        let csrf_retry = if d.state == DeliveryState::NeedsPerson {
            s.csrf.issue(&s.username, FormAction::HrRetry, &d.id)
        } else {
            String::new()
        };
        Row {
            csrf_retry,
            id: d.id,
            received: when(d.received_at),
            source: d.source,
            tenant: d.tenant,
            type_name: d.type_name,
            employee: d.employee_id.unwrap_or_default(),
            state: d.state.as_str(),
            attempts: d.attempts,
            next_attempt: when_opt(d.next_attempt_at),
            outcome: d.outcome.unwrap_or_default(),
            last_error: d.last_error.unwrap_or_default(),
            events: d.event_ids,
            body,
        }
    }
}

#[derive(Template)]
#[template(path = "hr.html")]
struct HrPage {
    needs_person: Vec<Row>,
    recent: Vec<Row>,
    source: String,
    /// "retried" after a Retry (a fixed text: nothing from the query is echoed).
    notice: &'static str,
}

#[derive(Deserialize)]
struct HrQuery {
    source: Option<String>,
    done: Option<String>,
}

async fn deliveries(State(s): State<AdminState>, Query(q): Query<HrQuery>) -> Page {
    let source = q.source.filter(|s| !s.trim().is_empty());
    let filter = |state: Option<DeliveryState>, limit: u64| DeliveryFilter {
        state,
        source: source.clone(),
        employee_id: None,
        limit: Some(limit),
    };
    let needs_person = hris::list_deliveries(&s.db, &filter(Some(DeliveryState::NeedsPerson), 200)).await?;
    let recent = hris::list_deliveries(&s.db, &filter(None, 50)).await?;
    let page = HrPage {
        needs_person: needs_person.into_iter().map(|d| Row::new(&s, d)).collect(),
        recent: recent.into_iter().filter(|d| d.state != DeliveryState::NeedsPerson).map(|d| Row::new(&s, d)).collect(),
        source: source.unwrap_or_default(),
        notice: match q.done.as_deref() {
            Some("retried") => "The delivery is due again: the producer processes it within moments.",
            _ => "",
        },
    };
    Ok(s.render(&page))
}

#[derive(Deserialize)]
struct RetryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn do_retry(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RetryForm>,
) -> Result<Redirect, PageError> {
    check_token(&s, &headers, &form.csrf, FormAction::HrRetry, &id)?;
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    hris::retry_delivery(&s.db, &id, &s.actor(), reason).await?;
    Ok(Redirect::to("/hr?done=retried"))
}
