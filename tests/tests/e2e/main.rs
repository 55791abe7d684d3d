//! The end-to-end suite over real processes, as one test binary: each module
//! is one area of the contract. One binary links once, where a binary per
//! file linked the same dependencies eighteen times. `disruptive.rs`, which
//! stops RabbitMQ, stays its own binary so that it can run alone, last.

mod alerts;
mod all_vendors;
mod approvals;
mod bulk_actions;
mod calendly;
mod cancel_scope;
mod circleci;
mod console;
mod console_bulk;
mod crowdstrike;
mod demo;
mod deploy_files;
mod fleet;
mod github;
mod hardening;
mod hris;
mod intake;
mod jira;
mod lanes;
mod lease_guards;
mod operators;
mod ordering_guards;
mod overview;
mod pipedrive;
mod reconcile;
mod reliability;
mod run_edits;
mod safety;
mod scim;
mod scim_bulk;
mod scim_push;
mod time;
mod traces;
mod upgrade;
mod version;
mod webhooks;
