//! Shared pieces of the stolon-rs binaries: the common flags, environment-variable prefixes and logging.
//! Each binary in `src/bin` is a thin main over `stolon-core`.

pub mod common;
pub mod env;
pub mod logging;
pub mod metrics;

/// Parses the command line of a binary, with every flag also read from `<prefix>_<FLAG>` in the
/// environment. Exits with clap's message and status on bad input.
pub fn parse_cli<T: clap::Parser>(prefix: &str) -> T {
    let cmd = env::with_env_prefix(T::command(), prefix);
    let matches = cmd.get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
