//! Reinit (`stolonctl reinit KEEPER`), one step per leader pass (pure).
//!
//! `scheduled`: the leader checks the request again and removes the keeper's standby DB; the usual
//! standby placement of the same pass gives the keeper a new DB (init mode `resync`), and its keeper wipes
//! the data directory and clones it from the master with a base backup ([`reclone`] forbids pg_rewind).
//! `cloning`: done when the keeper reports the new DB healthy, converged and streaming; at the timeout the
//! reinit is recorded as `failed` (the sentinel keeps resyncing the new DB as any other standby).

use std::collections::BTreeMap;

use super::restart::{busy, elapsed, end_of};
use crate::cluster::{ClusterData, KeeperInfo, OperationResult, Reinit, ReinitPhase, outcome};
use crate::duration::GoDuration;
use crate::time::Timestamp;

/// Default `--timeout` of the cloning.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why a reinit is refused (one line for stolonctl; nothing is written, or the request ends `refused`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No keeper of that UID.
    #[error("keeper {0} does not exist")]
    UnknownKeeper(String),
    /// The keeper hosts no DB.
    #[error("keeper {0} has no database")]
    NoDb(String),
    /// The keeper hosts the master (or a standby cluster's standby leader): there is nothing to clone from.
    #[error("keeper {0} hosts the master: only a standby can be reinitialised")]
    Master(String),
    /// The cluster has no master, or it is unhealthy.
    #[error("the master is not healthy: nothing to clone from")]
    NoHealthyMaster,
    /// The cluster is paused.
    #[error("the cluster is paused")]
    Paused,
    /// Another operation owns the cluster.
    #[error("{0} is in progress")]
    Busy(&'static str),
}

/// Checks a reinit of `keeper` against the cluster data (stolonctl before writing; the leader again).
pub fn check(cd: &ClusterData, keeper: &str, now: Timestamp) -> Result<(), Refusal> {
    if !cd.keepers.contains_key(keeper) {
        return Err(Refusal::UnknownKeeper(keeper.to_string()));
    }
    let db = cd.db_of_keeper(keeper).ok_or_else(|| Refusal::NoDb(keeper.to_string()))?;
    if db.uid == cd.cluster.status.master {
        return Err(Refusal::Master(keeper.to_string()));
    }
    let master = cd.master_db().ok_or(Refusal::NoHealthyMaster)?;
    let master_keeper_ok = cd.keepers.get(&master.spec.keeper_uid).is_some_and(|k| k.status.healthy);
    if !master.status.healthy || !master_keeper_ok {
        return Err(Refusal::NoHealthyMaster);
    }
    if super::pause::is_paused(cd, now) {
        return Err(Refusal::Paused);
    }
    Ok(())
}

/// Checks a new request: [`check`], and no other operation in progress.
pub fn check_request(cd: &ClusterData, keeper: &str, now: Timestamp) -> Result<(), Refusal> {
    if let Some(what) = busy(cd) {
        return Err(Refusal::Busy(what));
    }
    check(cd, keeper, now)
}

/// The record stolonctl writes for an accepted request.
pub fn record(keeper: &str, uid: String, timeout: GoDuration, now: Timestamp) -> Reinit {
    Reinit { uid, request_time: now, keeper: keeper.to_string(), timeout, ..Reinit::default() }
}

/// Whether the keeper hosting `db_uid` must clone it with a base backup (no pg_rewind): it is the new DB
/// of a keeper being reinitialised.
pub fn reclone(cd: &ClusterData, db_uid: &str) -> bool {
    let Some(ri) = cd.operations.reinit.as_ref().filter(|r| r.phase == ReinitPhase::Cloning) else {
        return false;
    };
    db_uid != ri.from_db && cd.dbs.get(db_uid).is_some_and(|db| db.spec.keeper_uid == ri.keeper)
}

fn finish(cd: &mut ClusterData, outcome: &str, message: String, now: Timestamp) {
    let Some(ri) = cd.operations.reinit.take() else { return };
    if outcome == outcome::COMPLETED {
        tracing::info!(keeper = %ri.keeper, "reinit completed: {message}");
    } else {
        tracing::warn!(keeper = %ri.keeper, outcome, "reinit ended: {message}");
    }
    cd.operations.last_reinit = Some(OperationResult { uid: ri.uid, outcome: outcome.to_string(), message, time: now });
}

/// Advances a recorded reinit (before the normal computation, which then places the new standby).
pub(crate) fn step(cd: &mut ClusterData, infos: &BTreeMap<String, KeeperInfo>, now: Timestamp) {
    let Some(ri) = cd.operations.reinit.clone() else { return };
    match ri.phase {
        ReinitPhase::Scheduled => {
            if cd.operations.switchover.is_some() {
                return;
            }
            if let Err(refusal) = check(cd, &ri.keeper, now) {
                finish(cd, outcome::REFUSED, refusal.to_string(), now);
                return;
            }
            let Some(old) = cd.db_of_keeper(&ri.keeper).map(|db| db.uid.clone()) else { return };
            tracing::info!(keeper = %ri.keeper, db = %old, "reinit: replacing the standby db, its keeper clones a new one");
            cd.dbs.remove(&old);
            for db in cd.dbs.values_mut() {
                if db.spec.followers().contains(&old) {
                    db.spec.followers = Some(db.spec.followers().iter().filter(|f| **f != old).cloned().collect());
                }
            }
            cd.operations.reinit =
                Some(Reinit { phase: ReinitPhase::Cloning, phase_time: Some(now), from_db: old, ..ri });
        }
        ReinitPhase::Cloning => {
            let new_db = cd.db_of_keeper(&ri.keeper).filter(|db| db.uid != ri.from_db);
            let streaming = new_db.is_some_and(|db| {
                let st = infos.get(&ri.keeper).and_then(|i| i.postgres_state.as_ref()).filter(|st| st.uid == db.uid);
                st.is_some_and(|st| st.healthy && st.generation == db.generation && st.upstream_x_log_pos > 0)
            });
            if let Some(db) = new_db.filter(|_| streaming) {
                let msg = format!("keeper {} re-cloned from the master as db {}", ri.keeper, db.uid);
                finish(cd, outcome::COMPLETED, msg, now);
            } else if ri.phase_time.is_none_or(|t| elapsed(t, now, ri.timeout)) {
                let msg = format!(
                    "keeper {} is not streaming after {}; it is resynced as any standby",
                    ri.keeper, ri.timeout
                );
                finish(cd, outcome::FAILED, msg, now);
            }
        }
    }
}

/// When the cloning times out.
pub(crate) fn deadline(cd: &ClusterData) -> Option<Timestamp> {
    let ri = cd.operations.reinit.as_ref().filter(|r| r.phase == ReinitPhase::Cloning)?;
    end_of(ri.phase_time?, ri.timeout)
}

#[cfg(test)]
#[path = "reinit_tests.rs"]
mod tests;
