//! The producer: HR and identity-provider events in, RabbitMQ messages out.
//!
//! `POST /v1/events` authenticates the caller, validates the event, and in
//! one database transaction stores it under its idempotency key together with
//! one run per vendor and one outbox row per run; then it answers 202. The
//! [`relay`] publishes outbox rows with publisher confirms and marks them
//! sent, so an event accepted while RabbitMQ is down is published when it
//! returns, and nothing is published that was not stored.

pub mod problem;
pub mod push;
pub mod relay;
mod routes;
pub mod scim;

/// The intake's router over a ready [`AppState`], to serve it without a
/// socket: `fuzz/`'s targets drive it in-process ([`build`] serves it).
pub use routes::{hris::HrisIntake, pipedrive_webhook::BasicCredentials, router};

use anyhow::Context;
use axum::Router;
use lifecycle_broker::{Publisher, Topology};
use lifecycle_config::{Secret, Settings};
use lifecycle_ops::db::Db;
use lifecycle_telemetry::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Where `POST /v1/events` stores events (grouped commits unless `database.group_commit = false`).
    pub intake: lifecycle_ops::intake::Writer,
    /// With their labels (audit rows name them) and scopes (`plans`).
    pub intake_tokens: Arc<Vec<lifecycle_config::IntakeToken>>,
    pub max_body_bytes: usize,
    pub relay_wake: Arc<Notify>,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    /// Basic credentials for `POST /v1/webhooks/pipedrive`; None: not served.
    pub pipedrive_webhook: Option<Arc<routes::pipedrive_webhook::BasicCredentials>>,
    pub webhook_max_body_bytes: usize,
    /// Lead times of scheduled runs (`[schedule]`).
    pub schedule: Arc<lifecycle_config::ScheduleSettings>,
    /// The SCIM endpoint's tokens and mapping (`[scim]`).
    pub scim: Arc<scim::ScimConfig>,
    /// The configured vendors (the admin's reconcile reads them).
    pub vendors: lifecycle_ops::Vendors,
    /// The vendors as `POST /v1/plans` reads them (never writes): their own
    /// limiters, at [`PLANS_BUDGET_SHARE`] of each vendor's budget.
    pub plans_registry: lifecycle_engine::Registry,
    /// The HR systems' receivers (`POST /v1/hr/{source}`, `[hris]`).
    pub hris: Arc<HrisIntake>,
}

/// A started producer. Tests and the demo start it on port 0 and read `addr`.
pub struct Running {
    pub addr: SocketAddr,
    /// The admin API and console, when they started (see `lifecycle_admin::bind`).
    pub admin_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, stops the relay.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The share of each vendor's documented (or configured) request budget that
/// `POST /v1/plans` may spend, from limiters of its own: plans cannot starve
/// the workers' runs of a vendor's budget. Vendors that publish no budget
/// (Jira, CrowdStrike) are paced by their 429s alone, as in the workers.
pub const PLANS_BUDGET_SHARE: f64 = 0.25;

/// The settings the plans' connectors are built from: each vendor's
/// `rate_limit.share` times [`PLANS_BUDGET_SHARE`].
pub fn plans_settings(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    let common = lifecycle_vendors::registry::Common {
        http_timeout: settings.worker.http_timeout,
        allow_plain_http: settings.worker.allow_plain_http,
    };
    for (&vendor, table) in s.vendors.iter_mut() {
        let mut shared = table.clone();
        let Some(fields) = shared.as_object_mut() else { continue };
        let limit = fields.entry("rate_limit").or_insert_with(|| serde_json::json!({}));
        if let Some(limit) = limit.as_object_mut() {
            let share = limit.get("share").and_then(serde_json::Value::as_f64).unwrap_or(1.0);
            limit.insert("share".into(), serde_json::json!(share * PLANS_BUDGET_SHARE));
        }
        // Only a vendor with a budget has a `rate_limit` (every table refuses unknown keys), so
        // its connector accepting the share is what says so: no list of vendors to keep here.
        if lifecycle_vendors::registry::connector(vendor, &shared, &common).is_ok() {
            *table = shared;
        }
    }
    s
}

/// Starts the producer; `build` is what `GET /api/v1/version` and
/// `lifecycle_build_info` report (the binary's, from `main`).
pub async fn build(settings: Settings, build: lifecycle_telemetry::BuildInfo) -> anyhow::Result<Running> {
    anyhow::ensure!(
        !settings.producer.intake_tokens.is_empty(),
        "no intake token is configured: set producer.intake_tokens (or LIFECYCLE_PRODUCER__INTAKE_TOKENS)"
    );
    let metrics = Metrics::install();
    build.record();
    let db = lifecycle_ops::db::connect_settings(&settings.database).await.context("connecting to the database")?;
    if settings.database.migrate_on_start {
        lifecycle_ops::db::migrate(&db).await.context("applying database migrations")?;
    }
    let topology = Topology::new(settings.broker.namespace.clone());
    let publisher = Arc::new(Publisher::new(
        lifecycle_broker::Endpoints::new(settings.broker.url.expose(), &settings.broker.addresses),
        "lifecycle-producer",
        topology,
        settings.broker.confirm_timeout,
    ));
    // Declares the topology; the intake works without the broker, so only warn.
    if let Err(e) = publisher.check().await {
        warn!(error = %e, "RabbitMQ is unreachable; events will be kept and published when it returns");
    }

    // The producer only reads vendors (plans, and the admin's reconcile);
    // a vendor table it cannot use leaves that vendor out, as the worker
    // would refuse to start with it.
    let registry = lifecycle_vendors::registry::build_registry(&settings).unwrap_or_else(|e| {
        tracing::error!("{e}; plans and reconcile leave the vendors out");
        lifecycle_engine::Registry::new()
    });
    let vendors = lifecycle_ops::Vendors::new(registry, &settings);
    // `POST /v1/plans` reads through connectors of its own, whose limiters
    // allow a small share of each vendor's budget (see `plans_settings`).
    let plans_registry = lifecycle_vendors::registry::build_registry(&plans_settings(&settings))
        .unwrap_or_else(|_| lifecycle_engine::Registry::new());
    // Each [hris.<source>] table is checked here: a bad one stops start-up.
    let hris_sources = lifecycle_hris::Sources::from_settings(&settings.hris, settings.worker.http_timeout)
        .context("reading [hris]")?;
    let state = AppState {
        db: db.clone(),
        intake: lifecycle_ops::intake::Writer::new(db.clone(), settings.database.group_commit),
        intake_tokens: Arc::new(settings.producer.intake_tokens.clone()),
        max_body_bytes: settings.producer.max_body_bytes,
        relay_wake: Arc::new(Notify::new()),
        publisher: publisher.clone(),
        metrics,
        pipedrive_webhook: pipedrive_webhook_credentials(&settings),
        webhook_max_body_bytes: settings.producer.pipedrive_webhook.max_body_bytes,
        schedule: Arc::new(settings.schedule.clone()),
        scim: Arc::new(scim::ScimConfig::new(&settings.scim)),
        vendors: vendors.clone(),
        plans_registry,
        hris: Arc::new(HrisIntake {
            sources: hris_sources.clone(),
            max_body_bytes: settings.hris.max_body_bytes,
            wake: Arc::new(Notify::new()),
        }),
    };
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let relay = relay::Relay::new(
        db.clone(),
        publisher.clone(),
        state.relay_wake.clone(),
        settings.producer.relay_interval,
        settings.producer.relay_batch,
    );
    tasks.spawn(relay.run(shutdown.clone()));

    // HR deliveries, from stored to events (`lifecycle_ops::hris`).
    if !hris_sources.is_empty() {
        let processor = lifecycle_ops::hris::Processor {
            db: db.clone(),
            sources: hris_sources,
            settings: Arc::new(settings.hris.clone()),
            schedule: state.schedule.clone(),
            guard: vendors.safety.clone(),
            owner: format!("producer-{}", uuid::Uuid::new_v4()),
        };
        let (wake, relay_wake, stop) = (state.hris.wake.clone(), state.relay_wake.clone(), shutdown.clone());
        tasks.spawn(processor.run(wake, move || relay_wake.notify_one(), async move { stop.cancelled().await }));
    }
    // Entra's bulkUpload requests, worked through after their 202 (`scim::bulk`).
    tasks.spawn(scim::bulk::run(state.clone(), shutdown.clone()));
    // Big SCIM group writes' pushes, their members' events made in batches (`lifecycle_ops::push`).
    tasks.spawn(push::run(state.clone(), shutdown.clone()));

    // The admin API and console, on their own listener. When they cannot start
    // (no password, say) the intake still does: operators have the ctl.
    let admin_addr = match lifecycle_admin::bind(
        &settings.admin,
        &settings.producer.listen,
        db.clone(),
        publisher.clone(),
        vendors,
        build,
        shutdown.clone(),
    )
    .await
    {
        Ok(Some(admin)) => {
            tasks.spawn(admin.server);
            Some(admin.addr)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    };

    // `/metrics` on a listener of its own when `producer.metrics_listen` is set.
    if !settings.producer.metrics_listen.is_empty() {
        let listen = &settings.producer.metrics_listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the metrics listener to {listen}"))?;
        info!(addr = %listener.local_addr()?, "metrics served");
        let (app, stop) = (routes::metrics_router(state.clone()), shutdown.clone());
        tasks.spawn(async move {
            let limits = lifecycle_listener::Limits::small();
            lifecycle_listener::serve(listener, app, &limits, async move { stop.cancelled().await }).await;
        });
    }

    let limits = routes::limits(&settings.producer, &state.scim);
    let app: Router = routes::router(state, &settings.producer);
    let listener = tokio::net::TcpListener::bind(&settings.producer.listen)
        .await
        .with_context(|| format!("binding the intake listener to {}", settings.producer.listen))?;
    let addr = listener.local_addr()?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        lifecycle_listener::serve(listener, app, &limits, async move { stop.cancelled().await }).await;
    });
    info!(%addr, "producer started");
    Ok(Running { addr, admin_addr, shutdown, tasks })
}

fn pipedrive_webhook_credentials(settings: &Settings) -> Option<Arc<routes::pipedrive_webhook::BasicCredentials>> {
    let w = &settings.producer.pipedrive_webhook;
    match (&w.username, &w.password) {
        (Some(username), Some(password)) => Some(Arc::new(routes::pipedrive_webhook::BasicCredentials {
            username: Secret::new(username.clone()),
            password: password.clone(),
        })),
        _ => {
            info!("producer.pipedrive_webhook.username/password not set: POST /v1/webhooks/pipedrive answers 404");
            None
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};

    #[test]
    fn plans_take_a_share_of_every_budget_and_leave_vendors_without_one_alone() {
        let toml = r#"
            [vendors.calendly]
            token = "t"
            rate_limit = { share = 0.5 }
            [vendors.circleci]
            token = "t"
            org_slug = "gh/acme"
            [vendors.jira]
            base_url = "https://acme.atlassian.net/rest/api/3"
            email = "it@example.com"
            api_token = "t"
        "#;
        let settings = Settings::from_figment(figment::Figment::from(Toml::string(toml))).unwrap();
        let plans = plans_settings(&settings);
        use lifecycle_domain::VendorKind::{Calendly, Circleci, Jira};
        assert_eq!(plans.vendors[&Calendly]["rate_limit"]["share"], serde_json::json!(0.5 * PLANS_BUDGET_SHARE));
        assert_eq!(plans.vendors[&Circleci]["rate_limit"]["share"], serde_json::json!(PLANS_BUDGET_SHARE));
        assert_eq!(plans.vendors[&Jira], settings.vendors[&Jira], "Jira publishes no budget: no rate_limit");
        lifecycle_vendors::registry::build_registry(&plans).expect("the plans' tables are accepted");
    }
}
