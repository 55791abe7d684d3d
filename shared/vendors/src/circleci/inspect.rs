//! What CircleCI can say without changing anything: not its directory (no published operation
//! lists an organization's members, so reconcile cannot judge CircleCI at all and says so
//! through `Connector::not_reconcilable`), nothing to compare for access, and plans, which make
//! the workflows' own reads (`/me`, `/me/collaborations`, both cached) and stop where the run
//! would, with the run's own message.

use super::workflows::{login_of, Circleci, Verdict, NOT_RECONCILABLE};
use crate::adapter::Staffing;
use lifecycle_domain::apps::CircleciApp;
use lifecycle_engine::inspect::{Account, Plan, Progress};
use lifecycle_engine::{RunSpec, StepError};
use std::collections::BTreeSet;

/// The value, or the plan ended where the run would end with this error (a permanent error or
/// a person's task); any other error (CircleCI busy or down) is returned: it says nothing
/// about the run.
macro_rules! or_stop {
    ($plan:ident, $answer:expr) => {
        match $answer {
            Ok(v) => v,
            Err(e) => return $plan.stopped_by(e),
        }
    };
}

/// Never read: reconcile asks `not_reconcilable` first. Called anyway, it makes no request and
/// fails saying why.
pub(super) async fn directory(ci: &Circleci, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
    let _ = (ci, progress);
    Err(StepError::permanent(NOT_RECONCILABLE))
}

/// Nothing to compare: events name no CircleCI role, and no read shows one.
pub(super) fn desired_access(app: &CircleciApp) -> Option<BTreeSet<String>> {
    let _ = app;
    None
}

pub(super) async fn plan(ci: &Circleci, flow: Staffing, run: &RunSpec, app: &CircleciApp) -> Result<Plan, StepError> {
    let mut plan = Plan::new();
    let login = or_stop!(plan, login_of(app));
    let (owner, org) = or_stop!(plan, ci.look().await);
    Ok(match ci.verdict(flow, run, &login, &owner, &org) {
        Verdict::Done { summary, .. } => {
            plan.note(summary);
            plan
        }
        Verdict::Person { message, .. } => plan.needs_person(message),
    })
}
