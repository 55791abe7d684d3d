//! Publishing with publisher confirms, over a connection that heals itself.

use crate::message::{DeadLetter, Dispatch};
use crate::topology::{delay_key, now_key, tier_for, Topology};
use crate::BrokerError;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection};
use std::time::Duration;
use tokio::sync::Mutex;

/// A confirmed publisher. A publish returns Ok only once RabbitMQ has taken
/// responsibility for the message (confirm `ack`, and routed: `mandatory`
/// makes an unroutable message an error instead of a silent drop). When the
/// connection breaks, the next publish reconnects; callers decide whether to
/// retry or rely on the database (outbox relay, sweeper) to publish later.
pub struct Publisher {
    broker: crate::Endpoints,
    name: String,
    topology: Topology,
    confirm_timeout: Duration,
    state: Mutex<Option<(Connection, Channel)>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL holds credentials: never print it.
        f.debug_struct("Publisher").field("name", &self.name).field("namespace", &self.topology.namespace()).finish()
    }
}

impl Publisher {
    /// `broker`: a URL, or [`crate::Endpoints`] (a cluster's addresses); each
    /// reconnect starts at the next address, so one that went away is left.
    pub fn new(
        broker: impl Into<crate::Endpoints>,
        name: impl Into<String>,
        topology: Topology,
        confirm_timeout: Duration,
    ) -> Self {
        Self { broker: broker.into(), name: name.into(), topology, confirm_timeout, state: Mutex::new(None) }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A connected channel in confirm mode, reconnecting (and re-declaring the
    /// topology, which is idempotent) when the previous one is gone.
    async fn channel(&self) -> Result<Channel, BrokerError> {
        let mut guard = self.state.lock().await;
        if let Some((conn, ch)) = guard.as_ref() {
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        if let Some((conn, _)) = guard.take() {
            let _ = conn.close(200, "reconnecting".into()).await;
        }
        let (conn, ch) = crate::within_setup_timeout("connecting the publisher", async {
            let conn = self.broker.connect(&self.name).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            self.topology.declare(&ch).await?;
            Ok((conn, ch))
        })
        .await?;
        *guard = Some((conn, ch.clone()));
        Ok(ch)
    }

    async fn forget(&self) {
        if let Some((conn, _)) = self.state.lock().await.take() {
            let _ = conn.close(200, "publish failed".into()).await;
        }
    }

    /// Checks that the broker is reachable (readiness probes).
    pub async fn check(&self) -> Result<(), BrokerError> {
        self.channel().await.map(|_| ())
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        props: BasicProperties,
    ) -> Result<(), BrokerError> {
        let ch = self.channel().await?;
        let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
        let confirm = match ch.basic_publish(exchange.into(), routing_key.into(), opts, payload, props).await {
            Ok(c) => c,
            Err(e) => {
                self.forget().await;
                return Err(e.into());
            }
        };
        match tokio::time::timeout(self.confirm_timeout, confirm).await {
            Err(_) => {
                self.forget().await;
                Err(BrokerError::ConfirmTimeout(self.confirm_timeout))
            }
            Ok(Err(e)) => {
                self.forget().await;
                Err(e.into())
            }
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => Err(BrokerError::Unroutable(format!("{exchange}/{routing_key}"))),
            Ok(Ok(Confirmation::Nack(_))) => Err(BrokerError::Nacked),
            Ok(Ok(Confirmation::NotRequested)) => {
                Err(BrokerError::Channel("confirms were not enabled on the channel".into()))
            }
        }
    }

    fn props(message_id: String, kind: &str) -> BasicProperties {
        BasicProperties::default()
            .with_delivery_mode(2) // persistent
            .with_content_type("application/json".into())
            .with_message_id(message_id.into())
            .with_type(kind.into())
    }

    /// Publishes a run for immediate execution, to its vendor's lane.
    pub async fn dispatch(&self, d: &Dispatch) -> Result<(), BrokerError> {
        self.dispatch_with(d, None).await
    }

    /// [`Publisher::dispatch`], carrying the trace the run belongs to in the
    /// message's `traceparent` header (see [`crate::traceparent`]).
    pub async fn dispatch_with(&self, d: &Dispatch, traceparent: Option<&str>) -> Result<(), BrokerError> {
        let body = serde_json::to_vec(d).expect("a dispatch always serializes");
        let props = crate::with_traceparent(Self::props(d.message_id(), "dispatch"), traceparent);
        self.publish(&self.topology.lanes_exchange(), &now_key(d.vendor), &body, props).await
    }

    /// Publishes many dispatches, waiting for all confirms together (the relay's batch).
    pub async fn dispatch_many(&self, ds: &[Dispatch]) -> Vec<Result<(), BrokerError>> {
        let futures = ds.iter().map(|d| self.dispatch(d));
        futures::future::join_all(futures).await
    }

    /// Publishes a run to come back after about `delay`, through the delay
    /// tier that fits, back to its vendor's lane. Returns the tier's delay (the run may arrive early and
    /// be sent round again for the rest).
    pub async fn dispatch_after(&self, d: &Dispatch, delay: Duration) -> Result<Duration, BrokerError> {
        self.dispatch_after_with(d, delay, None).await
    }

    /// [`Publisher::dispatch_after`] with the run's `traceparent` header (the
    /// delay queues keep a message's headers when they dead-letter it back).
    pub async fn dispatch_after_with(
        &self,
        d: &Dispatch,
        delay: Duration,
        traceparent: Option<&str>,
    ) -> Result<Duration, BrokerError> {
        let tier = tier_for(delay);
        let body = serde_json::to_vec(d).expect("a dispatch always serializes");
        let key = delay_key(tier, d.vendor);
        let props = crate::with_traceparent(Self::props(d.message_id(), "dispatch"), traceparent);
        self.publish(&self.topology.delay_exchange(), &key, &body, props).await?;
        Ok(tier)
    }

    /// Publishes a run that gave up to the dead-letter exchange.
    pub async fn dead_letter(&self, dl: &DeadLetter) -> Result<(), BrokerError> {
        let body = serde_json::to_vec(dl).expect("a dead letter always serializes");
        self.publish(&self.topology.dead_exchange(), "", &body, Self::props(format!("dead:{}", dl.run_id), "dead_run"))
            .await
    }

    /// Messages and consumers of each of the topology's queues (passive
    /// declares on the publishing channel), for metrics and status pages.
    pub async fn queue_depths(&self) -> Result<Vec<(String, u32, u32)>, BrokerError> {
        use lapin::options::QueueDeclareOptions;
        use lapin::types::FieldTable;
        let ch = self.channel().await?;
        let mut out = Vec::new();
        for q in self.topology.queues() {
            let passive = QueueDeclareOptions { passive: true, ..Default::default() };
            match ch.queue_declare(q.as_str().into(), passive, FieldTable::default()).await {
                Ok(info) => out.push((q, info.message_count(), info.consumer_count())),
                Err(e) => {
                    // A failed passive declare closes the channel.
                    self.forget().await;
                    return Err(e.into());
                }
            }
        }
        Ok(out)
    }

    pub async fn close(&self) {
        if let Some((conn, _)) = self.state.lock().await.take() {
            let _ = conn.close(200, "shutting down".into()).await;
        }
    }
}
