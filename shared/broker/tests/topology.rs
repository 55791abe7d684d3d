//! Against the real RabbitMQ on 127.0.0.1:5672: the topology declares, a
//! dispatch reaches the work queue, a delayed one comes back through its
//! tier, a rejected one lands in the dead-letter queue.

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicRejectOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lifecycle_broker::{Dispatch, Publisher, Topology};
use std::time::{Duration, Instant};

fn url() -> String {
    std::env::var("LIFECYCLE_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

async fn cleanup(topology: &Topology) {
    let conn = lifecycle_broker::connect(&url(), "cleanup").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in topology.queues() {
        let _ = ch.queue_delete(q.into(), QueueDeleteOptions::default()).await;
    }
    for e in topology.exchanges() {
        let _ = ch.exchange_delete(e.into(), ExchangeDeleteOptions::default()).await;
    }
}

#[tokio::test]
async fn dispatch_delay_and_dead_letter_flow() {
    let topology = Topology::new(format!("test-{}", uuid::Uuid::new_v4().simple()));
    let publisher = Publisher::new(url(), "topology-test", topology.clone(), Duration::from_secs(10));
    publisher.check().await.expect("RabbitMQ must be running on 127.0.0.1:5672 for this test");

    let conn = lifecycle_broker::connect(&url(), "topology-test-consumer").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    topology.declare(&ch).await.expect("declaring twice is a no-op");
    let mut work = ch
        .basic_consume(topology.work_queue().into(), "t".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();

    let now = Dispatch { run_id: "r-now".into(), dispatch_seq: 0 };
    publisher.dispatch(&now).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), work.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<Dispatch>(&d.data).unwrap(), now);
    d.acker.ack(Default::default()).await.unwrap();

    let later = Dispatch { run_id: "r-later".into(), dispatch_seq: 3 };
    let started = Instant::now();
    let tier = publisher.dispatch_after(&later, Duration::from_millis(1500)).await.unwrap();
    assert_eq!(tier, Duration::from_secs(1));
    let d = tokio::time::timeout(Duration::from_secs(10), work.next()).await.unwrap().unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900), "came back after {:?}", started.elapsed());
    assert_eq!(serde_json::from_slice::<Dispatch>(&d.data).unwrap(), later);

    // A rejected message goes to the dead-letter queue, not back to the work queue.
    d.acker.reject(BasicRejectOptions { requeue: false }).await.unwrap();
    let mut dead = ch
        .basic_consume(
            topology.dead_queue().into(),
            "t-dead".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let dl = tokio::time::timeout(Duration::from_secs(5), dead.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<Dispatch>(&dl.data).unwrap(), later);
    dl.acker.ack(Default::default()).await.unwrap();

    publisher.close().await;
    let _ = conn.close(200, "done".into()).await;
    cleanup(&topology).await;
}
