//! `broker`: a bare lapin publish-with-confirms / consume-with-acks loop, the ceiling we are measured against.

use futures::StreamExt;
use std::time::Instant;

pub struct BrokerBaseline {
    pub messages: usize,
    pub seconds: f64,
    pub per_s: f64,
}

impl BrokerBaseline {
    pub(crate) fn print(&self) {
        println!("\n## bare broker loop (publisher confirms, manual acks, quorum queue)");
        println!("messages          {} in {:.2} s = {:.0} messages/s", self.messages, self.seconds, self.per_s);
    }
}

/// Publishes `n` persistent messages with confirms (pipelined in batches of
/// 200, like the relay) to a quorum queue while a consumer with prefetch 64
/// acknowledges them one by one; measures until the last ack.
pub async fn broker(n: usize) -> anyhow::Result<BrokerBaseline> {
    use lifecycle_broker::lapin::options::*;
    use lifecycle_broker::lapin::types::{AMQPValue, FieldTable};
    use lifecycle_broker::lapin::BasicProperties;
    let url = lifecycle_e2e::amqp_url();
    let queue = format!("bench-broker-{}", uuid::Uuid::new_v4().simple());
    let pub_conn = lifecycle_broker::connect(&url, "bench-publisher").await?;
    let con_conn = lifecycle_broker::connect(&url, "bench-consumer").await?;
    let pch = pub_conn.create_channel().await?;
    let cch = con_conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    pch.queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, args).await?;
    pch.confirm_select(ConfirmSelectOptions::default()).await?;
    cch.basic_qos(64, BasicQosOptions::default()).await?;
    let mut consumer = cch
        .basic_consume(queue.as_str().into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let payload = br#"{"run_id":"01a2067f-332c-7697-8652-7d923aa8ae19","dispatch_seq":0}"#;

    let started = Instant::now();
    let consume = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let d = consumer.next().await.expect("the consumer stays open").expect("a delivery");
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
            got += 1;
        }
    });
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for _ in chunk {
            let c = pch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            confirms.push(c);
        }
        for c in confirms {
            c.await?;
        }
    }
    consume.await?;
    let seconds = started.elapsed().as_secs_f64();
    pch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    let _ = pub_conn.close(200, "done".into()).await;
    let _ = con_conn.close(200, "done".into()).await;
    Ok(BrokerBaseline { messages: n, seconds, per_s: n as f64 / seconds })
}
