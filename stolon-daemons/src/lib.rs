//! Shared pieces of the stolon-rs binaries: the common flags, environment-variable prefixes and logging.
//! Each binary in `src/bin` is a thin main over `stolon-core`.

pub mod bool_flags;
pub mod cli_docs;
pub mod common;
pub mod ctl_restart;
pub mod env;
pub mod keeper_api;
pub mod keeper_checks;
pub mod logging;
pub mod metrics;
pub mod multicall;
pub mod process_metrics;
pub mod status_watch;

/// Parses the command line of a binary, with every flag also read from `<prefix>_<FLAG>` in the
/// environment and boolean flags in Go's syntax ([`bool_flags`]). Exits with clap's message and status on
/// bad input.
pub fn parse_cli<T: clap::Parser>(prefix: &str) -> T {
    try_parse_cli_from(prefix, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse_cli`] on the given arguments (the first one is the program name), returning clap's error.
pub fn try_parse_cli_from<T: clap::Parser>(
    prefix: &str,
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
) -> Result<T, clap::Error> {
    let cmd = env::with_env_prefix(T::command(), prefix);
    let matches = bool_flags::try_get_matches_from(cmd, args.into_iter().map(Into::into).collect())?;
    T::from_arg_matches(&matches)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: the end of a daemon's or a long-running command's work.
pub async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
