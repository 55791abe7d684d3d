//! Exchanges and queues, declared idempotently by every binary at start.
//!
//! ```text
//!  producer ──▶ {ns}.work (direct) ──"run"──▶ {ns}.work (quorum queue) ──▶ workers
//!                    ▲                              │ reject (poison)
//!                    │ dead-letter after TTL        ▼
//!  worker ──▶ {ns}.retry (direct) ──"5s"──▶ {ns}.retry.5s (TTL 5 s)   {ns}.dead (fanout) ──▶ {ns}.dead (quorum)
//!                                  ──"30s"─▶ {ns}.retry.30s ...               ▲
//!  worker (run gave up) ──────────────────────────────────────────────────────┘
//! ```
//!
//! One delay queue per tier: every message in a queue has the same TTL, so
//! the head always expires first and nothing waits behind a longer delay (the
//! trap of per-message TTLs in a single queue).

use crate::BrokerError;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use std::time::Duration;

pub const WORK_ROUTING_KEY: &str = "run";

/// Delay tiers. A retry goes to the longest tier not longer than the wanted
/// delay; when it comes back early the worker sends it round again for the rest.
pub const DELAY_TIERS: [Duration; 8] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(4 * 60 * 60),
];

#[derive(Debug, Clone)]
pub struct Topology {
    namespace: String,
}

impl Topology {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into() }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    pub fn work_exchange(&self) -> String {
        format!("{}.work", self.namespace)
    }
    pub fn work_queue(&self) -> String {
        format!("{}.work", self.namespace)
    }
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.namespace)
    }
    pub fn retry_queue(&self, tier: Duration) -> String {
        format!("{}.retry.{}", self.namespace, tier_name(tier))
    }
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.namespace)
    }
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    /// Every queue name, for tests and tooling that clean up or inspect.
    pub fn queues(&self) -> Vec<String> {
        let mut q = vec![self.work_queue(), self.dead_queue()];
        q.extend(DELAY_TIERS.iter().map(|t| self.retry_queue(*t)));
        q
    }

    pub fn exchanges(&self) -> Vec<String> {
        vec![self.work_exchange(), self.retry_exchange(), self.dead_exchange()]
    }

    /// Declares everything; declaring what exists with the same arguments is a no-op.
    pub async fn declare(&self, ch: &Channel) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare(self.work_exchange().into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
        ch.exchange_declare(self.retry_exchange().into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
        ch.exchange_declare(self.dead_exchange().into(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;

        let queue = QueueDeclareOptions { durable: true, ..Default::default() };

        // Dead letters: kept for inspection and alerting.
        ch.queue_declare(self.dead_queue().into(), queue, quorum(&[])).await?;
        ch.queue_bind(
            self.dead_queue().into(),
            self.dead_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

        // Work: a message the worker rejects (unparseable) goes straight to the
        // dead-letter exchange; at-least-once dead-lettering so none is lost on the way.
        let mut work_args = vec![
            ("x-dead-letter-exchange", AMQPValue::LongString(LongString::from(self.dead_exchange()))),
            ("x-dead-letter-strategy", AMQPValue::LongString("at-least-once".into())),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ];
        ch.queue_declare(self.work_queue().into(), queue, quorum(&work_args)).await?;
        ch.queue_bind(
            self.work_queue().into(),
            self.work_exchange().into(),
            WORK_ROUTING_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

        for tier in DELAY_TIERS {
            work_args.clear();
            work_args.extend([
                ("x-message-ttl", AMQPValue::LongLongInt(tier.as_millis() as i64)),
                ("x-dead-letter-exchange", AMQPValue::LongString(LongString::from(self.work_exchange()))),
                ("x-dead-letter-routing-key", AMQPValue::LongString(WORK_ROUTING_KEY.into())),
                ("x-dead-letter-strategy", AMQPValue::LongString("at-least-once".into())),
                ("x-overflow", AMQPValue::LongString("reject-publish".into())),
            ]);
            let name = self.retry_queue(tier);
            ch.queue_declare(name.as_str().into(), queue, quorum(&work_args)).await?;
            ch.queue_bind(
                name.into(),
                self.retry_exchange().into(),
                tier_name(tier).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }
}

impl Topology {
    /// The topology as RabbitMQ definitions (the management plugin's import
    /// format), for `deploy/rabbitmq/definitions.json`: a broker can be
    /// provisioned with exactly what the binaries would declare.
    pub fn definitions(&self, vhost: &str) -> serde_json::Value {
        use serde_json::json;
        let exchange = |name: String, kind: &str| json!({"name": name, "vhost": vhost, "type": kind, "durable": true, "auto_delete": false, "internal": false, "arguments": {}});
        let mut queues = vec![
            json!({"name": self.dead_queue(), "vhost": vhost, "durable": true, "auto_delete": false,
                   "arguments": {"x-queue-type": "quorum"}}),
            json!({"name": self.work_queue(), "vhost": vhost, "durable": true, "auto_delete": false,
                   "arguments": {"x-queue-type": "quorum", "x-dead-letter-exchange": self.dead_exchange(),
                                 "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}}),
        ];
        let mut bindings = vec![
            json!({"source": self.dead_exchange(), "vhost": vhost, "destination": self.dead_queue(), "destination_type": "queue", "routing_key": "", "arguments": {}}),
            json!({"source": self.work_exchange(), "vhost": vhost, "destination": self.work_queue(), "destination_type": "queue", "routing_key": WORK_ROUTING_KEY, "arguments": {}}),
        ];
        for tier in DELAY_TIERS {
            queues.push(json!({"name": self.retry_queue(tier), "vhost": vhost, "durable": true, "auto_delete": false,
                "arguments": {"x-queue-type": "quorum", "x-message-ttl": tier.as_millis() as u64,
                              "x-dead-letter-exchange": self.work_exchange(), "x-dead-letter-routing-key": WORK_ROUTING_KEY,
                              "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}}));
            bindings
                .push(json!({"source": self.retry_exchange(), "vhost": vhost, "destination": self.retry_queue(tier),
                "destination_type": "queue", "routing_key": tier_name(tier), "arguments": {}}));
        }
        json!({
            "vhosts": [{"name": vhost}],
            "exchanges": [exchange(self.work_exchange(), "direct"), exchange(self.retry_exchange(), "direct"), exchange(self.dead_exchange(), "fanout")],
            "queues": queues,
            "bindings": bindings,
        })
    }
}

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(ShortString::from("x-queue-type"), AMQPValue::LongString("quorum".into()));
    for (k, v) in extra {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

/// "1s", "15s", "5m", "1h", "4h".
pub fn tier_name(tier: Duration) -> String {
    let s = tier.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The tier a delay goes through: the longest not longer than `delay`
/// (the shortest for anything under it).
pub fn tier_for(delay: Duration) -> Duration {
    DELAY_TIERS.iter().copied().filter(|t| *t <= delay).max().unwrap_or(DELAY_TIERS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_longest_tier_not_over_the_delay() {
        assert_eq!(tier_for(Duration::from_millis(10)), Duration::from_secs(1));
        assert_eq!(tier_for(Duration::from_secs(7)), Duration::from_secs(5));
        assert_eq!(tier_for(Duration::from_secs(60)), Duration::from_secs(60));
        assert_eq!(tier_for(Duration::from_secs(100_000)), Duration::from_secs(4 * 3600));
    }

    /// `deploy/rabbitmq/definitions.json` is what the binaries declare.
    /// Regenerate with `LIFECYCLE_WRITE_DEFINITIONS=1 cargo test -p lifecycle-broker`.
    #[test]
    fn deploy_definitions_match_the_topology() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rabbitmq/definitions.json");
        let expected = Topology::new("lifecycle").definitions("/");
        if std::env::var_os("LIFECYCLE_WRITE_DEFINITIONS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&expected).unwrap() + "\n").unwrap();
        }
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("deploy/rabbitmq/definitions.json exists"))
                .unwrap();
        assert_eq!(on_disk, expected, "deploy/rabbitmq/definitions.json is stale: regenerate it (see this test's doc)");
    }

    #[test]
    fn names_tiers_readably() {
        assert_eq!(tier_name(Duration::from_secs(15)), "15s");
        assert_eq!(tier_name(Duration::from_secs(300)), "5m");
        assert_eq!(tier_name(Duration::from_secs(3600)), "1h");
    }
}
