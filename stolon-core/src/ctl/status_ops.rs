//! The rolling restart and reinit parts of `stolonctl status` (text and JSON), absent when there is
//! nothing to say so that a plain cluster's status stays stolon's.

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterData, OperationResult};

/// A running rolling restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartStatus {
    /// Request UID.
    pub uid: String,
    /// The requested keepers, empty = all.
    pub keepers: Vec<String>,
    /// `--pending-only`.
    pub pending_only: bool,
    /// `--in-place`.
    pub in_place: bool,
    /// Keepers restarted so far, in order.
    pub done: Vec<String>,
    /// The keeper being restarted now (empty between two steps).
    pub current: String,
    /// Whether the current step is the master's switchover.
    pub by_switchover: bool,
    /// Timeout of one step (Go duration).
    pub timeout: String,
}

/// A running reinit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReinitStatus {
    /// Request UID.
    pub uid: String,
    /// The keeper re-cloned.
    pub keeper: String,
    /// scheduled or cloning.
    pub phase: String,
    /// Timeout (Go duration).
    pub timeout: String,
}

/// How the last restart or reinit ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastOperation {
    /// Request UID.
    pub uid: String,
    /// completed, aborted, refused or failed.
    pub outcome: String,
    /// One line.
    pub message: String,
    /// When it ended (RFC 3339).
    pub time: String,
}

/// The four status fields of restart and reinit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartReinitStatus {
    /// `cluster.restart`.
    pub restart: Option<RestartStatus>,
    /// `cluster.last_restart`.
    pub last_restart: Option<LastOperation>,
    /// `cluster.reinit`.
    pub reinit: Option<ReinitStatus>,
    /// `cluster.last_reinit`.
    pub last_reinit: Option<LastOperation>,
}

fn last(r: &OperationResult) -> LastOperation {
    LastOperation {
        uid: r.uid.clone(),
        outcome: r.outcome.clone(),
        message: r.message.clone(),
        time: r.time.to_string(),
    }
}

/// Reads them from the cluster data.
pub fn restart_reinit_status(cd: &ClusterData) -> RestartReinitStatus {
    let ops = &cd.operations;
    RestartReinitStatus {
        restart: ops.restart.as_ref().map(|r| RestartStatus {
            uid: r.uid.clone(),
            keepers: r.keepers.clone(),
            pending_only: r.pending_only,
            in_place: r.in_place,
            done: r.done.clone(),
            current: r.current.as_ref().map(|c| c.keeper.clone()).unwrap_or_default(),
            by_switchover: r.current.as_ref().is_some_and(|c| !c.switchover.is_empty()),
            timeout: r.timeout.to_string(),
        }),
        last_restart: ops.last_restart.as_ref().map(last),
        reinit: ops.reinit.as_ref().map(|r| ReinitStatus {
            uid: r.uid.clone(),
            keeper: r.keeper.clone(),
            phase: r.phase.to_string(),
            timeout: r.timeout.to_string(),
        }),
        last_reinit: ops.last_reinit.as_ref().map(last),
    }
}

/// The text lines (each ends with a newline; empty when there is nothing to say).
pub fn restart_reinit_text(
    restart: Option<&RestartStatus>,
    last_restart: Option<&LastOperation>,
    reinit: Option<&ReinitStatus>,
    last_reinit: Option<&LastOperation>,
) -> String {
    let mut out = String::new();
    if let Some(r) = restart {
        let scope = if r.keepers.is_empty() { "all keepers".to_string() } else { r.keepers.join(", ") };
        let mut flags = String::new();
        if r.pending_only {
            flags.push_str(", pending only");
        }
        if r.in_place {
            flags.push_str(", master in place");
        }
        let now = match (r.current.as_str(), r.by_switchover) {
            ("", _) => "between steps".to_string(),
            (k, true) => format!("switching over the master on keeper {k}"),
            (k, false) => format!("restarting keeper {k}"),
        };
        let done = if r.done.is_empty() { "none".to_string() } else { r.done.join(", ") };
        out.push_str(&format!("Rolling restart ({scope}{flags}): {now}; done: {done} (step timeout {})\n", r.timeout));
    }
    if let Some(l) = last_restart {
        out.push_str(&format!("Last restart: {} at {}: {}\n", l.outcome, l.time, l.message));
    }
    if let Some(r) = reinit {
        out.push_str(&format!("Reinit: {} keeper {} (timeout {})\n", r.phase, r.keeper, r.timeout));
    }
    if let Some(l) = last_reinit {
        out.push_str(&format!("Last reinit: {} at {}: {}\n", l.outcome, l.time, l.message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Reinit, ReinitPhase, Restart, RestartStep};
    use crate::time::Timestamp;

    #[test]
    fn lines_for_a_running_restart_and_reinit_and_nothing_otherwise() {
        let mut cd = ClusterData::default();
        let s = restart_reinit_status(&cd);
        assert_eq!(restart_reinit_text(s.restart.as_ref(), None, s.reinit.as_ref(), None), "");
        cd.operations.restart = Some(Restart {
            uid: "r1".into(),
            pending_only: true,
            done: vec!["k1".into()],
            current: Some(RestartStep { keeper: "k0".into(), switchover: "restart-r1".into(), ..Default::default() }),
            timeout: crate::duration::GoDuration::from_std(std::time::Duration::from_secs(300)),
            ..Restart::default()
        });
        cd.operations.reinit = Some(Reinit { keeper: "k2".into(), phase: ReinitPhase::Cloning, ..Reinit::default() });
        cd.operations.last_reinit = Some(OperationResult {
            outcome: "completed".into(),
            message: "done".into(),
            time: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            ..Default::default()
        });
        let s = restart_reinit_status(&cd);
        let text = restart_reinit_text(s.restart.as_ref(), None, s.reinit.as_ref(), s.last_reinit.as_ref());
        assert_eq!(
            text,
            "Rolling restart (all keepers, pending only): switching over the master on keeper k0; done: k1 (step \
             timeout 5m0s)\nReinit: cloning keeper k2 (timeout 0s)\nLast reinit: completed at \
             2026-01-01T00:00:00Z: done\n"
        );
    }
}
