//! `lifecycle-bench`: measures the system as it runs, never as a timed test.
//!
//! Build the release binaries first: `cargo build --release --bins`, then
//! `cargo run --release -p lifecycle-bench -- all`.

use clap::{CommandFactory, FromArgMatches};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    // The version is the binary's (with its commit), as in lifecycle-ctl.
    let matches = lifecycle_bench::Cli::command().version(lifecycle_build_info::LONG_VERSION).get_matches();
    let cli = lifecycle_bench::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    lifecycle_bench::run(cli).await
}
