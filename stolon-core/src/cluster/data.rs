//! `ClusterData` (the `clusterdata` document) and the `Cluster` object inside it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::db::Db;
use super::enums::ClusterPhase;
use super::error::{ModelError, encode_json, from_value, parse_value};
use super::keeper::Keeper;
use super::operations::Operations;
use super::proxy::Proxy;
use super::serde_util::{empty_as_none, is_zero, null_as_default};
use super::spec::ClusterSpec;
use crate::time::Timestamp;

/// The only `formatVersion` this code reads and writes.
pub const CURRENT_FORMAT_VERSION: u64 = 1;

/// Generation of newly created objects (cluster, keepers, DBs).
pub const INITIAL_GENERATION: i64 = 1;

const WHAT: &str = "clusterdata";

/// The single authoritative document of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterData {
    /// Format version; only [`CURRENT_FORMAT_VERSION`] is supported.
    #[serde(default)]
    pub format_version: u64,
    /// Set by the sentinel on every write.
    #[serde(default)]
    pub change_time: Timestamp,
    /// The cluster object.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster: Cluster,
    /// Keepers by UID.
    #[serde(default, deserialize_with = "null_as_default")]
    pub keepers: BTreeMap<String, Keeper>,
    /// DBs by UID.
    #[serde(default, deserialize_with = "null_as_default")]
    pub dbs: BTreeMap<String, Db>,
    /// Proxy routing state.
    #[serde(default, deserialize_with = "null_as_default")]
    pub proxy: Proxy,
    /// Pause and switchover requests (stolon-rs addition; omitted when empty).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Operations::is_empty")]
    pub operations: Operations,
}

/// The cluster object (`cluster`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Cluster UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Set to 1 at creation and never incremented.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Last change of the cluster object.
    #[serde(default)]
    pub change_time: Timestamp,
    /// The user's spec (not defaulted). Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: ClusterSpec,
    /// Phase and master. Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: ClusterStatus,
}

/// Cluster status (`cluster.status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Unused by stolon (always 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current_generation: i64,
    /// initializing or normal.
    #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    /// DB UID of the current master; empty while none is chosen.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub master: String,
    /// Keepers removed with `stolonctl removekeeper`, by UID: the sentinel does not add them back from the
    /// info records of the same process. stolon-rs only (additive, omitted when empty).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub removed_keepers: BTreeMap<String, RemovedKeeper>,
}

/// A keeper removed with `stolonctl removekeeper` (`cluster.status.removedKeepers.<uid>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedKeeper {
    /// The boot UUID of the keeper process that was running (or last seen) when it was removed; only a
    /// keeper process with another boot UUID (a restart) is added back.
    #[serde(default, rename = "bootUUID", skip_serializing_if = "String::is_empty")]
    pub boot_uuid: String,
    /// When it was removed (the mark is forgotten `deadKeeperRemovalInterval` later if the keeper publishes
    /// nothing).
    #[serde(default)]
    pub remove_time: Timestamp,
}

/// A short name of a JSON value's type, for error messages.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl ClusterData {
    /// A fresh cluster data document (from `stolonctl init` or an initial spec): format version 1,
    /// no keepers or DBs, an empty proxy, a cluster of generation 1 in phase initializing.
    pub fn new_initial(cluster_uid: impl Into<String>, spec: ClusterSpec, now: Timestamp) -> Self {
        ClusterData {
            format_version: CURRENT_FORMAT_VERSION,
            change_time: now,
            cluster: Cluster {
                uid: cluster_uid.into(),
                generation: INITIAL_GENERATION,
                change_time: now,
                spec,
                status: ClusterStatus { phase: Some(ClusterPhase::Initializing), ..ClusterStatus::default() },
            },
            keepers: BTreeMap::new(),
            dbs: BTreeMap::new(),
            proxy: Proxy::default(),
            operations: Operations::default(),
        }
    }

    /// Decodes stored cluster data. The literal `null` means "no cluster data" (`Ok(None)`).
    /// Bytes that are not JSON, a document of the wrong shape, or a `formatVersion` other than
    /// [`CURRENT_FORMAT_VERSION`] (a missing one counts as 0) are typed errors.
    pub fn from_json(bytes: &[u8]) -> Result<Option<ClusterData>, ModelError> {
        let value = parse_value(WHAT, bytes)?;
        if value.is_null() {
            return Ok(None);
        }
        let Some(obj) = value.as_object() else {
            return Err(ModelError::Shape {
                what: WHAT,
                path: ".".to_string(),
                message: format!("expected a JSON object, found {}", json_kind(&value)),
            });
        };
        // Check the version before the shape: another format may have another shape.
        let found = match obj.get("formatVersion") {
            None | Some(serde_json::Value::Null) => Some(0),
            Some(v) => v.as_u64(),
        };
        if let Some(found) = found.filter(|v| *v != CURRENT_FORMAT_VERSION) {
            return Err(ModelError::UnsupportedFormatVersion { found, supported: CURRENT_FORMAT_VERSION });
        }
        from_value(WHAT, value).map(Some)
    }

    /// Encodes as compact JSON (the stored form).
    pub fn to_json(&self) -> Result<Vec<u8>, ModelError> {
        encode_json(WHAT, self)
    }

    /// The DB assigned to `keeper_uid`, if any.
    pub fn db_of_keeper(&self, keeper_uid: &str) -> Option<&Db> {
        self.dbs.values().find(|db| db.spec.keeper_uid == keeper_uid)
    }

    /// The current master DB (`cluster.status.master`), if set and present.
    pub fn master_db(&self) -> Option<&Db> {
        self.dbs.get(&self.cluster.status.master)
    }
}
