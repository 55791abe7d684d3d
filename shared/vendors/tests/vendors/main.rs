//! Each vendor's workflows against the simulator, in process: fast tests in
//! the middle, with no broker, no database server and no spawned process
//! (the journal is an in-memory SQLite database, see
//! `lifecycle_store::harness`). One test binary for every vendor, to link once.

mod common;
mod compliance;
mod contract;
mod reconcile;

mod calendly;
mod calendly_inspect;
mod circleci;
mod circleci_inspect;
mod crowdstrike;
mod crowdstrike_inspect;
mod github;
mod github_inspect;
mod jira;
mod jira_inspect;
mod pipedrive;
mod pipedrive_inspect;
