//! Jira as the engine sees it: its workflows (`workflows.rs`) and its reads for
//! reconcile and plans (`inspect.rs`) joined in one [`Vendor`], so that neither of the two
//! reaches into the other.

use super::workflows::Jira;
use crate::adapter::{Staffing, Vendor};
use lifecycle_domain::apps::JiraApp;
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{Outcome, RunSpec, StepError, Steps};
use std::collections::BTreeSet;

#[async_trait::async_trait]
impl Vendor for Jira {
    type App = JiraApp;
    type Flow = Staffing;

    async fn run(&self, flow: Staffing, run: &RunSpec, app: &JiraApp, steps: &mut Steps) -> Result<Outcome, StepError> {
        match flow {
            Staffing::Joiner => self.joiner(run, app, steps).await,
            Staffing::Mover => self.mover(run, app, steps).await,
            Staffing::Leaver => self.leaver(run, steps).await,
        }
    }

    fn not_reconcilable(&self) -> Option<String> {
        None
    }

    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        self.read_directory(progress).await
    }

    fn desired_access(&self, app: &JiraApp) -> Option<BTreeSet<String>> {
        Some(super::inspect::access_asked(app))
    }

    async fn plan(&self, flow: Staffing, run: &RunSpec, app: &JiraApp) -> Result<Plan, StepError> {
        self.plan_run(flow, run, app).await
    }
}
