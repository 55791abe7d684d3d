//! The web console: server-rendered pages (askama templates, every value
//! escaped: vendor messages are untrusted text), minimal CSS, no JavaScript.
//!
//! Reading is `GET`; replay and discard are reached through a confirmation
//! page whose `POST` form carries a CSRF token, and answer with a redirect to
//! the run (303), so reloading never repeats an action.
//!
//! This module holds what every page shares (rendering, errors, run rows,
//! filter forms, the CSRF check); each group of pages is a module below it,
//! and reads through `lifecycle_ops` only.

// The page modules take these, and the shared items below, with `use super::*`.
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
use lifecycle_ops::query::audit::AuditFilter;
use lifecycle_ops::query::runs::RunFilter;
use lifecycle_ops::{OpsError, RunDetail, RunSummary};
use serde::Deserialize;

mod actions;
mod approval_form;
mod bulk;
mod edit_form;
mod hris;
mod overview;
mod people;
mod plan;
mod pushes;
mod recheck;
mod reconcile;
mod runs;

use recheck::Selection;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(overview::overview))
        .route("/runs", get(runs::runs))
        .route("/runs/{id}", get(runs::run))
        .route("/runs/{id}/replay", get(actions::confirm_replay).post(actions::do_replay))
        .route("/runs/{id}/discard", get(actions::confirm_discard).post(actions::do_discard))
        .route("/runs/{id}/cancel", get(actions::confirm_cancel).post(actions::do_cancel))
        .route("/upcoming", get(actions::upcoming))
        .route("/dead", get(runs::dead_runs))
        .route("/events/{id}", get(people::event))
        .route("/employees", get(people::employee))
        .route("/audit", get(people::audit))
        .route("/runs/{id}/recheck", get(recheck::confirm_recheck).post(recheck::do_recheck))
        .route("/runs/recheck", get(recheck::confirm_recheck_all).post(recheck::do_recheck_all))
        .route("/reconcile", get(reconcile::reconcile_page).post(reconcile::reconcile_start))
        .route("/reconcile/fix", get(reconcile::fix_preview).post(reconcile::do_fix))
        .route("/plan", get(plan::plan_page).post(plan::plan_event))
        .merge(bulk::routes())
        .merge(approval_form::routes())
        .merge(edit_form::routes())
        .merge(hris::routes())
        .merge(pushes::routes())
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
        // No state here: error pages go without the footer.
        (self.0, render_with(&page, askama::NO_VALUES)).into_response()
    }
}

impl AdminState {
    /// A page, with the version and commit in its footer (`base.html`).
    fn render<T: Template>(&self, t: &T) -> Html<String> {
        let b = &self.build;
        let mut footer = format!("lifecycle {} · commit {}", b.version, b.commit);
        if let Some(built) = b.built {
            footer.push_str(&format!(" · {built}"));
        }
        render_with(t, &("footer", &footer as &dyn std::any::Any))
    }
}

fn render_with<T: Template>(t: &T, values: &dyn askama::Values) -> Html<String> {
    match t.render_with_values(values) {
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
