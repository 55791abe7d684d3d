//! What the engine needs from storage: the traits and values of
//! `lifecycle-engine-storage`, and the [`Claim`] one attempt works under.

use crate::Lease;
use lifecycle_domain::VendorKind;
pub use lifecycle_engine_storage::*;

/// What one attempt of a run works under: which run, which worker, its
/// lease, the vendor and which attempt of the run it is.
#[derive(Debug, Clone)]
pub struct Claim {
    pub run_id: String,
    pub owner: String,
    pub lease: Lease,
    pub vendor: VendorKind,
    pub attempt: i32,
}
