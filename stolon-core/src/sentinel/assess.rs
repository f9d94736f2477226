//! Judging DBs against the current master: validity (system id, timeline branch), status (good, failed,
//! converging) and whether a standby can still stream from the master's WAL.

use std::time::Duration;

use super::clock::MonoTime;
use super::health::{Convergence, Histories};
use super::model_ext::{
    DbKind, NOT_INCREASING_XLOGPOS_LIMIT, db_kind, wal_file_name_without_timeline, wal_segment_name_no_timeline,
};
use crate::cluster::{ClusterData, Db, DbInitMode, INITIAL_GENERATION};

/// A DB's validity relative to the current master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validity {
    /// Same system, same timeline branch.
    Valid,
    /// Another system id or a diverged timeline branch.
    Invalid,
    /// Never reported (current generation 0).
    Unknown,
}

/// A DB's status for placement and election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Healthy and converged.
    Good,
    /// Keeper unhealthy, convergence timed out, or converged but unhealthy.
    Failed,
    /// Still converging within its timeout.
    Converging,
}

/// Why a DB's status is not [`Status::Good`]: the detail [`Judge::status`] sums up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotGood {
    /// Its keeper is unhealthy.
    KeeperUnhealthy,
    /// Its keeper did not reach its current generation within the convergence timeout.
    ConvergenceFailed,
    /// Still converging within its timeout.
    Converging,
    /// Converged but reported unhealthy.
    DbUnhealthy,
}

/// What one pass needs to judge DBs: the timers and the time.
#[derive(Clone, Copy)]
pub(crate) struct Judge<'a> {
    pub hist: &'a Histories,
    pub now: MonoTime,
}

/// Whether `db` is on another timeline branch than `followed` (reference §4.2).
pub(crate) fn different_timeline_branch(followed: &Db, db: &Db) -> bool {
    let (ftl, tl) = (followed.status.timeline_id, db.status.timeline_id);
    let entry = |d: &Db, t: u64| d.status.timelines_history.iter().find(|h| h.timeline_id == t).map(|h| h.switch_point);
    if ftl < tl {
        return true;
    }
    if ftl == tl {
        if tl <= 1 {
            return false;
        }
        return match (entry(followed, tl - 1), entry(db, tl - 1)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
    }
    entry(followed, tl).is_some_and(|switch_point| switch_point < db.status.x_log_pos)
}

/// Validity of `db` relative to the DB named by `cluster.status.master`.
pub(crate) fn validity(cd: &ClusterData, db: &Db) -> Validity {
    if db.status.current_generation == 0 {
        return Validity::Unknown;
    }
    let Some(master) = cd.master_db() else { return Validity::Unknown };
    if !db.status.system_id.is_empty() && db.status.system_id != master.status.system_id {
        return Validity::Invalid;
    }
    if different_timeline_branch(master, db) { Validity::Invalid } else { Validity::Valid }
}

impl Judge<'_> {
    /// The convergence timeout that applies to `db`: `syncTimeout` for a resyncing standby still at its
    /// first generation, else `convergenceTimeout`.
    fn convergence_timeout(cd: &ClusterData, db: &Db) -> Duration {
        let spec = &cd.cluster.spec;
        if db.generation == INITIAL_GENERATION && db.spec.init_mode == Some(DbInitMode::Resync) {
            spec.sync_timeout()
        } else {
            spec.convergence_timeout()
        }
    }

    /// Convergence of `db` with an explicit timeout.
    pub(crate) fn convergence(&self, db: &Db, timeout: Duration) -> Convergence {
        self.hist.convergence(db, timeout, self.now)
    }

    /// Why `db`'s status is not good (`None`: good).
    pub(crate) fn not_good(&self, cd: &ClusterData, db: &Db) -> Option<NotGood> {
        if !cd.keepers.get(&db.spec.keeper_uid).is_some_and(|k| k.status.healthy) {
            return Some(NotGood::KeeperUnhealthy);
        }
        match self.convergence(db, Self::convergence_timeout(cd, db)) {
            Convergence::Failed => Some(NotGood::ConvergenceFailed),
            Convergence::Converging => Some(NotGood::Converging),
            Convergence::Converged if !db.status.healthy => Some(NotGood::DbUnhealthy),
            Convergence::Converged => None,
        }
    }

    /// The status of `db` (reference §4.2 "DB status classification").
    pub(crate) fn status(&self, cd: &ClusterData, db: &Db) -> Status {
        match self.not_good(cd, db) {
            None => Status::Good,
            Some(NotGood::Converging) => Status::Converging,
            Some(NotGood::KeeperUnhealthy | NotGood::ConvergenceFailed | NotGood::DbUnhealthy) => Status::Failed,
        }
    }

    /// Valid DBs of `kind` with status `status`, sorted by UID.
    pub(crate) fn valid_by_status(&self, cd: &ClusterData, kind: DbKind, status: Status) -> Vec<String> {
        cd.dbs
            .values()
            .filter(|db| db_kind(db) == Some(kind) && validity(cd, db) == Validity::Valid)
            .filter(|db| self.status(cd, db) == status)
            .map(|db| db.uid.clone())
            .collect()
    }

    /// False only when `db` is a standby that stopped advancing and needs WAL the master no longer has.
    pub(crate) fn can_sync(&self, cd: &ClusterData, db: &Db) -> bool {
        let Some(master) = cd.master_db() else { return true };
        if master.status.older_wal_file.is_empty()
            || db.uid == master.uid
            || db_kind(db) != Some(DbKind::Standby)
            || db.generation == INITIAL_GENERATION
            || !db.status.healthy
            || db.status.x_log_pos == master.status.x_log_pos
            || self.hist.db_not_increasing.get(&db.uid).copied().unwrap_or(0) <= NOT_INCREASING_XLOGPOS_LIMIT
        {
            return true;
        }
        let Some(oldest) = wal_file_name_without_timeline(&master.status.older_wal_file) else { return true };
        wal_segment_name_no_timeline(db.status.x_log_pos) >= oldest
    }
}
