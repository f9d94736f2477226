//! The error kinds every backend maps its failures to.

use std::time::Duration;

/// A failed store operation. Every backend maps its own failures to one of these kinds so that callers can
/// react to the kind (retry on [`StoreError::Conflict`], wait on [`StoreError::Unavailable`], ...) whatever
/// the backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key (or object) does not exist where the operation needs it to.
    #[error("{key}: not found")]
    NotFound {
        /// The store key or object name.
        key: String,
    },
    /// A compare-and-swap lost: the key exists on a create-only put, or its revision changed since it was read.
    #[error("{key}: compare-and-swap conflict: {reason}")]
    Conflict {
        /// The store key or object name.
        key: String,
        /// What did not match.
        reason: String,
    },
    /// The store could not be reached or did not answer in time.
    #[error("store unavailable ({endpoints}): {reason}")]
    Unavailable {
        /// The endpoints that were tried.
        endpoints: String,
        /// The underlying cause.
        reason: String,
    },
    /// The store did not answer within the configured request timeout.
    #[error("store request on {key} timed out after {timeout:?}")]
    Timeout {
        /// The key of the request.
        key: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// A value read from (or about to be written to) the store is not acceptable.
    #[error("{key}: invalid data: {reason}")]
    InvalidData {
        /// The store key or object name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store refused our credentials or the TLS handshake failed.
    #[error("store authentication or TLS failure: {0}")]
    Auth(String),
    /// The store configuration (flags) is wrong: unknown backend, bad endpoint, unreadable certificate, ...
    #[error("store configuration: {0}")]
    Config(String),
    /// Leadership was lost or could not be kept while an operation needed it.
    #[error("election: {0}")]
    Election(String),
    /// Any other failure reported by the store server.
    #[error("store error on {key}: {reason}")]
    Backend {
        /// The store key or object name.
        key: String,
        /// The server's message.
        reason: String,
    },
}

impl StoreError {
    /// True for the kinds that may succeed when retried later unchanged (unavailable, timeout).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Timeout { .. })
    }

    /// True when a compare-and-swap lost against a concurrent writer.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// An error and its causes, joined with `: ` (a cause already contained in the text is not repeated).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// True when an error text (see [`error_chain`]) tells of a TLS failure: a certificate, a handshake, an alert.
pub(crate) fn is_tls_failure(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    ["certificate", "handshake", "tls", "alert"].iter().any(|needle| r.contains(needle))
}

/// Shorthand for results of store operations.
pub type StoreResult<T> = Result<T, StoreError>;
