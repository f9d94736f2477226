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

/// Installs the global subscriber writing to stderr. Colour follows `--log-color` when given, else whether
/// stderr is a terminal. `RUST_LOG` overrides the level for fine-grained debugging.
pub fn init(level: LogLevel, color: Option<bool>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.directive()));
    let ansi = color.unwrap_or_else(|| std::io::stderr().is_terminal());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}
