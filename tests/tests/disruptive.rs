//! Tests that stop or restart the real RabbitMQ. `scripts/test` runs this
//! binary alone, one test at a time, after the rest of the suite.

use lifecycle_e2e::broker::BrokerOutage;
use lifecycle_e2e::stack::pipedrive_joiner;
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use serde_json::Value;
use std::time::Duration;

async fn events_are_accepted_while_rabbitmq_is_down_and_processed_when_it_returns(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "broker-down")).await;
    let outage = BrokerOutage::begin();

    let mut event_ids = Vec::new();
    for i in 0..3 {
        let accepted =
            stack.accept(&pipedrive_joiner(&format!("E-{i}"), &format!("outage{i}@example.com"), "Sales Rep")).await;
        event_ids.push(accepted["event_id"].as_str().unwrap().to_string());
    }
    // Kept, not published.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (unsent, _) = lifecycle_store::outbox::lag(&stack.store).await.unwrap();
    assert_eq!(unsent, 3, "the outbox holds the events while the broker is away");
    assert!(stack.runs().await.iter().all(|r| r.state == "queued"));

    outage.end().await;
    for id in &event_ids {
        let runs = stack.wait_event(id, Duration::from_secs(120)).await;
        assert_eq!(runs[0].state, "succeeded", "{:?}\n{}", runs[0].outcome, stack.logs());
    }
    let state = stack.sim_state().await;
    for i in 0..3 {
        let email = format!("outage{i}@example.com");
        let n = state["pipedrive"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["email"] == Value::String(email.clone()))
            .count();
        assert_eq!(n, 1, "{email} exists once");
    }
    assert_eq!(lifecycle_store::outbox::lag(&stack.store).await.unwrap().0, 0);
}

both_databases!(events_are_accepted_while_rabbitmq_is_down_and_processed_when_it_returns);
