//! Bulk actions from the runs lists: pick runs by checkbox, or take every run
//! the list's filter matches; choose replay, discard, cancel, re-check or
//! release; a preview shows the count, the first runs, what the action does
//! and the runs it cannot apply to (and why); one confirmation does it.
//!
//! The confirmation's CSRF token is issued for the action and exactly the
//! runs the preview found it applies to (sorted ids), so a form whose ids or
//! action were changed is refused (403) and nothing happens; a filter is
//! resolved to ids at the preview, so runs that match it later are not
//! swept in by the confirmation. Works without JavaScript.

use super::{check_token, Page, PageError, RunRow};
use crate::params::FilterParams;
use crate::{AdminState, FormAction};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Form, Router};
use lifecycle_domain::RunState;
use lifecycle_ops::bulk::{self, BulkAction, MAX_RUNS};
use lifecycle_ops::RunSummary;
use serde::Deserialize;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/runs/bulk", get(preview).post(confirm))
}

/// How many of the previewed runs are listed one by one.
const SHOWN: usize = 20;

/// The filter of the list the bulk form was sent from, as typed: carried
/// into the runs list's bulk form as hidden fields.
#[derive(Debug, Clone, Default)]
pub(super) struct BulkFilter {
    pub state: String,
    pub vendor: String,
    pub workflow: String,
    pub employee: String,
    pub since: String,
    pub until: String,
    pub include_discarded: bool,
    /// The action preselected: the one a list of runs in that state usually wants.
    pub default_action: &'static str,
}

impl BulkFilter {
    pub(super) fn of(p: &FilterParams) -> Self {
        let v = |o: &Option<String>| o.as_deref().unwrap_or("").trim().to_string();
        BulkFilter {
            state: v(&p.state),
            vendor: v(&p.vendor),
            workflow: v(&p.workflow),
            employee: v(&p.employee),
            since: v(&p.since),
            until: v(&p.until),
            include_discarded: p.include_discarded(),
            default_action: match v(&p.state).as_str() {
                "held" => "release",
                "needs_manual_action" => "recheck",
                "scheduled" => "cancel",
                _ => "replay",
            },
        }
    }
}

/// The actions' names, for the runs list's `<select>`.
pub(super) fn action_names() -> Vec<&'static str> {
    BulkAction::ALL.iter().map(|a| a.as_str()).collect()
}

/// What a confirmation's token is issued for: the action and the sorted ids.
fn target(action: &str, ids: &[String]) -> String {
    format!("{}:{action}|{}", action.len(), ids.join(","))
}

/// The ids a form names: trimmed, sorted, once each.
fn canonical<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = ids.map(str::trim).filter(|i| !i.is_empty()).map(String::from).collect();
    v.sort();
    v.dedup();
    v
}

struct Refusal {
    run_id: String,
    reason: String,
}

fn refusals(v: Vec<lifecycle_ops::NotReplayed>) -> Vec<Refusal> {
    v.into_iter().map(|n| Refusal { run_id: n.run_id, reason: n.reason }).collect()
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    done: bool,
    action: &'static str,
    explain: &'static str,
    needs_reason: bool,
    max: usize,
    /// How the runs were chosen ("3 selected runs", "the filter vendor=...").
    chosen: String,
    /// More matched the filter than one action takes.
    truncated: bool,
    selected: usize,
    /// Preview: the runs the action applies to (the first [`SHOWN`]); done: those it was done to.
    runs: Vec<RunRow>,
    count: usize,
    refused: Vec<Refusal>,
    failed: Vec<Refusal>,
    unpublished: usize,
    ids: String,
    csrf: String,
    back: &'static str,
}

/// `GET /runs/bulk?action=..&scope=selected&run=..&run=..` or
/// `?action=..&scope=filter&state=..&vendor=..`: the preview; nothing changes.
async fn preview(State(s): State<AdminState>, Query(q): Query<Vec<(String, String)>>) -> Page {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let action = BulkAction::parse(&get("action").unwrap_or_default())?;
    let dead_page = get("page").as_deref() == Some("dead");
    let back = if dead_page { "/dead" } else { "/runs" };
    let (selected, chosen, truncated) = if get("scope").as_deref() == Some("filter") {
        let p = FilterParams {
            state: if dead_page { None } else { get("state") },
            vendor: get("vendor"),
            workflow: get("workflow"),
            employee: get("employee"),
            since: get("since"),
            until: get("until"),
            include_discarded: get("include_discarded"),
            ..Default::default()
        };
        let mut f = p.to_filter(MAX_RUNS as u64 + 1)?;
        f.limit = Some(MAX_RUNS as u64 + 1);
        if dead_page {
            f = lifecycle_ops::filter::dead(f, p.include_discarded());
        }
        let mut found = lifecycle_ops::query::runs::select(&s.db, &f).await?;
        let truncated = found.len() > MAX_RUNS;
        found.truncate(MAX_RUNS);
        found.sort_by_key(|r| r.seq);
        let b = BulkFilter::of(&p);
        let parts: Vec<String> = [
            ("state", if dead_page { "dead" } else { b.state.as_str() }),
            ("vendor", &b.vendor),
            ("workflow", &b.workflow),
            ("employee", &b.employee),
            ("since", &b.since),
            ("until", &b.until),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
        let described = if parts.is_empty() { "no filter".to_string() } else { parts.join(", ") };
        (found, format!("every run matching {described}"), truncated)
    } else {
        let ids = canonical(q.iter().filter(|(n, _)| n == "run").map(|(_, v)| v.as_str()));
        if ids.is_empty() {
            return Err(PageError(
                StatusCode::BAD_REQUEST,
                "no run was selected: tick runs in the list, or use \"all matching this filter\"".into(),
            ));
        }
        if ids.len() > MAX_RUNS {
            return Err(PageError(
                StatusCode::BAD_REQUEST,
                format!("at most {MAX_RUNS} runs per bulk action; {} were selected", ids.len()),
            ));
        }
        let (found, missing) = bulk::load(&s.db, &ids).await?;
        if let Some(m) = missing.first() {
            return Err(PageError(StatusCode::NOT_FOUND, format!("no run {m}")));
        }
        (found, "ticked in the list".to_string(), false)
    };
    let selected_count = selected.len();
    let p = bulk::preview(&s.db, action, selected).await?;
    let ids = canonical(p.applies.iter().map(|r| r.id.as_str()));
    let count = p.applies.len();
    let runs = p.applies.into_iter().take(SHOWN).map(|r| RunRow::from(&RunSummary::from(r))).collect();
    Ok(s.render(&BulkPage {
        done: false,
        action: action.as_str(),
        explain: action.explain(),
        needs_reason: action.needs_reason(),
        max: MAX_RUNS,
        chosen,
        truncated,
        selected: selected_count,
        runs,
        count,
        refused: refusals(p.refused),
        failed: Vec::new(),
        unpublished: 0,
        csrf: s.csrf.issue(&s.username, FormAction::Bulk, &target(action.as_str(), &ids)),
        ids: ids.join(","),
        back,
    }))
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    ids: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    back: String,
}

/// Does the action to exactly the previewed runs (the token names them).
/// Answers with what was done rather than a redirect: sending it again
/// repeats nothing, since each run is checked again and those done are
/// refused (no longer dead, no longer held, ...).
async fn confirm(State(s): State<AdminState>, headers: HeaderMap, Form(form): Form<ConfirmForm>) -> Page {
    let ids = canonical(form.ids.split(','));
    check_token(&s, &headers, &form.csrf, FormAction::Bulk, &target(&form.action, &ids))?;
    let action = BulkAction::parse(&form.action)?;
    if ids.is_empty() {
        return Err(PageError(StatusCode::BAD_REQUEST, "the preview had no run this action applies to".into()));
    }
    let out = bulk::apply(&s.db, &s.publisher, action, &ids, &s.actor(), Some(&form.reason)).await?;
    let (runs, _) = bulk::load(&s.db, &out.done).await?;
    Ok(s.render(&BulkPage {
        done: true,
        action: action.as_str(),
        explain: action.explain(),
        needs_reason: false,
        max: MAX_RUNS,
        chosen: format!("{} previewed run(s)", ids.len()),
        truncated: false,
        selected: ids.len(),
        count: out.done.len(),
        runs: runs.into_iter().map(|r| RunRow::from(&RunSummary::from(r))).collect(),
        refused: refusals(out.refused),
        failed: refusals(out.failed),
        unpublished: out.unpublished,
        ids: String::new(),
        csrf: String::new(),
        back: if form.back == "/dead" { "/dead" } else { "/runs" },
    }))
}
