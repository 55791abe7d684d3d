//! The simulator over HTTP, in process: each module one vendor or one part of the
//! framework (control endpoints, faults, rate limits). One test binary, linked once.

mod common;

mod bamboohr;
mod calendly;
mod circleci;
mod control;
mod crowdstrike;
mod faults;
mod github;
mod hibob;
mod jira;
mod pipedrive_deals;
mod pipedrive_roles;
mod pipedrive_users;
mod rate_limits;
mod throughput;
