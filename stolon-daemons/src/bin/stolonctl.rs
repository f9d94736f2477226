//! stolonctl: operate a stolon-rs cluster from the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stolon_daemons::{common::CommonArgs, env};

/// Operate a stolon-rs cluster. Every flag can also be set as STOLONCTL_<FLAG_NAME>.
#[derive(Parser, Debug)]
#[command(name = "stolonctl", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Kubernetes: kubeconfig file (default: $KUBECONFIG or in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Kubernetes: kubeconfig context.
    #[arg(long, global = true)]
    kube_context: Option<String>,
    /// Kubernetes: namespace.
    #[arg(long, global = true)]
    kube_namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::STOLONCTL);
    match cli.command {
        Command::Version => {
            println!("stolonctl version {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
