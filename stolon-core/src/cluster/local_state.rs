//! Keeper local state files in the data directory (`keeperstate`, `dbstate`): JSON shapes only.

use serde::{Deserialize, Serialize};

use super::spec::PgParameters;

/// `<data-dir>/keeperstate`: the keeper's persisted identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperLocalState {
    /// Keeper UID.
    #[serde(rename = "UID", default)]
    pub uid: String,
    /// Cluster UID the keeper is bound to.
    #[serde(rename = "ClusterUID", default)]
    pub cluster_uid: String,
}

/// `<data-dir>/dbstate`: the DB the keeper hosts and what it applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbLocalState {
    /// DB UID.
    #[serde(rename = "UID", default)]
    pub uid: String,
    /// Last applied DB generation.
    #[serde(rename = "Generation", default)]
    pub generation: i64,
    /// Set while initializing, to detect a failed initialization.
    #[serde(rename = "Initializing", default)]
    pub initializing: bool,
    /// Parameters found after initialization (`null` when none). Always emitted.
    #[serde(rename = "InitPGParameters", default)]
    pub init_pg_parameters: Option<PgParameters>,
    /// stolon-rs addition: the UID of the last rolling restart (`operations.restart`) this keeper restarted
    /// PostgreSQL for, so it restarts once per request; omitted when empty (stolon 0.17 ignores it).
    #[serde(rename = "RestartedFor", default, skip_serializing_if = "String::is_empty")]
    pub restarted_for: String,
}
