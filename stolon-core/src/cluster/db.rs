//! `DB` entries of cluster data (`dbs.<uid>`): the assigned spec and the observed status.

use serde::{Deserialize, Serialize};

use super::enums::{DbInitMode, DbRole, FollowType};
use super::serde_util::{empty_as_none, is_zero, null_as_default};
use super::spec::{ArchiveRecoverySettings, NewConfig, PgParameters, PitrConfig, StandbySettings};
use crate::duration::GoDuration;
use crate::time::Timestamp;

/// A database instance assigned to one keeper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Db {
    /// DB UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// 1 at creation, +1 on every sentinel pass that changes `spec`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Last change of this object.
    #[serde(default)]
    pub change_time: Timestamp,
    /// What the keeper must make true. Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: DbSpec,
    /// What the sentinel last observed. Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: DbStatus,
}

/// The DB's assigned configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbSpec {
    /// Owning keeper.
    #[serde(default, rename = "keeperUID", skip_serializing_if = "String::is_empty")]
    pub keeper_uid: String,
    /// Copied from the cluster spec. Always emitted (`"0s"` when zero), as Go does.
    #[serde(default)]
    pub request_timeout: GoDuration,
    /// Copied from the cluster spec.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_standbys: u16,
    /// Whether this (master) DB must configure synchronous standbys.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub synchronous_replication: bool,
    /// Copied from the cluster spec.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub use_pgrewind: bool,
    /// Copied from the cluster spec. Always emitted.
    #[serde(default)]
    pub additional_wal_senders: u16,
    /// Master: the cluster's additional slots; standby: `null`. Always emitted.
    #[serde(default)]
    pub additional_replication_slots: Option<Vec<String>>,
    /// How to create the DB when the keeper does not have it.
    #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")]
    pub init_mode: Option<DbInitMode>,
    /// initdb options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_config: Option<NewConfig>,
    /// Point in time recovery options.
    #[serde(default, rename = "pitrConfig", skip_serializing_if = "Option::is_none")]
    pub pitr_config: Option<PitrConfig>,
    /// PostgreSQL parameters.
    #[serde(
        default,
        rename = "pgParameters",
        deserialize_with = "null_as_default",
        skip_serializing_if = "PgParameters::is_empty"
    )]
    pub pg_parameters: PgParameters,
    /// Extra pg_hba lines (`null` vs `[]` matters). Always emitted.
    #[serde(default, rename = "pgHBA")]
    pub pg_hba: Option<Vec<String>>,
    /// master or standby.
    #[serde(default, deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")]
    pub role: Option<DbRole>,
    /// What a standby follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_config: Option<FollowConfig>,
    /// Sorted UIDs of DBs following this one. Always emitted.
    #[serde(default)]
    pub followers: Option<Vec<String>>,
    /// Include the parameters captured at init (true only during init).
    #[serde(default, rename = "includePreviousConfig", skip_serializing_if = "is_zero")]
    pub include_config: bool,
    /// Sorted DB UIDs for `synchronous_standby_names`. Always emitted.
    #[serde(default)]
    pub synchronous_standbys: Option<Vec<String>>,
    /// Sorted raw names appended to `synchronous_standby_names`. Always emitted.
    #[serde(default)]
    pub external_synchronous_standbys: Option<Vec<String>>,
}

impl DbSpec {
    /// `followers`, empty when null.
    pub fn followers(&self) -> &[String] {
        self.followers.as_deref().unwrap_or_default()
    }

    /// `synchronousStandbys`, empty when null.
    pub fn synchronous_standbys(&self) -> &[String] {
        self.synchronous_standbys.as_deref().unwrap_or_default()
    }

    /// `externalSynchronousStandbys`, empty when null.
    pub fn external_synchronous_standbys(&self) -> &[String] {
        self.external_synchronous_standbys.as_deref().unwrap_or_default()
    }
}

/// What a standby DB replicates from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowConfig {
    /// internal or external.
    #[serde(default, rename = "type", deserialize_with = "empty_as_none", skip_serializing_if = "Option::is_none")]
    pub follow_type: Option<FollowType>,
    /// Followed DB UID (internal).
    #[serde(default, rename = "dbuid", skip_serializing_if = "String::is_empty")]
    pub db_uid: String,
    /// Connection to the external primary (external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_settings: Option<StandbySettings>,
    /// Archive recovery (external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_recovery_settings: Option<ArchiveRecoverySettings>,
}

/// The sentinel's record of a DB's observed state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStatus {
    /// Sentinel verdict.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub healthy: bool,
    /// Generation last reported as applied (0 = never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current_generation: i64,
    /// Advertised address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listen_address: String,
    /// Advertised port (a string, as stolon writes it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub port: String,
    /// PostgreSQL system identifier. The JSON key is `systemdID` (stolon's typo, kept).
    #[serde(default, rename = "systemdID", skip_serializing_if = "String::is_empty")]
    pub system_id: String,
    /// Current timeline.
    #[serde(default, rename = "timelineID", skip_serializing_if = "is_zero")]
    pub timeline_id: u64,
    /// Current WAL position (LSN): flushed on a primary, received on a standby.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub x_log_pos: u64,
    /// Last WAL position replayed on a standby, as its keeper last reported it; 0 when unknown. New in
    /// stolon-rs (additive); the read-only route measures a standby's lag with it.
    #[serde(default, rename = "replayXLogPos", skip_serializing_if = "is_zero")]
    pub replay_x_log_pos: u64,
    /// On a streaming standby, the WAL end of its upstream as last reported to it, read by its keeper
    /// together with `replayXLogPos`; 0 when unknown. New in stolon-rs (additive).
    #[serde(default, rename = "upstreamXLogPos", skip_serializing_if = "is_zero")]
    pub upstream_x_log_pos: u64,
    /// The last timeline switches (at most 2 kept by stolon).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub timelines_history: Vec<PostgresTimelineHistory>,
    /// Parameters configured in files, minus stolon-managed ones.
    #[serde(
        default,
        rename = "pgParameters",
        deserialize_with = "null_as_default",
        skip_serializing_if = "PgParameters::is_empty"
    )]
    pub pg_parameters: PgParameters,
    /// DB UIDs reported in sync in the latest keeper report; sentinel memory only, never serialised.
    #[serde(skip)]
    pub cur_synchronous_standbys: Vec<String>,
    /// DB UIDs known to be in sync and still configured. Always emitted.
    #[serde(default)]
    pub synchronous_standbys: Option<Vec<String>>,
    /// Oldest WAL segment file present.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub older_wal_file: String,
}

impl DbStatus {
    /// `synchronousStandbys`, empty when null.
    pub fn synchronous_standbys(&self) -> &[String] {
        self.synchronous_standbys.as_deref().unwrap_or_default()
    }
}

/// One timeline switch of a PostgreSQL history file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresTimelineHistory {
    /// The timeline that ended.
    #[serde(default, rename = "timelineID", skip_serializing_if = "is_zero")]
    pub timeline_id: u64,
    /// LSN where it ended.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub switch_point: u64,
    /// Free text reason from the history file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}
