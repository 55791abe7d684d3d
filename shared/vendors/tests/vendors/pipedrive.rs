//! Pipedrive: the workflows against the simulator, in process.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn a_joiner_is_created_with_its_role() {
    let w = World::new(VendorKind::Pipedrive).await;
    let before = w.requests();
    let run = w.start(&event("joiner", "ada@example.com", VendorKind::Pipedrive, json!({"role": "Sales Rep"}))).await;
    assert!(run.outcome().summary.contains("created"), "{:?}", run.outcome());
    eprintln!("{:?}", w.requests_since(&before));
    eprintln!("{:?}", w.harness.keys(&run.run_id).await);
}
