//! stolon-proxy: forwards client connections to the current master only.

use std::process::ExitCode;

use clap::Parser;
use stolon_daemons::{common::CommonArgs, env, logging};

/// The stolon-rs proxy. Every flag can also be set as STPROXY_<FLAG_NAME>.
#[derive(Parser, Debug)]
#[command(name = "stolon-proxy", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::PROXY);
    logging::init(cli.common.log_level, cli.common.log_color);
    if let Err(e) = cli.common.store_config(Default::default()) {
        eprintln!("stolon-proxy: {e}");
        return ExitCode::from(2);
    }
    eprintln!("stolon-proxy: not implemented yet in this build (see the proxy issue)");
    ExitCode::from(3)
}
