//! Against the real RabbitMQ on 127.0.0.1:5672: the topology declares, a
//! dispatch reaches its vendor's lane (and no other), a delayed one comes back
//! through its tier to the same lane, a rejected one lands in the dead-letter
//! queue, and a lane has one active consumer at a time.

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicRejectOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lifecycle_broker::{Dispatch, Publisher, Topology};
use lifecycle_domain::VendorKind;
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
        .basic_consume(
            topology.lane_queue(VendorKind::Calendly).into(),
            "t".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let now = Dispatch { run_id: "r-now".into(), dispatch_seq: 0, vendor: VendorKind::Calendly };
    publisher.dispatch(&now).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), work.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<Dispatch>(&d.data).unwrap(), now);
    d.acker.ack(Default::default()).await.unwrap();

    let later = Dispatch { run_id: "r-later".into(), dispatch_seq: 3, vendor: VendorKind::Calendly };
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

    // Nothing went to another vendor's lane.
    for vendor in VendorKind::ALL.into_iter().filter(|v| *v != VendorKind::Calendly) {
        let info = ch
            .queue_declare(
                topology.lane_queue(vendor).into(),
                lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(info.message_count(), 0, "{vendor}'s lane got a message");
    }

    publisher.close().await;
    let _ = conn.close(200, "done".into()).await;
    cleanup(&topology).await;
}

/// Two consumers on one lane: only the first gets messages until its channel
/// closes; then the second takes over, unacknowledged messages included.
#[tokio::test]
async fn a_lane_has_one_active_consumer_and_a_standby_takes_over() {
    let topology = Topology::new(format!("test-{}", uuid::Uuid::new_v4().simple()));
    let publisher = Publisher::new(url(), "sac-test", topology.clone(), Duration::from_secs(10));
    publisher.check().await.expect("RabbitMQ must be running on 127.0.0.1:5672 for this test");
    let lane = topology.lane_queue(VendorKind::Pipedrive);

    let conn = lifecycle_broker::connect(&url(), "sac-test-consumers").await.unwrap();
    let first = conn.create_channel().await.unwrap();
    let second = conn.create_channel().await.unwrap();
    let mut a = first
        .basic_consume(lane.as_str().into(), "a".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut b = second
        .basic_consume(lane.as_str().into(), "b".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    for i in 0..4 {
        publisher
            .dispatch(&Dispatch { run_id: format!("r{i}"), dispatch_seq: 0, vendor: VendorKind::Pipedrive })
            .await
            .unwrap();
    }
    for i in 0..4 {
        let d = tokio::time::timeout(Duration::from_secs(5), a.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(serde_json::from_slice::<Dispatch>(&d.data).unwrap().run_id, format!("r{i}"));
        if i < 2 {
            d.acker.ack(Default::default()).await.unwrap();
        }
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), b.next()).await.is_err(),
        "the standby consumer received a message while the active one was there"
    );
    // The active consumer goes away with two messages unacknowledged.
    first.close(200, "gone".into()).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let d = tokio::time::timeout(Duration::from_secs(5), b.next()).await.unwrap().unwrap().unwrap();
        got.push(serde_json::from_slice::<Dispatch>(&d.data).unwrap().run_id);
        d.acker.ack(Default::default()).await.unwrap();
    }
    got.sort();
    assert_eq!(got, vec!["r2".to_string(), "r3".to_string()]);

    publisher.close().await;
    let _ = conn.close(200, "done".into()).await;
    cleanup(&topology).await;
}
