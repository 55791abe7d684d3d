//! The admin HTTP API: JSON in and out, the same operations and filters as
//! `lifecycle-ctl`.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v1/runs?state=&vendor=&workflow=&employee=&event=&since=&until=&limit=` | runs, newest first |
//! | `GET /api/v1/runs/{id}` | one run with its step timeline |
//! | `GET /api/v1/dead?...&include_discarded=true` | dead runs |
//! | `POST /api/v1/dead/{id}/replay` `{"reason"?}` | replay one (409 when refused) |
//! | `POST /api/v1/dead/replay` `{vendor?, workflow?, employee?, since?, until?, limit?, dry_run?, reason?}` | replay every match |
//! | `POST /api/v1/dead/{id}/discard` `{"reason"}` | discard one |
//! | `GET /api/v1/events/{id}` | an event (credentials redacted) and its runs |
//! | `GET /api/v1/counts` | runs by state and vendor |
//! | `GET /api/v1/employees/{email or HR id}` | one person's apps |
//! | `GET /api/v1/audit?run=&actor=&since=&limit=` | the audit log |
//! | `GET /api/v1/upcoming?days=30&tz=Europe/Berlin` | scheduled runs by day, in a time zone |
//! | `POST /api/v1/runs/{id}/cancel` `{"reason"}` | cancel a run that has not started (409 once it has) |
//! | `POST /api/v1/events/{id}/cancel` `{"reason"}` | cancel an event's runs that have not started; names those that had |

use crate::params::FilterParams;
use crate::problem::Problem;
use crate::AdminState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use lifecycle_ops::filter::dead;
use lifecycle_ops::OpsError;
use lifecycle_store::audit::AuditFilter;
use serde::Deserialize;
use serde_json::{json, Value};

type ApiResult = Result<Json<Value>, Problem>;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(show_run))
        .route("/dead", get(list_dead))
        .route("/dead/replay", post(replay_all))
        .route("/dead/{id}/replay", post(replay_one))
        .route("/dead/{id}/discard", post(discard))
        .route("/events/{id}", get(show_event))
        .route("/counts", get(counts))
        .route("/employees/{who}", get(employee))
        .route("/audit", get(audit))
        .route("/upcoming", get(upcoming))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/events/{id}/cancel", post(cancel_event))
}

#[derive(Debug, Default, Deserialize)]
struct UpcomingParams {
    days: Option<u32>,
    tz: Option<String>,
}

async fn upcoming(State(s): State<AdminState>, Query(p): Query<UpcomingParams>) -> ApiResult {
    to_json(lifecycle_ops::upcoming(&s.db, p.days.unwrap_or(30), p.tz.as_deref().unwrap_or("UTC")).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: String,
}

async fn cancel_run(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<CancelBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    to_json(lifecycle_ops::cancel_run(&s.db, &s.publisher, &id, &s.actor(), &b.reason).await?)
}

async fn cancel_event(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<CancelBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    to_json(lifecycle_ops::cancel_event(&s.db, &s.publisher, &id, &s.actor(), &b.reason).await?)
}

fn to_json<T: serde::Serialize>(v: T) -> ApiResult {
    Ok(Json(serde_json::to_value(v).expect("views serialize")))
}

/// A JSON body is required on every change: it is what a hostile page cannot
/// make a browser send cross-site, so it doubles as CSRF protection.
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    // The rejection knows its status: 415 not JSON, 413 too large, 400/422 malformed.
    b.map(|Json(v)| v).map_err(|e| {
        Problem::new(e.status(), "invalid-body", format!("{} (changes take a JSON body, {{}} at least)", e.body_text()))
    })
}

async fn list_runs(State(s): State<AdminState>, Query(p): Query<FilterParams>) -> ApiResult {
    let f = p.to_filter(100)?;
    to_json(lifecycle_ops::list_runs(&s.db, &f).await?)
}

async fn show_run(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    to_json(lifecycle_ops::run_detail(&s.db, &id).await?)
}

async fn list_dead(State(s): State<AdminState>, Query(p): Query<FilterParams>) -> ApiResult {
    let f = dead(p.to_filter(1000)?, p.include_discarded());
    to_json(lifecycle_ops::list_runs(&s.db, &f).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn replay_one(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<ReplayBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    let r = lifecycle_ops::replay(&s.db, &s.publisher, &id, &s.actor(), b.reason.as_deref()).await?;
    let note = r.note();
    let mut v = serde_json::to_value(r).expect("views serialize");
    v["message"] = json!(note);
    Ok(Json(v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayAllBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: Option<String>,
    // The filters: dead runs only, so no state.
    vendor: Option<String>,
    workflow: Option<String>,
    employee: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u64>,
}

async fn replay_all(State(s): State<AdminState>, b: Result<Json<ReplayAllBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    let p = FilterParams {
        vendor: b.vendor,
        workflow: b.workflow,
        employee: b.employee,
        since: b.since,
        until: b.until,
        limit: b.limit.map(|l| l.to_string()),
        ..Default::default()
    };
    let f = dead(p.to_filter(1000)?, false);
    let selected = lifecycle_store::runs::list(&s.db, &f).await.map_err(OpsError::from)?;
    let summary =
        lifecycle_ops::replay_all(&s.db, &s.publisher, selected, &s.actor(), b.reason.as_deref(), b.dry_run, |_| {})
            .await;
    let line = summary.line();
    let mut v = serde_json::to_value(summary).expect("views serialize");
    v["message"] = json!(line);
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardBody {
    #[serde(default)]
    reason: String,
}

async fn discard(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<DiscardBody>, JsonRejection>,
) -> ApiResult {
    let b = body(b)?;
    to_json(lifecycle_ops::discard(&s.db, &id, &s.actor(), &b.reason).await?)
}

async fn show_event(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    to_json(lifecycle_ops::event_detail(&s.db, &id).await?)
}

async fn counts(State(s): State<AdminState>) -> ApiResult {
    to_json(lifecycle_ops::counts(&s.db).await?)
}

async fn employee(State(s): State<AdminState>, Path(who): Path<String>) -> ApiResult {
    to_json(lifecycle_ops::employee(&s.db, &who).await?)
}

#[derive(Debug, Default, Deserialize)]
struct AuditParams {
    run: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    limit: Option<u64>,
}

async fn audit(State(s): State<AdminState>, Query(p): Query<AuditParams>) -> ApiResult {
    let since = p
        .since
        .filter(|s| !s.trim().is_empty())
        .map(|s| lifecycle_ops::filter::parse_time(&s).map_err(|e| OpsError::Invalid(format!("since: {e}"))))
        .transpose()?;
    let f = AuditFilter {
        target_id: p.run.filter(|s| !s.is_empty()),
        actor: p.actor.filter(|s| !s.is_empty()),
        since,
        limit: Some(p.limit.unwrap_or(200).clamp(1, 10_000)),
    };
    to_json(lifecycle_ops::audit_log(&s.db, &f).await?)
}
