//! `lifecycle-ctl`: the operator's command line (see the crate docs).

use clap::{CommandFactory, FromArgMatches};

fn main() {
    // The version is the binary's (with its commit), set here rather than in
    // the library so that the library does not depend on lifecycle-build-info.
    let matches = lifecycle_ctl::Cli::command().version(lifecycle_build_info::LONG_VERSION).get_matches();
    let cli = lifecycle_ctl::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // An operator's terminal shows results and warnings, not the libraries'
    // info lines (they would tear through the progress bar). RUST_LOG wins.
    // Set before the runtime starts any thread.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");
    let code = runtime.block_on(lifecycle_ctl::run(cli));
    drop(runtime);
    std::process::exit(code);
}
