//! The edit form of a dead run (`/runs/{id}/edit`): the current input, the
//! original and every past edit, a field to set the vendor's fields (as
//! `key=value` lines or a JSON object) and "replay after the edit". The edit
//! is `lifecycle_ops::edit::edit`, as from the ctl and the API: checked as
//! the intake checks an event, and a refused one names each bad field as
//! the intake does (`apps.pipedrive.role`).

use super::{check_token, when, Page, PageError};
use crate::{AdminState, FormAction};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use lifecycle_ops::edit::{self, Changes, EditError};
use lifecycle_ops::OpsError;
use serde::Deserialize;
use serde_json::Value;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/runs/{id}/edit", get(edit_page).post(do_edit))
}

struct PastEdit {
    at: String,
    actor: String,
    reason: String,
    changes: String,
}

#[derive(Template)]
#[template(path = "edit.html")]
struct EditPage {
    run_id: String,
    state: String,
    last_error: String,
    input: String,
    /// The input before the first edit, when there was one.
    original: String,
    edits: Vec<PastEdit>,
    /// Why this run cannot be edited (not dead, discarded); empty when it can.
    refusal: String,
    notice: &'static str,
    /// What the operator typed, shown again with the errors.
    set: String,
    reason: String,
    replay: bool,
    problem: String,
    field_errors: Vec<(String, String)>,
    csrf: String,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

async fn page(s: &AdminState, id: &str) -> Result<EditPage, PageError> {
    let d = lifecycle_ops::run_detail(&s.db, id).await?;
    let edits = edit::edits_of(&s.db, id).await?;
    let refusal = match edit::check_editable(&s.db, id).await {
        Ok(_) => String::new(),
        Err(OpsError::Refused(m)) => m,
        Err(e) => return Err(e.into()),
    };
    Ok(EditPage {
        run_id: id.to_string(),
        state: d.run.state.to_string(),
        last_error: d.run.last_error.clone().or_else(|| d.run.outcome.clone()).unwrap_or_default(),
        input: pretty(&d.input),
        original: edits.first().map(|e| pretty(&e.before)).unwrap_or_default(),
        edits: edits
            .iter()
            .map(|e| PastEdit {
                at: when(e.at),
                actor: e.actor.clone(),
                reason: e.reason.clone().unwrap_or_default(),
                changes: e.changes.to_string(),
            })
            .collect(),
        refusal,
        notice: "",
        set: String::new(),
        reason: String::new(),
        replay: true,
        problem: String::new(),
        field_errors: Vec::new(),
        csrf: s.csrf.issue(&s.username, FormAction::Edit, id),
    })
}

#[derive(Deserialize)]
struct EditQuery {
    done: Option<String>,
}

async fn edit_page(State(s): State<AdminState>, Path(id): Path<String>, Query(q): Query<EditQuery>) -> Page {
    let mut p = page(&s, &id).await?;
    // Only fixed texts: nothing from the query string is echoed.
    p.notice = match q.done.as_deref() {
        Some("edited") => "Edited. Replay the run when ready.",
        Some("replayed") => "Edited and replayed: a worker is picking it up.",
        Some("not-replayed") => "Edited, but not replayed: the run changed meanwhile; look at it again.",
        _ => "",
    };
    Ok(s.render(&p))
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    /// `key=value` lines, or a JSON object.
    #[serde(default)]
    set: String,
    #[serde(default)]
    reason: String,
    /// A ticked checkbox sends `on`; an unticked one sends nothing.
    #[serde(default)]
    replay: Option<String>,
}

/// The typed changes: a JSON object, or one `field=value` per line.
fn changes_of(text: &str) -> Result<Changes, OpsError> {
    let t = text.trim();
    if t.starts_with('{') {
        return match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(OpsError::Invalid("the edit is a JSON object or field=value lines".into())),
            Err(e) => Err(OpsError::Invalid(format!("the edit is not valid JSON: {e}"))),
        };
    }
    let lines: Vec<String> = t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    edit::parse_set(&lines)
}

async fn do_edit(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<EditForm>,
) -> Result<Response, PageError> {
    check_token(&s, &headers, &form.csrf, FormAction::Edit, &id)?;
    let replay = form.replay.is_some();
    let reason = Some(form.reason.as_str());
    let result = match changes_of(&form.set) {
        Ok(changes) => edit::edit(&s.db, &s.publisher, &id, &changes, &s.actor(), reason, replay).await,
        Err(e) => Err(EditError::Ops(e)),
    };
    let err = match result {
        Ok(e) => {
            let done = match (&e.replayed, &e.replay_error) {
                (Some(_), _) => "replayed",
                (None, Some(_)) => "not-replayed",
                (None, None) => "edited",
            };
            return Ok(Redirect::to(&format!("/runs/{}/edit?done={done}", e.run_id)).into_response());
        }
        Err(e) => e,
    };
    // Shown again with what was typed and what is wrong with it.
    let mut p = page(&s, &id).await?;
    p.set = form.set;
    p.reason = form.reason;
    p.replay = replay;
    let status = match err {
        EditError::Fields { detail, errors } => {
            p.problem = detail;
            p.field_errors = errors.into_iter().map(|e| (e.field, e.detail)).collect();
            StatusCode::BAD_REQUEST
        }
        EditError::Ops(OpsError::Store(e)) => return Err(OpsError::Store(e).into()),
        EditError::Ops(e) => {
            let status = match e {
                OpsError::Refused(_) => StatusCode::CONFLICT,
                OpsError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            p.problem = e.to_string();
            status
        }
    };
    Ok((status, s.render(&p)).into_response())
}
