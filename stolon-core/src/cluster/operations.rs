//! The `operations` object of cluster data: operator requests that the leader sentinel carries out step by
//! step (pause, switchover) and the outcome of the last one. stolon-rs addition, absent in stolon 0.17.
//!
//! Every field is omitted when empty, so cluster data without operations serialises exactly as before.
//! A stolon 0.17 component ignores the object when it reads cluster data, and a stolon 0.17 sentinel drops
//! it when it rewrites the document: in a mixed cluster led by a stolon sentinel, a pause or a switchover
//! request silently disappears (see docs/operations.md).

use serde::{Deserialize, Serialize};

use super::serde_util::is_zero;
use crate::duration::GoDuration;
use crate::time::Timestamp;

/// Pending and last operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operations {
    /// Set while the cluster is paused (`stolonctl pause`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// The pending or running switchover, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover: Option<Switchover>,
    /// How the last switchover ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switchover: Option<SwitchoverResult>,
    /// The running rolling restart, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<super::Restart>,
    /// How the last rolling restart ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<super::OperationResult>,
    /// The running reinit, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinit: Option<super::Reinit>,
    /// How the last reinit ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reinit: Option<super::OperationResult>,
}

impl Operations {
    /// Whether nothing is recorded (the object is then omitted).
    pub fn is_empty(&self) -> bool {
        *self == Operations::default()
    }
}

/// A pause: the sentinel observes but decides nothing, keepers leave PostgreSQL as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pause {
    /// When the pause was requested.
    #[serde(default)]
    pub since: Timestamp,
    /// When the pause ends on its own (`pause --for`); absent = until `stolonctl resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

/// Where a switchover is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SwitchoverPhase {
    /// Recorded, waiting for its time (`--at`) or for the next sentinel pass.
    #[default]
    Scheduled,
    /// Proxies stop forwarding and the old master shuts down cleanly; the candidate receives its last WAL.
    Fencing,
    /// The candidate is the master and is being promoted; the old master rejoins as its standby.
    Promoting,
}

impl std::fmt::Display for SwitchoverPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SwitchoverPhase::Scheduled => "scheduled",
            SwitchoverPhase::Fencing => "fencing",
            SwitchoverPhase::Promoting => "promoting",
        })
    }
}

/// A switchover request and its progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Switchover {
    /// Request UID (tells two requests apart).
    #[serde(default, rename = "uid", skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// When it was requested.
    #[serde(default)]
    pub request_time: Timestamp,
    /// Not before this time (`--at`); absent = as soon as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// How long fencing and promotion may take before the switchover is aborted.
    #[serde(default)]
    pub timeout: GoDuration,
    /// Requested candidate keeper (`--to`); empty = the best eligible standby.
    #[serde(default, rename = "toKeeper", skip_serializing_if = "String::is_empty")]
    pub to_keeper: String,
    /// Why it was requested: `stolonctl` or `priority` (spec `switchoverToHigherPriority`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Current phase.
    #[serde(default)]
    pub phase: SwitchoverPhase,
    /// When the current phase started (fencing: the timeout counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_time: Option<Timestamp>,
    /// DB UID of the master being replaced (from fencing on).
    #[serde(default, rename = "fromDB", skip_serializing_if = "String::is_empty")]
    pub from_db: String,
    /// DB UID of the candidate (from fencing on).
    #[serde(default, rename = "toDB", skip_serializing_if = "String::is_empty")]
    pub to_db: String,
    /// The old master's last reported WAL position when fencing started: its shutdown checkpoint must be at
    /// or after it (a fresh report, not an old one).
    #[serde(default, rename = "fenceXLogPos", skip_serializing_if = "is_zero")]
    pub fence_x_log_pos: u64,
}

/// How a switchover ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchoverResult {
    /// Request UID.
    #[serde(default, rename = "uid", skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `completed`, `aborted`, `refused` or `cancelled`.
    #[serde(default)]
    pub outcome: String,
    /// One line: what happened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it ended.
    #[serde(default)]
    pub time: Timestamp,
    /// Old master DB UID (when it started).
    #[serde(default, rename = "fromDB", skip_serializing_if = "String::is_empty")]
    pub from_db: String,
    /// New master DB UID (when completed).
    #[serde(default, rename = "toDB", skip_serializing_if = "String::is_empty")]
    pub to_db: String,
}

/// Outcome strings of [`SwitchoverResult::outcome`].
pub mod outcome {
    /// The candidate is the master.
    pub const COMPLETED: &str = "completed";
    /// Timed out or a participant failed: the old master is the master again.
    pub const ABORTED: &str = "aborted";
    /// Refused when its time came (nothing changed).
    pub const REFUSED: &str = "refused";
    /// Cancelled by `stolonctl switchover --cancel` before it started.
    pub const CANCELLED: &str = "cancelled";
    /// A reinit whose new standby did not stream within its timeout (the sentinel keeps resyncing it).
    pub const FAILED: &str = "failed";
}
