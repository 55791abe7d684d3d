//! HR deliveries' filter and states, for [`crate::hris::list_deliveries`].

pub use lifecycle_store::entity::hris_delivery::DeliveryState;
pub use lifecycle_store::hris::DeliveryFilter;
