//! Why a DB may not replace a failed master: every reason an election rejects a candidate, as a pure
//! function. The election takes its candidates from it (the DBs without a reason), the decision reports
//! the reasons, and the loop logs them once per change ([`changed_rejections`]): an election that finds
//! "no eligible masters" always says why.

use std::collections::BTreeMap;
use std::fmt;

use super::assess::{Judge, NotGood, Validity, validity};
use super::election::{master_ok, sync_election};
use super::model_ext::{db_kind, intersection, keeper_can_be_master, keeper_of};
use crate::cluster::{ClusterData, Db};

/// One reason a DB cannot be elected master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Its role is neither master nor standby.
    NoRole,
    /// Its keeper never reported it (current generation 0).
    NeverReported,
    /// Another system id or a diverged timeline branch than the failed master's.
    InvalidBranch,
    /// Its keeper is unhealthy.
    KeeperUnhealthy,
    /// Its keeper has not reached its current generation yet (within the convergence timeout).
    Converging,
    /// Its keeper did not reach its current generation within the convergence timeout.
    ConvergenceFailed,
    /// Converged but reported unhealthy (or not reported) for longer than `failInterval`.
    DbUnhealthy,
    /// On another timeline than the failed master.
    OtherTimeline {
        /// The DB's timeline.
        timeline: u64,
        /// The failed master's last reported timeline.
        master_timeline: u64,
    },
    /// Another PostgreSQL system than the failed master's.
    OtherSystem,
    /// Further behind the failed master's last reported WAL position than `maxStandbyLag`.
    TooFarBehind {
        /// Bytes behind the failed master's last reported position.
        lag: u64,
        /// `maxStandbyLag`.
        max: u64,
    },
    /// Its keeper is not allowed to be master (`--can-be-master=false`).
    CannotBeMaster,
    /// The election must stay within the failed master's confirmed synchronous standbys and this DB is
    /// not one of them.
    NotConfirmedSynchronous,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NoRole => write!(f, "its role is neither master nor standby"),
            Rejection::NeverReported => write!(f, "its keeper never reported it"),
            Rejection::InvalidBranch => write!(f, "another system or a diverged timeline branch"),
            Rejection::KeeperUnhealthy => write!(f, "its keeper is unhealthy"),
            Rejection::Converging => write!(f, "still converging to its current generation"),
            Rejection::ConvergenceFailed => write!(f, "did not converge within the convergence timeout"),
            Rejection::DbUnhealthy => write!(f, "its database is unhealthy"),
            Rejection::OtherTimeline { timeline, master_timeline } => {
                write!(f, "on timeline {timeline}, the master was on timeline {master_timeline}")
            }
            Rejection::OtherSystem => write!(f, "another system id than the master's"),
            Rejection::TooFarBehind { lag, max } => {
                write!(f, "{lag} bytes behind the master's last reported position (maxStandbyLag {max})")
            }
            Rejection::CannotBeMaster => write!(f, "its keeper cannot be master"),
            Rejection::NotConfirmedSynchronous => write!(f, "not a confirmed synchronous standby of the master"),
        }
    }
}

/// Every DB other than `master` with the reasons it cannot replace `master` in an election (an empty
/// list: eligible). `lag_filter` applies `maxStandbyLag`. The confirmed-synchronous rule is not applied
/// here (see [`election_rejections`]).
pub(crate) fn rejections(
    cd: &ClusterData,
    master: &Db,
    judge: Judge<'_>,
    lag_filter: bool,
) -> BTreeMap<String, Vec<Rejection>> {
    cd.dbs
        .values()
        .filter(|db| db.uid != master.uid)
        .map(|db| (db.uid.clone(), reasons(cd, master, db, judge, lag_filter)))
        .collect()
}

fn reasons(cd: &ClusterData, master: &Db, db: &Db, judge: Judge<'_>, lag_filter: bool) -> Vec<Rejection> {
    let mut out = Vec::new();
    if db_kind(db).is_none() {
        out.push(Rejection::NoRole);
    }
    let validity = validity(cd, db);
    match validity {
        Validity::Valid => {}
        Validity::Unknown => out.push(Rejection::NeverReported),
        Validity::Invalid => out.push(Rejection::InvalidBranch),
    }
    if let Some(r) = status_rejection(cd, db, judge) {
        out.push(r);
    }
    if !keeper_can_be_master(keeper_of(cd, db)) {
        out.push(Rejection::CannotBeMaster);
    }
    if validity == Validity::Unknown {
        // Nothing reported: its timeline, system and position are not known, so not compared.
        return out;
    }
    if db.status.timeline_id != master.status.timeline_id {
        out.push(Rejection::OtherTimeline {
            timeline: db.status.timeline_id,
            master_timeline: master.status.timeline_id,
        });
    }
    if db.status.system_id != master.status.system_id && !master.status.system_id.is_empty() {
        out.push(Rejection::OtherSystem);
    }
    let lag = master.status.x_log_pos.saturating_sub(db.status.x_log_pos);
    let max = u64::from(cd.cluster.spec.max_standby_lag());
    if lag_filter && lag > max {
        out.push(Rejection::TooFarBehind { lag, max });
    }
    out
}

/// Why `db`'s status is not good ([`Judge::not_good`]), as a rejection.
fn status_rejection(cd: &ClusterData, db: &Db, judge: Judge<'_>) -> Option<Rejection> {
    judge.not_good(cd, db).map(|why| match why {
        NotGood::KeeperUnhealthy => Rejection::KeeperUnhealthy,
        NotGood::ConvergenceFailed => Rejection::ConvergenceFailed,
        NotGood::Converging => Rejection::Converging,
        NotGood::DbUnhealthy => Rejection::DbUnhealthy,
    })
}

/// The reasons of an election after the failure of the master of `cd`, for every other DB (an empty list:
/// it may be elected); `None` while the master is fine (no election). In a synchronous election the DBs
/// outside the master's confirmed synchronous standbys are rejected too.
pub(crate) fn election_rejections(cd: &ClusterData, judge: Judge<'_>) -> Option<BTreeMap<String, Vec<Rejection>>> {
    let master = cd.master_db()?;
    if master_ok(cd, master, judge) {
        return None;
    }
    let sync = sync_election(cd, master);
    let mut all = rejections(cd, master, judge, !sync);
    if sync {
        let confirmed = intersection(master.status.synchronous_standbys(), master.spec.synchronous_standbys());
        for (uid, reasons) in all.iter_mut() {
            if !confirmed.contains(uid) {
                reasons.push(Rejection::NotConfirmedSynchronous);
            }
        }
    }
    Some(all)
}

/// The DBs of `new` whose reasons differ in kind from those in `old` (a DB absent from `old` counts as
/// changed), with their new reasons: what the loop logs, once per change.
pub fn changed_rejections<'a>(
    old: &BTreeMap<String, Vec<Rejection>>,
    new: &'a BTreeMap<String, Vec<Rejection>>,
) -> Vec<(&'a str, &'a [Rejection])> {
    // The reason without its figures: two rejections of the same variant are the same reason for logging.
    let kinds = |r: &[Rejection]| r.iter().map(std::mem::discriminant).collect::<Vec<_>>();
    new.iter()
        .filter(|(uid, reasons)| old.get(*uid).is_none_or(|o| kinds(o) != kinds(reasons)))
        .map(|(uid, reasons)| (uid.as_str(), reasons.as_slice()))
        .collect()
}

/// `reasons` as one line ("a; b").
pub fn describe(reasons: &[Rejection]) -> String {
    reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
#[path = "candidacy_tests.rs"]
mod tests;
