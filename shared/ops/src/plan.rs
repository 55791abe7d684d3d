//! Plan: what each vendor's workflow would do for an event right now, from
//! reads at the vendors only. Nothing is written at a vendor or in the
//! database (no event, no run, no journal).

use lifecycle_domain::{Event, VendorKind, Workflow};
use lifecycle_engine::{PlanStop, PlannedAction, Registry, RunSpec};
use serde::Serialize;

/// The plan of one event.
#[derive(Debug, Clone, Serialize)]
pub struct EventPlan {
    pub event_type: String,
    pub employee: String,
    /// One per vendor the event names, in vendor order.
    pub vendors: Vec<VendorPlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VendorPlan {
    pub vendor: VendorKind,
    pub workflow: Option<Workflow>,
    /// Each change the run would make, in order.
    pub actions: Vec<PlannedAction>,
    /// Where the run would stop short, and why: its message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<PlanStop>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why no plan could be made (the vendor is not configured here, or did
    /// not answer): not a statement about the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VendorPlan {
    fn failed(vendor: VendorKind, workflow: Option<Workflow>, error: String) -> Self {
        Self { vendor, workflow, actions: Vec::new(), stop: None, notes: Vec::new(), error: Some(error) }
    }
}

impl EventPlan {
    /// For people: one block per vendor, an action a line.
    pub fn text(&self) -> String {
        let mut out = format!("plan for the {} of {}:\n", self.event_type, self.employee);
        for v in &self.vendors {
            let workflow = v.workflow.map(|w| w.as_str()).unwrap_or("-");
            out.push_str(&format!("\n{} ({workflow}):\n", v.vendor));
            if let Some(e) = &v.error {
                out.push_str(&format!("  could not plan: {e}\n"));
                continue;
            }
            for n in &v.notes {
                out.push_str(&format!("  · {n}\n"));
            }
            if v.actions.is_empty() && v.stop.is_none() {
                out.push_str("  nothing to change\n");
            }
            for (i, a) in v.actions.iter().enumerate() {
                out.push_str(&format!("  {}. {}\n", i + 1, a.text));
            }
            if let Some(s) = &v.stop {
                out.push_str(&format!("  then the run would end {}: {}\n", s.state, s.message));
            }
        }
        out
    }
}

/// Plans `event` at each vendor it names, the vendors in turn (each through
/// its own client and budget). A cancel plans nothing.
pub async fn plan(registry: &Registry, event: &Event) -> EventPlan {
    let mut vendors = Vec::new();
    let workflow = event.event_type.workflow();
    for input in event.run_inputs() {
        let vendor = input.app.vendor();
        let Some(workflow) = workflow else { continue };
        let Some(connector) = registry.get(vendor) else {
            vendors.push(VendorPlan::failed(vendor, Some(workflow), format!("{vendor} is not configured here")));
            continue;
        };
        if !connector.workflows().contains(&workflow) {
            vendors.push(VendorPlan::failed(vendor, Some(workflow), format!("{vendor} has no {workflow} workflow")));
            continue;
        }
        let spec = RunSpec { run_id: "plan".into(), event_id: "plan".into(), vendor, workflow, input, attempt: 1 };
        match connector.plan(&spec).await {
            Ok(p) => vendors.push(VendorPlan {
                vendor,
                workflow: Some(workflow),
                actions: p.actions,
                stop: p.stop,
                notes: p.notes,
                error: None,
            }),
            Err(e) => {
                vendors.push(VendorPlan::failed(vendor, Some(workflow), format!("{vendor} could not be read: {e}")))
            }
        }
    }
    EventPlan {
        event_type: event.event_type.as_str().to_string(),
        employee: event.employee.email.normalized(),
        vendors,
    }
}
