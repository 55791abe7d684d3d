//! Events, employees and the audit log.

use super::*;

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

pub(super) async fn event(State(s): State<AdminState>, Path(id): Path<String>) -> Page {
    let e = lifecycle_ops::event_detail(&s.db, &id).await?;
    Ok(s.render(&EventPage {
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
pub(super) struct WhoQuery {
    who: Option<String>,
}

pub(super) async fn employee(State(s): State<AdminState>, Query(q): Query<WhoQuery>) -> Page {
    let who = q.who.unwrap_or_default().trim().to_string();
    let mut page = EmployeePage {
        who: who.clone(),
        email: String::new(),
        employee_id: String::new(),
        apps: vec![],
        error: String::new(),
    };
    if who.is_empty() {
        return Ok(s.render(&page));
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
    Ok(s.render(&page))
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    entries: Vec<AuditRow>,
    run: String,
    actor: String,
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    run: Option<String>,
    actor: Option<String>,
}

pub(super) async fn audit(State(s): State<AdminState>, Query(q): Query<AuditQuery>) -> Page {
    let run = q.run.unwrap_or_default().trim().to_string();
    let actor = q.actor.unwrap_or_default().trim().to_string();
    let f = AuditFilter {
        target_id: Some(run.clone()).filter(|r| !r.is_empty()),
        actor: Some(actor.clone()).filter(|a| !a.is_empty()),
        since: None,
        limit: Some(500),
    };
    let entries = lifecycle_ops::audit_log(&s.db, &f).await?;
    Ok(s.render(&AuditPage { entries: entries.iter().map(AuditRow::from).collect(), run, actor }))
}
