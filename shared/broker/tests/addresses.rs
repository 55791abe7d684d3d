//! Against the real RabbitMQ on 127.0.0.1:5672: with several addresses, a
//! connect (and a publisher's) gets past addresses that refuse or that accept
//! TCP and then never answer (a paused node) to the one that works.

use lifecycle_broker::{Endpoints, Publisher, Topology, ATTEMPT_TIMEOUT};
use std::time::{Duration, Instant};

fn url() -> String {
    std::env::var("LIFECYCLE_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn real_address() -> String {
    let after_at = url().split_once('@').map(|(_, rest)| rest.to_string()).unwrap();
    after_at.split_once('/').map(|(hostport, _)| hostport.to_string()).unwrap()
}

/// A listener that accepts connections and never says a word, as a SIGSTOPped
/// node's kernel does.
async fn silent_listener() -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn every_connect_reaches_the_working_node_past_refusing_and_silent_ones() {
    let (silent, task) = silent_listener().await;
    let addresses = vec!["127.0.0.1:1".to_string(), silent.clone(), real_address()];
    let broker = Endpoints::new(&url(), &addresses);
    broker.check().unwrap();
    // Three connects start at three different addresses: each must end at the real one,
    // waiting at most one attempt's timeout for the silent one.
    for _ in 0..3 {
        let t = Instant::now();
        let conn = lifecycle_broker::connect(&broker, "addresses-test").await.expect("the working node");
        assert!(conn.status().connected());
        assert!(t.elapsed() < ATTEMPT_TIMEOUT + Duration::from_secs(3), "took {:?}", t.elapsed());
        let _ = conn.close(200, "done".into()).await;
    }
    // A publisher with the same addresses declares and checks through the working node.
    let topology = Topology::new(format!("test-addr-{}", uuid::Uuid::new_v4().simple()));
    let publisher = Publisher::new(broker.clone(), "addresses-test", topology.clone(), Duration::from_secs(10));
    publisher.check().await.expect("the publisher reaches the working node");
    let conn = lifecycle_broker::connect(&url(), "cleanup").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in topology.queues() {
        let _ = ch.queue_delete(q.into(), Default::default()).await;
    }
    for e in topology.exchanges() {
        let _ = ch.exchange_delete(e.into(), Default::default()).await;
    }
    publisher.close().await;
    task.abort();
}

#[tokio::test]
async fn when_no_address_answers_the_error_names_each_and_not_the_password() {
    let (silent, task) = silent_listener().await;
    let broker = Endpoints::new("amqp://guest:s3cret@127.0.0.1:5672/%2f", &["127.0.0.1:1".to_string(), silent.clone()]);
    let t = Instant::now();
    let err = lifecycle_broker::connect(&broker, "addresses-test").await.unwrap_err().to_string();
    assert!(t.elapsed() < ATTEMPT_TIMEOUT + Duration::from_secs(2), "took {:?}", t.elapsed());
    assert!(err.contains("127.0.0.1:1") && err.contains(&silent), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    task.abort();
}
