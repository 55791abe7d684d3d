//! The push drainer: beside the outbox relay ([`crate::relay`]), it makes
//! the per-person events of big SCIM group writes after their answer
//! (`lifecycle_ops::push`), one batch per transaction, and wakes the relay
//! to publish them. Several producers may run it: a push's lease and each
//! batch's conditional take let only one make a batch.

use crate::AppState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the drainer looks for pushes nobody woke it for (another
/// producer's, or one whose lease lapsed).
const POLL: Duration = Duration::from_secs(2);

/// Drains pushes until `shutdown`: woken after each group write, and every [`POLL`].
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let owner = format!("producer-{}", uuid::Uuid::new_v4().simple());
    let config = state.scim.clone();
    loop {
        if !config.tokens.is_empty() {
            let scim = crate::scim::scim_for(&state, &config);
            lifecycle_ops::push::drain(&scim.ops, &owner, || shutdown.is_cancelled(), &state.relay_wake).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = config.push_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
