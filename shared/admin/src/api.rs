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
//! | `POST /api/v1/runs/{id}/recheck` `{}` | re-check a `needs_manual_action` run (409 otherwise) |
//! | `POST /api/v1/runs/recheck` `{vendor?, workflow?, employee?, since?, until?, limit?, dry_run?}` | re-check every `needs_manual_action` run that matches |
//! | `POST /api/v1/runs/{id}/edit` `{"set": {"role": "Sales Rep"}, reason?, replay?}` | correct a dead run's input, checked as the intake checks (400 naming each bad field); `replay: true` replays it |
//! | `POST /api/v1/runs/edit` `{set, vendor?, workflow?, error_contains?, since?, until?, limit?, replay?, reason?, yes?}` | the same edit on every dead run that matches; a preview unless `yes: true` |
//! | `GET /api/v1/held?vendor=&since=&employee=&limit=` | runs held by the blast-radius guard (`[safety]`): count, by vendor, the oldest |
//! | `POST /api/v1/held/release` `{vendor?, since?, employee?, reason?, yes?}` | release the matching held runs (they run); a preview with the count and a sample unless `yes: true` |
//! | `POST /api/v1/held/cancel` `{vendor?, since?, employee?, reason?, yes?}` | cancel them (they end `cancelled`); a preview unless `yes: true` |
//! | `GET /api/v1/approvals` | runs awaiting an approver (`[approval]`): the rule, who may decide, the deadline |
//! | `POST /api/v1/runs/{id}/approve` `{"reason"?}` | approve it (it runs); 403 not an approver, 409 decided already |
//! | `POST /api/v1/runs/{id}/reject` `{"reason"}` | reject it (it ends `rejected`, saying who and why) |
//! | `POST /api/v1/reconcile` `{"vendor"?}` | start a pass per configured vendor (or the one named) in the background: 202 |
//! | `GET /api/v1/reconcile/passes?vendor=&limit=` | passes, newest first (`running: true` while reading) |
//! | `GET /api/v1/reconcile/findings?vendor=&kind=&include_resolved=` | findings, open ones unless asked |
//! | `POST /api/v1/reconcile/fix` `{vendor?, kind?, ids?, yes}` | findings into runs; a dry run unless `yes: true` |
//! | `POST /api/v1/plans` (the intake's event JSON) | what each vendor's run would do now, from reads only |
//! | `GET /api/v1/version` | `{"version", "commit", "built"}`: this producer's version, commit and the commit's date (null when unknown) |

use crate::params::FilterParams;
use crate::problem::Problem;
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lifecycle_domain::event::BodyError;
use lifecycle_domain::{Event, VendorKind};
use lifecycle_ops::filter::{dead, needs_manual_action, parse_name};
use lifecycle_ops::query::audit::AuditFilter;
use lifecycle_ops::query::findings::FindingFilter;
use lifecycle_ops::query::passes;
use lifecycle_ops::query::runs::{Run, RunFilter};
use lifecycle_ops::reconcile::FindingKind;
use lifecycle_ops::OpsError;
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
        .route("/runs/{id}/recheck", post(recheck_one))
        .route("/runs/recheck", post(recheck_all))
        .route("/runs/edit", post(crate::edits::edit_all))
        .route("/runs/{id}/edit", post(crate::edits::edit_one))
        .route("/held", get(crate::held::list))
        .route("/held/release", post(crate::held::release))
        .route("/held/cancel", post(crate::held::cancel))
        .route("/hr/deliveries", get(crate::hris::list))
        .route("/hr/deliveries/{id}", get(crate::hris::show))
        .route("/hr/deliveries/{id}/retry", post(crate::hris::retry))
        .route("/approvals", get(crate::approvals::list))
        .route("/runs/{id}/approve", post(crate::approvals::approve))
        .route("/runs/{id}/reject", post(crate::approvals::reject))
        .route("/reconcile", post(reconcile_start))
        .route("/reconcile/passes", get(reconcile_passes))
        .route("/reconcile/findings", get(reconcile_findings))
        .route("/reconcile/fix", post(reconcile_fix))
        .route("/plans", post(plan))
        .route("/pushes", get(crate::pushes::list))
        .route("/pushes/{id}", get(crate::pushes::show))
        .route("/version", get(version))
}

/// The build serving this API: what an operator checks before and after an upgrade.
async fn version(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "version": s.build.version, "commit": s.build.commit, "built": s.build.built }))
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

/// A bulk replay's or re-check's body: the narrowing filters (the state is
/// the operation's own), a dry run, and a reason for the audit log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: Option<String>,
    vendor: Option<String>,
    workflow: Option<String>,
    employee: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u64>,
}

impl BulkBody {
    /// The runs the filters select, of the state `narrow` sets.
    async fn selected(&self, s: &AdminState, narrow: impl FnOnce(RunFilter) -> RunFilter) -> Result<Vec<Run>, Problem> {
        let p = FilterParams {
            vendor: self.vendor.clone(),
            workflow: self.workflow.clone(),
            employee: self.employee.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            limit: self.limit.map(|l| l.to_string()),
            ..Default::default()
        };
        let f = narrow(p.to_filter(1000)?);
        Ok(lifecycle_ops::query::runs::select(&s.db, &f).await?)
    }
}

/// A bulk summary with its one line for people as `message`.
fn summary_json(summary: lifecycle_ops::ReplaySummary) -> ApiResult {
    let line = summary.line();
    let mut v = serde_json::to_value(summary).expect("views serialize");
    v["message"] = json!(line);
    Ok(Json(v))
}

async fn replay_all(State(s): State<AdminState>, b: Result<Json<BulkBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    let selected = b.selected(&s, |f| dead(f, false)).await?;
    summary_json(
        lifecycle_ops::replay_all(&s.db, &s.publisher, selected, &s.actor(), b.reason.as_deref(), b.dry_run, |_| {})
            .await,
    )
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

// ---- re-check ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecheckBody {}

async fn recheck_one(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    b: Result<Json<RecheckBody>, JsonRejection>,
) -> ApiResult {
    body(b)?;
    let r = lifecycle_ops::recheck(&s.db, &s.publisher, &id, &s.actor(), None).await?;
    let note = r.note();
    let mut v = serde_json::to_value(r).expect("views serialize");
    v["message"] = json!(note);
    Ok(Json(v))
}

async fn recheck_all(State(s): State<AdminState>, b: Result<Json<BulkBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    let selected = b.selected(&s, needs_manual_action).await?;
    summary_json(
        lifecycle_ops::recheck_all(&s.db, &s.publisher, selected, &s.actor(), b.reason.as_deref(), b.dry_run, |_| {})
            .await,
    )
}

// ---- reconcile ----

/// A vendor as typed in a body or a query: an unknown name is a 400 naming it.
fn vendor_of(v: Option<&str>) -> Result<Option<VendorKind>, Problem> {
    Ok(v.map(str::trim).filter(|v| !v.is_empty()).map(|v| parse_name("vendor", v)).transpose()?)
}

/// A finding kind: an unknown one is a 400 listing the kinds.
pub(crate) fn kind_of(k: Option<&str>) -> Result<Option<FindingKind>, OpsError> {
    k.map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            FindingKind::parse(k).ok_or_else(|| {
                let kinds: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
                OpsError::Invalid(format!("kind: '{k}' is not one of {}", kinds.join(", ")))
            })
        })
        .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileBody {
    #[serde(default)]
    vendor: Option<String>,
}

async fn reconcile_start(State(s): State<AdminState>, b: Result<Json<ReconcileBody>, JsonRejection>) -> Response {
    let result = async {
        let b = body(b)?;
        let vendor = vendor_of(b.vendor.as_deref())?;
        Ok::<_, Problem>(passes::start(&s.db, &s.vendors, vendor, &s.actor()).await?)
    }
    .await;
    match result {
        // Accepted: the passes go on after this answer.
        Ok(started) => (StatusCode::ACCEPTED, Json(started)).into_response(),
        Err(p) => p.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct PassParams {
    vendor: Option<String>,
    limit: Option<u64>,
}

async fn reconcile_passes(State(s): State<AdminState>, Query(p): Query<PassParams>) -> ApiResult {
    let vendor = vendor_of(p.vendor.as_deref())?;
    to_json(passes::passes(&s.db, vendor, p.limit.unwrap_or(50)).await?)
}

#[derive(Debug, Default, Deserialize)]
struct FindingParams {
    vendor: Option<String>,
    kind: Option<String>,
    include_resolved: Option<String>,
    limit: Option<u64>,
}

async fn reconcile_findings(State(s): State<AdminState>, Query(p): Query<FindingParams>) -> ApiResult {
    let f = FindingFilter {
        vendor: vendor_of(p.vendor.as_deref())?,
        kind: kind_of(p.kind.as_deref())?,
        include_resolved: matches!(p.include_resolved.as_deref(), Some("true" | "on" | "1" | "yes")),
        limit: Some(p.limit.unwrap_or(1000).clamp(1, 10_000)),
    };
    to_json(lifecycle_ops::reconcile::findings(&s.db, &f).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixBody {
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    /// Only these findings (of those the filter selects).
    #[serde(default)]
    ids: Option<Vec<String>>,
    /// Without it, a dry run: nothing is written.
    #[serde(default)]
    yes: bool,
}

async fn reconcile_fix(State(s): State<AdminState>, b: Result<Json<FixBody>, JsonRejection>) -> ApiResult {
    let b = body(b)?;
    let f = FindingFilter {
        vendor: vendor_of(b.vendor.as_deref())?,
        kind: kind_of(b.kind.as_deref())?,
        include_resolved: false,
        limit: None,
    };
    let summary = lifecycle_ops::reconcile::fix(
        &s.db,
        &s.vendors.schedule,
        &s.vendors.safety,
        &f,
        b.ids.as_deref(),
        &s.actor(),
        !b.yes,
        |_| {},
    )
    .await?;
    let line = summary.line().replace("--yes", "\"yes\": true");
    let mut v = serde_json::to_value(summary).expect("views serialize");
    v["message"] = json!(line);
    Ok(Json(v))
}

// ---- plans ----

/// The intake's event, checked as the intake checks it (JSON, no repeated
/// key, every field), each bad field named in the problem's `errors`.
pub(crate) fn parse_event(bytes: &[u8]) -> Result<Event, Problem> {
    match Event::parse_body(bytes) {
        Ok((_, event)) => Ok(event),
        Err(BodyError::MalformedJson(detail)) => Err(Problem::new(StatusCode::BAD_REQUEST, "malformed-json", detail)),
        Err(BodyError::Invalid { detail, errors }) => {
            Err(Problem::new(StatusCode::BAD_REQUEST, "invalid-event", detail).with_errors(errors))
        }
    }
}

/// Reads only, at the vendors; writes nothing anywhere. Still a POST with a
/// JSON body: reads spend the vendors' budgets, which a cross-site form must
/// not be able to do.
async fn plan(State(s): State<AdminState>, headers: HeaderMap, bytes: Bytes) -> ApiResult {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid-body",
            "a plan takes the event as JSON (Content-Type: application/json)",
        ));
    }
    let event = parse_event(&bytes)?;
    let plan = lifecycle_ops::plan::plan(&s.vendors.registry, &event).await;
    let text = plan.text();
    let mut v = serde_json::to_value(plan).expect("views serialize");
    v["text"] = json!(text);
    Ok(Json(v))
}
