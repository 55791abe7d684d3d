//! The consume loops: one connection, and per vendor lane its own channel,
//! prefetch and slots, so that a vendor that is slow or out of budget holds
//! only its own lane's slots. Every lane is a single-active-consumer queue:
//! RabbitMQ delivers it to one worker at a time (see the broker topology).

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use lifecycle_broker::lapin::message::Delivery;
use lifecycle_broker::lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lifecycle_broker::lapin::types::FieldTable;
use lifecycle_broker::lapin::{Acker, Channel, Connection};
use lifecycle_broker::{BrokerError, Topology};
use lifecycle_domain::VendorKind;
use lifecycle_engine::{Disposition, Executor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
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

    /// Consumes every lane until `stop` (returns the connection, to close
    /// after the in-flight runs are acknowledged) or until the connection breaks.
    async fn session(
        &self,
        stop: &CancellationToken,
        permits: &[(VendorKind, Arc<Semaphore>)],
        tasks: &mut JoinSet<()>,
    ) -> Result<(Connection, Vec<Channel>), BrokerError> {
        // Bounded: a broker that accepts the connection and then does not
        // answer must cost one retried attempt, not the worker's lanes for good.
        let (conn, channels, mut lanes, mut spawn_rx) =
            lifecycle_broker::within_setup_timeout("consuming every lane", async {
                let conn =
                    lifecycle_broker::connect(&self.url, &format!("lifecycle-worker {}", self.worker_id)).await?;
                let setup = conn.create_channel().await?;
                self.topology.declare(&setup).await?;
                let _ = setup.close(200, "declared".into()).await;
                let (spawn_tx, spawn_rx) = mpsc::channel::<(Delivery, OwnedSemaphorePermit)>(1);
                let mut lanes = JoinSet::new();
                let mut channels = Vec::new();
                for (vendor, slots) in permits {
                    let ch = conn.create_channel().await?;
                    channels.push(ch.clone());
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
                    lanes.spawn(lane(ch, tag, deliveries, slots.clone(), spawn_tx.clone(), stop.clone()));
                }
                Ok((conn, channels, lanes, spawn_rx))
            })
            .await?;
        self.connected.store(true, Ordering::Relaxed);
        info!(
            lanes = permits.len(),
            prefetch = self.prefetch,
            concurrency = self.concurrency,
            "consuming every vendor lane (prefetch and concurrency are per lane)"
        );
        let executor = self.executor.clone();
        let result = pump(&mut lanes, &mut spawn_rx, stop, |delivery, permit| {
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
        })
        .await;
        // Stop the other lanes too, and hand over what they still hold.
        drop(spawn_rx);
        lanes.shutdown().await;
        result.map(|()| (conn, channels))
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

type Lanes = JoinSet<Result<(), BrokerError>>;
type Handed<T> = mpsc::Receiver<(T, OwnedSemaphorePermit)>;

/// Hands each delivery the lanes pass on to `run`, until a lane fails or every
/// lane has ended. Ok only when asked to stop: when the connection breaks,
/// every lane ends with an error and drops its sender, so the channel's end
/// can be seen before any lane's error, and taken for a stop it ended the
/// worker process on a broker restart.
async fn pump<T>(
    lanes: &mut Lanes,
    handed: &mut Handed<T>,
    stop: &CancellationToken,
    mut run: impl FnMut(T, OwnedSemaphorePermit),
) -> Result<(), BrokerError> {
    let all_lanes_ended = || {
        if stop.is_cancelled() {
            Ok(())
        } else {
            Err(BrokerError::Channel("every lane's consumer ended while the worker runs".into()))
        }
    };
    loop {
        tokio::select! {
            // A lane's error first: it says why.
            biased;
            ended = lanes.join_next() => match ended {
                Some(Ok(Err(e))) => return Err(e),
                Some(Ok(Ok(()))) => {}
                Some(Err(e)) => return Err(BrokerError::Channel(format!("a lane's consumer failed: {e}"))),
                None => return all_lanes_ended(),
            },
            next = handed.recv() => match next {
                Some((delivery, permit)) => run(delivery, permit),
                None => return all_lanes_ended(),
            },
        }
    }
}

/// One lane: takes a slot, then the next delivery, and hands both to the
/// session, which runs it. Ends when `stop` is cancelled (after cancelling its
/// consumer, so the broker gives its lane to another worker) or the consumer
/// fails.
async fn lane(
    ch: Channel,
    tag: String,
    mut deliveries: lifecycle_broker::lapin::Consumer,
    slots: Arc<Semaphore>,
    spawn: mpsc::Sender<(Delivery, OwnedSemaphorePermit)>,
    stop: CancellationToken,
) -> Result<(), BrokerError> {
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let next = tokio::select! {
            _ = stop.cancelled() => break,
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
    let _ = ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lanes that end as a broken connection ends them: each with an error,
    /// dropping its sender as it goes.
    fn broken_lanes(n: usize) -> (Lanes, Handed<()>) {
        let (tx, rx) = mpsc::channel(1);
        let mut lanes = JoinSet::new();
        for i in 0..n {
            let tx = tx.clone();
            lanes.spawn(async move {
                drop(tx);
                Err(BrokerError::Connect(format!("lane {i}: connection reset")))
            });
        }
        (lanes, rx)
    }

    /// However the lanes' ends and the channel's end interleave, a broken
    /// connection is an error (the worker reconnects), never a stop.
    #[tokio::test]
    async fn lanes_ended_by_a_broken_connection_are_an_error_not_a_stop() {
        for _ in 0..200 {
            let (mut lanes, mut handed) = broken_lanes(5);
            // Let every lane end before the pump looks: both ends are ready.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let result = pump(&mut lanes, &mut handed, &CancellationToken::new(), |_, _| {}).await;
            assert!(result.is_err(), "a broken connection was taken for a stop");
        }
    }

    #[tokio::test]
    async fn lanes_that_end_when_asked_to_stop_are_a_clean_stop() {
        let (tx, mut handed) = mpsc::channel::<((), OwnedSemaphorePermit)>(1);
        let mut lanes: Lanes = JoinSet::new();
        for _ in 0..5 {
            let tx = tx.clone();
            lanes.spawn(async move {
                drop(tx);
                Ok(())
            });
        }
        drop(tx);
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(pump(&mut lanes, &mut handed, &stop, |_, _| {}).await.is_ok());
    }
}
