//! The audit log's and the drift log's filters, as the front ends fill them
//! from flags and query parameters ([`crate::audit_log`], [`crate::list_drift`]).

pub use lifecycle_store::audit::AuditFilter;
pub use lifecycle_store::drift::DriftFilter;
