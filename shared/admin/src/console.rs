//! The web console: server-rendered pages (askama templates, every value
//! escaped: vendor messages are untrusted text), minimal CSS, no JavaScript.
//!
//! Reading is `GET`; replay and discard are reached through a confirmation
//! page whose `POST` form carries a CSRF token, and answer with a redirect to
//! the run (303), so reloading never repeats an action.

use crate::params::FilterParams;
use crate::{AdminState, FormAction};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_ops::filter::dead;
use lifecycle_ops::{OpsError, RunDetail, RunSummary};
use lifecycle_store::audit::AuditFilter;
use lifecycle_store::runs::RunFilter;
use lifecycle_store::steps;
use serde::Deserialize;

mod approval_form;
mod bulk;
mod edit_form;
mod hris;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(overview))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/replay", get(confirm_replay).post(do_replay))
        .route("/runs/{id}/discard", get(confirm_discard).post(do_discard))
        .route("/runs/{id}/cancel", get(confirm_cancel).post(do_cancel))
        .route("/upcoming", get(upcoming))
        .route("/dead", get(dead_runs))
        .route("/events/{id}", get(event))
        .route("/employees", get(employee))
        .route("/audit", get(audit))
        .route("/runs/{id}/recheck", get(confirm_recheck).post(do_recheck))
        .route("/runs/recheck", get(confirm_recheck_all).post(do_recheck_all))
        .route("/reconcile", get(reconcile_page).post(reconcile_start))
        .route("/reconcile/fix", get(fix_preview).post(do_fix))
        .route("/plan", get(plan_page).post(plan_event))
        .merge(bulk::routes())
        .merge(approval_form::routes())
        .merge(edit_form::routes())
        .merge(hris::routes())
}

// ---- rendering ----

/// A console error: an HTML page with the status and what to do.
pub struct PageError(StatusCode, String);

impl From<OpsError> for PageError {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(m) => PageError(StatusCode::NOT_FOUND, m),
            OpsError::Refused(m) => PageError(StatusCode::CONFLICT, m),
            OpsError::Forbidden(m) => PageError(StatusCode::FORBIDDEN, m),
            OpsError::Invalid(m) => PageError(StatusCode::BAD_REQUEST, m),
            OpsError::Vendor(m) => PageError(StatusCode::BAD_GATEWAY, m),
            OpsError::Store(e) => {
                tracing::error!(error = %e, "console request failed on the database");
                PageError(StatusCode::SERVICE_UNAVAILABLE, "the database failed; try again".into())
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.0.as_u16(),
            reason: self.0.canonical_reason().unwrap_or("Error"),
            message: &self.1,
        };
        (self.0, render(&page)).into_response()
    }
}

fn render<T: Template>(t: &T) -> Html<String> {
    match t.render() {
        Ok(s) => Html(s),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            Html("<!doctype html><title>error</title><p>This page could not be rendered; it has been logged.".into())
        }
    }
}

type Page = Result<Html<String>, PageError>;

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn when_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(when).unwrap_or_default()
}

/// A run as one table row.
struct RunRow {
    id: String,
    vendor: VendorKind,
    workflow: Workflow,
    employee: String,
    state: RunState,
    attempts: i32,
    created: String,
    finished: String,
    note: String,
    discarded: bool,
    replayable: bool,
    /// A person was asked to act: a re-check looks whether they did.
    recheckable: bool,
}

impl From<&RunSummary> for RunRow {
    fn from(r: &RunSummary) -> Self {
        let note = match (&r.discard_reason, r.state) {
            (Some(reason), _) if r.discarded_at.is_some() => format!("discarded: {reason}"),
            (_, RunState::Queued | RunState::Running | RunState::RetryScheduled) => r
                .blocked_by
                .as_ref()
                .map(|b| format!("waits for run {b}"))
                .or_else(|| r.last_error.clone())
                .unwrap_or_default(),
            _ => r.outcome.clone().or_else(|| r.last_error.clone()).unwrap_or_default(),
        };
        RunRow {
            id: r.run_id.clone(),
            vendor: r.vendor,
            workflow: r.workflow,
            employee: r.employee_email.clone(),
            state: r.state,
            attempts: r.attempts,
            created: when(r.created_at),
            finished: when_opt(r.finished_at),
            note,
            discarded: r.discarded_at.is_some(),
            replayable: r.discarded_at.is_none() && matches!(r.state, RunState::Dead | RunState::NeedsManualAction),
            recheckable: r.discarded_at.is_none() && r.state == RunState::NeedsManualAction,
        }
    }
}

/// An option of a filter's `<select>`.
struct Opt {
    value: String,
    selected: bool,
}

/// Every value of `all`, the one `current` names selected.
fn options<T: Copy + PartialEq + std::fmt::Display + std::str::FromStr>(
    all: &[T],
    current: &Option<String>,
) -> Vec<Opt> {
    let current = current.as_deref().and_then(|c| c.parse::<T>().ok());
    all.iter().map(|v| Opt { value: v.to_string(), selected: Some(*v) == current }).collect()
}

/// The filter form's state.
struct FilterForm {
    states: Vec<Opt>,
    vendors: Vec<Opt>,
    workflows: Vec<Opt>,
    employee: String,
    since: String,
    until: String,
    include_discarded: bool,
}

impl FilterForm {
    fn new(p: &FilterParams) -> Self {
        FilterForm {
            states: options(&RunState::ALL, &p.state),
            vendors: options(&VendorKind::ALL, &p.vendor),
            workflows: options(&Workflow::ALL, &p.workflow),
            employee: p.employee.clone().unwrap_or_default(),
            since: p.since.clone().unwrap_or_default(),
            until: p.until.clone().unwrap_or_default(),
            include_discarded: p.include_discarded(),
        }
    }
}

// ---- overview ----

struct CountRow {
    vendor: VendorKind,
    cells: Vec<CountCell>,
    total: i64,
}

/// One count: its column, and whether the column opens a group (a rule left of it).
struct CountCell {
    column: &'static str,
    n: i64,
    opens: bool,
}

/// A header over the columns of one group.
struct GroupHead {
    label: &'static str,
    span: usize,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    groups: Vec<GroupHead>,
    rows: Vec<CountRow>,
    /// Every column summed over vendors (the header names them from here too).
    totals: Vec<CountCell>,
    total: i64,
    /// The recent dead runs.
    runs: Vec<RunRow>,
    dead_count: i64,
}

impl OverviewPage {
    /// The table of `counts`: a column for every state (the ops' columns, by
    /// group), so that a row's total is the sum of what it shows.
    fn new(counts: &lifecycle_ops::Counts, runs: Vec<RunRow>) -> Self {
        let cols = &counts.columns;
        let opens = |i: usize| i == 0 || cols[i - 1].group != cols[i].group;
        let mut groups: Vec<GroupHead> = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            if opens(i) {
                groups.push(GroupHead { label: c.group.label(), span: 0 });
            }
            if let Some(g) = groups.last_mut() {
                g.span += 1;
            }
        }
        let cells = |n: &dyn Fn(&str) -> i64| -> Vec<CountCell> {
            cols.iter().enumerate().map(|(i, c)| CountCell { column: c.name, n: n(c.name), opens: opens(i) }).collect()
        };
        let rows = counts
            .vendors
            .iter()
            .map(|v| CountRow {
                vendor: v.vendor,
                cells: cells(&|c| v.counts.get(c).copied().unwrap_or(0)),
                total: v.total,
            })
            .collect();
        OverviewPage {
            groups,
            rows,
            totals: cells(&|c| counts.total_of(c)),
            total: counts.total,
            runs,
            dead_count: counts.total_of(RunState::Dead.as_str()),
        }
    }
}

async fn overview(State(s): State<AdminState>) -> Page {
    let counts = lifecycle_ops::counts(&s.db).await?;
    let recent =
        lifecycle_ops::list_runs(&s.db, &dead(RunFilter { limit: Some(10), ..Default::default() }, false)).await?;
    Ok(render(&OverviewPage::new(&counts, recent.iter().map(RunRow::from).collect())))
}

#[cfg(test)]
mod overview_tests {
    use super::*;
    use lifecycle_ops::overview::{columns, Group, VendorCounts};
    use std::collections::BTreeMap;

    /// The numbers of `<strong>` cells in the page's "all" row.
    fn all_row(html: &str) -> Vec<i64> {
        let row = &html[html.find("<tr class=\"all\">").expect("the all row")..];
        let row = &row[..row.find("</tr>").unwrap()];
        row.split("<strong>").skip(1).map(|c| c[..c.find('<').unwrap()].parse().unwrap()).collect()
    }

    /// Every column the ops count has its header under its group, and the
    /// total is the sum of the cells the page shows (no hidden state).
    #[test]
    fn every_counted_state_has_a_column_and_the_total_is_their_sum() {
        let cols = columns();
        let counts: BTreeMap<String, i64> =
            cols.iter().enumerate().map(|(i, c)| (c.name.to_string(), i as i64 + 1)).collect();
        let total = counts.values().sum();
        let row =
            VendorCounts { vendor: VendorKind::Pipedrive, counts: counts.clone(), groups: BTreeMap::new(), total };
        let c = lifecycle_ops::Counts {
            columns: cols.clone(),
            vendors: vec![row],
            totals: counts,
            group_totals: BTreeMap::new(),
            total,
        };
        let html = OverviewPage::new(&c, Vec::new()).render().unwrap();

        let head = &html[html.find("<thead>").unwrap()..html.find("</thead>").unwrap()];
        let mut at = 0;
        for col in &cols {
            let found =
                head[at..].find(&format!(">{}</th>", col.name)).unwrap_or_else(|| panic!("{}: {head}", col.name));
            at += found + 1;
        }
        for s in RunState::ALL {
            assert!(head.contains(&format!(">{s}</th>")), "{s} has its column");
        }
        let mut from = 0;
        for g in Group::ALL {
            let span = cols.iter().filter(|c| c.group == g).count();
            let cell = format!("colspan=\"{span}\">{}</th>", g.label());
            let found = head[from..].find(&cell).unwrap_or_else(|| panic!("{cell}: {head}"));
            from += found + 1;
        }

        let shown = all_row(&html);
        assert_eq!(shown.len(), cols.len() + 1, "a cell per column, then the total");
        let (last, cells) = shown.split_last().unwrap();
        assert_eq!(cells.iter().sum::<i64>(), *last);
        assert_eq!(*last, total);
        // A count links to its runs, a discarded one to the dead runs page.
        assert!(html.contains("/runs?vendor=pipedrive&amp;state=scheduled\">1</a>"), "{html}");
        assert!(html.contains("/dead?vendor=pipedrive&amp;include_discarded=on\">"), "{html}");
    }
}

// ---- lists ----

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    title: &'static str,
    action: &'static str,
    dead_page: bool,
    form: FilterForm,
    runs: Vec<RunRow>,
    error: Option<String>,
    /// Listing `needs_manual_action` runs: the same filter, for "Re-check all matching".
    recheck: Option<Selection>,
    /// The list's filter, carried into the bulk actions' form.
    bulk: bulk::BulkFilter,
    bulk_actions: Vec<&'static str>,
}

async fn runs(State(s): State<AdminState>, Query(p): Query<FilterParams>) -> Page {
    list_page(&s, p, false).await
}

async fn dead_runs(State(s): State<AdminState>, Query(p): Query<FilterParams>) -> Page {
    list_page(&s, p, true).await
}

async fn list_page(s: &AdminState, p: FilterParams, dead_page: bool) -> Page {
    let form = FilterForm::new(&p);
    let (title, action) = if dead_page { ("Dead runs", "/dead") } else { ("Runs", "/runs") };
    let filter = p.to_filter(200).map(|f| if dead_page { dead(f, p.include_discarded()) } else { f });
    let (runs, error) = match filter {
        Ok(f) => (lifecycle_ops::list_runs(&s.db, &f).await?, None),
        // A bad filter is shown above an empty list, with the form to fix it.
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let only_manual = p.state.as_deref().map(str::trim) == Some(RunState::NeedsManualAction.as_str());
    let recheck = (only_manual && !dead_page && error.is_none() && !runs.is_empty()).then(|| Selection::of(&p));
    Ok(render(&RunsPage {
        title,
        action,
        dead_page,
        form,
        runs: runs.iter().map(RunRow::from).collect(),
        error,
        recheck,
        bulk: bulk::BulkFilter::of(&p),
        bulk_actions: bulk::action_names(),
    }))
}

// ---- one run ----

struct TimelineRow {
    position: i32,
    key: String,
    attempt: i32,
    run_attempt: i32,
    status: String,
    started: String,
    duration: String,
    vendor_ids: String,
    error: String,
}

/// Every attempt of every step, in the order they started: what happened, when.
fn timeline(d: &RunDetail) -> Vec<TimelineRow> {
    let mut rows = Vec::new();
    for s in &d.steps {
        for a in &s.history {
            rows.push((
                a.started_at,
                TimelineRow {
                    position: s.position,
                    key: s.key.clone(),
                    attempt: a.attempt,
                    run_attempt: a.run_attempt,
                    status: a.status.clone(),
                    started: a.started_at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                    duration: a.duration_ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "-".into()),
                    vendor_ids: a.output.as_ref().map(|o| o.to_string()).unwrap_or_default(),
                    error: a.error.clone().unwrap_or_default(),
                },
            ));
        }
    }
    rows.sort_by_key(|(started, _)| *started);
    rows.into_iter().map(|(_, row)| row).collect()
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    r: RunRow,
    event_id: String,
    employee_id: String,
    access: String,
    outcome: String,
    last_error: String,
    replays: i32,
    replayed_at: String,
    discard_reason: String,
    unfinished: bool,
    notice: String,
    timeline: Vec<TimelineRow>,
    input: String,
    audit: Vec<AuditRow>,
    /// Its approval (`[approval]`), if it ever awaited one: Approve / Reject while it awaits.
    approval: Option<approval_form::ApprovalBox>,
}

#[derive(Deserialize)]
struct RunQuery {
    done: Option<String>,
}

async fn run(State(s): State<AdminState>, Path(id): Path<String>, Query(q): Query<RunQuery>) -> Page {
    let d = lifecycle_ops::run_detail(&s.db, &id).await?;
    // Only fixed texts: nothing from the query string is echoed.
    let notice = match q.done.as_deref() {
        Some("replayed") => "Replayed: a worker is picking it up. Completed steps are not repeated.",
        Some("replayed-unpublished") => {
            "Replayed, but RabbitMQ could not be reached: a worker's sweeper will publish the run shortly."
        }
        Some("discarded") => "Discarded: the run stays dead and leaves the dead runs list.",
        Some("cancelled") => "Cancelled: the run will not start.",
        Some("rechecked") => {
            "Re-check asked: a worker runs the workflow again and looks at the vendor; the run ends succeeded if the \
             vendor now shows what it wanted, else it says what is still missing."
        }
        Some("rechecked-unpublished") => {
            "Re-check asked, but RabbitMQ could not be reached: a worker's sweeper will publish the run shortly."
        }
        Some("approved") => "Approved: the run is queued and a worker picks it up.",
        Some("rejected") => "Rejected: the run will not start.",
        _ => "",
    };
    let audit = lifecycle_ops::audit_log(
        &s.db,
        &AuditFilter { target_id: Some(id.clone()), limit: Some(50), ..Default::default() },
    )
    .await?;
    let r = &d.run;
    Ok(render(&RunPage {
        r: RunRow::from(r),
        event_id: r.event_id.clone(),
        employee_id: r.employee_id.clone().unwrap_or_default(),
        access: r.access.map(|a| a.to_string()).unwrap_or_default(),
        outcome: r.outcome.clone().unwrap_or_default(),
        last_error: r.last_error.clone().unwrap_or_default(),
        replays: r.replays,
        replayed_at: when_opt(r.replayed_at),
        discard_reason: r.discard_reason.clone().unwrap_or_default(),
        unfinished: matches!(r.state, RunState::Queued | RunState::Running | RunState::RetryScheduled),
        notice: notice.to_string(),
        timeline: timeline(&d),
        input: serde_json::to_string_pretty(&d.input).unwrap_or_default(),
        audit: audit.iter().map(AuditRow::from).collect(),
        approval: approval_form::approval_box(&s, &id).await?,
    }))
}

// ---- replay and discard ----

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    replay: bool,
    r: RunRow,
    outcome: String,
    done_steps: Vec<String>,
    failed_step: String,
    refusal: String,
    csrf: String,
}

async fn confirm_page(s: &AdminState, id: &str, replay: bool) -> Result<Response, PageError> {
    let d = lifecycle_ops::run_detail(&s.db, id).await?;
    let refusal = if replay {
        match lifecycle_ops::check_replayable(&s.db, id).await {
            Ok(_) => String::new(),
            Err(OpsError::Refused(m)) => m,
            Err(e) => return Err(e.into()),
        }
    } else if d.run.state != RunState::Dead || d.run.discarded_at.is_some() {
        format!("run {id} is {}; only dead runs that are not discarded can be discarded", d.run.state)
    } else {
        String::new()
    };
    let page = ConfirmPage {
        replay,
        r: RunRow::from(&d.run),
        outcome: d.run.outcome.clone().or_else(|| d.run.last_error.clone()).unwrap_or_default(),
        done_steps: d.steps.iter().filter(|s| s.status == steps::SUCCEEDED).map(|s| s.key.clone()).collect(),
        failed_step: d.steps.iter().find(|s| s.status != steps::SUCCEEDED).map(|s| s.key.clone()).unwrap_or_default(),
        csrf: s.csrf.issue(&s.username, action(replay), id),
        refusal: refusal.clone(),
    };
    let status = if refusal.is_empty() { StatusCode::OK } else { StatusCode::CONFLICT };
    Ok((status, render(&page)).into_response())
}

async fn confirm_replay(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    confirm_page(&s, &id, true).await
}

async fn confirm_discard(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    confirm_page(&s, &id, false).await
}

fn action(replay: bool) -> FormAction {
    if replay {
        FormAction::Replay
    } else {
        FormAction::Discard
    }
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// The form must carry a token this console issued to this user for this
/// action on this run, and, when the browser says where the form came from,
/// come from this origin. `Origin: null` (a sandboxed frame, a `data:` page,
/// some redirects) is an origin that is not ours.
fn check_form(
    s: &AdminState,
    headers: &HeaderMap,
    form: &ActionForm,
    action: FormAction,
    run_id: &str,
) -> Result<(), PageError> {
    check_token(s, headers, &form.csrf, action, run_id)
}

/// [`check_form`]'s checks for any form: `target` is what the token was
/// issued for (a run, a vendor, a selection).
fn check_token(
    s: &AdminState,
    headers: &HeaderMap,
    csrf: &str,
    action: FormAction,
    target: &str,
) -> Result<(), PageError> {
    let forbidden = |m: &str| PageError(StatusCode::FORBIDDEN, m.to_string());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, h)| h);
        if origin_host.is_none() || origin_host != host {
            return Err(forbidden("this form was sent from another site; open the console and try again"));
        }
    }
    if !s.csrf.verify(&s.username, action, target, csrf) {
        return Err(forbidden(
            "this form has expired or did not come from this console; go back, reload the page and try again",
        ));
    }
    Ok(())
}

async fn do_replay(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_form(&s, &headers, &form, FormAction::Replay, &id)?;
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    let r = lifecycle_ops::replay(&s.db, &s.publisher, &id, &s.actor(), reason).await?;
    let done = if r.published { "replayed" } else { "replayed-unpublished" };
    Ok(Redirect::to(&format!("/runs/{}?done={done}", r.run_id)))
}

async fn do_discard(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_form(&s, &headers, &form, FormAction::Discard, &id)?;
    let d = lifecycle_ops::discard(&s.db, &id, &s.actor(), &form.reason).await?;
    Ok(Redirect::to(&format!("/runs/{}?done=discarded", d.run_id)))
}

// ---- scheduled runs: upcoming, cancel ----

#[derive(Deserialize)]
struct UpcomingQuery {
    days: Option<u32>,
    tz: Option<String>,
}

#[derive(Template)]
#[template(path = "upcoming.html")]
struct UpcomingPage {
    view: lifecycle_ops::Upcoming,
}

/// The next days' scheduled runs, by day, in the operator's time zone (`?tz=`,
/// an IANA name; the page offers the browser's own through a plain form).
async fn upcoming(State(s): State<AdminState>, Query(q): Query<UpcomingQuery>) -> Page {
    let view = lifecycle_ops::upcoming(&s.db, q.days.unwrap_or(30), q.tz.as_deref().unwrap_or("UTC")).await?;
    Ok(render(&UpcomingPage { view }))
}

#[derive(Template)]
#[template(path = "cancel.html")]
struct CancelPage {
    r: RunRow,
    starts: String,
    refusal: String,
    csrf: String,
}

async fn confirm_cancel(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let d = lifecycle_ops::run_detail(&s.db, &id).await?;
    let not_started =
        d.run.state == RunState::Scheduled || (d.run.state == RunState::Queued && d.run.started_at.is_none());
    let refusal = if not_started {
        String::new()
    } else {
        format!("run {id} is {}: only a run that has not started can be cancelled", d.run.state)
    };
    let page = CancelPage {
        r: RunRow::from(&d.run),
        starts: d.run.next_attempt_at.map(when).unwrap_or_default(),
        csrf: s.csrf.issue(&s.username, FormAction::Cancel, &id),
        refusal: refusal.clone(),
    };
    let status = if refusal.is_empty() { StatusCode::OK } else { StatusCode::CONFLICT };
    Ok((status, render(&page)).into_response())
}

async fn do_cancel(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_form(&s, &headers, &form, FormAction::Cancel, &id)?;
    lifecycle_ops::cancel_run(&s.db, &s.publisher, &id, &s.actor(), &form.reason).await?;
    Ok(Redirect::to(&format!("/runs/{id}?done=cancelled")))
}

// ---- events, employees, audit ----

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    event_id: String,
    source: String,
    event_type: String,
    received: String,
    payload: String,
    runs: Vec<RunRow>,
}

async fn event(State(s): State<AdminState>, Path(id): Path<String>) -> Page {
    let e = lifecycle_ops::event_detail(&s.db, &id).await?;
    Ok(render(&EventPage {
        event_id: e.event_id.clone(),
        source: e.source.clone(),
        event_type: e.event_type.clone(),
        received: when(e.received_at),
        payload: serde_json::to_string_pretty(&e.payload).unwrap_or_default(),
        runs: e.runs.iter().map(RunRow::from).collect(),
    }))
}

struct AppRow {
    vendor: VendorKind,
    status: String,
    status_class: String,
    runs: usize,
    r: RunRow,
    access: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "employee.html")]
struct EmployeePage {
    who: String,
    email: String,
    employee_id: String,
    apps: Vec<AppRow>,
    error: String,
}

#[derive(Deserialize)]
struct WhoQuery {
    who: Option<String>,
}

async fn employee(State(s): State<AdminState>, Query(q): Query<WhoQuery>) -> Page {
    let who = q.who.unwrap_or_default().trim().to_string();
    let mut page = EmployeePage {
        who: who.clone(),
        email: String::new(),
        employee_id: String::new(),
        apps: vec![],
        error: String::new(),
    };
    if who.is_empty() {
        return Ok(render(&page));
    }
    match lifecycle_ops::employee(&s.db, &who).await {
        Ok(v) => {
            page.email = v.email.unwrap_or_default();
            page.employee_id = v.employee_id.unwrap_or_default();
            page.apps = v
                .apps
                .iter()
                .map(|a| AppRow {
                    vendor: a.vendor,
                    status_class: a.status.replace(' ', "-"),
                    status: a.status.clone(),
                    runs: a.runs,
                    r: RunRow::from(&a.run),
                    access: a.run.access.map(|a| a.to_string()).unwrap_or_default(),
                    updated: when(a.run.updated_at),
                })
                .collect();
        }
        Err(OpsError::NotFound(m) | OpsError::Invalid(m)) => page.error = m,
        Err(e) => return Err(e.into()),
    }
    Ok(render(&page))
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    target_kind: String,
    target_id: String,
    reason: String,
    details: String,
}

impl From<&lifecycle_ops::AuditView> for AuditRow {
    fn from(e: &lifecycle_ops::AuditView) -> Self {
        AuditRow {
            at: when(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target_kind: e.target_kind.clone(),
            target_id: e.target_id.clone(),
            reason: e.reason.clone().unwrap_or_default(),
            details: e.details.as_ref().map(|d| d.to_string()).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    entries: Vec<AuditRow>,
    run: String,
    actor: String,
}

#[derive(Deserialize)]
struct AuditQuery {
    run: Option<String>,
    actor: Option<String>,
}

async fn audit(State(s): State<AdminState>, Query(q): Query<AuditQuery>) -> Page {
    let run = q.run.unwrap_or_default().trim().to_string();
    let actor = q.actor.unwrap_or_default().trim().to_string();
    let f = AuditFilter {
        target_id: Some(run.clone()).filter(|r| !r.is_empty()),
        actor: Some(actor.clone()).filter(|a| !a.is_empty()),
        since: None,
        limit: Some(500),
    };
    let entries = lifecycle_ops::audit_log(&s.db, &f).await?;
    Ok(render(&AuditPage { entries: entries.iter().map(AuditRow::from).collect(), run, actor }))
}

// ---- re-check: one run, or every needs_manual_action run a filter selects ----

#[derive(Template)]
#[template(path = "recheck.html")]
struct RecheckPage {
    r: RunRow,
    asked: String,
    refusal: String,
    csrf: String,
}

async fn confirm_recheck(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let d = lifecycle_ops::run_detail(&s.db, &id).await?;
    let refusal = match lifecycle_ops::check_recheckable(&s.db, &id).await {
        Ok(_) => String::new(),
        Err(OpsError::Refused(m)) => m,
        Err(e) => return Err(e.into()),
    };
    let page = RecheckPage {
        r: RunRow::from(&d.run),
        asked: d.run.outcome.clone().or_else(|| d.run.last_error.clone()).unwrap_or_default(),
        csrf: s.csrf.issue(&s.username, FormAction::Recheck, &id),
        refusal: refusal.clone(),
    };
    let status = if refusal.is_empty() { StatusCode::OK } else { StatusCode::CONFLICT };
    Ok((status, render(&page)).into_response())
}

async fn do_recheck(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_form(&s, &headers, &form, FormAction::Recheck, &id)?;
    let r = lifecycle_ops::recheck(&s.db, &s.publisher, &id, &s.actor(), None).await?;
    let done = if r.published { "rechecked" } else { "rechecked-unpublished" };
    Ok(Redirect::to(&format!("/runs/{}?done={done}", r.run_id)))
}

/// The narrowing filters of a bulk re-check, as typed: carried from the runs
/// list to the confirmation page and its form, and named in its CSRF token
/// so that the form re-checks exactly what the page showed.
#[derive(Debug, Clone, Default, Deserialize)]
struct Selection {
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    employee: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

impl Selection {
    fn of(p: &FilterParams) -> Self {
        let v = |o: &Option<String>| o.as_deref().unwrap_or("").trim().to_string();
        Selection {
            vendor: v(&p.vendor),
            workflow: v(&p.workflow),
            employee: v(&p.employee),
            since: v(&p.since),
            until: v(&p.until),
        }
    }

    fn params(&self) -> FilterParams {
        let v = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        FilterParams {
            vendor: v(&self.vendor),
            workflow: v(&self.workflow),
            employee: v(&self.employee),
            since: v(&self.since),
            until: v(&self.until),
            ..Default::default()
        }
    }

    /// What the CSRF token is issued for: every field, length-prefixed.
    fn target(&self) -> String {
        [&self.vendor, &self.workflow, &self.employee, &self.since, &self.until]
            .iter()
            .map(|f| format!("{}:{f}", f.len()))
            .collect::<Vec<_>>()
            .join("|")
    }

    /// "vendor calendly, workflow joiner" for people; "every" when nothing narrows it.
    fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("vendor", &self.vendor),
            ("workflow", &self.workflow),
            ("employee", &self.employee),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
        if parts.is_empty() {
            "no filter".into()
        } else {
            parts.join(", ")
        }
    }

    async fn runs(&self, s: &AdminState) -> Result<Vec<lifecycle_store::runs::Run>, OpsError> {
        let f = lifecycle_ops::filter::needs_manual_action(self.params().to_filter(1000)?);
        Ok(lifecycle_store::runs::list(&s.db, &f).await?)
    }
}

/// A run a bulk re-check did not (or would not) take, and why.
struct Refusal {
    run_id: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "recheck_all.html")]
struct RecheckAllPage {
    done: bool,
    sel: Selection,
    described: String,
    matched: usize,
    /// Dry run: the runs that would be re-checked; done: those that were.
    taken: Vec<String>,
    refused: Vec<Refusal>,
    failed: Vec<Refusal>,
    unpublished: usize,
    csrf: String,
}

fn refusals(v: &[lifecycle_ops::NotReplayed]) -> Vec<Refusal> {
    v.iter().map(|n| Refusal { run_id: n.run_id.clone(), reason: n.reason.clone() }).collect()
}

async fn confirm_recheck_all(State(s): State<AdminState>, Query(sel): Query<Selection>) -> Page {
    let selected = sel.runs(&s).await?;
    let summary = lifecycle_ops::recheck_all(&s.db, &s.publisher, selected, &s.actor(), None, true, |_| {}).await;
    Ok(render(&RecheckAllPage {
        done: false,
        described: sel.describe(),
        matched: summary.selected,
        taken: summary.would_replay.clone(),
        refused: refusals(&summary.refused),
        failed: refusals(&summary.failed),
        unpublished: 0,
        csrf: s.csrf.issue(&s.username, FormAction::RecheckAll, &sel.target()),
        sel,
    }))
}

#[derive(Deserialize)]
struct RecheckAllForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    sel: Selection,
}

/// Answers with the summary itself rather than a redirect: reloading it
/// repeats nothing, since the runs it took are no longer needs_manual_action.
async fn do_recheck_all(State(s): State<AdminState>, headers: HeaderMap, Form(form): Form<RecheckAllForm>) -> Page {
    check_token(&s, &headers, &form.csrf, FormAction::RecheckAll, &form.sel.target())?;
    let selected = form.sel.runs(&s).await?;
    let summary = lifecycle_ops::recheck_all(&s.db, &s.publisher, selected, &s.actor(), None, false, |_| {}).await;
    Ok(render(&RecheckAllPage {
        done: true,
        described: form.sel.describe(),
        matched: summary.selected,
        taken: summary.replayed.iter().map(|r| r.run_id.clone()).collect(),
        refused: refusals(&summary.refused),
        failed: refusals(&summary.failed),
        unpublished: summary.unpublished(),
        csrf: String::new(),
        sel: form.sel,
    }))
}

// ---- reconcile: passes, findings, fixes ----

/// One vendor's line: its last pass and the button to start one.
struct VendorPassRow {
    vendor: VendorKind,
    configured: bool,
    last: Option<PassRow>,
    /// A pass asked for that no worker has started yet: "waiting for a worker".
    waiting: bool,
    csrf: String,
}

struct PassRow {
    started: String,
    running: bool,
    requested_by: String,
    accounts: String,
    took: String,
    findings: String,
    error: String,
}

impl From<&crate::reconcile::PassView> for PassRow {
    fn from(p: &crate::reconcile::PassView) -> Self {
        let n = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_default();
        PassRow {
            started: when(p.started_at),
            running: p.running,
            requested_by: p.requested_by.clone(),
            accounts: n(p.accounts),
            took: p.seconds.map(|s| format!("{s:.1} s")).unwrap_or_default(),
            findings: n(p.findings),
            error: p.error.clone().unwrap_or_default(),
        }
    }
}

struct FindingRow {
    id: String,
    account: String,
    person: String,
    detail: String,
    since: String,
    last_seen: String,
    resolved: String,
    fix_event: String,
    fix_run: String,
    fix_run_state: String,
    fixed_by: String,
    /// Orphaned, missing or drifted, open and not yet fixed.
    fixable: bool,
}

struct FindingGroup {
    vendor: VendorKind,
    kind: String,
    rows: Vec<FindingRow>,
}

#[derive(Template)]
#[template(path = "reconcile.html")]
struct ReconcilePage {
    vendors: Vec<VendorPassRow>,
    any_running: bool,
    csrf_all: String,
    notice: String,
    vendor_options: Vec<Opt>,
    kind_options: Vec<Opt>,
    vendor: String,
    kind: String,
    include_resolved: bool,
    groups: Vec<FindingGroup>,
    fixable: usize,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
struct FindingQuery {
    vendor: Option<String>,
    kind: Option<String>,
    include_resolved: Option<String>,
    /// A single finding (the fix preview of one row).
    id: Option<String>,
    started: Option<String>,
}

impl FindingQuery {
    fn filter(&self) -> Result<lifecycle_store::reconcile::FindingFilter, OpsError> {
        let vendor = self
            .vendor
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| lifecycle_ops::filter::parse_name("vendor", v))
            .transpose()?;
        Ok(lifecycle_store::reconcile::FindingFilter {
            vendor,
            kind: crate::api::kind_of(self.kind.as_deref())?,
            include_resolved: matches!(self.include_resolved.as_deref(), Some("true" | "on" | "1" | "yes")),
            limit: Some(5000),
        })
    }
}

fn kind_options(current: &Option<String>) -> Vec<Opt> {
    use lifecycle_ops::reconcile::FindingKind;
    FindingKind::ALL
        .iter()
        .map(|k| Opt { value: k.as_str().to_string(), selected: current.as_deref() == Some(k.as_str()) })
        .collect()
}

/// A finding as a row, with the run its fix made (if any).
async fn finding_row(s: &AdminState, f: lifecycle_ops::reconcile::FindingView) -> Result<FindingRow, OpsError> {
    let run = match &f.fix_event_id {
        Some(e) => lifecycle_store::runs::for_event(&s.db, e).await?.into_iter().next(),
        None => None,
    };
    let fixable = f.resolved_at.is_none()
        && f.fix_event_id.is_none()
        && lifecycle_ops::reconcile::FindingKind::parse(&f.kind).and_then(|k| k.fix_workflow()).is_some();
    Ok(FindingRow {
        account: f.account,
        person: f.person.unwrap_or_default(),
        detail: f.detail,
        since: when(f.first_seen_at),
        last_seen: when(f.last_seen_at),
        resolved: when_opt(f.resolved_at),
        fix_event: f.fix_event_id.unwrap_or_default(),
        fix_run: run.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
        fix_run_state: run.map(|r| r.state.to_string()).unwrap_or_default(),
        fixed_by: f.fixed_by.unwrap_or_default(),
        fixable,
        id: f.id,
    })
}

async fn reconcile_page(State(s): State<AdminState>, Query(q): Query<FindingQuery>) -> Page {
    let configured = s.vendors.registry.vendors();
    let mut vendors = Vec::new();
    for v in VendorKind::ALL {
        let last = crate::reconcile::passes(&s, Some(v), 1).await?.first().map(PassRow::from);
        let is_configured = configured.contains(&v);
        let waiting = lifecycle_store::reconcile::open_requests(&s.db, v)
            .await
            .map_err(OpsError::from)?
            .iter()
            .any(|r| r.claimed_by.is_none());
        if is_configured || last.is_some() {
            vendors.push(VendorPassRow {
                vendor: v,
                configured: is_configured,
                last,
                waiting,
                csrf: s.csrf.issue(&s.username, FormAction::Reconcile, v.as_str()),
            });
        }
    }
    let (findings, error) = match q.filter() {
        Ok(f) => (lifecycle_ops::reconcile::findings(&s.db, &f).await?, String::new()),
        // A bad filter is shown above an empty list, with the form to fix it.
        Err(e) => (Vec::new(), e.to_string()),
    };
    let mut groups: Vec<FindingGroup> = Vec::new();
    for f in findings {
        let (vendor, kind) = (f.vendor, f.kind.clone());
        let row = finding_row(&s, f).await?;
        match groups.last_mut() {
            Some(g) if g.vendor == vendor && g.kind == kind => g.rows.push(row),
            _ => groups.push(FindingGroup { vendor, kind, rows: vec![row] }),
        }
    }
    let notice = match q.started.as_deref() {
        Some("1") => "A worker was asked to reconcile; this page refreshes until the pass ends.",
        Some("0") => "A pass over that vendor was already asked for; this page refreshes until it ends.",
        _ => "",
    };
    Ok(render(&ReconcilePage {
        any_running: vendors.iter().any(|v| v.waiting || v.last.as_ref().is_some_and(|p| p.running)),
        csrf_all: s.csrf.issue(&s.username, FormAction::Reconcile, "all"),
        notice: notice.into(),
        vendor_options: options(&VendorKind::ALL, &q.vendor),
        kind_options: kind_options(&q.kind),
        vendor: q.vendor.clone().unwrap_or_default(),
        kind: q.kind.clone().unwrap_or_default(),
        include_resolved: matches!(q.include_resolved.as_deref(), Some("true" | "on" | "1" | "yes")),
        fixable: groups.iter().flat_map(|g| &g.rows).filter(|r| r.fixable).count(),
        groups,
        vendors,
        error,
    }))
}

#[derive(Deserialize)]
struct ReconcileForm {
    #[serde(default)]
    csrf: String,
    /// A vendor, or `all`.
    #[serde(default)]
    vendor: String,
}

/// Reading is not a change at the vendor, so no confirmation page; the form
/// still carries a token, since a pass spends the vendor's budget.
async fn reconcile_start(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<ReconcileForm>,
) -> Result<Redirect, PageError> {
    check_token(&s, &headers, &form.csrf, FormAction::Reconcile, &form.vendor)?;
    let vendor = match form.vendor.as_str() {
        "all" => None,
        v => Some(lifecycle_ops::filter::parse_name::<VendorKind>("vendor", v)?),
    };
    let started = crate::reconcile::start(&s, vendor).await?;
    let flag = if started.started.is_empty() { "0" } else { "1" };
    Ok(Redirect::to(&format!("/reconcile?started={flag}")))
}

/// A fix, or a would-be fix, as a row.
struct FixRow {
    finding_id: String,
    vendor: VendorKind,
    kind: String,
    account: String,
    detail: String,
    workflow: Workflow,
    event_id: String,
    run_id: String,
    /// The pass's time, the event's `occurred_at`.
    dated: String,
    /// The person's latest event, what the fix is made from.
    latest_event: String,
}

struct SkipRow {
    account: String,
    reason: String,
    /// The person changed since the pass that saw the finding.
    changed: bool,
}

#[derive(Template)]
#[template(path = "fix.html")]
struct FixPage {
    done: bool,
    vendor: String,
    kind: String,
    /// The ids the preview would fix, comma-separated: what the form sends back.
    ids: String,
    fixes: Vec<FixRow>,
    skipped: Vec<SkipRow>,
    csrf: String,
}

/// What a fix form's token is issued for: the filter and the findings shown.
fn fix_target(vendor: &str, kind: &str, ids: &str) -> String {
    format!("{}:{vendor}|{}:{kind}|{ids}", vendor.len(), kind.len())
}

async fn fix_page(
    s: &AdminState,
    q: &FindingQuery,
    only: Option<Vec<String>>,
    dry_run: bool,
) -> Result<FixPage, PageError> {
    let filter = q.filter()?;
    let details: std::collections::HashMap<String, String> =
        lifecycle_ops::reconcile::findings(&s.db, &filter).await?.into_iter().map(|f| (f.id, f.detail)).collect();
    let summary = lifecycle_ops::reconcile::fix(
        &s.db,
        &s.vendors.schedule,
        &s.vendors.safety,
        &filter,
        only.as_deref(),
        &s.actor(),
        dry_run,
        |_| {},
    )
    .await?;
    let fixes: Vec<FixRow> = summary
        .fixed
        .into_iter()
        .map(|f| FixRow {
            detail: details.get(&f.finding_id).cloned().unwrap_or_default(),
            finding_id: f.finding_id,
            vendor: f.vendor,
            kind: f.kind,
            account: f.account,
            workflow: f.workflow,
            event_id: f.event_id.unwrap_or_default(),
            run_id: f.run_id.unwrap_or_default(),
            dated: f.occurred_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            latest_event: f.latest_event.map(|e| e.describe()).unwrap_or_else(|| "none".into()),
        })
        .collect();
    let ids = fixes.iter().map(|f| f.finding_id.as_str()).collect::<Vec<_>>().join(",");
    let (vendor, kind) = (q.vendor.clone().unwrap_or_default(), q.kind.clone().unwrap_or_default());
    Ok(FixPage {
        done: !dry_run,
        csrf: if dry_run {
            s.csrf.issue(&s.username, FormAction::Fix, &fix_target(&vendor, &kind, &ids))
        } else {
            String::new()
        },
        vendor,
        kind,
        ids,
        fixes,
        skipped: summary
            .skipped
            .into_iter()
            .map(|k| SkipRow { account: k.account, reason: k.reason, changed: k.person_changed })
            .collect(),
    })
}

/// The dry run: what each selected finding would become. Nothing is written.
async fn fix_preview(State(s): State<AdminState>, Query(q): Query<FindingQuery>) -> Page {
    let only = q.id.clone().filter(|i| !i.trim().is_empty()).map(|i| vec![i]);
    Ok(render(&fix_page(&s, &q, only, true).await?))
}

#[derive(Deserialize)]
struct FixForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    ids: String,
}

/// Fixes exactly the findings the preview showed (the token names them).
/// Answers with what was made rather than a redirect: reloading it repeats
/// nothing, since a fixed finding is skipped ("already fixed by event ...").
async fn do_fix(State(s): State<AdminState>, headers: HeaderMap, Form(form): Form<FixForm>) -> Page {
    check_token(&s, &headers, &form.csrf, FormAction::Fix, &fix_target(&form.vendor, &form.kind, &form.ids))?;
    let ids: Vec<String> = form.ids.split(',').map(str::trim).filter(|i| !i.is_empty()).map(String::from).collect();
    if ids.is_empty() {
        return Err(PageError(StatusCode::BAD_REQUEST, "the preview had nothing to fix".into()));
    }
    let q = FindingQuery {
        vendor: Some(form.vendor).filter(|v| !v.is_empty()),
        kind: Some(form.kind).filter(|k| !k.is_empty()),
        ..Default::default()
    };
    Ok(render(&fix_page(&s, &q, Some(ids), false).await?))
}

// ---- plan ----

struct PlanVendor {
    vendor: VendorKind,
    workflow: String,
    actions: Vec<String>,
    notes: Vec<String>,
    stop_state: String,
    stop: String,
    error: String,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    event: String,
    csrf: String,
    problem: String,
    field_errors: Vec<(String, String)>,
    planned: bool,
    summary: String,
    vendors: Vec<PlanVendor>,
}

impl PlanPage {
    fn new(s: &AdminState, event: String) -> Self {
        PlanPage {
            event,
            csrf: s.csrf.issue(&s.username, FormAction::Plan, "plan"),
            problem: String::new(),
            field_errors: Vec::new(),
            planned: false,
            summary: String::new(),
            vendors: Vec::new(),
        }
    }
}

async fn plan_page(State(s): State<AdminState>) -> Page {
    Ok(render(&PlanPage::new(&s, String::new())))
}

#[derive(Deserialize)]
struct PlanForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event: String,
}

/// Reads only, at the vendors: nothing is stored and nothing changes.
async fn plan_event(State(s): State<AdminState>, headers: HeaderMap, Form(form): Form<PlanForm>) -> Page {
    check_token(&s, &headers, &form.csrf, FormAction::Plan, "plan")?;
    let mut page = PlanPage::new(&s, form.event);
    let event = match crate::api::parse_event(page.event.as_bytes()) {
        Ok(e) => e,
        Err(p) => {
            page.problem = p.detail().to_string();
            page.field_errors = p.errors().iter().map(|e| (e.field.clone(), e.detail.clone())).collect();
            return Ok(render(&page));
        }
    };
    let plan = lifecycle_ops::plan::plan(&s.vendors.registry, &event).await;
    page.planned = true;
    page.summary = format!("the {} of {}", plan.event_type, plan.employee);
    page.vendors = plan
        .vendors
        .into_iter()
        .map(|v| PlanVendor {
            vendor: v.vendor,
            workflow: v.workflow.map(|w| w.to_string()).unwrap_or_default(),
            actions: v.actions.into_iter().map(|a| a.text).collect(),
            notes: v.notes,
            stop_state: v.stop.as_ref().map(|s| s.state.to_string()).unwrap_or_default(),
            stop: v.stop.map(|s| s.message).unwrap_or_default(),
            error: v.error.unwrap_or_default(),
        })
        .collect();
    Ok(render(&page))
}
