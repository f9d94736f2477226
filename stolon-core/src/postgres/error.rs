//! Errors of the PostgreSQL instance layer; each names the path, program or query involved.

use std::path::PathBuf;

/// Why an operation on the local PostgreSQL instance failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("write", "remove", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An external program could not be started.
    #[error("cannot run {program}: {source} (check --pg-bin-path)")]
    Spawn {
        /// The program path.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An external program exited unsuccessfully.
    #[error("{program} failed ({status}): {output}")]
    Command {
        /// The program name.
        program: String,
        /// Its exit status.
        status: String,
        /// The last lines of its output.
        output: String,
    },
    /// A version string or file could not be understood, or the version is not supported.
    #[error("postgres version: {0}")]
    Version(String),
    /// A query on the local instance failed.
    #[error("query {what}: {source}")]
    Query {
        /// What the query was for.
        what: &'static str,
        /// The driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A query or wait did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The instance is in a state where the operation is not allowed.
    #[error("{0}")]
    State(String),
    /// Another process already listens on PostgreSQL's address and port.
    #[error("PostgreSQL could not listen on {address}:{port} (--pg-port): address already in use")]
    PortInUse {
        /// `--pg-listen-address`.
        address: String,
        /// `--pg-port`.
        port: u16,
    },
    /// Output of a program or a file had an unexpected format.
    #[error("unexpected {what}: {detail}")]
    Parse {
        /// What was parsed.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl PgError {
    /// Shorthand for [`PgError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PgError::Io { action, path: path.into(), source }
    }
}

/// Result alias of this module.
pub type PgResult<T> = Result<T, PgError>;
