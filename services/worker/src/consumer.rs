//! The consume loops: one connection, and per vendor lane its own channel,
//! prefetch and slots, so that a vendor that is slow or out of budget holds
//! only its own lane's slots. A worker consumes the lanes it holds (the lane
//! keeper, `crate::lanes`, says which), and follows as they change. Every
//! lane is still a single-active-consumer queue: even during a handover
//! RabbitMQ delivers it to one worker at a time (see the broker topology).

use crate::lanes::Lanes as LaneSet;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use lifecycle_broker::lapin::message::Delivery;
use lifecycle_broker::lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lifecycle_broker::lapin::types::FieldTable;
use lifecycle_broker::lapin::{Acker, Channel, Connection, Event};
use lifecycle_broker::{BrokerError, Topology};
use lifecycle_domain::VendorKind;
use lifecycle_engine::{Disposition, Executor};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct Consumer {
    pub url: lifecycle_broker::Endpoints,
    pub topology: Topology,
    /// Per lane.
    pub prefetch: u16,
    /// Per lane: runs of one vendor executing at once in this worker.
    pub concurrency: usize,
    pub shutdown_grace: Duration,
    pub step_timeout: Duration,
    pub executor: Executor,
    pub connected: Arc<AtomicBool>,
    pub worker_id: String,
    /// The lanes to consume (the keeper's).
    pub wanted: watch::Receiver<LaneSet>,
    /// The lanes consumed or still being given up (for the keeper).
    pub consuming: watch::Sender<LaneSet>,
}

impl Consumer {
    pub async fn run(self, stop: CancellationToken, interrupt: CancellationToken) {
        let mut tasks = JoinSet::new();
        let permits: Vec<(VendorKind, Arc<Semaphore>)> =
            VendorKind::ALL.into_iter().map(|v| (v, Arc::new(Semaphore::new(self.concurrency)))).collect();
        let backoff = || {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(15))
                .with_jitter()
                .without_max_times()
                .build()
        };
        let mut delays = backoff();
        let mut connection: Option<(Connection, Vec<Channel>)> = None;
        while !stop.is_cancelled() {
            match self.session(&stop, &permits, &mut tasks).await {
                Ok(conn) => {
                    connection = Some(conn);
                    break;
                }
                Err(e) => {
                    self.connected.store(false, Ordering::Relaxed);
                    let wait = delays.next().unwrap_or(Duration::from_secs(15));
                    warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "lost RabbitMQ; reconnecting");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {},
                    }
                    // A connection that worked resets the backoff.
                    if self.connected.load(Ordering::Relaxed) {
                        delays = backoff();
                    }
                }
            }
        }
        self.drain(tasks, interrupt).await;
        if let Some((conn, channels)) = connection {
            // Channels first: closing the connection under open channels makes
            // lapin log an ERROR ("invalid channel state: Closing") on every
            // clean stop, which would page whoever alerts on ERROR.
            for ch in channels {
                let _ = ch.close(200, "worker stopped".into()).await;
            }
            let _ = conn.close(200, "worker stopped".into()).await;
        }
        self.connected.store(false, Ordering::Relaxed);
        info!("worker stopped");
    }

    /// Consumes the lanes the keeper holds (`wanted`), following its changes,
    /// until `stop` (returns the connection and its lanes' channels, to close
    /// after the in-flight runs are acknowledged) or until the connection breaks.
    async fn session(
        &self,
        stop: &CancellationToken,
        permits: &[(VendorKind, Arc<Semaphore>)],
        tasks: &mut JoinSet<()>,
    ) -> Result<(Connection, Vec<Channel>), BrokerError> {
        // Bounded: a broker that accepts the connection and then does not
        // answer must cost one retried attempt, not the worker's lanes for good.
        let conn = lifecycle_broker::within_setup_timeout("connecting and declaring the topology", async {
            let conn = lifecycle_broker::connect(&self.url, &format!("lifecycle-worker {}", self.worker_id)).await?;
            let setup = conn.create_channel().await?;
            self.topology.declare(&setup).await?;
            let _ = setup.close(200, "declared".into()).await;
            Ok(conn)
        })
        .await?;
        let mut events = conn.events_listener();
        self.connected.store(true, Ordering::Relaxed);
        info!(
            prefetch = self.prefetch,
            concurrency = self.concurrency,
            "connected; consuming the lanes this worker holds (prefetch and concurrency are per lane)"
        );
        let (spawn_tx, mut spawn_rx) = mpsc::channel::<(Delivery, OwnedSemaphorePermit)>(1);
        let mut lanes: Lanes = JoinSet::new();
        let mut active: BTreeMap<VendorKind, Active> = BTreeMap::new();
        let mut wanted = self.wanted.clone();
        // A connection that died quietly shows here at the latest.
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let executor = self.executor.clone();
        let mut result = self.follow(&conn, permits, &mut active, &mut lanes, &spawn_tx, stop).await;
        while result.is_ok() && !stop.is_cancelled() {
            tokio::select! {
                // A lane's end first: an error says why.
                biased;
                _ = stop.cancelled() => break,
                ended = lanes.join_next(), if !lanes.is_empty() => match ended {
                    Some(Ok((vendor, Ok(())))) => {
                        active.remove(&vendor);
                        info!(lane = %vendor, "stopped consuming the lane; its runs have settled");
                    }
                    Some(Ok((_, Err(e)))) => result = Err(e),
                    Some(Err(e)) => result = Err(BrokerError::Channel(format!("a lane's consumer failed: {e}"))),
                    None => {}
                },
                next = spawn_rx.recv() => if let Some((delivery, permit)) = next {
                    // Reap finished tasks so the set does not grow.
                    while tasks.try_join_next().is_some() {}
                    let executor = executor.clone();
                    tasks.spawn(async move {
                        // The run's trace travels in the message's `traceparent` header.
                        let traceparent = lifecycle_broker::traceparent(&delivery.properties);
                        let disposition = executor.handle_traced(&delivery.data, traceparent.as_deref()).await;
                        settle(&delivery.acker, disposition).await;
                        drop(permit);
                    });
                },
                // Other events (and a listener that ended) leave the branch idle until the next turn.
                Some(Event::Error(e)) = events.next() => result = Err(BrokerError::Connect(e.to_string())),
                _ = check.tick() => if !conn.status().connected() {
                    result = Err(BrokerError::Connect("the connection is closed".into()));
                },
                _ = wanted.changed() => {}
            }
            if result.is_ok() && !stop.is_cancelled() {
                result = self.follow(&conn, permits, &mut active, &mut lanes, &spawn_tx, stop).await;
            }
        }
        // A delivery handed over and not started goes back with its channel.
        drop(spawn_rx);
        if result.is_ok() {
            // Asked to stop: each lane cancels its consumer; what is in flight
            // settles on its channel, closed after the drain.
            let all = async { while lanes.join_next().await.is_some() {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), all).await;
        }
        lanes.shutdown().await;
        let channels: Vec<Channel> = active.into_values().map(|a| a.channel).collect();
        self.consuming.send_replace(BTreeSet::new());
        result.map(|()| (conn, channels))
    }

    /// Starts a consumer for each wanted lane not consumed yet, and gives up
    /// each consumed lane no longer wanted (its task ends once its runs settle).
    async fn follow(
        &self,
        conn: &Connection,
        permits: &[(VendorKind, Arc<Semaphore>)],
        active: &mut BTreeMap<VendorKind, Active>,
        lanes: &mut Lanes,
        spawn: &mpsc::Sender<(Delivery, OwnedSemaphorePermit)>,
        stop: &CancellationToken,
    ) -> Result<(), BrokerError> {
        let wanted = self.wanted.borrow().clone();
        for (vendor, a) in active.iter() {
            if !wanted.contains(vendor) && !a.give_up.is_cancelled() {
                info!(lane = %vendor, "giving the lane up: cancelling its consumer, letting its runs finish");
                a.give_up.cancel();
            }
        }
        for (vendor, slots) in permits {
            if !wanted.contains(vendor) || active.contains_key(vendor) {
                continue;
            }
            let (ch, deliveries, tag) = lifecycle_broker::within_setup_timeout("consuming a lane", async {
                let ch = conn.create_channel().await?;
                // Prefetch is per channel, so per lane.
                ch.basic_qos(self.prefetch, BasicQosOptions::default()).await?;
                let queue = self.topology.lane_queue(*vendor);
                let tag = format!("worker-{}-{}", self.worker_id, vendor);
                let deliveries = ch
                    .basic_consume(
                        queue.as_str().into(),
                        tag.as_str().into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                Ok((ch, deliveries, tag))
            })
            .await?;
            info!(lane = %vendor, "consuming the lane");
            let give_up = CancellationToken::new();
            let lane = Lane {
                ch: ch.clone(),
                tag,
                slots: slots.clone(),
                concurrency: self.concurrency,
                grace: self.shutdown_grace,
            };
            let (spawn, stop, token, vendor) = (spawn.clone(), stop.clone(), give_up.clone(), *vendor);
            lanes.spawn(async move { (vendor, lane.run(deliveries, spawn, stop, token).await) });
            active.insert(vendor, Active { channel: ch, give_up });
        }
        self.consuming.send_if_modified(|c| {
            let now: BTreeSet<VendorKind> = active.keys().copied().collect();
            let changed = *c != now;
            *c = now;
            changed
        });
        Ok(())
    }

    /// Lets in-flight runs finish for the grace period, then asks them to
    /// stop at their next step boundary, then gives up on stragglers (their
    /// deliveries are redelivered and their leases expire).
    async fn drain(&self, mut tasks: JoinSet<()>, interrupt: CancellationToken) {
        if tasks.is_empty() {
            return;
        }
        info!(in_flight = tasks.len(), grace_s = self.shutdown_grace.as_secs(), "waiting for in-flight runs");
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.shutdown_grace, all).await.is_ok() {
            return;
        }
        warn!(in_flight = tasks.len(), "grace period over: handing runs back at their next step boundary");
        interrupt.cancel();
        let rest = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.step_timeout + Duration::from_secs(5), rest).await.is_err() {
            warn!(
                in_flight = tasks.len(),
                "abandoning runs still in a step; their leases will expire and they will be retried"
            );
            tasks.abort_all();
        }
    }
}

type Lanes = JoinSet<(VendorKind, Result<(), BrokerError>)>;

/// A lane this worker consumes, or is still giving up.
struct Active {
    channel: Channel,
    /// Cancelled when the lane is given up.
    give_up: CancellationToken,
}

/// One lane's consumer.
struct Lane {
    ch: Channel,
    tag: String,
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// How long a lane given up waits for its runs before its channel closes anyway.
    grace: Duration,
}

impl Lane {
    /// Takes a slot, then the next delivery, and hands both to the session,
    /// which runs it. Ends when the consumer fails; when the worker stops
    /// (after cancelling its consumer; the session closes the channel once
    /// the runs settle); or when the lane is given up: then it cancels its
    /// consumer, waits for its runs to settle, and closes its channel, which
    /// returns the deliveries prefetched and not started to the queue.
    async fn run(
        self,
        mut deliveries: lifecycle_broker::lapin::Consumer,
        spawn: mpsc::Sender<(Delivery, OwnedSemaphorePermit)>,
        stop: CancellationToken,
        give_up: CancellationToken,
    ) -> Result<(), BrokerError> {
        loop {
            let permit = tokio::select! {
                _ = stop.cancelled() => break,
                _ = give_up.cancelled() => break,
                p = self.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                _ = give_up.cancelled() => break,
                next = deliveries.next() => next,
            };
            let delivery = match next {
                None => return Err(BrokerError::Connect("the consumer was closed by the broker".into())),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(d)) => d,
            };
            if spawn.send((delivery, permit)).await.is_err() {
                // The session is gone; the delivery goes back with the channel.
                break;
            }
        }
        let _ = self.ch.basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default()).await;
        if stop.is_cancelled() || !give_up.is_cancelled() {
            return Ok(());
        }
        // Every slot back: the lane's runs have settled on this channel.
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let settled = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            s = tokio::time::timeout(self.grace, self.slots.acquire_many(all)) => s.is_ok(),
        };
        if !settled {
            warn!(tag = %self.tag, "a lane given up still has runs after the grace period: closing its channel anyway (they are redelivered)");
        }
        let _ = self.ch.close(200, "lane given up".into()).await;
        Ok(())
    }
}

async fn settle(acker: &Acker, disposition: Disposition) {
    let result = match disposition {
        Disposition::Ack => acker.ack(BasicAckOptions::default()).await,
        Disposition::DeadLetter => acker.reject(BasicRejectOptions { requeue: false }).await,
        Disposition::Requeue => acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await,
    };
    if let Err(e) = result {
        // The channel is gone: the broker redelivers, and the database says
        // the message is stale or the run finished.
        warn!(error = %e, "could not settle a delivery");
    }
}
