//! `lifecycle-worker`: executes runs (see the crate docs).

use anyhow::Context;
use clap::Parser;
use lifecycle_config::Settings;
use std::path::PathBuf;

// The system allocator was a tenth of the worker's CPU under load (many small
// short-lived buffers: JSON, SQL, HTTP); mimalloc serves them from per-thread
// free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Consumes runs from RabbitMQ and executes their vendor workflows.
///
/// Configuration: a TOML file and LIFECYCLE_* environment variables (docs/operators/settings.md).
#[derive(Parser)]
#[command(version = lifecycle_build_info::LONG_VERSION, about)]
struct Args {
    /// TOML configuration file (default: $LIFECYCLE_CONFIG, else ./lifecycle.toml if present).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref()).context("loading configuration")?;
    // Flushes the last spans when main returns, however it returns.
    let _telemetry = lifecycle_telemetry::init(&settings.log.format, "lifecycle-worker", &settings.telemetry);
    let mut running = lifecycle_worker::build(settings, build_info()).await.context("starting the worker")?;
    if let Some(addr) = running.metrics_addr {
        println!("worker metrics on http://{addr}/metrics");
    }
    tokio::select! {
        _ = lifecycle_worker::shutdown_signal() => {},
        result = running.wait() => return result,
    }
    running.shutdown().await;
    Ok(())
}

/// This binary's version and commit, for the libraries (which do not depend on
/// `lifecycle-build-info`, so that a commit recompiles none of them).
fn build_info() -> lifecycle_telemetry::BuildInfo {
    use lifecycle_build_info::{COMMIT, DATE, VERSION};
    lifecycle_telemetry::BuildInfo { version: VERSION, commit: COMMIT, built: DATE }
}
