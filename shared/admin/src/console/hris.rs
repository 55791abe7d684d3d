//! The HR systems' deliveries (issue 27): those that need a person first —
//! why, and the raw delivery as the source sent it — then the others, newest
//! first. Read-only: once the cause is fixed at the source, an operator
//! retries one with `lifecycle-ctl hr deliveries retry <id>` (audited).

use super::{render, when, when_opt, Page};
use crate::AdminState;
use askama::Template;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use lifecycle_ops::hris::{self, DeliveryView};
use lifecycle_store::entity::hris_delivery::DeliveryState;
use lifecycle_store::hris::DeliveryFilter;
use serde::Deserialize;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/hr", get(deliveries))
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
}

impl From<DeliveryView> for Row {
    fn from(d: DeliveryView) -> Self {
        // Pretty-printed when it is JSON, else as sent.
        let body = serde_json::from_str::<serde_json::Value>(&d.body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(d.body);
        Row {
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
}

#[derive(Deserialize)]
struct HrQuery {
    source: Option<String>,
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
        needs_person: needs_person.into_iter().map(Row::from).collect(),
        recent: recent.into_iter().filter(|d| d.state != DeliveryState::NeedsPerson).map(Row::from).collect(),
        source: source.unwrap_or_default(),
    };
    Ok(render(&page))
}
