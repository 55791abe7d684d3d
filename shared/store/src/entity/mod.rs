//! sea-orm entities, one per table (the schema itself is in `lifecycle-migrations`).

pub mod approval;
pub mod audit;
pub mod drift;
pub mod event;
pub mod hris_delivery;
pub mod hris_person;
pub mod notification;
pub mod notification_hook;
pub mod outbox;
pub mod reconcile_finding;
pub mod reconcile_pass;
pub mod reconcile_request;
pub mod run;
pub mod run_edit;
pub mod safety_admission;
pub mod scim_bulk_operation;
pub mod scim_bulk_request;
pub mod scim_group;
pub mod scim_member;
pub mod scim_push;
pub mod scim_push_batch;
pub mod scim_user;
pub mod step;
