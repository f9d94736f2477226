//! Operations: pause/resume, keeper maintenance, priorities and the planned switchover (issue 14).
//!
//! Everything here is pure: requests live in cluster data (`operations`, `keepers.<uid>.spec.maintenance`,
//! `keepers.<uid>.spec.priority`), the leader sentinel advances them one step per pass with [`before`] and
//! [`after`] (cluster data + keeper infos + clock -> next cluster data), keepers ask [`keeper::directive`]
//! what an operation wants of them, and stolonctl checks requests with [`candidate`] before writing them.
//! Nothing in this module does IO. A further operation (rolling restart, reinit) is another phase machine
//! recorded in `operations` and advanced from [`before`]/[`after`] the same way.

pub mod candidate;
pub mod keeper;
pub mod pause;
pub mod reinit;
pub mod restart;
pub mod switchover;

#[cfg(test)]
mod keeper_plan_tests;

use std::collections::BTreeMap;

pub use switchover::Control;

use crate::cluster::{ClusterData, KeeperInfo, SwitchoverPhase};
use crate::time::Timestamp;

/// The leader's step before the normal cluster-view computation: expires a pause, refuses switchovers that
/// are due while paused, creates a priority switchover when the spec asks for it, and advances a running
/// switchover. The returned [`Control`] says whether the normal computation runs in this pass.
pub fn before(cd: &mut ClusterData, infos: &BTreeMap<String, KeeperInfo>, now: Timestamp) -> Control {
    pause::expire(cd, now);
    if pause::is_paused(cd, now) {
        let due = cd
            .operations
            .switchover
            .as_ref()
            .is_some_and(|s| s.phase == SwitchoverPhase::Scheduled && s.at.is_none_or(|at| now >= at));
        if due {
            switchover::finish(cd, crate::cluster::outcome::REFUSED, candidate::Refusal::Paused.to_string(), now);
        }
        if cd.operations.switchover.as_ref().is_none_or(|s| s.phase == SwitchoverPhase::Scheduled) {
            return Control::Hold;
        }
    }
    restart::step(cd, infos, now);
    reinit::step(cd, infos, now);
    switchover::request_for_priority(cd, now);
    switchover::step(cd, infos, now)
}

/// The leader's step after the normal computation: ends a promoting switchover when it is done.
pub fn after(cd: &mut ClusterData, now: Timestamp) {
    switchover::settle(cd, now);
}

/// When the leader must run a pass for an operation even if nothing else changes: a scheduled switchover's
/// time, the end of a pause, or a running switchover's timeout.
pub fn next_deadline(cd: &ClusterData) -> Option<Timestamp> {
    let ops = &cd.operations;
    let mut times: Vec<Timestamp> = Vec::new();
    if let Some(p) = &ops.pause {
        times.extend(p.until);
    }
    if let Some(sw) = &ops.switchover {
        match sw.phase {
            SwitchoverPhase::Scheduled => times.extend(sw.at),
            _ => {
                let end = sw.phase_time.and_then(|t| {
                    let d = chrono::Duration::from_std(sw.timeout.to_std_saturating()).ok()?;
                    t.as_datetime().checked_add_signed(d).map(Timestamp::from_datetime)
                });
                times.extend(end);
            }
        }
    }
    times.extend(restart::deadline(cd));
    times.extend(reinit::deadline(cd));
    times.into_iter().min()
}

/// Whether a switchover is running (fencing or promoting): the leader then watches keeper infos closely.
pub fn switchover_running(cd: &ClusterData) -> bool {
    cd.operations.switchover.as_ref().is_some_and(|s| s.phase != SwitchoverPhase::Scheduled)
}

/// Keepers in maintenance, sorted.
pub fn keepers_in_maintenance(cd: &ClusterData) -> Vec<String> {
    cd.keepers.values().filter(|k| k.spec.maintenance).map(|k| k.uid.clone()).collect()
}
