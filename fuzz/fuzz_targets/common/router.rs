//! An axum router of ours driven in process (no socket), for the targets that
//! fuzz a listener's requests: an in-memory database, a publisher that never
//! connects (nothing these inputs do publishes), and a new client address
//! for every request.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct RouterHarness {
    pub rt: tokio::runtime::Runtime,
    pub app: axum::Router,
    /// Each request comes from its own address, so the failure throttle
    /// (per address) never delays one: what is fuzzed is the parsing.
    next_ip: AtomicU32,
}

impl RouterHarness {
    /// The router `build` makes from the database and the publisher.
    pub fn new(build: impl FnOnce(lifecycle_store::Db, Arc<lifecycle_broker::Publisher>) -> axum::Router) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let app = rt.block_on(async {
            let db = lifecycle_store::connect("sqlite::memory:", 1).await.unwrap();
            lifecycle_store::migrate(&db).await.unwrap();
            let publisher = Arc::new(lifecycle_broker::Publisher::new(
                "amqp://127.0.0.1:1/%2f",
                "fuzz",
                lifecycle_broker::Topology::new("fuzz"),
                Duration::from_secs(1),
            ));
            build(db, publisher)
        });
        RouterHarness { rt, app, next_ip: AtomicU32::new(0x0a00_0001) }
    }

    /// The client address of the next request.
    pub fn next_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.next_ip.fetch_add(1, Ordering::Relaxed))
    }
}
