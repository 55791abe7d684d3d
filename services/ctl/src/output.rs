//! Tables for people, JSON for scripts.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use lifecycle_ops::{EventDetail, RunDetail, RunSummary};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
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

pub fn json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("views serialize"));
}

pub fn runs(runs: &[RunSummary], as_json: bool) {
    if as_json {
        return json(&runs);
    }
    let mut t =
        table(&["RUN", "VENDOR", "WORKFLOW", "EMPLOYEE", "STATE", "ATTEMPTS", "CREATED", "OUTCOME / LAST ERROR"]);
    for r in runs {
        let note = match r.state.as_str() {
            "retry_scheduled" | "queued" | "running" => r
                .blocked_by
                .as_ref()
                .map(|b| format!("waits for run {}", short(b)))
                .or_else(|| r.last_error.clone())
                .unwrap_or_default(),
            _ => r.outcome.clone().unwrap_or_default(),
        };
        t.add_row(vec![
            r.run_id.clone(),
            r.vendor.clone(),
            r.workflow.clone(),
            r.employee_email.clone(),
            r.state.clone(),
            r.attempts.to_string(),
            ago(r.created_at),
            note,
        ]);
    }
    println!("{t}");
    println!("{} run(s)", runs.len());
}

pub fn run_detail(d: &RunDetail, as_json: bool) {
    if as_json {
        return json(d);
    }
    let r = &d.run;
    println!("run        {}", r.run_id);
    println!("event      {}", r.event_id);
    println!("vendor     {}  workflow {}", r.vendor, r.workflow);
    println!(
        "employee   {}{}",
        r.employee_email,
        r.employee_id.as_ref().map(|i| format!(" ({i})")).unwrap_or_default()
    );
    println!("state      {}  attempts {}  replays {}", r.state, r.attempts, r.replays);
    if let Some(a) = &r.access {
        println!("access     {a}");
    }
    if let Some(o) = &r.outcome {
        println!("outcome    {o}");
    }
    if let Some(e) = &r.last_error {
        println!("last error {e}");
    }
    if let Some(t) = r.next_attempt_at {
        println!("next try   {}", t.to_rfc3339());
    }
    if let Some(b) = &r.blocked_by {
        println!("waits for  run {b} (earlier event for the same person)");
    }
    println!();
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
    println!("{t}");
}

pub fn event_detail(d: &EventDetail, as_json: bool) {
    if as_json {
        return json(d);
    }
    println!("event      {}", d.event_id);
    println!("source     {}  key {}", d.source, d.idempotency_key);
    println!("type       {}  received {}", d.event_type, d.received_at.to_rfc3339());
    println!("payload    {}", serde_json::to_string_pretty(&d.payload).unwrap_or_default());
    println!();
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
    println!("{t}");
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
            d.vendor.clone(),
            d.kind.clone(),
            d.vendor_user_id.clone().unwrap_or_default(),
            d.email.clone().unwrap_or_default(),
            d.details.clone(),
        ]);
    }
    println!("{t}");
}
