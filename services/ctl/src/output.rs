//! Tables for people, JSON for scripts.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use lifecycle_domain::RunState;
use lifecycle_ops::{AuditView, EventDetail, ReplaySummary, RunDetail, RunSummary};
use std::io::Write;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    // Piped or redirected there is no terminal width to fit: wrap at a readable one.
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        t.set_width(160);
    }
    t
}

fn short(id: &str) -> String {
    id.chars().take(13).collect()
}

fn ago(t: chrono::DateTime<chrono::Utc>) -> String {
    let s = (chrono::Utc::now() - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => t.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// A bar of `len` steps on a terminal's stderr ("replaying [===>  ] 3/10 RUN_ID"); hidden
/// elsewhere, so that scripts' output stays clean.
pub fn progress_bar(len: u64, doing: &str) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {doing} [{{bar:40}}] {{pos}}/{{len}} {{msg}}"))
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

pub fn json<T: serde::Serialize>(v: &T) {
    out!("{}", serde_json::to_string_pretty(v).expect("views serialize"));
}

pub fn runs(runs: &[RunSummary], as_json: bool) {
    if as_json {
        return json(&runs);
    }
    let mut t =
        table(&["RUN", "VENDOR", "WORKFLOW", "EMPLOYEE", "STATE", "ATTEMPTS", "CREATED", "OUTCOME / LAST ERROR"]);
    for r in runs {
        let note = match r.state {
            RunState::RetryScheduled | RunState::Queued | RunState::Running => r
                .blocked_by
                .as_ref()
                .map(|b| format!("waits for run {}", short(b)))
                .or_else(|| r.last_error.clone())
                .unwrap_or_default(),
            _ => r.outcome.clone().unwrap_or_default(),
        };
        t.add_row(vec![
            r.run_id.clone(),
            r.vendor.to_string(),
            r.workflow.to_string(),
            r.employee_email.clone(),
            r.state.to_string(),
            r.attempts.to_string(),
            ago(r.created_at),
            note,
        ]);
    }
    out!("{t}");
    out!("{} run(s)", runs.len());
}

pub fn run_detail(d: &RunDetail, as_json: bool) {
    if as_json {
        return json(d);
    }
    let r = &d.run;
    out!("run        {}", r.run_id);
    out!("event      {}", r.event_id);
    out!("vendor     {}  workflow {}", r.vendor, r.workflow);
    out!("employee   {}{}", r.employee_email, r.employee_id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default());
    out!("state      {}  attempts {}  replays {}", r.state, r.attempts, r.replays);
    if let Some(a) = &r.access {
        out!("access     {a}");
    }
    if let Some(o) = &r.outcome {
        out!("outcome    {o}");
    }
    if let Some(e) = &r.last_error {
        out!("last error {e}");
    }
    if let Some(t) = r.next_attempt_at {
        out!("next try   {}", t.to_rfc3339());
    }
    if let Some(b) = &r.blocked_by {
        out!("waits for  run {b} (earlier event for the same person)");
    }
    out!();
    let mut t = table(&["#", "STEP", "ATTEMPT", "STATUS", "STARTED", "DURATION", "VENDOR IDS / ERROR"]);
    for s in &d.steps {
        for a in &s.history {
            let detail = a.error.clone().or_else(|| a.output.as_ref().map(|o| o.to_string())).unwrap_or_default();
            t.add_row(vec![
                s.position.to_string(),
                s.key.clone(),
                format!("{} (run try {})", a.attempt, a.run_attempt),
                a.status.clone(),
                a.started_at.format("%H:%M:%S%.3f").to_string(),
                a.duration_ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "-".into()),
                detail,
            ]);
        }
    }
    out!("{t}");
}

pub fn event_detail(d: &EventDetail, as_json: bool) {
    if as_json {
        return json(d);
    }
    out!("event      {}", d.event_id);
    out!("source     {}  key {}", d.source, d.idempotency_key);
    out!("type       {}  received {}", d.event_type, d.received_at.to_rfc3339());
    out!("payload    {}", serde_json::to_string_pretty(&d.payload).unwrap_or_default());
    out!();
    runs(&d.runs, false);
}

#[derive(serde::Serialize)]
pub struct QueueRow {
    pub queue: String,
    pub messages: u32,
    pub consumers: u32,
}

pub fn queues(rows: &[QueueRow], as_json: bool) {
    if as_json {
        return json(&rows);
    }
    let mut t = table(&["QUEUE", "MESSAGES", "CONSUMERS"]);
    for r in rows {
        t.add_row(vec![r.queue.clone(), r.messages.to_string(), r.consumers.to_string()]);
    }
    out!("{t}");
}

pub fn dead(runs: &[RunSummary], as_json: bool) {
    if as_json {
        return json(&runs);
    }
    let mut t = table(&["RUN", "VENDOR", "WORKFLOW", "EMPLOYEE", "ATTEMPTS", "DIED", "WHY"]);
    for r in runs {
        let why = match (&r.discarded_at, &r.discard_reason) {
            (Some(_), reason) => format!("discarded: {}", reason.clone().unwrap_or_default()),
            _ => r.outcome.clone().or_else(|| r.last_error.clone()).unwrap_or_default(),
        };
        t.add_row(vec![
            r.run_id.clone(),
            r.vendor.to_string(),
            r.workflow.to_string(),
            r.employee_email.clone(),
            r.attempts.to_string(),
            r.finished_at.map(ago).unwrap_or_default(),
            why,
        ]);
    }
    out!("{t}");
    out!("{} dead run(s)", runs.len());
}

pub fn replay_summary(s: &ReplaySummary) {
    for r in &s.replayed {
        out!("replayed  {}  {} {} {}", r.run_id, r.vendor, r.workflow, r.employee_email);
    }
    for id in &s.would_replay {
        out!("would replay  {id}");
    }
    for r in &s.refused {
        out!("refused   {}  {}", r.run_id, r.reason);
    }
    for r in &s.failed {
        out!("failed    {}  {}", r.run_id, r.reason);
    }
    out!("{}", s.line());
    let unpublished = s.unpublished();
    if unpublished > 0 {
        out!(
            "{unpublished} replayed run(s) could not be published (RabbitMQ unreachable); a worker's sweeper will publish them"
        );
    }
}

pub fn audit(entries: &[AuditView], as_json: bool) {
    if as_json {
        return json(&entries);
    }
    let mut t = table(&["WHEN", "WHO", "WHAT", "TARGET", "REASON"]);
    for e in entries {
        t.add_row(vec![
            e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            e.actor.clone(),
            e.action.clone(),
            format!("{} {}", e.target_kind, e.target_id),
            e.reason.clone().unwrap_or_default(),
        ]);
    }
    out!("{t}");
    out!("{} action(s)", entries.len());
}

pub fn drift(rows: &[lifecycle_ops::DriftView], as_json: bool) {
    if as_json {
        return json(&rows);
    }
    if rows.is_empty() {
        println!("no drift recorded");
        return;
    }
    let mut t = table(&["DETECTED", "VENDOR", "KIND", "USER", "E-MAIL", "DETAILS"]);
    for d in rows {
        t.add_row(vec![
            ago(d.detected_at),
            d.vendor.to_string(),
            d.kind.to_string(),
            d.vendor_user_id.clone().unwrap_or_default(),
            d.email.clone().unwrap_or_default(),
            d.details.clone(),
        ]);
    }
    println!("{t}");
}

pub fn cancelled(c: &lifecycle_ops::query::runs::Cancelled, as_json: bool) {
    if as_json {
        return json(c);
    }
    for id in &c.cancelled {
        out!("cancelled  {id}");
    }
    for id in &c.started {
        out!("started    {id}  (already started or ended: not touched)");
    }
    if c.cancelled.is_empty() && c.started.is_empty() {
        out!("nothing to cancel");
    }
}

pub fn upcoming(view: &lifecycle_ops::Upcoming, as_json: bool) {
    if as_json {
        return json(view);
    }
    out!("{} scheduled run(s) in the next {} day(s), times in {}", view.total, view.days, view.time_zone);
    for day in &view.by_day {
        out!("");
        out!("{}  ({} run(s))", day.date, day.runs.len());
        let mut t = table(&["STARTS", "RUN", "VENDOR", "WORKFLOW", "EMPLOYEE", "TAKES EFFECT", "EVENT"]);
        for r in &day.runs {
            t.add_row(vec![
                r.starts_at.clone(),
                // Whole: it is what `runs cancel` takes.
                r.run_id.clone(),
                r.vendor.to_string(),
                r.workflow.to_string(),
                r.employee_email.clone(),
                r.effective_at.clone().unwrap_or_default(),
                short(&r.event_id),
            ]);
        }
        out!("{t}");
    }
}
