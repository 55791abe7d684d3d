//! What a vendor module implements, and what it returns.

use crate::inspect::{Account, Plan, Progress};
use crate::{StepError, Steps};
use lifecycle_domain::apps::AppRequest;
use lifecycle_domain::{RunInput, VendorKind, Workflow};
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Arc;

/// One run as the vendor module sees it.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run_id: String,
    pub event_id: String,
    pub vendor: VendorKind,
    pub workflow: Workflow,
    pub input: RunInput,
    /// 1 for the first execution, 2 for the first retry, ...
    pub attempt: i32,
}

impl RunSpec {
    /// The permanent error of a run whose workflow `vendor` does not have (`has`): what
    /// [`Connector::execute`] ends it with before a call is made.
    pub fn no_such_workflow(&self, vendor: VendorKind, has: &[Workflow]) -> StepError {
        let has: Vec<&str> = has.iter().map(|w| w.as_str()).collect();
        StepError::permanent(format!("{vendor} has no {} workflow (it has: {})", self.workflow, has.join(", ")))
    }

    /// The permanent error of a run whose request is another vendor's than `vendor`.
    pub fn not_for(&self, vendor: VendorKind) -> StepError {
        StepError::permanent(format!("a {} request reached the {vendor} connector", self.input.app.vendor()))
    }
}

/// A vendor's workflows: the object-safe seam the engine, reconcile and plans
/// call. A vendor module implements it through the vendors crate's typed
/// adapter (its own app type and workflows, converted once); `run_workflow` runs the whole workflow for `run`,
/// wrapping every effect in [`Steps::run`] so that a retry resumes where the
/// last attempt stopped.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// The vendor this connector speaks to.
    fn vendor(&self) -> VendorKind;

    /// The workflows the vendor has. [`execute`](Connector::execute) ends any
    /// other as a permanent error before a call is made, so a vendor never
    /// refuses a workflow by hand.
    fn workflows(&self) -> &'static [Workflow];

    /// Runs `run.workflow`, which is one of [`workflows`](Connector::workflows),
    /// for a run whose request (`run.input.app`) is this vendor's. Called
    /// through [`execute`](Connector::execute), which checks both.
    async fn run_workflow(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError>;

    /// What the engine calls: the checks every vendor would otherwise repeat,
    /// then the workflow.
    async fn execute(&self, run: &RunSpec, steps: &mut Steps) -> Result<Outcome, StepError> {
        if !self.workflows().contains(&run.workflow) {
            return Err(run.no_such_workflow(self.vendor(), self.workflows()));
        }
        if run.input.app.vendor() != self.vendor() {
            return Err(run.not_for(self.vendor()));
        }
        self.run_workflow(run, steps).await
    }

    /// Why reconcile cannot judge this vendor at all, when its published API
    /// offers no way to list its accounts (CircleCI: no member operation);
    /// `None` (the default) when [`directory`](Connector::directory) can.
    /// Reconcile then reads nothing and says why, instead of failing a pass.
    fn not_reconcilable(&self) -> Option<String> {
        None
    }

    /// Every account at the vendor (users, members, pending invitations),
    /// read page by page within the vendor's budget, calling `progress`
    /// after each page. For reconcile.
    async fn directory(&self, progress: &dyn Progress) -> Result<Vec<Account>, StepError> {
        let _ = progress;
        Err(StepError::permanent(format!("{} cannot list its accounts yet", self.vendor())))
    }

    /// The access `app` asks for, in the terms [`Account::access`] uses, so
    /// that reconcile can tell a drifted account; `None` when the vendor has
    /// nothing to compare (the account's existence is all there is).
    fn desired_access(&self, app: &AppRequest) -> Option<BTreeSet<String>> {
        let _ = app;
        None
    }

    /// What [`run_workflow`](Connector::run_workflow) would do for `run` now,
    /// from reads only: nothing is written at the vendor or in the journal.
    /// An error is what stopped the reading (the vendor busy or down); where
    /// the run itself would stop is [`Plan::stop`].
    async fn plan(&self, run: &RunSpec) -> Result<Plan, StepError> {
        let _ = run;
        Err(StepError::permanent(format!("{} cannot plan its workflows yet", self.vendor())))
    }
}

// Stored typed in the run's row: the domain type (lifecycle_domain::Access).
pub use lifecycle_domain::Access;

/// How a workflow ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub needs_person: bool,
    /// For a person: what was done ("created user 55, assigned role Sales Rep"),
    /// or exactly what they must do.
    pub summary: String,
    pub access: Option<Access>,
}

impl Outcome {
    pub fn done(summary: impl Into<String>, access: Access) -> Self {
        Self { needs_person: false, summary: summary.into(), access: Some(access) }
    }
    pub fn needs_person(what_to_do: impl Into<String>, access: Option<Access>) -> Self {
        Self { needs_person: true, summary: what_to_do.into(), access }
    }
}

/// The configured vendors of a worker.
#[derive(Default, Clone)]
pub struct Registry {
    connectors: HashMap<VendorKind, Arc<dyn Connector>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a connector under the vendor it says it speaks to.
    pub fn insert(&mut self, connector: Arc<dyn Connector>) {
        self.connectors.insert(connector.vendor(), connector);
    }
    pub fn get(&self, vendor: VendorKind) -> Option<Arc<dyn Connector>> {
        self.connectors.get(&vendor).cloned()
    }
    pub fn vendors(&self) -> Vec<VendorKind> {
        let mut v: Vec<_> = self.connectors.keys().copied().collect();
        v.sort();
        v
    }
}
