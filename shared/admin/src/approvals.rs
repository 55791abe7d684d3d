//! Approvals (`[approval]`) over the admin API: `GET /api/v1/approvals` (runs
//! awaiting an approver), `POST /api/v1/runs/{id}/approve` `{"reason"?}` and
//! `POST /api/v1/runs/{id}/reject` `{"reason"}`. Decided once (409 after),
//! by a configured approver only (403), audited. The operations are
//! `lifecycle_ops::approvals`, shared with the ctl and the console.

use crate::problem::Problem;
use crate::AdminState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use lifecycle_ops::approvals;
use serde::Deserialize;
use serde_json::{json, Value};

type ApiResult = Result<Json<Value>, Problem>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    #[serde(default)]
    reason: Option<String>,
}

fn body(b: Result<Json<DecisionBody>, JsonRejection>) -> Result<DecisionBody, Problem> {
    // A JSON body is required on every change (it doubles as CSRF protection).
    b.map(|Json(v)| v).map_err(|e| {
        Problem::new(e.status(), "invalid-body", format!("{} (changes take a JSON body, {{}} at least)", e.body_text()))
    })
}

pub(crate) async fn list(State(s): State<AdminState>) -> ApiResult {
    let all = approvals::list(&s.db).await?;
    Ok(Json(json!({ "count": all.len(), "approvals": all })))
}

pub(crate) async fn approve(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<DecisionBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    let done = approvals::approve(&s.db, &id, &s.actor(), b.reason.as_deref()).await?;
    Ok(Json(serde_json::to_value(done).expect("views serialize")))
}

pub(crate) async fn reject(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<DecisionBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    let Some(reason) = b.reason else {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid-request", "say why: {\"reason\": \"...\"}"));
    };
    let done = approvals::reject(&s.db, &s.publisher, &id, &s.actor(), &reason).await?;
    Ok(Json(serde_json::to_value(done).expect("views serialize")))
}
