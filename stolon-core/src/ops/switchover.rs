//! The planned switchover, one step per leader pass (pure).
//!
//! Phases recorded in `operations.switchover`:
//! 1. `scheduled`: waits for `at`; then the request is checked again ([`candidate`](super::candidate)) and
//!    either refused (nothing changed) or started.
//! 2. `fencing`: the proxies' target is emptied (they close every connection) and the old master's keeper
//!    shuts PostgreSQL down cleanly (its WAL senders hand every byte to the connected standbys first); the
//!    candidate pre-creates the old master's replication slot. The phase ends when the old master reported
//!    its shutdown checkpoint and the candidate reported a WAL position past it: the candidate then has every
//!    byte the old master wrote, every acknowledged commit included. At the timeout (a dead or late
//!    candidate, an old master that did not shut down): aborted, the old master starts again as the master.
//! 3. `promoting`: the candidate becomes the master (an election without a failure) and the old master DB
//!    becomes its standby in place: its keeper starts it from the clean shutdown with `standby.signal`,
//!    without pg_rewind or a base backup. The usual sentinel logic routes the proxies once the new master
//!    converged. Done when the old master streams again (or at the timeout, when it is replaced by a new
//!    standby).

use std::collections::BTreeMap;

use super::candidate::{self, Refusal};
use crate::cluster::{
    ClusterData, DbRole, FollowConfig, FollowType, KeeperInfo, Switchover, SwitchoverPhase, SwitchoverResult, outcome,
};
use crate::duration::GoDuration;
use crate::time::Timestamp;

/// Default `--timeout` of a switchover.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// After an automatic (priority) switchover ended without completing, wait this long before another.
pub const AUTOMATIC_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether the normal sentinel logic runs in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Run the usual cluster-view computation.
    Normal,
    /// Paused: decide nothing.
    Hold,
    /// A switchover owns the cluster view in this pass (fencing): decide nothing else.
    Operate,
}

fn elapsed(since: Option<Timestamp>, now: Timestamp, timeout: GoDuration) -> bool {
    let (Some(since), Ok(t)) = (since, chrono::Duration::from_std(timeout.to_std_saturating())) else {
        return false;
    };
    since.as_datetime().checked_add_signed(t).is_some_and(|end| now.as_datetime() >= end)
}

/// Ends the switchover with `outcome` and a message, keeping it as `lastSwitchover`.
pub(crate) fn finish(cd: &mut ClusterData, outcome: &str, message: String, now: Timestamp) {
    let Some(sw) = cd.operations.switchover.take() else { return };
    if outcome == outcome::COMPLETED {
        tracing::info!(from = %sw.from_db, to = %sw.to_db, "switchover completed: {message}");
    } else {
        tracing::warn!(uid = %sw.uid, outcome, "switchover ended: {message}");
    }
    let completed = outcome == outcome::COMPLETED;
    cd.operations.last_switchover = Some(SwitchoverResult {
        uid: sw.uid,
        outcome: outcome.to_string(),
        message,
        time: now,
        from_db: sw.from_db,
        to_db: if completed { sw.to_db } else { String::new() },
    });
}

/// Creates an automatic switchover when the spec asks for the highest priority master
/// (`switchoverToHigherPriority`) and an eligible standby's keeper has a higher priority than the master's.
pub(crate) fn request_for_priority(cd: &mut ClusterData, now: Timestamp) {
    if cd.operations.switchover.is_some() || cd.cluster.spec.switchover_to_higher_priority != Some(true) {
        return;
    }
    let recent_failure = cd
        .operations
        .last_switchover
        .as_ref()
        .is_some_and(|r| r.outcome != outcome::COMPLETED && !elapsed(Some(r.time), now, AUTOMATIC_RETRY.into()));
    if recent_failure {
        return;
    }
    let Ok(master) = candidate::check_cluster(cd, now) else { return };
    let routed = cd.proxy.spec.master_db_uid == master.uid;
    if !routed || master.status.current_generation != master.generation {
        return;
    }
    let master_prio = candidate::priority(cd.keepers.get(&master.spec.keeper_uid));
    let best = candidate::eligible(cd, master).into_iter().find(|uid| {
        cd.dbs.get(uid).is_some_and(|db| candidate::priority(cd.keepers.get(&db.spec.keeper_uid)) > master_prio)
    });
    let Some(to_keeper) = best.and_then(|uid| cd.dbs.get(&uid)).map(|db| db.spec.keeper_uid.clone()) else {
        return;
    };
    tracing::info!(keeper = %to_keeper, "a standby's keeper has a higher priority than the master's: switching over");
    cd.operations.switchover = Some(Switchover {
        uid: format!("priority-{}", now.as_datetime().timestamp_millis()),
        request_time: now,
        timeout: DEFAULT_TIMEOUT.into(),
        to_keeper,
        reason: "priority".into(),
        ..Switchover::default()
    });
}

/// Advances a recorded switchover before the normal logic (scheduled -> fencing -> promoting).
pub(crate) fn step(cd: &mut ClusterData, infos: &BTreeMap<String, KeeperInfo>, now: Timestamp) -> Control {
    let Some(sw) = cd.operations.switchover.clone() else { return Control::Normal };
    match sw.phase {
        SwitchoverPhase::Scheduled => {
            if sw.at.is_some_and(|at| now < at) {
                return Control::Normal;
            }
            start(cd, &sw, now)
        }
        SwitchoverPhase::Fencing => fencing(cd, &sw, infos, now),
        SwitchoverPhase::Promoting => Control::Normal,
    }
}

fn start(cd: &mut ClusterData, sw: &Switchover, now: Timestamp) -> Control {
    let chosen =
        candidate::check_cluster(cd, now).and_then(|m| candidate::choose(cd, m, &sw.to_keeper).map(|c| (m, c)));
    let (from, to) = match chosen {
        Ok((master, to)) => (master.uid.clone(), to),
        Err(refusal) => {
            finish(cd, outcome::REFUSED, refusal.to_string(), now);
            return Control::Normal;
        }
    };
    let fence_pos = cd.dbs.get(&from).map_or(0, |m| m.status.x_log_pos);
    tracing::info!(from = %from, to = %to, "switchover: fencing the master");
    if let Some(cand) = cd.dbs.get_mut(&to) {
        // Its keeper creates the old master's slot now, so the old master streams as soon as it restarts.
        let mut followers = cand.spec.followers().to_vec();
        if !followers.contains(&from) {
            followers.push(from.clone());
            followers.sort();
        }
        cand.spec.followers = Some(followers);
    }
    if !cd.proxy.spec.master_db_uid.is_empty() {
        cd.proxy.spec.master_db_uid.clear();
        cd.proxy.generation += 1;
    }
    if let Some(rec) = cd.operations.switchover.as_mut() {
        rec.phase = SwitchoverPhase::Fencing;
        rec.phase_time = Some(now);
        rec.from_db = from;
        rec.to_db = to;
        rec.fence_x_log_pos = fence_pos;
    }
    Control::Operate
}

/// The fenced master's shutdown checkpoint, once its keeper reported it after the fence.
fn fenced_checkpoint(cd: &ClusterData, sw: &Switchover, infos: &BTreeMap<String, KeeperInfo>) -> Option<u64> {
    let keeper = &cd.dbs.get(&sw.from_db)?.spec.keeper_uid;
    let st = infos.get(keeper)?.postgres_state.as_ref()?;
    (st.uid == sw.from_db && !st.healthy && st.shutdown_checkpoint > 0 && st.shutdown_checkpoint >= sw.fence_x_log_pos)
        .then_some(st.shutdown_checkpoint)
}

/// The candidate's WAL position as its keeper last reported it.
fn candidate_position(cd: &ClusterData, sw: &Switchover, infos: &BTreeMap<String, KeeperInfo>) -> Option<u64> {
    let keeper = &cd.dbs.get(&sw.to_db)?.spec.keeper_uid;
    let st = infos.get(keeper)?.postgres_state.as_ref()?;
    (st.uid == sw.to_db && st.healthy).then_some(st.x_log_pos)
}

fn fencing(cd: &mut ClusterData, sw: &Switchover, infos: &BTreeMap<String, KeeperInfo>, now: Timestamp) -> Control {
    if !cd.dbs.contains_key(&sw.to_db) || !cd.dbs.contains_key(&sw.from_db) {
        abort(cd, sw, "the old master's or the candidate's db is gone".into(), now);
        return Control::Normal;
    }
    // A candidate the sentinel marks unhealthy (a late keeper info) is still promoted when it reports
    // every WAL byte of the old master: that report was made after the fence. A dead one is not, and the
    // switchover ends at its timeout.
    if let (Some(checkpoint), Some(pos)) = (fenced_checkpoint(cd, sw, infos), candidate_position(cd, sw, infos))
        && pos > checkpoint
    {
        promote(cd, sw, now);
        return Control::Normal;
    }
    if elapsed(sw.phase_time, now, sw.timeout) {
        let cand_ok = cd.dbs.get(&sw.to_db).is_some_and(|db| {
            db.status.healthy && cd.keepers.get(&db.spec.keeper_uid).is_some_and(|k| k.status.healthy)
        });
        let why = match fenced_checkpoint(cd, sw, infos) {
            _ if !cand_ok => Refusal::Unhealthy(keeper_of(cd, &sw.to_db)).to_string(),
            None => "the old master did not report a clean shutdown".to_string(),
            Some(_) => "the candidate did not receive the old master's last WAL".to_string(),
        };
        abort(cd, sw, format!("timed out after {}: {why}", sw.timeout), now);
        return Control::Normal;
    }
    Control::Operate
}

fn keeper_of(cd: &ClusterData, db: &str) -> String {
    cd.dbs.get(db).map(|d| d.spec.keeper_uid.clone()).unwrap_or_else(|| db.to_string())
}

/// Fencing failed: the old master is the master again (its keeper restarts it, the proxies are routed to it
/// once it converged) and the candidate forgets the old master's slot.
fn abort(cd: &mut ClusterData, sw: &Switchover, why: String, now: Timestamp) {
    if let Some(cand) = cd.dbs.get_mut(&sw.to_db) {
        cand.spec.followers = Some(cand.spec.followers().iter().filter(|f| **f != sw.from_db).cloned().collect());
    }
    finish(cd, outcome::ABORTED, format!("{why}; the old master accepts writes again"), now);
}

fn promote(cd: &mut ClusterData, sw: &Switchover, now: Timestamp) {
    tracing::info!(from = %sw.from_db, to = %sw.to_db, "switchover: the candidate has every WAL byte of the old master; promoting it");
    crate::sentinel::election::apply_election(cd, &sw.from_db, &sw.to_db, None);
    if let Some(old) = cd.dbs.get_mut(&sw.from_db) {
        old.spec.role = Some(DbRole::Standby);
        old.spec.follow_config = Some(FollowConfig {
            follow_type: Some(FollowType::Internal),
            db_uid: sw.to_db.clone(),
            ..FollowConfig::default()
        });
        old.spec.followers = Some(Vec::new());
        old.spec.synchronous_replication = false;
        old.spec.synchronous_standbys = None;
        old.spec.external_synchronous_standbys = None;
        old.spec.init_mode = Some(crate::cluster::DbInitMode::None);
    }
    let mut followers: Vec<String> = cd
        .dbs
        .values()
        .filter(|db| db.uid != sw.to_db)
        .filter(|db| db.spec.follow_config.as_ref().is_some_and(|f| f.db_uid == sw.to_db))
        .map(|db| db.uid.clone())
        .collect();
    followers.sort();
    if let Some(new) = cd.dbs.get_mut(&sw.to_db) {
        new.spec.followers = Some(followers);
    }
    if let Some(rec) = cd.operations.switchover.as_mut() {
        rec.phase = SwitchoverPhase::Promoting;
        rec.phase_time = Some(now);
    }
}

/// After the normal logic: ends a promoting switchover once the new master is routed and the old master
/// streams again, or at its timeout (a stopped old master is then replaced by a new standby).
pub(crate) fn settle(cd: &mut ClusterData, now: Timestamp) {
    let Some(sw) = cd.operations.switchover.clone().filter(|s| s.phase == SwitchoverPhase::Promoting) else {
        return;
    };
    if cd.cluster.status.master != sw.to_db {
        let now_master = cd.cluster.status.master.clone();
        finish(cd, outcome::ABORTED, format!("the master changed to db {now_master} during the switchover"), now);
        return;
    }
    let converged = |uid: &str| {
        cd.dbs.get(uid).is_some_and(|db| db.status.healthy && db.status.current_generation == db.generation)
    };
    let routed = cd.proxy.spec.master_db_uid == sw.to_db && converged(&sw.to_db);
    let rejoined = !cd.dbs.contains_key(&sw.from_db) || converged(&sw.from_db);
    let to_keeper = keeper_of(cd, &sw.to_db);
    if routed && rejoined {
        finish(cd, outcome::COMPLETED, format!("keeper {to_keeper} is the master"), now);
    } else if elapsed(sw.phase_time, now, sw.timeout) {
        if routed && !converged(&sw.from_db) {
            tracing::warn!(db = %sw.from_db, "the old master did not rejoin as a standby in time: replacing it");
            cd.dbs.remove(&sw.from_db);
        }
        let message = if routed {
            format!("keeper {to_keeper} is the master; the old master did not rejoin in time and is resynced")
        } else {
            format!("keeper {to_keeper} is the master but not routed yet after {}", sw.timeout)
        };
        finish(cd, outcome::COMPLETED, message, now);
    }
}
