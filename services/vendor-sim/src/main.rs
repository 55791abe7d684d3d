//! `lifecycle-vendor-sim`: serve the six simulated vendors until Ctrl-C or SIGTERM.
//! Prints `listening on http://ADDR` on stdout once bound.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version = lifecycle_build_info::LONG_VERSION, about = "Simulates the vendors' admin APIs for tests")]
struct Cli {
    #[command(flatten)]
    config: lifecycle_vendor_sim::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let running = lifecycle_vendor_sim::build(cli.config).await?;
    println!("listening on http://{}", running.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
