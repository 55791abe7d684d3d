//! `lifecycle-producer`: the intake of HR events (see the crate docs).

use anyhow::Context;
use clap::Parser;
use lifecycle_config::Settings;
use std::path::PathBuf;

// As in the worker: many small short-lived buffers (JSON, SQL, HTTP), which
// mimalloc serves from per-thread free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receives joiner, mover and leaver events over HTTP and publishes them to RabbitMQ.
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
    let _telemetry = lifecycle_telemetry::init(&settings.log.format, "lifecycle-producer", &settings.telemetry);
    let running = lifecycle_producer::build(settings, build_info()).await.context("starting the producer")?;
    if let Some(admin) = running.admin_addr {
        println!("admin listening on http://{admin}");
    }
    println!("intake listening on http://{}", running.addr);
    lifecycle_producer::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

/// This binary's version and commit, for the libraries (which do not depend on
/// `lifecycle-build-info`, so that a commit recompiles none of them).
fn build_info() -> lifecycle_telemetry::BuildInfo {
    use lifecycle_build_info::{COMMIT, DATE, VERSION};
    lifecycle_telemetry::BuildInfo { version: VERSION, commit: COMMIT, built: DATE }
}
