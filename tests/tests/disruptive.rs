//! Tests that stop or restart the real RabbitMQ. `scripts/test` runs this
//! binary alone, one test at a time, after the rest of the suite.

use lifecycle_domain::RunState;
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
    assert!(stack.runs().await.iter().all(|r| r.state == RunState::Queued));

    outage.end().await;
    for id in &event_ids {
        let runs = stack.wait_event(id, Duration::from_secs(120)).await;
        assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
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
    // The runs may have finished through the worker's sweeper first; the relay
    // catches up on its next try (its backoff is at most 10 s).
    lifecycle_e2e::eventually(Duration::from_secs(30), "the relay to publish every kept event", || async {
        (lifecycle_store::outbox::lag(&stack.store).await.unwrap().0 == 0).then_some(())
    })
    .await;
}

async fn restarting_rabbitmq_in_the_middle_of_runs_loses_nothing(backend: Backend) {
    let stack = Stack::start(
        StackOptions::new(backend, "broker-restart")
            .sim_arg("--no-rate-limits")
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__REQUESTS", "100000")
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__RATE_LIMIT__PER", "1s"),
    )
    .await;
    stack
        .sim_seed(serde_json::json!({"pipedrive": {
            "users": [{"name": "Leaving", "email": "leaving@example.com"}],
            "deals": [{"title": "D1", "owner_email": "leaving@example.com"}, {"title": "D2", "owner_email": "leaving@example.com"}]
        }}))
        .await;
    // Runs in every phase when the broker goes: mid-step (slow calls), and
    // waiting in a delay queue (503s to retry).
    stack
        .sim_fault(serde_json::json!({"vendor": "pipedrive", "kind": "latency", "latency_ms": 150, "count": 1_000_000}))
        .await;
    stack.sim_fault(serde_json::json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users", "kind": "status", "status": 503, "count": 5})).await;
    let mut events = Vec::new();
    for i in 0..20 {
        events.push(
            stack.accept(&pipedrive_joiner(&format!("E-{i}"), &format!("restart{i}@example.com"), "Sales Rep")).await,
        );
    }
    events.push(
        stack
            .accept(&lifecycle_e2e::stack::pipedrive_leaver("E-L", "leaving@example.com", Some("grace@example.com")))
            .await,
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    lifecycle_e2e::broker::restart().await;

    for e in &events {
        let runs = stack.wait_event(e["event_id"].as_str().unwrap(), Duration::from_secs(180)).await;
        assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    }
    let state = stack.sim_state().await;
    for i in 0..20 {
        assert_eq!(lifecycle_e2e::sim::pd_users(&state, &format!("restart{i}@example.com")).len(), 1);
    }
    for d in lifecycle_e2e::sim::list(&state, "pipedrive", "deals") {
        assert_eq!(d["owner_history"].as_array().unwrap().len(), 2, "reassigned exactly once: {d}");
    }
}

/// A scheduled leaver needs nothing from RabbitMQ while it waits: the run is
/// in the database only, and the worker's scheduler publishes it when it is
/// due, over whatever connection is up by then.
async fn a_scheduled_leaver_runs_on_time_across_a_rabbitmq_restart(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "broker-scheduled")).await;
    stack
        .sim_seed(serde_json::json!({"pipedrive": {"users": [{"name": "Ada Leaving", "email": "ada@example.com"}]}}))
        .await;
    let user_id = lifecycle_e2e::sim::pd_users(&stack.sim_state().await, "ada@example.com")[0]["id"].clone();
    let effective = chrono::Utc::now() + chrono::Duration::seconds(12);
    let effective_ms = effective.timestamp_millis();
    let mut leaver = lifecycle_e2e::stack::pipedrive_leaver("E-S", "ada@example.com", None);
    leaver["effective_at"] = serde_json::json!(effective.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let accepted = stack.accept(&leaver).await;
    assert_eq!(accepted["runs"][0]["state"], "scheduled", "{accepted}");
    let event_id = accepted["event_id"].as_str().unwrap().to_string();

    tokio::time::sleep(Duration::from_secs(1)).await;
    lifecycle_e2e::broker::restart().await;
    let up_ms = chrono::Utc::now().timestamp_millis();
    assert!(
        up_ms < effective_ms - 1000,
        "the restart took too long to test anything: up {} ms before effective_at",
        effective_ms - up_ms
    );
    assert_eq!(stack.runs_of(&event_id).await[0].state, RunState::Scheduled, "nothing started early");

    let runs = stack.wait_event(&event_id, Duration::from_secs(60)).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    let worker_log = stack.workers[0].as_ref().expect("the worker runs").log_text();
    assert!(worker_log.contains("lost RabbitMQ; reconnecting"), "the restart reached the worker:\n{worker_log}");
    let put = format!("/api/v1/users/{user_id}");
    let done: Vec<Value> = stack
        .sim_calls("pipedrive")
        .await
        .into_iter()
        .filter(|c| c["method"] == "PUT" && c["path"] == put.as_str() && c["status"] == 200)
        .collect();
    assert_eq!(done.len(), 1, "deactivated once: {done:?}");
    let late = lifecycle_e2e::call_at_ms(&done[0]) - effective_ms;
    // 2 s, as with the broker untouched, plus what is left of the broker's
    // first 5 s up (the settle time in tests/src/broker.rs) at effective_at:
    // right after `start_app` the quorum lanes are still electing leaders and
    // the worker's consumer may be between reconnect attempts (its backoff
    // doubles while the broker is down), so a publish or a delivery can wait
    // for them. With the broker up longer than that before effective_at, the
    // allowance is the plain 2 s.
    let settling = (5000 - (effective_ms - up_ms)).max(0);
    let allowed = 2000 + settling;
    eprintln!(
        "broker up {} ms before effective_at; deactivated {late} ms after it (allowed {allowed})",
        effective_ms - up_ms
    );
    assert!(late >= 0, "deactivated {} ms before effective_at", -late);
    assert!(late <= allowed, "deactivated {late} ms after effective_at (allowed {allowed} ms)\n{}", stack.logs());
}

both_databases!(
    events_are_accepted_while_rabbitmq_is_down_and_processed_when_it_returns,
    restarting_rabbitmq_in_the_middle_of_runs_loses_nothing,
    a_scheduled_leaver_runs_on_time_across_a_rabbitmq_restart,
);
