//! HR systems' deliveries over the admin API (issue 27):
//! `GET /api/v1/hr/deliveries` (newest first; `state`, `source`, `employee`,
//! `limit`), `GET /api/v1/hr/deliveries/{id}` (with its raw body) and
//! `POST /api/v1/hr/deliveries/{id}/retry` (one that needs a person, due
//! again at once; audited). The operations are `lifecycle_ops::hris`, shared
//! with the ctl and the console.

use crate::problem::Problem;
use crate::AdminState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use lifecycle_ops::hris;
use lifecycle_ops::query::deliveries::{DeliveryFilter, DeliveryState};
use lifecycle_ops::OpsError;
use serde::Deserialize;
use serde_json::Value;

type ApiResult = Result<Json<Value>, Problem>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// `pending`, `processed`, `needs_person`.
    state: Option<String>,
    source: Option<String>,
    employee: Option<String>,
    limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryBody {
    #[serde(default)]
    reason: Option<String>,
}

pub(crate) async fn list(State(s): State<AdminState>, Query(p): Query<ListParams>) -> ApiResult {
    let state = p
        .state
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<DeliveryState>().map_err(|e| Problem::from(OpsError::Invalid(format!("state: {e}")))))
        .transpose()?;
    let filter = DeliveryFilter {
        state,
        source: p.source.filter(|v| !v.is_empty()),
        employee_id: p.employee.filter(|v| !v.is_empty()),
        limit: Some(p.limit.unwrap_or(100).clamp(1, 1000)),
    };
    let list = hris::list_deliveries(&s.db, &filter).await?;
    Ok(Json(serde_json::to_value(list).expect("views serialize")))
}

pub(crate) async fn show(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let d = hris::delivery(&s.db, &id).await?;
    Ok(Json(serde_json::to_value(d).expect("views serialize")))
}

/// A JSON body is required (it doubles as CSRF protection), `{}` at least.
pub(crate) async fn retry(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<RetryBody>, JsonRejection>,
) -> ApiResult {
    let Json(b) = b.map_err(|e| {
        Problem::new(e.status(), "invalid-body", format!("{} (changes take a JSON body, {{}} at least)", e.body_text()))
    })?;
    let d = hris::retry_delivery(&s.db, &id, &s.actor(), b.reason.as_deref()).await?;
    Ok(Json(serde_json::to_value(d).expect("views serialize")))
}
