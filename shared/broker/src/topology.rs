//! Exchanges and queues, declared idempotently by every binary at start.
//!
//! ```text
//!                                     ┌─"*.pipedrive"──▶ {ns}.lane.pipedrive   (quorum, single active consumer) ──▶ one worker
//!  producer ──"now.<vendor>"──▶ {ns}.lanes (topic) ─"*.crowdstrike"▶ {ns}.lane.crowdstrike ──▶ one worker
//!                                  ▲  └─ ... one lane per vendor                      │ reject (poison)
//!                                  │ dead-letter after TTL, key kept                  ▼
//!  worker ──"5s.<vendor>"──▶ {ns}.delay (topic) ──"5s.*"──▶ {ns}.delay.5s (TTL 5 s)   {ns}.dead (fanout) ──▶ {ns}.dead
//!                                              ──"15s.*"─▶ {ns}.delay.15s ...                ▲
//!  worker (run gave up) ───────────────────────────────────────────────────────────────────┘
//! ```
//!
//! **Lanes.** Each vendor has its own work queue, so runs of one vendor never
//! wait behind another vendor's backlog, prefetch or budget: a worker consumes
//! each lane it holds on its own channel with its own prefetch and slots.
//! Which worker consumes a lane is a lane lease in the database (the worker's
//! `lanes` module): a fleet of W workers holds at most ⌈lanes / W⌉ each, and a
//! dead worker's lanes pass to the others once its leases lapse. Every lane is
//! still a *single active consumer* queue, the backstop: RabbitMQ delivers a
//! lane to one worker at a time even while it changes hands, so that worker
//! owns the vendor credential's whole rate-limit budget and N workers never
//! need a share each.
//!
//! **Delays.** One delay queue per tier: every message in a queue has the same
//! TTL, so the head always expires first and nothing waits behind a longer delay
//! (the trap of per-message TTLs in a single queue). The routing key
//! `<tier>.<vendor>` survives dead-lettering (no `x-dead-letter-routing-key`), so
//! an expired delay returns to its own vendor's lane.

use crate::BrokerError;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use lifecycle_domain::VendorKind;
use std::time::Duration;

/// The first word of a dispatch's routing key when it is for now.
pub const NOW: &str = "now";

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
    pub fn lanes_exchange(&self) -> String {
        format!("{}.lanes", self.namespace)
    }
    /// The work queue of one vendor.
    pub fn lane_queue(&self, vendor: VendorKind) -> String {
        format!("{}.lane.{}", self.namespace, vendor)
    }
    pub fn delay_exchange(&self) -> String {
        format!("{}.delay", self.namespace)
    }
    pub fn delay_queue(&self, tier: Duration) -> String {
        format!("{}.delay.{}", self.namespace, tier_name(tier))
    }
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.namespace)
    }
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    /// Every lane queue, one per vendor.
    pub fn lane_queues(&self) -> Vec<String> {
        VendorKind::ALL.iter().map(|v| self.lane_queue(*v)).collect()
    }

    /// Every queue name, for tests and tooling that clean up or inspect.
    pub fn queues(&self) -> Vec<String> {
        let mut q = self.lane_queues();
        q.push(self.dead_queue());
        q.extend(DELAY_TIERS.iter().map(|t| self.delay_queue(*t)));
        q
    }

    pub fn exchanges(&self) -> Vec<String> {
        vec![self.lanes_exchange(), self.delay_exchange(), self.dead_exchange()]
    }

    /// What versions before the lanes declared (one work queue for every
    /// vendor, and its delay tiers): nothing uses them now. Their messages are
    /// not needed (the sweeper republishes every overdue run from the
    /// database), so `lifecycle-ctl broker teardown` removes them too.
    pub fn legacy_queues(&self) -> Vec<String> {
        let mut q = vec![format!("{}.work", self.namespace)];
        q.extend(DELAY_TIERS.iter().map(|t| format!("{}.retry.{}", self.namespace, tier_name(*t))));
        q
    }

    pub fn legacy_exchanges(&self) -> Vec<String> {
        vec![format!("{}.work", self.namespace), format!("{}.retry", self.namespace)]
    }

    /// Declares everything; declaring what exists with the same arguments is a no-op.
    pub async fn declare(&self, ch: &Channel) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare(self.lanes_exchange().into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
        ch.exchange_declare(self.delay_exchange().into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
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

        for vendor in VendorKind::ALL {
            let name = self.lane_queue(vendor);
            ch.queue_declare(name.as_str().into(), queue, quorum(&self.lane_arguments())).await?;
            ch.queue_bind(
                name.into(),
                self.lanes_exchange().into(),
                lane_binding(vendor).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }

        for tier in DELAY_TIERS {
            let name = self.delay_queue(tier);
            ch.queue_declare(name.as_str().into(), queue, quorum(&self.delay_arguments(tier))).await?;
            ch.queue_bind(
                name.into(),
                self.delay_exchange().into(),
                format!("{}.*", tier_name(tier)).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }

    /// A lane: one consumer at a time (it owns the vendor's budget); a message
    /// the worker rejects (unparseable) goes straight to the dead-letter
    /// exchange, at-least-once so none is lost on the way.
    fn lane_arguments(&self) -> Vec<(&'static str, AMQPValue)> {
        vec![
            ("x-single-active-consumer", AMQPValue::Boolean(true)),
            ("x-dead-letter-exchange", AMQPValue::LongString(LongString::from(self.dead_exchange()))),
            ("x-dead-letter-strategy", AMQPValue::LongString("at-least-once".into())),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ]
    }

    /// A delay tier: expires into the lanes exchange with its routing key
    /// (`<tier>.<vendor>`) kept, which brings it back to its vendor's lane.
    fn delay_arguments(&self, tier: Duration) -> Vec<(&'static str, AMQPValue)> {
        vec![
            ("x-message-ttl", AMQPValue::LongLongInt(tier.as_millis() as i64)),
            ("x-dead-letter-exchange", AMQPValue::LongString(LongString::from(self.lanes_exchange()))),
            ("x-dead-letter-strategy", AMQPValue::LongString("at-least-once".into())),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
        ]
    }
}

/// The routing key of a dispatch for now to `vendor`'s lane.
pub fn now_key(vendor: VendorKind) -> String {
    format!("{NOW}.{vendor}")
}

/// The routing key of a dispatch through a delay tier to `vendor`'s lane.
pub fn delay_key(tier: Duration, vendor: VendorKind) -> String {
    format!("{}.{vendor}", tier_name(tier))
}

/// What a lane queue is bound with: any first word, this vendor.
fn lane_binding(vendor: VendorKind) -> String {
    format!("*.{vendor}")
}

impl Topology {
    /// The topology as RabbitMQ definitions (the management plugin's import
    /// format), for `deploy/rabbitmq/definitions.json`: a broker can be
    /// provisioned with exactly what the binaries would declare.
    pub fn definitions(&self, vhost: &str) -> serde_json::Value {
        use serde_json::json;
        let exchange = |name: String, kind: &str| json!({"name": name, "vhost": vhost, "type": kind, "durable": true, "auto_delete": false, "internal": false, "arguments": {}});
        let arguments = |args: Vec<(&'static str, AMQPValue)>| {
            let mut map = serde_json::Map::new();
            map.insert("x-queue-type".into(), json!("quorum"));
            for (k, v) in args {
                let v = match v {
                    AMQPValue::Boolean(b) => json!(b),
                    AMQPValue::LongLongInt(n) => json!(n),
                    AMQPValue::LongString(s) => json!(s.to_string()),
                    other => unreachable!("no such argument in the topology: {other:?}"),
                };
                map.insert(k.into(), v);
            }
            serde_json::Value::Object(map)
        };
        let queue = |name: String, args: serde_json::Value| json!({"name": name, "vhost": vhost, "durable": true, "auto_delete": false, "arguments": args});
        let binding = |source: String, destination: String, key: String| json!({"source": source, "vhost": vhost, "destination": destination, "destination_type": "queue", "routing_key": key, "arguments": {}});
        let mut queues = vec![queue(self.dead_queue(), arguments(vec![]))];
        let mut bindings = vec![binding(self.dead_exchange(), self.dead_queue(), String::new())];
        for vendor in VendorKind::ALL {
            queues.push(queue(self.lane_queue(vendor), arguments(self.lane_arguments())));
            bindings.push(binding(self.lanes_exchange(), self.lane_queue(vendor), lane_binding(vendor)));
        }
        for tier in DELAY_TIERS {
            queues.push(queue(self.delay_queue(tier), arguments(self.delay_arguments(tier))));
            bindings.push(binding(self.delay_exchange(), self.delay_queue(tier), format!("{}.*", tier_name(tier))));
        }
        json!({
            "vhosts": [{"name": vhost}],
            "exchanges": [exchange(self.lanes_exchange(), "topic"), exchange(self.delay_exchange(), "topic"), exchange(self.dead_exchange(), "fanout")],
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
