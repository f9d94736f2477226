//! Which standby a switchover promotes, and why a request is refused (pure; shared by stolonctl, which
//! refuses a request before writing it, and by the leader sentinel, which checks again when it starts).

use crate::cluster::{ClusterData, ClusterRole, Db, DbRole, FollowType, Keeper};

/// Why a switchover cannot start. Each renders as one line for stolonctl.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The cluster is not initialised or has no master.
    #[error("the cluster has no master")]
    NoMaster,
    /// Standby clusters have no writable master to hand over.
    #[error("the cluster is a standby cluster: no switchover")]
    StandbyCluster,
    /// The master itself is not healthy (that is a failover's job).
    #[error("the master db {0} is not healthy")]
    MasterUnhealthy(String),
    /// `stolonctl pause` is in force.
    #[error("the cluster is paused")]
    Paused,
    /// Another switchover is recorded.
    #[error("another switchover is pending ({0})")]
    AlreadyPending(String),
    /// No keeper of that UID.
    #[error("keeper {0} does not exist")]
    UnknownKeeper(String),
    /// The keeper hosts no DB.
    #[error("keeper {0} has no database")]
    NoDb(String),
    /// The named keeper already hosts the master.
    #[error("keeper {0} already hosts the master")]
    AlreadyMaster(String),
    /// The DB is not a standby of this cluster's master.
    #[error("keeper {0} does not host a standby of the master")]
    NotStandby(String),
    /// Keeper or DB unhealthy.
    #[error("keeper {0} is not healthy")]
    Unhealthy(String),
    /// The DB has not applied its latest spec.
    #[error("keeper {0} has not converged (generation {1} of {2})")]
    NotConverged(String, i64, i64),
    /// `--can-be-master=false`.
    #[error("keeper {0} is not allowed to be master")]
    CannotBeMaster(String),
    /// `stolonctl maintenance KEEPER on`.
    #[error("keeper {0} is in maintenance")]
    InMaintenance(String),
    /// On another timeline than the master.
    #[error("keeper {0} is on timeline {1}, the master on {2}")]
    OtherTimeline(String, u64, u64),
    /// Behind the master by more than `maxStandbyLag`.
    #[error("keeper {keeper} lags {lag} bytes behind the master (maxStandbyLag {max})")]
    Lagging {
        /// Keeper UID.
        keeper: String,
        /// Lag in bytes.
        lag: u64,
        /// The spec's bound.
        max: u64,
    },
    /// No standby passes every check.
    #[error("no eligible standby: {0}")]
    NoEligibleStandby(String),
}

/// Whether the keeper is in maintenance (`stolonctl maintenance KEEPER on`).
pub fn in_maintenance(k: Option<&Keeper>) -> bool {
    k.is_some_and(|k| k.spec.maintenance)
}

/// The keeper's priority (0 when unknown).
pub fn priority(k: Option<&Keeper>) -> i64 {
    k.map_or(0, |k| k.spec.priority)
}

/// Why the cluster cannot switch over at all right now (master, pause, pending request).
pub fn check_cluster(cd: &ClusterData, now: crate::time::Timestamp) -> Result<&Db, Refusal> {
    if cd.cluster.spec.role() == ClusterRole::Standby {
        return Err(Refusal::StandbyCluster);
    }
    let master = cd.master_db().ok_or(Refusal::NoMaster)?;
    if super::pause::is_paused(cd, now) {
        return Err(Refusal::Paused);
    }
    if !master.status.healthy || !cd.keepers.get(&master.spec.keeper_uid).is_some_and(|k| k.status.healthy) {
        return Err(Refusal::MasterUnhealthy(master.uid.clone()));
    }
    Ok(master)
}

/// Checks one standby DB as a candidate to replace `master`.
pub fn check_standby(cd: &ClusterData, master: &Db, db: &Db) -> Result<(), Refusal> {
    let kuid = db.spec.keeper_uid.clone();
    if db.uid == master.uid {
        return Err(Refusal::AlreadyMaster(kuid));
    }
    let internal_standby = db.spec.role == Some(DbRole::Standby)
        && db.spec.follow_config.as_ref().is_some_and(|f| f.follow_type == Some(FollowType::Internal));
    if !internal_standby {
        return Err(Refusal::NotStandby(kuid));
    }
    let keeper = cd.keepers.get(&kuid);
    if !keeper.is_some_and(|k| k.status.healthy) || !db.status.healthy {
        return Err(Refusal::Unhealthy(kuid));
    }
    if db.status.current_generation != db.generation {
        return Err(Refusal::NotConverged(kuid, db.status.current_generation, db.generation));
    }
    if keeper.is_some_and(|k| k.status.can_be_master == Some(false)) {
        return Err(Refusal::CannotBeMaster(kuid));
    }
    if in_maintenance(keeper) {
        return Err(Refusal::InMaintenance(kuid));
    }
    if db.status.timeline_id != master.status.timeline_id {
        return Err(Refusal::OtherTimeline(kuid, db.status.timeline_id, master.status.timeline_id));
    }
    // A confirmed synchronous standby has every acknowledged commit: its reported lag is only the distance
    // between two reports taken at different times.
    let lag = master.status.x_log_pos.saturating_sub(db.status.x_log_pos);
    let max = u64::from(cd.cluster.spec.max_standby_lag());
    if lag > max && !confirmed_sync(master, db) {
        return Err(Refusal::Lagging { keeper: kuid, lag, max });
    }
    Ok(())
}

/// Whether `db` is a confirmed synchronous standby of `master` under synchronous replication.
fn confirmed_sync(master: &Db, db: &Db) -> bool {
    master.spec.synchronous_replication && master.status.synchronous_standbys().contains(&db.uid)
}

/// Orders candidate DB UIDs best first: confirmed synchronous standbys, then higher keeper priority, then
/// least lag (highest WAL position), then UID.
pub fn order(cd: &ClusterData, master: &Db, uids: &mut [String]) {
    let key = |uid: &String| {
        let db = cd.dbs.get(uid);
        let sync = db.is_some_and(|d| confirmed_sync(master, d));
        let prio = db.map_or(0, |d| priority(cd.keepers.get(&d.spec.keeper_uid)));
        let pos = db.map_or(0, |d| d.status.x_log_pos);
        (std::cmp::Reverse(sync), std::cmp::Reverse(prio), std::cmp::Reverse(pos))
    };
    uids.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.cmp(b)));
}

/// The eligible candidates, best first.
pub fn eligible(cd: &ClusterData, master: &Db) -> Vec<String> {
    let mut out: Vec<String> =
        cd.dbs.values().filter(|db| check_standby(cd, master, db).is_ok()).map(|db| db.uid.clone()).collect();
    order(cd, master, &mut out);
    out
}

/// The DB a switchover promotes: the DB of `to_keeper` when named (refused with the first failed check),
/// else the best eligible standby.
pub fn choose(cd: &ClusterData, master: &Db, to_keeper: &str) -> Result<String, Refusal> {
    if !to_keeper.is_empty() {
        if !cd.keepers.contains_key(to_keeper) {
            return Err(Refusal::UnknownKeeper(to_keeper.to_string()));
        }
        let db = cd.db_of_keeper(to_keeper).ok_or_else(|| Refusal::NoDb(to_keeper.to_string()))?;
        check_standby(cd, master, db)?;
        return Ok(db.uid.clone());
    }
    if let Some(best) = eligible(cd, master).into_iter().next() {
        return Ok(best);
    }
    let reasons: Vec<String> = cd
        .dbs
        .values()
        .filter(|db| db.uid != master.uid)
        .filter_map(|db| check_standby(cd, master, db).err())
        .map(|r| r.to_string())
        .collect();
    Err(Refusal::NoEligibleStandby(if reasons.is_empty() {
        "the cluster has no standby".into()
    } else {
        reasons.join("; ")
    }))
}

/// Full check of a request against the current cluster data (what stolonctl runs before writing).
pub fn check_request(cd: &ClusterData, to_keeper: &str, now: crate::time::Timestamp) -> Result<String, Refusal> {
    if let Some(sw) = &cd.operations.switchover {
        return Err(Refusal::AlreadyPending(describe(sw)));
    }
    let master = check_cluster(cd, now)?;
    choose(cd, master, to_keeper)
}

/// A short description of a recorded switchover, e.g. `fencing, to keeper k2` or `scheduled at ...`.
pub fn describe(sw: &crate::cluster::Switchover) -> String {
    let mut s = sw.phase.to_string();
    if let Some(at) = sw.at.filter(|_| sw.phase == crate::cluster::SwitchoverPhase::Scheduled) {
        s.push_str(&format!(" at {at}"));
    }
    if !sw.to_keeper.is_empty() {
        s.push_str(&format!(", to keeper {}", sw.to_keeper));
    }
    s
}
