//! Info records that components publish to the store (KeeperInfo, SentinelInfo, ProxyInfo).

use serde::{Deserialize, Serialize};

use super::db::PostgresTimelineHistory;
use super::serde_util::{is_zero, null_as_default};
use super::spec::PgParameters;
use crate::duration::GoDuration;

/// PostgreSQL binary version; keys are `Maj` and `Min` (Go field names, no tags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PostgresBinaryVersion {
    /// Major version (e.g. 15).
    #[serde(rename = "Maj", default)]
    pub maj: i64,
    /// Minor version.
    #[serde(rename = "Min", default)]
    pub min: i64,
}

/// What a keeper publishes every `sleepInterval`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeeperInfo {
    /// Fresh random UID per publish; the sentinel uses its changes as a heartbeat.
    #[serde(default, rename = "infoUID", skip_serializing_if = "String::is_empty")]
    pub info_uid: String,
    /// Keeper UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Cluster UID the keeper belongs to.
    #[serde(default, rename = "clusterUID", skip_serializing_if = "String::is_empty")]
    pub cluster_uid: String,
    /// Keeper process incarnation.
    #[serde(default, rename = "bootUUID", skip_serializing_if = "String::is_empty")]
    pub boot_uuid: String,
    /// PostgreSQL binary version. Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub postgres_binary_version: PostgresBinaryVersion,
    /// Election priority (later stolon); omitted when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Observed state of the local instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_state: Option<PostgresState>,
    /// `--can-be-master`; `None` means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_be_master: Option<bool>,
    /// `--can-be-synchronous-replica`; `None` means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_be_synchronous_replica: Option<bool>,
    /// URL of the keeper's HTTP API (`--api-listen-address`, e.g. `http://10.0.0.1:8008`); stolon-rs only,
    /// omitted when the API is off.
    #[serde(default, rename = "apiURL", skip_serializing_if = "String::is_empty")]
    pub api_url: String,
}

/// The state of the keeper's PostgreSQL instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresState {
    /// DB UID the keeper hosts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Last applied DB generation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Advertised address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listen_address: String,
    /// Advertised port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub port: String,
    /// Whether postgres answered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub healthy: bool,
    /// System identifier; key `systemID` here (DBStatus says `systemdID`).
    #[serde(default, rename = "systemID", skip_serializing_if = "String::is_empty")]
    pub system_id: String,
    /// Current timeline.
    #[serde(default, rename = "timelineID", skip_serializing_if = "is_zero")]
    pub timeline_id: u64,
    /// Current WAL position (`IDENTIFY_SYSTEM`: the flush position on a primary, the received one on a
    /// standby).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub x_log_pos: u64,
    /// Last WAL position replayed on a standby (`pg_last_wal_replay_lsn()`); 0 when unknown. New in stolon-rs
    /// (additive: stolon's keepers do not send it).
    #[serde(default, rename = "replayXLogPos", skip_serializing_if = "is_zero")]
    pub replay_x_log_pos: u64,
    /// On a streaming standby, the WAL end of the server it streams from as that server last reported it
    /// (`pg_stat_wal_receiver.latest_end_lsn`), read together with `replayXLogPos`; 0 when not streaming.
    /// New in stolon-rs (additive).
    #[serde(default, rename = "upstreamXLogPos", skip_serializing_if = "is_zero")]
    pub upstream_x_log_pos: u64,
    /// Timeline history entries.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub timelines_history: Vec<PostgresTimelineHistory>,
    /// Parameters configured in files.
    #[serde(
        default,
        rename = "pgParameters",
        deserialize_with = "null_as_default",
        skip_serializing_if = "PgParameters::is_empty"
    )]
    pub pg_parameters: PgParameters,
    /// DB UIDs in `sync` state (stolon_ prefix removed). Always emitted.
    #[serde(default)]
    pub synchronous_standbys: Option<Vec<String>>,
    /// Oldest WAL segment file present.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub older_wal_file: String,
    /// stolon-rs addition: while postgres is stopped after a clean shutdown, the location of its shutdown
    /// checkpoint (the end of everything it wrote, read from `pg_control`); omitted otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shutdown_checkpoint: u64,
    /// stolon-rs addition: a parameter changed in the configuration waits for a restart
    /// (`pg_settings.pending_restart`); omitted when not (what `stolonctl restart --pending-only` reads).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_restart: bool,
    /// stolon-rs addition: the UID of the last rolling restart the keeper restarted PostgreSQL for
    /// (`operations.restart.uid`); omitted when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restarted_for: String,
}

/// What every sentinel publishes: `{"UID": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelInfo {
    /// Sentinel UID.
    #[serde(rename = "UID", default)]
    pub uid: String,
}

/// What every proxy publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyInfo {
    /// Fresh random UID per publish.
    #[serde(default, rename = "infoUID", skip_serializing_if = "String::is_empty")]
    pub info_uid: String,
    /// Proxy UID.
    #[serde(rename = "UID", default)]
    pub uid: String,
    /// Proxy generation the proxy has applied.
    #[serde(rename = "Generation", default)]
    pub generation: i64,
    /// `proxyTimeout` the proxy uses, as integer nanoseconds on the wire.
    #[serde(rename = "ProxyTimeout", default, with = "crate::duration::as_nanos")]
    pub proxy_timeout: GoDuration,
}
