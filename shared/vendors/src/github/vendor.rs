//! GitHub as the engine sees it: its workflows (`workflows.rs`) and its reads for
//! reconcile and plans (`inspect.rs`) joined in one [`Vendor`], so that neither of the two
//! reaches into the other.

use super::workflows::Github;
use crate::adapter::{Staffing, Vendor};
use lifecycle_domain::apps::GithubApp;
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{Outcome, RunSpec, StepError, Steps};
use std::collections::BTreeSet;

#[async_trait::async_trait]
impl Vendor for Github {
    type App = GithubApp;
    type Flow = Staffing;

    async fn run(
        &self,
        flow: Staffing,
        run: &RunSpec,
        app: &GithubApp,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError> {
        match flow {
            Staffing::Joiner => self.joiner(run, app, steps).await,
            Staffing::Mover => self.mover(app, steps).await,
            Staffing::Leaver => self.leaver(run, app, steps).await,
        }
    }

    fn not_reconcilable(&self) -> Option<String> {
        None
    }

    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        super::inspect::directory(self, progress).await
    }

    fn desired_access(&self, app: &GithubApp) -> Option<BTreeSet<String>> {
        Some(super::inspect::desired_access(&self.managed, app))
    }

    async fn plan(&self, flow: Staffing, run: &RunSpec, app: &GithubApp) -> Result<Plan, StepError> {
        super::inspect::plan(self, flow, run, app).await
    }
}
