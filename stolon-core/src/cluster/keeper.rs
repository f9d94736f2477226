//! `Keeper` entries of cluster data (`keepers.<uid>`).

use serde::{Deserialize, Serialize};

use super::info::PostgresBinaryVersion;
use super::serde_util::{is_zero, null_as_default};
use crate::time::Timestamp;

/// A keeper known to the sentinel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keeper {
    /// Keeper UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Always 1 in practice.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Last change of this object (zero time when never set).
    #[serde(default)]
    pub change_time: Timestamp,
    /// Keeper spec (empty in stolon 0.17). Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: KeeperSpec,
    /// Sentinel's view of the keeper. Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: KeeperStatus,
}

/// Keeper spec. Empty in stolon 0.17; `priority` comes from later stolon and is omitted when 0; `maintenance`
/// is a stolon-rs addition (omitted when false).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperSpec {
    /// Election priority (higher preferred); 0 = default. Copied by the sentinel from the keeper's info.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    /// Set by `stolonctl maintenance KEEPER on`: never elected master, never a synchronous standby.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub maintenance: bool,
}

/// Sentinel's view of a keeper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeeperStatus {
    /// Sentinel verdict.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub healthy: bool,
    /// Last time judged healthy. Always emitted.
    #[serde(default)]
    pub last_healthy_time: Timestamp,
    /// The keeper process incarnation last observed.
    #[serde(default, rename = "bootUUID", skip_serializing_if = "String::is_empty")]
    pub boot_uuid: String,
    /// PostgreSQL binary version (0/0 if unknown). Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub postgres_binary_version: PostgresBinaryVersion,
    /// One-shot flag set by `stolonctl failkeeper`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub force_fail: bool,
    /// From the latest KeeperInfo; `None` means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_be_master: Option<bool>,
    /// From the latest KeeperInfo; `None` means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_be_synchronous_replica: Option<bool>,
}
