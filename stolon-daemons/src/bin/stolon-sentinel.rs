//! stolon-sentinel: discovers keepers and proxies and, when elected leader, computes the cluster view.

use std::process::ExitCode;

use clap::Parser;
use stolon_daemons::{common::CommonArgs, env, logging};

/// The stolon-rs sentinel. Every flag can also be set as STSENTINEL_<FLAG_NAME>.
#[derive(Parser, Debug)]
#[command(name = "stolon-sentinel", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// JSON file with the cluster spec used to create the cluster when the store has no cluster data.
    #[arg(long)]
    initial_cluster_spec: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::SENTINEL);
    logging::init(cli.common.log_level, cli.common.log_color);
    if let Err(e) = cli.common.store_config(Default::default()) {
        eprintln!("stolon-sentinel: {e}");
        return ExitCode::from(2);
    }
    eprintln!("stolon-sentinel: not implemented yet in this build (see the sentinel issue)");
    ExitCode::from(3)
}
