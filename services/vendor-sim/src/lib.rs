//! The vendor simulator: one HTTP server that stands in for the admin APIs of the six vendors
//! (docs/contract.md §5), so tests and benchmarks never talk to a real vendor.
//!
//! Each vendor lives under its own path prefix and behaves as its page in
//! `docs/vendors/` says, quirks included. Control endpoints under `/_sim/` let a
//! test read the state, reset or seed it, change knobs and inject faults.
//!
//! Each vendor is a folder of the same shape (`mod`, `model`, `state`, `seed`, `wire`,
//! `handlers`: see the README) registered in [`registry`]; what they all read from a request is
//! written once in `extract`, and every credential is a [`Token`].
//!
//! How a request to a vendor flows (outermost first):
//! 1. [`calls::record`] writes it to the call log and the counters once it is answered;
//! 2. [`calls::tag_route`] notes which route template matched (for the per-route counters);
//! 3. [`faults::inject`] applies the first matching fault, if any;
//! 4. the vendor's own guard (auth, then rate limiting), then its handler.
//!
//! Start it in a test with [`build`] on port 0 and talk to [`Running::addr`].

pub mod calls;
pub mod control;
pub mod exchanges;
mod extract;
pub mod faults;
pub mod ratelimit;
pub mod registry;
mod sender;
pub mod sim;
pub mod token;

// The vendors, each registered in `registry::vendors!` and with its `Flags` in `Config`.
pub mod bamboohr;
pub mod calendly;
pub mod circleci;
pub mod crowdstrike;
pub mod github;
pub mod hibob;
pub mod jira;
pub mod personio;
pub mod pipedrive;

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use registry::Vendor;
pub use sim::Sim;
pub use token::Token;

/// Start-up settings. Every flag can also come from a `SIM_*` environment variable.
///
/// Vendor-specific flags live beside the vendor that reads them and are flattened in here.
/// Credentials are [`Token`]s, so `Debug` shows none of them.
#[derive(Clone, Debug, clap::Args)]
#[command(about = None, long_about = None)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:9900")]
    pub listen: SocketAddr,

    /// Disable every vendor's rate limiting (for throughput benchmarks). `/_sim/config` can
    /// still turn a vendor's limiter back on at runtime.
    #[arg(long, env = "SIM_NO_RATE_LIMITS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_rate_limits: bool,

    /// Data present at start-up.
    #[arg(long, env = "SIM_FIXTURE", value_enum, default_value_t = Fixture::Default)]
    pub fixture: Fixture,

    #[command(flatten)]
    pub pipedrive: pipedrive::Flags,

    #[command(flatten)]
    pub bamboohr: bamboohr::Flags,

    #[command(flatten)]
    pub crowdstrike: crowdstrike::Flags,

    #[command(flatten)]
    pub circleci: circleci::Flags,

    #[command(flatten)]
    pub calendly: calendly::Flags,

    #[command(flatten)]
    pub jira: jira::Flags,

    #[command(flatten)]
    pub github: github::Flags,

    #[command(flatten)]
    pub hibob: hibob::Flags,

    #[command(flatten)]
    pub personio: personio::Flags,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9900)),
            no_rate_limits: false,
            fixture: Fixture::Default,
            pipedrive: pipedrive::Flags::default(),
            crowdstrike: crowdstrike::Flags::default(),
            circleci: circleci::Flags::default(),
            calendly: calendly::Flags::default(),
            jira: jira::Flags::default(),
            github: github::Flags::default(),
            hibob: hibob::Flags::default(),
            bamboohr: bamboohr::Flags::default(),
            personio: personio::Flags::default(),
        }
    }
}

impl Config {
    /// The default settings on 127.0.0.1 and a free port: what tests want.
    pub fn ephemeral() -> Self {
        Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..Config::default() }
    }
}

/// Which data the tenants hold at start-up and after `POST /_sim/reset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fixture {
    /// Only the accounts that own each tenant's credentials.
    Empty,
    /// A small realistic tenant per vendor (see each vendor module).
    #[default]
    Default,
}

/// A started simulator. Keep it alive for as long as the simulator should serve: dropping it
/// starts a graceful shutdown. Call [`Running::shutdown`] to stop it and wait until it has.
pub struct Running {
    /// The address it is bound to (the real port when started on port 0).
    pub addr: SocketAddr,
    /// The shared state, for in-process inspection.
    pub sim: Sim,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// `http://ADDR`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL a client of `vendor` is configured with, e.g. `http://ADDR/pipedrive` (Pipedrive's company root, serving `/api/v1` and `/api/v2`).
    pub fn base_url(&self, vendor: Vendor) -> String {
        format!("http://{}{}", self.addr, vendor.prefix())
    }

    /// Stop accepting connections, let in-flight requests finish, and wait for the server.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("simulator task panicked")?.context("simulator server failed")
    }
}

/// Bind the listener and start serving in the background.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Vendors that build URIs from their own address (Calendly) need the real port.
    let sim = Sim::new(Config { listen: addr, ..config });
    let app = app(sim.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, "vendor simulator started");
    Ok(Running { addr, sim, stop, task })
}

/// The whole HTTP surface: control endpoints plus every registered vendor under its prefix.
pub fn app(sim: Sim) -> Router {
    let mut app = control::router();
    for &vendor in Vendor::ALL {
        let mounts =
            std::iter::once((vendor.prefix(), vendor.router(sim.clone()))).chain(vendor.extra_mounts(sim.clone()));
        for (path, router) in mounts {
            let routes = router
                .route_layer(from_fn_with_state((sim.clone(), vendor), faults::inject))
                .route_layer(from_fn(calls::tag_route))
                .layer(from_fn_with_state((sim.clone(), vendor), calls::record));
            app = app.nest(path, routes);
        }
    }
    app.fallback(control::not_found).with_state(sim)
}
