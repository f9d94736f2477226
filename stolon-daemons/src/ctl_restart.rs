//! `stolonctl restart` and `stolonctl reinit`: flags and the command runs over `stolon_core::ctl`.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use stolon_core::ctl::{self, OperationKind};
use stolon_core::ops::restart::Request;
use stolon_core::store::ClusterStore;

use crate::common::parse_go_duration;

/// The commands (flattened into stolonctl's).
#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Rolling PostgreSQL restart: standbys one at a time, each streaming again before the next, the master
    /// last by a switchover (or --in-place); waits for the outcome.
    Restart(RestartArgs),
    /// Wipe a standby's data directory and clone it again from the master (refused on the master); waits
    /// for the outcome.
    Reinit(ReinitArgs),
}

/// Runs a command after `confirm(yes, name)`; `connect` opens the store.
pub async fn run<F, Fut>(
    cmd: Commands,
    confirm: impl Fn(bool, &str) -> anyhow::Result<bool>,
    connect: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ClusterStore>>,
{
    let (yes, name) = match &cmd {
        Commands::Restart(a) => (a.yes, "restart"),
        Commands::Reinit(a) => (a.yes, "reinit"),
    };
    if !confirm(yes, name)? {
        println!("exiting");
        return Ok(());
    }
    match cmd {
        Commands::Restart(args) => restart(args, &connect().await?).await,
        Commands::Reinit(args) => reinit(args, &connect().await?).await,
    }
}

/// `stolonctl restart` flags.
#[derive(Args, Debug)]
pub struct RestartArgs {
    /// The keepers whose PostgreSQL to restart (or --all).
    pub keepers: Vec<String>,
    /// Restart every keeper's PostgreSQL.
    #[arg(long)]
    pub all: bool,
    /// Only the instances with a parameter change pending a restart (pg_settings.pending_restart).
    #[arg(long)]
    pub pending_only: bool,
    /// Restart the master where it is (clients are cut off while it restarts) instead of switching over
    /// to a standby first.
    #[arg(long)]
    pub in_place: bool,
    /// Abort when one keeper is not restarted and streaming again after this long (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_go_duration)]
    pub timeout: Duration,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// `stolonctl reinit` flags.
#[derive(Args, Debug)]
pub struct ReinitArgs {
    /// The keeper whose standby to wipe and clone again from the master.
    pub keeper: String,
    /// Record the reinit as failed when the new standby does not stream after this long (Go duration).
    #[arg(long, default_value = "1h", value_parser = parse_go_duration)]
    pub timeout: Duration,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Requests a rolling restart and waits for its outcome.
pub async fn restart(args: RestartArgs, store: &ClusterStore) -> anyhow::Result<()> {
    if args.timeout.is_zero() {
        bail!("--timeout must be positive");
    }
    let req =
        Request { keepers: args.keepers, all: args.all, pending_only: args.pending_only, in_place: args.in_place };
    let uid = ctl::request_restart(store, &req, args.timeout).await?.value;
    println!("rolling restart {uid} requested");
    // Every keeper's step is bounded by the timeout; the master's switchover by its own 30 s, twice.
    let keepers = store.cluster_data().await?.map_or(1, |cd| cd.data.dbs.len().max(1)) as u32;
    let limit = args.timeout * keepers + Duration::from_secs(70);
    let result = ctl::wait_operation(store, OperationKind::Restart, &uid, limit).await?;
    println!("restart completed: {}", result.message);
    Ok(())
}

/// Requests a reinit and waits for its outcome.
pub async fn reinit(args: ReinitArgs, store: &ClusterStore) -> anyhow::Result<()> {
    if args.timeout.is_zero() {
        bail!("--timeout must be positive");
    }
    let uid = ctl::request_reinit(store, &args.keeper, args.timeout).await?.value;
    println!("reinit {uid} of keeper {} requested", args.keeper);
    let result =
        ctl::wait_operation(store, OperationKind::Reinit, &uid, args.timeout + Duration::from_secs(30)).await?;
    println!("reinit completed: {}", result.message);
    Ok(())
}
