//! `lifecycle-ctl`: the operator's command line (see the crate docs).

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = lifecycle_ctl::Cli::parse();
    let code = lifecycle_ctl::run(cli).await;
    std::process::exit(code);
}
