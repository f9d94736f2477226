//! Why a stolonctl operation failed. Every message is one line meant for an operator.

use crate::cluster::{ModelError, SpecError, SpecUpdateError};
use crate::store::ClusterStoreError;

/// A failed ctl operation. Nothing was written when one of these is returned, except where a variant
/// says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The store could not be read or written (unreachable, timeout, undecodable stored document...).
    #[error(transparent)]
    Store(#[from] ClusterStoreError),
    /// The store holds no cluster data.
    #[error("no cluster data in the store (initialise the cluster with `stolonctl init`)")]
    NoClusterData,
    /// The stored cluster spec fails validation: every component refuses to act on it.
    #[error("the stored cluster spec is invalid: {0}")]
    StoredSpecInvalid(SpecError),
    /// User input (a spec, a patch, cluster data) is not the JSON expected.
    #[error("invalid {what}: {message}")]
    InvalidInput {
        /// What the input was meant to be ("cluster spec", "spec patch", "cluster data").
        what: &'static str,
        /// What is wrong with it, with the line/column or JSON path when known.
        message: String,
    },
    /// A cluster spec given by the user fails validation.
    #[error("invalid cluster spec: {0} (rule {rule} of the spec validation)", rule = .0.rule())]
    InvalidSpec(SpecError),
    /// The new spec may not replace the current one.
    #[error("cannot update the cluster spec: {0}")]
    SpecUpdate(SpecUpdateError),
    /// Cluster data given by the user cannot be used.
    #[error("invalid cluster data: {0}")]
    InvalidClusterData(ModelError),
    /// No keeper with this UID in the cluster data.
    #[error("keeper {0:?} does not exist in the cluster data")]
    KeeperNotFound(String),
    /// The keeper hosts the current master DB and may not be removed.
    #[error("keeper {keeper} hosts the current master db {db}: refusing to remove it (fail it over first)")]
    KeeperHostsMaster {
        /// The keeper UID.
        keeper: String,
        /// The master DB UID.
        db: String,
    },
    /// Cluster data exists and replacing it was not allowed.
    #[error("cluster data already available: use --yes to override")]
    ClusterDataExists,
    /// The cluster data changed between the read shown to the user and the write.
    #[error("the cluster data changed since it was read; nothing was written, run the command again")]
    ChangedSinceRead,
    /// A switchover request is refused; nothing was written.
    #[error("switchover refused: {0}")]
    SwitchoverRefused(#[from] crate::ops::candidate::Refusal),
    /// An operation cannot be requested in the cluster's current state; nothing was written.
    #[error("{0}")]
    OperationRefused(String),
    /// A switchover ended without completing (aborted or refused by the sentinel).
    #[error("switchover {outcome}: {message}")]
    SwitchoverFailed {
        /// `aborted`, `refused` or `cancelled`.
        outcome: String,
        /// The sentinel's one-line account.
        message: String,
    },
    /// Waiting for an operation's outcome took too long (the operation itself may still finish).
    #[error("no outcome after {0:?}: check `stolonctl status`")]
    WaitTimeout(std::time::Duration),
    /// Every compare-and-swap attempt lost against concurrent writers.
    #[error("the cluster data kept changing concurrently; nothing was written after {attempts} attempts")]
    TooManyConflicts {
        /// How many attempts were made.
        attempts: usize,
    },
}

impl CtlError {
    /// Wraps a refused spec update; an invalid new spec is reported with its validation rule.
    pub(crate) fn spec_update(e: SpecUpdateError) -> Self {
        match e {
            SpecUpdateError::Invalid(e) => CtlError::InvalidSpec(e),
            other => CtlError::SpecUpdate(other),
        }
    }

    /// Wraps a JSON decoding error of user input.
    pub(crate) fn input(what: &'static str, e: ModelError) -> Self {
        let message = match e {
            ModelError::Syntax { line, column, message, .. } => {
                format!("not valid JSON at line {line} column {column}: {}", strip_position(&message))
            }
            ModelError::Shape { path, message, .. } => format!("unexpected value at `{path}`: {message}"),
            other => other.to_string(),
        };
        CtlError::InvalidInput { what, message }
    }
}

/// serde_json appends " at line L column C" to its messages; the position is reported separately.
fn strip_position(message: &str) -> &str {
    message.rfind(" at line ").map_or(message, |i| &message[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_name_field_and_rule() {
        let e = CtlError::InvalidSpec(SpecError::CountTooLow { field: "maxStandbys", value: 0 });
        assert_eq!(
            e.to_string(),
            "invalid cluster spec: maxStandbys (0) must be at least 1 (rule 3 of the spec validation)"
        );
    }

    #[test]
    fn json_syntax_position_is_reported_once() {
        let err = crate::cluster::decode_json::<serde_json::Value>("cluster spec", b"{\"a\":").unwrap_err();
        let msg = CtlError::input("cluster spec", err).to_string();
        assert!(msg.starts_with("invalid cluster spec: not valid JSON at line 1 column 5"), "{msg}");
        assert_eq!(msg.matches("line").count(), 1, "{msg}");
    }
}
