//! The worker: consumes dispatches from the work queue and executes runs.
//!
//! - manual acknowledgements, after the database records what happens next;
//! - bounded prefetch (`broker.prefetch`) and concurrency (`worker.concurrency`);
//! - reconnects with backoff when RabbitMQ goes away (unacknowledged
//!   deliveries are redelivered by the broker; stale ones are dropped);
//! - consumes only its share of the vendor lanes, held by lease in the
//!   database (`worker.lane_interval`, `worker.lane_lease`; see `lanes`), so
//!   that a fleet of workers runs every lane and a dead worker's pass on;
//! - on SIGTERM: stops consuming, lets in-flight runs finish for
//!   `worker.shutdown_grace`, then hands the rest back at their next step
//!   boundary (released in the database, requeued on the broker);
//! - a sweeper republishes runs whose dispatch was lost;
//! - notifications (`[notifications]`) about runs that need a person;
//! - `/metrics`, `/healthz`, `/readyz` on `worker.metrics_listen`.

mod consumer;
mod health;
mod lanes;
pub mod notify;
pub mod reconciler;

use anyhow::Context;
use lifecycle_broker::{Publisher, Topology};
use lifecycle_config::Settings;
use lifecycle_engine::{Executor, ExecutorConfig, Scheduler, Sweeper};
use lifecycle_ops::db::Storage;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub struct Running {
    pub metrics_addr: Option<SocketAddr>,
    pub worker_id: String,
    stop: CancellationToken,
    consumer: JoinHandle<()>,
    /// The lane keeper, and what tells it the consumer has settled its runs.
    keeper: JoinHandle<()>,
    drained: CancellationToken,
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Graceful stop: see the crate docs.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.consumer.await;
        // The runs settled: the keeper gives every lane up for the others.
        self.drained.cancel();
        let _ = self.keeper.await;
        for task in self.background {
            task.abort();
        }
    }

    /// Resolves if the consumer stops on its own (it does not, short of a bug).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.consumer).await.context("the consumer task failed")?;
        anyhow::bail!("the consumer stopped unexpectedly")
    }
}

/// Starts the worker; `build` is what `lifecycle_build_info` reports (the binary's, from `main`).
pub async fn build(settings: Settings, build: lifecycle_telemetry::BuildInfo) -> anyhow::Result<Running> {
    let metrics = lifecycle_telemetry::Metrics::install();
    build.record();
    let registry = lifecycle_vendors::build_registry(&settings).context("configuring vendors")?;
    if registry.vendors().is_empty() {
        tracing::warn!("no vendor is configured ([vendors.*]); every run will end dead until one is");
    }
    let db = lifecycle_ops::db::connect_settings(&settings.database).await.context("connecting to the database")?;
    if settings.database.migrate_on_start {
        lifecycle_ops::db::migrate(&db).await.context("applying database migrations")?;
    }
    let worker_id = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let topology = Topology::new(settings.broker.namespace.clone());
    let publisher = Arc::new(Publisher::new(
        lifecycle_broker::Endpoints::new(settings.broker.url.expose(), &settings.broker.addresses),
        "lifecycle-worker-publisher",
        topology.clone(),
        settings.broker.confirm_timeout,
    ));

    let stop = CancellationToken::new();
    // Cancelled after the grace period: runs stop at their next step boundary.
    let interrupt = CancellationToken::new();
    // The engine's storage (runs, journal, schedule) over this database.
    let storage = Storage::new(db.clone()).with_guard(lifecycle_ops::approvals::guard(&settings));
    // Concurrent runs' writes share commits (`database.group_commit`).
    let storage = Arc::new(if settings.database.group_commit { storage.with_group_commit() } else { storage });
    let executor = Executor::new(
        storage.clone(),
        storage.clone(),
        publisher.clone(),
        registry.clone(),
        ExecutorConfig {
            worker_id: worker_id.clone(),
            lease: settings.worker.lease,
            blocked_recheck: settings.worker.blocked_recheck,
            retry: settings.retry.clone(),
        },
        interrupt.clone(),
    );
    let connected = Arc::new(AtomicBool::new(false));

    let mut background = Vec::new();
    let sweeper =
        Sweeper::new(storage.clone(), publisher.clone(), settings.worker.sweep_interval, settings.worker.sweep_grace);
    background.push(tokio::spawn(sweeper.run(stop.clone())));
    // Due runs pass the storage's guard as they start: held past a threshold, or sent to an approver.
    let scheduler = Scheduler::new(storage.clone(), publisher.clone(), settings.worker.schedule_interval);
    background.push(tokio::spawn(scheduler.run(stop.clone())));
    if !settings.approval.rules.is_empty() {
        // Approvals' deadlines (`[approval]`): escalate once, then reject.
        let (db, publisher, stop) = (db.clone(), publisher.clone(), stop.clone());
        let every = settings.worker.schedule_interval.max(std::time::Duration::from_secs(1));
        background.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = lifecycle_ops::approvals::enforce_deadlines(&db, &publisher).await {
                            tracing::warn!(error = %e, "could not enforce approval deadlines; trying again next interval");
                        }
                    }
                }
            }
        }));
    }
    let reconciler = reconciler::Reconciler {
        db: db.clone(),
        registry: registry.clone(),
        settings: Arc::new(settings.reconcile.clone()),
        worker_id: worker_id.clone(),
    };
    background.push(tokio::spawn(reconciler.run(stop.clone())));
    if !settings.notifications.webhooks.is_empty() {
        let notifier = notify::Notifier::new(db.clone(), settings.notifications.clone(), worker_id.clone())
            .context("configuring notifications")?;
        background.push(tokio::spawn(notifier.run(stop.clone())));
    }

    let mut metrics_addr = None;
    if !settings.worker.metrics_listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&settings.worker.metrics_listen)
            .await
            .with_context(|| format!("binding the metrics listener to {}", settings.worker.metrics_listen))?;
        metrics_addr = Some(listener.local_addr()?);
        let app = health::router(health::HealthState {
            db: db.clone(),
            connected: connected.clone(),
            metrics,
            publisher: publisher.clone(),
            topology: topology.clone(),
        });
        // Only small GETs here: a short timeout, few at once, tiny bodies.
        let limits = lifecycle_listener::Limits::small();
        let app = lifecycle_listener::harden(app, &limits);
        let s = stop.clone();
        background.push(tokio::spawn(async move {
            lifecycle_listener::serve(listener, app, &limits, async move { s.cancelled().await }).await;
        }));
    }

    let (wanted_tx, wanted) = tokio::sync::watch::channel(lanes::Lanes::new());
    let (consuming, consuming_rx) = tokio::sync::watch::channel(lanes::Lanes::new());
    let keeper = lanes::Keeper {
        fleet: lifecycle_ops::lanes::Fleet::new(db.clone(), worker_id.clone(), settings.worker.lane_lease),
        interval: settings.worker.lane_interval,
        ttl: settings.worker.lane_lease,
        wanted: wanted_tx,
        consuming: consuming_rx,
        connected: connected.clone(),
    };
    let drained = CancellationToken::new();
    let keeper = tokio::spawn(keeper.run(stop.clone(), drained.clone()));
    let consumer = consumer::Consumer {
        url: lifecycle_broker::Endpoints::new(settings.broker.url.expose(), &settings.broker.addresses),
        topology,
        prefetch: settings.broker.prefetch,
        concurrency: settings.worker.concurrency,
        shutdown_grace: settings.worker.shutdown_grace,
        step_timeout: settings.worker.http_timeout,
        executor,
        connected,
        worker_id: worker_id.clone(),
        wanted,
        consuming,
    };
    let consumer = tokio::spawn(consumer.run(stop.clone(), interrupt));
    info!(%worker_id, vendors = ?registry.vendors(), "worker started");
    Ok(Running { metrics_addr, worker_id, stop, consumer, keeper, drained, background })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    info!("shutting down: finishing in-flight runs");
}
