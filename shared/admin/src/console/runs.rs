//! The runs and dead runs lists, and one run's page with its timeline.

use super::*;

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

pub(super) async fn runs(State(s): State<AdminState>, Query(p): Query<FilterParams>) -> Page {
    list_page(&s, p, false).await
}

pub(super) async fn dead_runs(State(s): State<AdminState>, Query(p): Query<FilterParams>) -> Page {
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
    Ok(s.render(&RunsPage {
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
pub(super) struct RunQuery {
    done: Option<String>,
}

pub(super) async fn run(State(s): State<AdminState>, Path(id): Path<String>, Query(q): Query<RunQuery>) -> Page {
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
    Ok(s.render(&RunPage {
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
