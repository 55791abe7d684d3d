//! Calendly as the engine sees it: its workflows (`workflows.rs`) and its reads for
//! reconcile and plans (`inspect.rs`) joined in one [`Vendor`], so that neither of the two
//! reaches into the other.

use super::workflows::Calendly;
use crate::adapter::{Staffing, Vendor};
use lifecycle_domain::apps::CalendlyApp;
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{Outcome, RunSpec, StepError, Steps};
use std::collections::BTreeSet;

#[async_trait::async_trait]
impl Vendor for Calendly {
    type App = CalendlyApp;
    type Flow = Staffing;

    async fn run(
        &self,
        flow: Staffing,
        run: &RunSpec,
        _: &CalendlyApp,
        steps: &mut Steps,
    ) -> Result<Outcome, StepError> {
        match flow {
            Staffing::Joiner | Staffing::Mover => self.join(run, steps).await,
            Staffing::Leaver => self.leave(run, steps).await,
        }
    }

    fn not_reconcilable(&self) -> Option<String> {
        None
    }

    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        super::inspect::directory(self, progress).await
    }

    fn desired_access(&self, app: &CalendlyApp) -> Option<BTreeSet<String>> {
        super::inspect::desired_access(app)
    }

    async fn plan(&self, flow: Staffing, run: &RunSpec, _: &CalendlyApp) -> Result<Plan, StepError> {
        super::inspect::plan(self, flow, run).await
    }
}
