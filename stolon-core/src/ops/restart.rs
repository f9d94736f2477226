//! The rolling restart (`stolonctl restart`), one step per leader pass (pure).
//!
//! `operations.restart` lists the keepers to restart (empty = all). The leader restarts them one at a
//! time: every targeted standby first (in keeper UID order), each back to streaming before the next, then
//! the master: by a switchover to the best eligible standby (the old master restarts when it rejoins as a
//! standby) or, with `inPlace`, where it is. With `pendingOnly` only instances whose keeper reports a
//! parameter pending a restart are restarted. A keeper is told to restart by [`keeper_token`] and reports
//! the request UID as `restartedFor` once it did; a step that does not finish within the timeout aborts the
//! restart (the keepers not reached yet are left as they are).

use std::collections::BTreeMap;

use super::candidate;
use crate::cluster::{
    ClusterData, ClusterRole, KeeperInfo, OperationResult, PostgresState, Restart, RestartStep, Switchover, outcome,
};
use crate::duration::GoDuration;
use crate::time::Timestamp;

/// Default `--timeout` of one keeper's step.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a restart request is refused (one line for stolonctl; nothing is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No keeper named and no `--all`.
    #[error("name the keepers to restart or pass --all")]
    NoTarget,
    /// Keepers named together with `--all`.
    #[error("--all takes no keeper names")]
    AllWithKeepers,
    /// No keeper of that UID.
    #[error("keeper {0} does not exist")]
    UnknownKeeper(String),
    /// The keeper hosts no DB.
    #[error("keeper {0} has no database")]
    NoDb(String),
    /// A targeted keeper or its DB is not healthy.
    #[error("keeper {0} is not healthy")]
    Unhealthy(String),
    /// The cluster is paused.
    #[error("the cluster is paused")]
    Paused,
    /// Another operation owns the cluster.
    #[error("{0} is in progress")]
    Busy(&'static str),
    /// The cluster has no master.
    #[error("the cluster has no master")]
    NoMaster,
    /// The master cannot be switched over (and `--in-place` was not given).
    #[error("the master cannot be restarted by a switchover ({0}); use --in-place")]
    NoSwitchover(String),
}

/// A request as stolonctl records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Keeper UIDs (empty with `all`).
    pub keepers: Vec<String>,
    /// `--all`.
    pub all: bool,
    /// `--pending-only`.
    pub pending_only: bool,
    /// `--in-place`.
    pub in_place: bool,
}

/// Which operation, if any, keeps another one from starting.
pub fn busy(cd: &ClusterData) -> Option<&'static str> {
    let ops = &cd.operations;
    if ops.restart.is_some() {
        Some("a rolling restart")
    } else if ops.reinit.is_some() {
        Some("a reinit")
    } else if ops.switchover.is_some() {
        Some("a switchover")
    } else {
        None
    }
}

/// Checks a restart request against the current cluster data (what stolonctl runs before writing).
pub fn check_request(cd: &ClusterData, req: &Request, now: Timestamp) -> Result<(), Refusal> {
    match (req.all, req.keepers.is_empty()) {
        (false, true) => return Err(Refusal::NoTarget),
        (true, false) => return Err(Refusal::AllWithKeepers),
        _ => {}
    }
    if super::pause::is_paused(cd, now) {
        return Err(Refusal::Paused);
    }
    if let Some(what) = busy(cd) {
        return Err(Refusal::Busy(what));
    }
    let master = cd.master_db().ok_or(Refusal::NoMaster)?;
    for k in &req.keepers {
        if !cd.keepers.contains_key(k) {
            return Err(Refusal::UnknownKeeper(k.clone()));
        }
        cd.db_of_keeper(k).ok_or_else(|| Refusal::NoDb(k.clone()))?;
    }
    for db in cd.dbs.values().filter(|db| req.all || req.keepers.contains(&db.spec.keeper_uid)) {
        let keeper_ok = cd.keepers.get(&db.spec.keeper_uid).is_some_and(|k| k.status.healthy);
        if !keeper_ok || !db.status.healthy {
            return Err(Refusal::Unhealthy(db.spec.keeper_uid.clone()));
        }
    }
    let master_targeted = req.all || req.keepers.contains(&master.spec.keeper_uid);
    if master_targeted && !req.in_place && !req.pending_only {
        if cd.cluster.spec.role() == ClusterRole::Standby {
            return Err(Refusal::NoSwitchover(candidate::Refusal::StandbyCluster.to_string()));
        }
        candidate::choose(cd, master, "").map_err(|r| Refusal::NoSwitchover(r.to_string()))?;
    }
    Ok(())
}

/// The record stolonctl writes for an accepted request.
pub fn record(req: &Request, uid: String, timeout: GoDuration, now: Timestamp) -> Restart {
    Restart {
        uid,
        request_time: now,
        keepers: if req.all { Vec::new() } else { req.keepers.clone() },
        pending_only: req.pending_only,
        in_place: req.in_place,
        timeout,
        ..Restart::default()
    }
}

/// The restart UID the keeper hosting `db_uid` must restart PostgreSQL for now, if any (the master
/// restarted by a switchover is not told: the switchover restarts it).
pub fn keeper_token<'a>(cd: &'a ClusterData, db_uid: &str) -> Option<&'a str> {
    let r = cd.operations.restart.as_ref()?;
    let cur = r.current.as_ref()?;
    (cur.db == db_uid && cur.switchover.is_empty()).then_some(r.uid.as_str())
}

fn state_of<'a>(infos: &'a BTreeMap<String, KeeperInfo>, keeper: &str, db: &str) -> Option<&'a PostgresState> {
    infos.get(keeper)?.postgres_state.as_ref().filter(|st| st.uid == db)
}

/// The next keeper to restart: standbys first (keeper UID order), the master last; `None` when done.
pub fn next_target<'a>(
    cd: &'a ClusterData,
    infos: &BTreeMap<String, KeeperInfo>,
    r: &Restart,
) -> Option<&'a crate::cluster::Db> {
    let master = &cd.cluster.status.master;
    let mut targets: Vec<&crate::cluster::Db> = cd
        .dbs
        .values()
        .filter(|db| r.keepers.is_empty() || r.keepers.contains(&db.spec.keeper_uid))
        .filter(|db| !r.done.contains(&db.spec.keeper_uid))
        .filter(|db| {
            !r.pending_only || state_of(infos, &db.spec.keeper_uid, &db.uid).is_some_and(|s| s.pending_restart)
        })
        .collect();
    targets.sort_by_key(|db| (db.uid == *master, db.spec.keeper_uid.clone()));
    targets.into_iter().next()
}

/// Whether a keeper's step is over: it reported PostgreSQL restarted for this request, healthy, and (a
/// standby) streaming from its upstream again.
fn restarted(cd: &ClusterData, infos: &BTreeMap<String, KeeperInfo>, r: &Restart, step: &RestartStep) -> bool {
    let is_master = cd.cluster.status.master == step.db;
    state_of(infos, &step.keeper, &step.db)
        .is_some_and(|st| st.restarted_for == r.uid && st.healthy && (is_master || st.upstream_x_log_pos > 0))
}

/// Ends the restart with `outcome` and a message, keeping it as `lastRestart`.
fn finish(cd: &mut ClusterData, outcome: &str, message: String, now: Timestamp) {
    let Some(r) = cd.operations.restart.take() else { return };
    if outcome == outcome::COMPLETED {
        tracing::info!(uid = %r.uid, "rolling restart completed: {message}");
    } else {
        tracing::warn!(uid = %r.uid, outcome, "rolling restart ended: {message}");
    }
    cd.operations.last_restart = Some(OperationResult { uid: r.uid, outcome: outcome.to_string(), message, time: now });
}

fn summary(r: &Restart) -> String {
    if r.done.is_empty() {
        "no instance needed a restart".to_string()
    } else {
        format!("restarted keepers {}", r.done.join(", "))
    }
}

/// Advances a recorded restart (called by the leader before the switchover step, so that a switchover it
/// creates starts in the same pass).
pub(crate) fn step(cd: &mut ClusterData, infos: &BTreeMap<String, KeeperInfo>, now: Timestamp) {
    let Some(mut r) = cd.operations.restart.clone() else { return };
    if let Some(cur) = r.current.clone() {
        if !cur.switchover.is_empty() {
            if cd.operations.switchover.as_ref().is_some_and(|s| s.uid == cur.switchover) {
                return;
            }
            match cd.operations.last_switchover.as_ref().filter(|s| s.uid == cur.switchover) {
                Some(res) if res.outcome == outcome::COMPLETED => {}
                Some(res) => {
                    let msg = format!("the master's switchover {}: {}; {}", res.outcome, res.message, summary(&r));
                    finish(cd, outcome::ABORTED, msg, now);
                    return;
                }
                None => {
                    finish(cd, outcome::ABORTED, "the master's switchover disappeared".into(), now);
                    return;
                }
            }
        } else if !restarted(cd, infos, &r, &cur) {
            if elapsed(cur.since, now, r.timeout) {
                let msg = format!(
                    "keeper {} was not restarted and streaming after {}; {}",
                    cur.keeper,
                    r.timeout,
                    summary(&r)
                );
                finish(cd, outcome::ABORTED, msg, now);
            }
            return;
        }
        tracing::info!(keeper = %cur.keeper, "rolling restart: keeper restarted");
        r.done.push(cur.keeper);
        r.current = None;
    }
    let next = next_target(cd, infos, &r).map(|db| (db.uid.clone(), db.spec.keeper_uid.clone()));
    let Some((db, keeper)) = next else {
        let msg = summary(&r);
        cd.operations.restart = Some(r);
        finish(cd, outcome::COMPLETED, msg, now);
        return;
    };
    let mut step = RestartStep { keeper: keeper.clone(), db: db.clone(), since: now, switchover: String::new() };
    if db == cd.cluster.status.master && !r.in_place {
        if cd.operations.switchover.is_some() {
            // Another switchover runs: the master's turn waits for it.
            cd.operations.restart = Some(r);
            return;
        }
        step.switchover = format!("restart-{}", r.uid);
        tracing::info!(keeper = %keeper, "rolling restart: switching over the master");
        cd.operations.switchover = Some(Switchover {
            uid: step.switchover.clone(),
            request_time: now,
            timeout: super::switchover::DEFAULT_TIMEOUT.into(),
            reason: "restart".into(),
            ..Switchover::default()
        });
    } else {
        tracing::info!(keeper = %keeper, "rolling restart: restarting postgres");
    }
    r.current = Some(step);
    cd.operations.restart = Some(r);
}

/// When the current step times out.
pub(crate) fn deadline(cd: &ClusterData) -> Option<Timestamp> {
    let r = cd.operations.restart.as_ref()?;
    let cur = r.current.as_ref().filter(|c| c.switchover.is_empty())?;
    end_of(cur.since, r.timeout)
}

/// `since + timeout` (`None` when out of range).
pub(crate) fn end_of(since: Timestamp, timeout: GoDuration) -> Option<Timestamp> {
    let d = chrono::Duration::from_std(timeout.to_std_saturating()).ok()?;
    since.as_datetime().checked_add_signed(d).map(Timestamp::from_datetime)
}

/// Whether `timeout` has passed since `since`.
pub(crate) fn elapsed(since: Timestamp, now: Timestamp, timeout: GoDuration) -> bool {
    end_of(since, timeout).is_some_and(|end| now >= end)
}

#[cfg(test)]
#[path = "restart_tests.rs"]
pub(crate) mod tests;
