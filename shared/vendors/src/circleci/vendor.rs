//! CircleCI as the engine sees it: its workflows (`workflows.rs`) and its reads for
//! reconcile and plans (`inspect.rs`) joined in one [`Vendor`], so that neither of the two
//! reaches into the other.

use super::workflows::{login_of, Circleci, Verdict, NOT_RECONCILABLE};
use crate::adapter::{Staffing, Vendor};
use lifecycle_domain::apps::CircleciApp;
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{Outcome, RunSpec, StepError, Steps};
use std::collections::BTreeSet;

#[async_trait::async_trait]
impl Vendor for Circleci {
    type App = CircleciApp;
    type Flow = Staffing;

    async fn run(&self, flow: Staffing, run: &RunSpec, app: &CircleciApp, _: &mut Steps) -> Result<Outcome, StepError> {
        let login = login_of(app)?;
        let (owner, org) = self.look().await?;
        Ok(match self.verdict(flow, run, &login, &owner, &org) {
            Verdict::Done { summary, access } => Outcome::done(summary, access),
            Verdict::Person { message, access } => Outcome::needs_person(message, access),
        })
    }

    fn not_reconcilable(&self) -> Option<String> {
        Some(NOT_RECONCILABLE.to_string())
    }

    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        super::inspect::directory(self, progress).await
    }

    fn desired_access(&self, app: &CircleciApp) -> Option<BTreeSet<String>> {
        super::inspect::desired_access(app)
    }

    async fn plan(&self, flow: Staffing, run: &RunSpec, app: &CircleciApp) -> Result<Plan, StepError> {
        super::inspect::plan(self, flow, run, app).await
    }
}
