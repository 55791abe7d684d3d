//! Pipedrive as the engine sees it: its workflows (`workflows.rs`) and its reads for
//! reconcile and plans (`inspect.rs`) joined in one [`Vendor`], so that neither of the two
//! reaches into the other.

use super::workflows::{Pipedrive, PipedriveFlow};
use crate::adapter::Vendor;
use lifecycle_domain::apps::PipedriveApp;
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{Outcome, RunSpec, StepError, Steps};
use std::collections::BTreeSet;

#[async_trait::async_trait]
impl Vendor for Pipedrive {
    type App = PipedriveApp;
    type Flow = PipedriveFlow;

    async fn run(
        &self,
        flow: PipedriveFlow,
        run: &RunSpec,
        app: &PipedriveApp,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError> {
        match flow {
            PipedriveFlow::Joiner => self.joiner(run, app, steps).await,
            PipedriveFlow::Mover => self.mover(run, app, steps).await,
            PipedriveFlow::Leaver => self.leaver(run, steps, true).await,
            PipedriveFlow::ReassignDeals => self.leaver(run, steps, false).await,
        }
    }

    fn not_reconcilable(&self) -> Option<String> {
        None
    }

    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        self.read_directory(progress).await
    }

    fn desired_access(&self, app: &PipedriveApp) -> Option<BTreeSet<String>> {
        self.access_asked(app)
    }

    async fn plan(&self, flow: PipedriveFlow, run: &RunSpec, app: &PipedriveApp) -> Result<Plan, StepError> {
        self.plan_run(flow, run, app).await
    }
}
