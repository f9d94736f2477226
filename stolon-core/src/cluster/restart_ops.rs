//! The rolling restart and reinit records of `operations` (stolon-rs additions, absent in stolon 0.17):
//! `operations.restart` / `operations.lastRestart` and `operations.reinit` / `operations.lastReinit`.
//! Every field is omitted when empty (see docs/operations.md for what a stolon 0.17 component does).

use serde::{Deserialize, Serialize};

use super::serde_util::is_zero;
use crate::duration::GoDuration;
use crate::time::Timestamp;

/// A rolling PostgreSQL restart (`stolonctl restart`): standbys one at a time, the master last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restart {
    /// Request UID; a keeper reports it as `restartedFor` once it restarted PostgreSQL for this request.
    #[serde(default, rename = "uid", skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// When it was requested.
    #[serde(default)]
    pub request_time: Timestamp,
    /// The keepers to restart; empty = every keeper (`--all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keepers: Vec<String>,
    /// Only instances reporting a parameter pending a restart (`--pending-only`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_only: bool,
    /// Restart the master where it is instead of switching over first (`--in-place`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_place: bool,
    /// How long one keeper's step may take before the restart is aborted.
    #[serde(default)]
    pub timeout: GoDuration,
    /// Keepers already restarted, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// The keeper being restarted now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<RestartStep>,
}

/// One keeper's restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartStep {
    /// Keeper UID.
    #[serde(default)]
    pub keeper: String,
    /// Its DB UID.
    #[serde(default, rename = "db")]
    pub db: String,
    /// When the step started (its timeout counts from here).
    #[serde(default)]
    pub since: Timestamp,
    /// The master restarted by a switchover: the switchover's UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub switchover: String,
}

/// Where a reinit is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReinitPhase {
    /// Recorded, waiting for the leader's next pass.
    #[default]
    Scheduled,
    /// The old DB was replaced by a new one that the keeper clones from the master.
    Cloning,
}

impl std::fmt::Display for ReinitPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReinitPhase::Scheduled => "scheduled",
            ReinitPhase::Cloning => "cloning",
        })
    }
}

/// A reinit (`stolonctl reinit KEEPER`): the standby's data directory is wiped and re-cloned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reinit {
    /// Request UID.
    #[serde(default, rename = "uid", skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// When it was requested.
    #[serde(default)]
    pub request_time: Timestamp,
    /// The keeper whose standby is re-cloned.
    #[serde(default)]
    pub keeper: String,
    /// How long cloning may take before the reinit is recorded as failed.
    #[serde(default)]
    pub timeout: GoDuration,
    /// Current phase.
    #[serde(default)]
    pub phase: ReinitPhase,
    /// When the current phase started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_time: Option<Timestamp>,
    /// The replaced DB UID (from cloning on).
    #[serde(default, rename = "fromDB", skip_serializing_if = "String::is_empty")]
    pub from_db: String,
}

/// How a restart or a reinit ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationResult {
    /// Request UID.
    #[serde(default, rename = "uid", skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `completed`, `aborted` or `failed`.
    #[serde(default)]
    pub outcome: String,
    /// One line: what happened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it ended.
    #[serde(default)]
    pub time: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_omitted_and_names_are_camel_case() {
        let r = Restart { uid: "r1".into(), pending_only: true, ..Restart::default() };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["pendingOnly"], true);
        assert!(json.get("inPlace").is_none() && json.get("current").is_none() && json.get("keepers").is_none());
        let back: Restart = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        let ri = Reinit { phase: ReinitPhase::Cloning, from_db: "d".into(), ..Reinit::default() };
        let json = serde_json::to_value(&ri).unwrap();
        assert_eq!((json["phase"].as_str(), json["fromDB"].as_str()), (Some("cloning"), Some("d")));
    }
}
