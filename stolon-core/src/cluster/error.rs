//! Decoding errors of the model, with the JSON path of the problem.

use serde::de::DeserializeOwned;

/// Why a stored document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The bytes are not JSON.
    #[error("{what}: not valid JSON at line {line} column {column}: {message}")]
    Syntax {
        /// What was being decoded (e.g. "clusterdata").
        what: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// Valid JSON whose shape does not match the model.
    #[error("{what}: unexpected value at `{path}`: {message}")]
    Shape {
        /// What was being decoded.
        what: &'static str,
        /// Path of the offending value (`.` = the document itself).
        path: String,
        /// serde's message.
        message: String,
    },
    /// Cluster data written in a format this version does not support.
    #[error("unsupported clusterdata format version {found} (supported: {supported})")]
    UnsupportedFormatVersion {
        /// The `formatVersion` found (0 when missing).
        found: u64,
        /// The version this code understands.
        supported: u64,
    },
    /// Serialising failed (not expected for the model's types).
    #[error("{what}: cannot serialise: {message}")]
    Serialize {
        /// What was being encoded.
        what: &'static str,
        /// serde_json's message.
        message: String,
    },
}

/// Parses `bytes` as JSON into a `serde_json::Value`.
pub(crate) fn parse_value(what: &'static str, bytes: &[u8]) -> Result<serde_json::Value, ModelError> {
    serde_json::from_slice(bytes).map_err(|e| ModelError::Syntax {
        what,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Converts a JSON value into `T`, reporting the path of a mismatch.
pub(crate) fn from_value<T: DeserializeOwned>(what: &'static str, value: serde_json::Value) -> Result<T, ModelError> {
    serde_path_to_error::deserialize(value).map_err(|e| ModelError::Shape {
        what,
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Decodes any model document (KeeperInfo, ProxyInfo, local state...) from JSON bytes; `what` names
/// the document in errors. Unknown fields are ignored.
pub fn decode_json<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ModelError> {
    from_value(what, parse_value(what, bytes)?)
}

/// Encodes a model document as compact JSON.
pub(crate) fn encode_json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, ModelError> {
    serde_json::to_vec(value).map_err(|e| ModelError::Serialize { what, message: e.to_string() })
}
