//! Logging set-up for the daemons (`--log-level`, `--log-color`).

use std::io::IsTerminal;

use clap::ValueEnum;

/// `--log-level` values, as in stolon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation messages.
    Info,
    /// Everything.
    Debug,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// Installs the global subscriber writing to stderr, coloured as [`use_colour`] decides. `RUST_LOG`
/// overrides the level for fine-grained debugging.
pub fn init(level: LogLevel, color: Option<bool>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.directive()));
    let no_color = std::env::var_os("NO_COLOR");
    let ansi = use_colour(color, no_color.as_deref(), std::io::stderr().is_terminal());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// Whether to colour the output: never when `NO_COLOR` is set to a non-empty value (<https://no-color.org>),
/// even with `--log-color`; else as `--log-color` says when given; else only on a terminal.
pub fn use_colour(flag: Option<bool>, no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    flag.unwrap_or(terminal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(use_colour(None, None, true));
        assert!(!use_colour(None, None, false));
        assert!(use_colour(Some(true), None, false));
        assert!(!use_colour(Some(false), None, true));
        for flag in [None, Some(true), Some(false)] {
            assert!(!use_colour(flag, Some(OsStr::new("1")), true));
        }
        // An empty NO_COLOR does not count, as no-color.org says.
        assert!(use_colour(None, Some(OsStr::new("")), true));
    }
}
