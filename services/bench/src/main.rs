//! `lifecycle-bench`: measures the system as it runs, never as a timed test.
//!
//! Build the release binaries first: `cargo build --release --bins`, then
//! `cargo run --release -p lifecycle-bench -- all`.

use clap::Parser;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = lifecycle_bench::Cli::parse();
    lifecycle_bench::run(cli).await
}
