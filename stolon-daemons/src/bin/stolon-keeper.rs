//! stolon-keeper: owns one PostgreSQL instance and converges it to the cluster view.

use std::process::ExitCode;

use clap::Parser;
use stolon_daemons::{common::CommonArgs, env, logging};

/// The stolon-rs keeper. Every flag can also be set as STKEEPER_<FLAG_NAME>.
#[derive(Parser, Debug)]
#[command(name = "stolon-keeper", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::KEEPER);
    logging::init(cli.common.log_level, cli.common.log_color);
    if let Err(e) = cli.common.store_config(Default::default()) {
        eprintln!("stolon-keeper: {e}");
        return ExitCode::from(2);
    }
    eprintln!("stolon-keeper: not implemented yet in this build (see the keeper issue)");
    ExitCode::from(3)
}
