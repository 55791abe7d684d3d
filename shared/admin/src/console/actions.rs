//! Replay, discard and cancel, each behind a confirmation page, and the
//! scheduled runs they may cancel.

use super::*;
use lifecycle_ops::query::runs::succeeded;

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
        done_steps: d.steps.iter().filter(|s| succeeded(s)).map(|s| s.key.clone()).collect(),
        failed_step: d.steps.iter().find(|s| !succeeded(s)).map(|s| s.key.clone()).unwrap_or_default(),
        csrf: s.csrf.issue(&s.username, action(replay), id),
        refusal: refusal.clone(),
    };
    let status = if refusal.is_empty() { StatusCode::OK } else { StatusCode::CONFLICT };
    Ok((status, s.render(&page)).into_response())
}

pub(super) async fn confirm_replay(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    confirm_page(&s, &id, true).await
}

pub(super) async fn confirm_discard(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    confirm_page(&s, &id, false).await
}

fn action(replay: bool) -> FormAction {
    if replay {
        FormAction::Replay
    } else {
        FormAction::Discard
    }
}

pub(super) async fn do_replay(
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

pub(super) async fn do_discard(
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
pub(super) struct UpcomingQuery {
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
pub(super) async fn upcoming(State(s): State<AdminState>, Query(q): Query<UpcomingQuery>) -> Page {
    let view = lifecycle_ops::upcoming(&s.db, q.days.unwrap_or(30), q.tz.as_deref().unwrap_or("UTC")).await?;
    Ok(s.render(&UpcomingPage { view }))
}

#[derive(Template)]
#[template(path = "cancel.html")]
struct CancelPage {
    r: RunRow,
    starts: String,
    refusal: String,
    csrf: String,
}

pub(super) async fn confirm_cancel(State(s): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
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
    Ok((status, s.render(&page)).into_response())
}

pub(super) async fn do_cancel(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_form(&s, &headers, &form, FormAction::Cancel, &id)?;
    lifecycle_ops::cancel_run(&s.db, &s.publisher, &id, &s.actor(), &form.reason).await?;
    Ok(Redirect::to(&format!("/runs/{id}?done=cancelled")))
}
