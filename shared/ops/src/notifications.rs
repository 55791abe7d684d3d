//! What the worker's notification sender reads and writes: a hook's lease (one
//! sender per hook across the fleet), the runs that ended since its last batch,
//! the batch claimed before it is sent (so a batch is never lost, and repeated
//! only until the receiver accepts it), and its delivery. The queries are the
//! store's (`lifecycle_store::notifications`); the sender reaches them here, as
//! every binary reaches the store through ops.

pub use lifecycle_store::notifications::{
    candidates, claim, count_attempt, last_sent, lease, mark_sent, release, runs_of, unsent, Batch, Listed,
};
