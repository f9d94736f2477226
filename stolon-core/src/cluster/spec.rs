//! `ClusterSpec` (`cluster.spec`) and its sub-objects, exactly as stolon writes them.
//!
//! Every spec field is optional; defaults are applied at use time (see `spec_defaults`) and never
//! written back. A few fields are emitted even when unset (`null`), as stolon does:
//! `additionalWalSenders`, `additionalMasterReplicationSlots`, `pgHBA` and `automaticPgRestart`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::enums::{ClusterInitMode, ClusterRole, SuReplAccessMode};
use super::serde_util::is_zero;
use crate::duration::GoDuration;

/// PostgreSQL parameters (name to unquoted value).
pub type PgParameters = BTreeMap<String, String>;

/// The cluster specification. `None` means "use the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Loop period of sentinel and keeper (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_interval: Option<GoDuration>,
    /// Timeout of postgres queries issued by the keeper (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<GoDuration>,
    /// Max time a DB may stay unconverged before being considered failed (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence_timeout: Option<GoDuration>,
    /// Convergence timeout of the initial master in init mode `new` (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_timeout: Option<GoDuration>,
    /// Convergence timeout of a resyncing standby; 0 = infinite (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_timeout: Option<GoDuration>,
    /// How long the keeper waits for postgres to accept connections (default 60s).
    #[serde(default, rename = "dbWaitReadyTimeout", skip_serializing_if = "Option::is_none")]
    pub db_wait_ready_timeout: Option<GoDuration>,
    /// Continuous error time before a keeper or DB is unhealthy (default 20s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_interval: Option<GoDuration>,
    /// Unhealthy time after which a keeper without DB is removed (default 48h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_keeper_removal_interval: Option<GoDuration>,
    /// Proxy check period (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_check_interval: Option<GoDuration>,
    /// Proxies close connections after this long without a successful check (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_timeout: Option<GoDuration>,
    /// Sizes `max_replication_slots` / `max_wal_senders` (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_standbys: Option<u16>,
    /// Number of stolon-managed standbys per sender (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_standbys_per_sender: Option<u16>,
    /// Max lag in bytes for an async standby to be electable (default 1 MiB, see `defaults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_standby_lag: Option<u32>,
    /// Enable synchronous replication (default false; ignored when role is standby).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_replication: Option<bool>,
    /// Minimum number of synchronous standbys (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_synchronous_standbys: Option<u16>,
    /// Maximum number of synchronous standbys (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_synchronous_standbys: Option<u16>,
    /// Extra wal senders (default 5). Always emitted (`null` when unset).
    #[serde(default)]
    pub additional_wal_senders: Option<u16>,
    /// Extra physical slots on the master (`stolon_` is prefixed). Always emitted.
    #[serde(default)]
    pub additional_master_replication_slots: Option<Vec<String>>,
    /// Try pg_rewind before pg_basebackup (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_pgrewind: Option<bool>,
    /// Initialization mode; required, immutable after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_mode: Option<ClusterInitMode>,
    /// After init, copy the instance's file parameters into `pgParameters` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_pg_parameters: Option<bool>,
    /// Cluster role (default master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ClusterRole>,
    /// initdb options for init mode `new`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_config: Option<NewConfig>,
    /// Point in time recovery options for init mode `pitr`.
    #[serde(default, rename = "pitrConfig", skip_serializing_if = "Option::is_none")]
    pub pitr_config: Option<PitrConfig>,
    /// Options for init mode `existing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_config: Option<ExistingConfig>,
    /// Where a standby cluster replicates from (required when role is standby).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_config: Option<StandbyConfig>,
    /// pg_hba mode for superuser/replication rules (default all).
    #[serde(default, rename = "defaultSUReplAccessMode", skip_serializing_if = "Option::is_none")]
    pub default_su_repl_access_mode: Option<SuReplAccessMode>,
    /// PostgreSQL parameters. Omitted when empty.
    #[serde(default, rename = "pgParameters", skip_serializing_if = "is_none_or_empty")]
    pub pg_parameters: Option<PgParameters>,
    /// Extra pg_hba lines: `null` = default "all hosts md5" rules, `[]` = no client rules. Always emitted.
    #[serde(default, rename = "pgHBA")]
    pub pg_hba: Option<Vec<String>>,
    /// Restart postgres when a changed parameter needs it (default false). Always emitted.
    #[serde(default)]
    pub automatic_pg_restart: Option<bool>,
    /// Failsafe mode (stolon-rs, default false): during a store outage proxies keep forwarding to the master
    /// while its keeper confirms that every other DB's keeper follows it (docs/reliability.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failsafe_mode: Option<bool>,
    /// stolon-rs addition: switch over to a healthy standby whose keeper has a higher priority than the
    /// master's (default false: a healthy master is never replaced for priority alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover_to_higher_priority: Option<bool>,
}

fn is_none_or_empty(m: &Option<PgParameters>) -> bool {
    m.as_ref().is_none_or(|m| m.is_empty())
}

/// initdb options (`spec.newConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewConfig {
    /// `--locale` for initdb.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locale: String,
    /// `--encoding` for initdb.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encoding: String,
    /// `--data-checksums` for initdb.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data_checksums: bool,
}

/// Point in time recovery options (`spec.pitrConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PitrConfig {
    /// Shell command restoring the base backup; `%d` = PGDATA path, `%%` = `%`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_restore_command: String,
    /// Archive recovery settings (restore_command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_recovery_settings: Option<ArchiveRecoverySettings>,
    /// Recovery target settings (forbidden when the cluster role is standby).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_target_settings: Option<RecoveryTargetSettings>,
}

/// Options for init mode `existing` (`spec.existingConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingConfig {
    /// Keeper whose data becomes the cluster's master.
    #[serde(default, rename = "keeperUID", skip_serializing_if = "String::is_empty")]
    pub keeper_uid: String,
}

/// Standby cluster options (`spec.standbyConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandbyConfig {
    /// How to connect to the external primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_settings: Option<StandbySettings>,
    /// Archive recovery settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_recovery_settings: Option<ArchiveRecoverySettings>,
}

/// Archive recovery settings (`restore_command`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveRecoverySettings {
    /// Value of `restore_command`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restore_command: String,
}

/// Recovery target settings (`recovery_target*` parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryTargetSettings {
    /// `recovery_target`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovery_target: String,
    /// `recovery_target_lsn`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovery_target_lsn: String,
    /// `recovery_target_name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovery_target_name: String,
    /// `recovery_target_time`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovery_target_time: String,
    /// `recovery_target_xid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovery_target_xid: String,
    /// `recovery_target_timeline`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovery_target_timeline: String,
}

/// Standby settings (`primary_conninfo`, `primary_slot_name`, `recovery_min_apply_delay`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StandbySettings {
    /// `primary_conninfo`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub primary_conninfo: String,
    /// `primary_slot_name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub primary_slot_name: String,
    /// `recovery_min_apply_delay`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recovery_min_apply_delay: String,
}
