//! Plan: what an event would do at each vendor, read there, nothing written.

use super::*;

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

pub(super) async fn plan_page(State(s): State<AdminState>) -> Page {
    Ok(s.render(&PlanPage::new(&s, String::new())))
}

#[derive(Deserialize)]
pub(super) struct PlanForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event: String,
}

/// Reads only, at the vendors: nothing is stored and nothing changes.
pub(super) async fn plan_event(State(s): State<AdminState>, headers: HeaderMap, Form(form): Form<PlanForm>) -> Page {
    check_token(&s, &headers, &form.csrf, FormAction::Plan, "plan")?;
    let mut page = PlanPage::new(&s, form.event);
    let event = match crate::api::parse_event(page.event.as_bytes()) {
        Ok(e) => e,
        Err(p) => {
            page.problem = p.detail().to_string();
            page.field_errors = p.errors().iter().map(|e| (e.field.clone(), e.detail.clone())).collect();
            return Ok(s.render(&page));
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
    Ok(s.render(&page))
}
