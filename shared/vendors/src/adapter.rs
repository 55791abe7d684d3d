//! The typed vendor seam.
//!
//! The engine calls vendors through the object-safe [`Connector`], which
//! sees every run as the intake's [`AppRequest`] and any [`Workflow`]. A
//! vendor module implements [`Vendor`] instead: its own request type
//! ([`Vendor::App`], the domain's `<Vendor>App`) and its own workflows
//! ([`Vendor::Flow`]), which it matches exhaustively. [`Adapter`] is the one
//! [`Connector`] for all of them: it turns the run's workflow and request
//! into the vendor's own types once, through [`Flow::of`] and
//! [`VendorApp::of`], and a run that does not convert (a workflow the vendor
//! lacks, another vendor's request) ends as a permanent error before the
//! vendor sees it. So no vendor re-checks either, and none can be handed a
//! value it does not expect.

use async_trait::async_trait;
use lifecycle_domain::apps::{AppRequest, VendorApp};
use lifecycle_domain::{VendorKind, Workflow};
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{Connector, Outcome, RunSpec, StepError, Steps};
use std::collections::BTreeSet;

/// A vendor's workflows as a type of its own.
pub trait Flow: Copy + Send + Sync + 'static {
    /// Every workflow of the vendor, as the engine names them.
    const WORKFLOWS: &'static [Workflow];

    /// `workflow` as this vendor's, when the vendor has it.
    fn of(workflow: Workflow) -> Option<Self>;
}

/// The workflows of a vendor that has joiner, mover and leaver only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staffing {
    Joiner,
    Mover,
    Leaver,
}

impl Flow for Staffing {
    const WORKFLOWS: &'static [Workflow] = &[Workflow::Joiner, Workflow::Mover, Workflow::Leaver];

    fn of(workflow: Workflow) -> Option<Self> {
        match workflow {
            Workflow::Joiner => Some(Staffing::Joiner),
            Workflow::Mover => Some(Staffing::Mover),
            Workflow::Leaver => Some(Staffing::Leaver),
            Workflow::ReassignDeals => None,
        }
    }
}

/// What a vendor module implements: [`Connector`]'s work, over the vendor's
/// own types. [`Adapter`] makes it a [`Connector`].
#[async_trait]
pub trait Vendor: Send + Sync + 'static {
    /// The vendor's part of an event; its [`VendorApp::VENDOR`] is the vendor.
    type App: VendorApp;
    /// The vendor's workflows.
    type Flow: Flow;

    /// Runs `flow` for `run`, whose request is `app`, wrapping every effect in
    /// [`Steps::run`] so that a retry resumes where the last attempt stopped.
    async fn run(
        &self,
        flow: Self::Flow,
        run: &RunSpec,
        app: &Self::App,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError>;

    /// See [`Connector::not_reconcilable`].
    fn not_reconcilable(&self) -> Option<String>;

    /// See [`Connector::directory`].
    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError>;

    /// See [`Connector::desired_access`].
    fn desired_access(&self, app: &Self::App) -> Option<BTreeSet<String>>;

    /// What [`run`](Vendor::run) would do for `run` now, from reads only
    /// (see [`Connector::plan`]).
    async fn plan(&self, flow: Self::Flow, run: &RunSpec, app: &Self::App) -> Result<Plan, StepError>;
}

/// The [`Connector`] of a [`Vendor`]: converts each run once, then calls it.
pub struct Adapter<V>(V);

impl<V: Vendor> Adapter<V> {
    pub fn new(vendor: V) -> Self {
        Adapter(vendor)
    }

    /// `run`'s workflow and request as the vendor's own, or the permanent
    /// error that ends a run the vendor cannot take.
    fn admit(run: &RunSpec) -> Result<(V::Flow, &V::App), StepError> {
        let vendor = V::App::VENDOR;
        let flow = V::Flow::of(run.workflow).ok_or_else(|| run.no_such_workflow(vendor, V::Flow::WORKFLOWS))?;
        let app = V::App::of(&run.input.app).ok_or_else(|| run.not_for(vendor))?;
        Ok((flow, app))
    }
}

#[async_trait]
impl<V: Vendor> Connector for Adapter<V> {
    fn vendor(&self) -> VendorKind {
        V::App::VENDOR
    }

    fn workflows(&self) -> &'static [Workflow] {
        V::Flow::WORKFLOWS
    }

    async fn run_workflow(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        let (flow, app) = Self::admit(run)?;
        self.0.run(flow, run, app, steps).await
    }

    /// The conversion in [`run_workflow`](Connector::run_workflow) is the
    /// check of the workflow and the vendor: nothing to check before it.
    async fn execute(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        self.run_workflow(run, steps).await
    }

    fn not_reconcilable(&self) -> Option<String> {
        self.0.not_reconcilable()
    }

    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        self.0.directory(progress).await
    }

    fn desired_access(&self, app: &AppRequest) -> Option<BTreeSet<String>> {
        self.0.desired_access(V::App::of(app)?)
    }

    /// A run the vendor cannot take plans to the death the run would die.
    async fn plan(&self, run: &RunSpec) -> Result<Plan, StepError> {
        match Self::admit(run) {
            Ok((flow, app)) => self.0.plan(flow, run, app).await,
            Err(refused) => Plan::new().stopped_by(refused),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A flow's list and its conversion agree: what the engine is told a vendor
    /// has is exactly what converts.
    pub(crate) fn flow_agrees_with_its_list<F: Flow>() {
        for w in Workflow::ALL {
            assert_eq!(F::of(w).is_some(), F::WORKFLOWS.contains(&w), "{w}");
        }
    }

    use lifecycle_domain::apps::CalendlyApp;
    use lifecycle_domain::{Event, RunInput};

    /// A vendor that answers from the types it was given, and reads nothing.
    struct Fake;

    #[async_trait]
    impl Vendor for Fake {
        type App = CalendlyApp;
        type Flow = Staffing;

        async fn run(&self, _: Staffing, _: &RunSpec, _: &CalendlyApp, _: &mut Steps) -> Result<Outcome, StepError> {
            Ok(Outcome::done("done", lifecycle_engine::Access::Active))
        }
        fn not_reconcilable(&self) -> Option<String> {
            None
        }
        async fn directory(&self, _: &dyn Progress) -> Result<Vec<Account>, StepError> {
            Ok(Vec::new())
        }
        fn desired_access(&self, _: &CalendlyApp) -> Option<BTreeSet<String>> {
            Some(BTreeSet::from(["member".to_string()]))
        }
        async fn plan(&self, flow: Staffing, _: &RunSpec, _: &CalendlyApp) -> Result<Plan, StepError> {
            let mut plan = Plan::new();
            plan.note(format!("{flow:?}"));
            Ok(plan)
        }
    }

    fn input(vendor: &str, app: serde_json::Value) -> RunInput {
        let body = serde_json::json!({
            "type": "leaver",
            "employee": {"id": "E-1", "email": "ada@example.com"},
            "apps": {vendor: app},
        });
        Event::parse(&body).unwrap().run_inputs().remove(0)
    }

    fn spec(workflow: Workflow, input: RunInput) -> RunSpec {
        let vendor = input.app.vendor();
        RunSpec { run_id: "r".into(), event_id: "e".into(), vendor, workflow, input, attempt: 1 }
    }

    #[tokio::test]
    async fn a_run_converts_once_or_is_refused_in_the_engines_words() {
        let c = Adapter::new(Fake);
        assert_eq!(c.vendor(), VendorKind::Calendly);
        assert_eq!(c.workflows(), Staffing::WORKFLOWS);

        let ours = spec(Workflow::Mover, input("calendly", serde_json::json!({})));
        assert!(matches!(Adapter::<Fake>::admit(&ours), Ok((Staffing::Mover, _))));
        assert_eq!(c.plan(&ours).await.unwrap().notes, ["Mover"]);
        assert!(c.desired_access(&ours.input.app).is_some());

        let theirs = spec(Workflow::Leaver, input("jira", serde_json::json!({})));
        let refused = Adapter::<Fake>::admit(&theirs).err().unwrap().to_string();
        assert_eq!(refused, "a jira request reached the calendly connector");
        assert_eq!(c.plan(&theirs).await.unwrap().stop.unwrap().message, refused);
        assert_eq!(c.desired_access(&theirs.input.app), None);

        let lacking = spec(Workflow::ReassignDeals, input("calendly", serde_json::json!({})));
        let refused = Adapter::<Fake>::admit(&lacking).err().unwrap().to_string();
        assert_eq!(refused, "calendly has no reassign_deals workflow (it has: joiner, mover, leaver)");
        let stop = c.plan(&lacking).await.unwrap().stop.unwrap();
        assert_eq!((stop.state, stop.message), (lifecycle_domain::StopState::Dead, refused));
    }

    #[test]
    fn staffing_is_joiner_mover_and_leaver() {
        flow_agrees_with_its_list::<Staffing>();
        assert_eq!(Staffing::WORKFLOWS, [Workflow::Joiner, Workflow::Mover, Workflow::Leaver]);
    }
}
