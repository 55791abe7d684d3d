//! Edit and replay over the admin API: `POST /api/v1/runs/{id}/edit` and
//! `POST /api/v1/runs/edit` (every dead run matching a filter; a preview
//! unless `"yes": true`). The operation is `lifecycle_ops::edit`, shared with
//! the ctl and the console.

use crate::params::FilterParams;
use crate::problem::Problem;
use crate::AdminState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use lifecycle_ops::edit::{self, Changes, EditError, EditFilter};
use serde::Deserialize;
use serde_json::{json, Value};

type ApiResult = Result<Json<Value>, Problem>;

/// An invalid edit names each bad field as the intake does (400 with `errors`).
impl From<EditError> for Problem {
    fn from(e: EditError) -> Self {
        match e {
            EditError::Ops(e) => e.into(),
            EditError::Fields { detail, errors } => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-edit", detail).with_errors(errors)
            }
        }
    }
}

/// A JSON body is required (it doubles as CSRF protection, as for every change of this API).
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    b.map(|Json(v)| v).map_err(|e| {
        Problem::new(
            e.status(),
            "invalid-body",
            format!("{} (an edit takes a JSON body: {{\"set\": {{...}}}})", e.body_text()),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditBody {
    /// Field -> value: the vendor's fields (`role`, `roles`, `groups`, ...) and `successor_email`.
    set: Changes,
    #[serde(default)]
    reason: Option<String>,
    /// Replay the run once edited.
    #[serde(default)]
    replay: bool,
}

pub(crate) async fn edit_one(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<EditBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    let e = edit::edit(&s.db, &s.publisher, &id, &b.set, &s.actor(), b.reason.as_deref(), b.replay).await?;
    let note = e.note();
    let mut v = serde_json::to_value(e).expect("views serialize");
    v["message"] = json!(note);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkEditBody {
    set: Changes,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    replay: bool,
    /// Without it, a preview (the count, a sample, the refusals): nothing is written.
    #[serde(default)]
    yes: bool,
    vendor: Option<String>,
    workflow: Option<String>,
    employee: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u64>,
    /// Only runs whose error or outcome contains this text (case-insensitive).
    error_contains: Option<String>,
}

pub(crate) async fn edit_all(State(s): State<AdminState>, b: Result<Json<BulkEditBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    let p = FilterParams {
        vendor: b.vendor.clone(),
        workflow: b.workflow.clone(),
        employee: b.employee.clone(),
        since: b.since.clone(),
        until: b.until.clone(),
        limit: b.limit.map(|l| l.to_string()),
        ..Default::default()
    };
    let f = EditFilter { runs: p.to_filter(1000)?, error_contains: b.error_contains.clone() };
    let selected = edit::select(&s.db, &f).await?;
    let summary = edit::edit_all(
        &s.db,
        &s.publisher,
        selected,
        &b.set,
        &s.actor(),
        b.reason.as_deref(),
        b.replay,
        !b.yes,
        |_| {},
    )
    .await;
    let line = summary.line();
    let mut v = serde_json::to_value(summary).expect("views serialize");
    v["message"] = json!(if b.yes { line } else { format!("{line}; send again with \"yes\": true to edit them") });
    Ok(Json(v))
}
