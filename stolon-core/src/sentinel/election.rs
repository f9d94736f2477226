//! Master health and the choice of a new master (reference §4.4), with stolon's ordering bug fixed: the
//! most advanced eligible DB wins (highest reported WAL position, then the smallest UID).

use super::assess::{Judge, Status, Validity, validity};
use super::candidacy::rejections;
use super::health::Convergence;
use super::init::external_follow_config;
use super::messages as m;
use super::model_ext::{DbKind, db_kind, intersection, keeper_of};
use super::standbys::set_followers;
use super::sync_election::{carried_over_sync, elected_sync};
use crate::cluster::{ClusterData, ClusterRole, Db, DbRole};

/// Whether the current master is fine: healthy and not stuck in a failed convergence.
pub(crate) fn master_ok(cd: &ClusterData, master: &Db, judge: Judge<'_>) -> bool {
    master.status.healthy && judge.convergence(master, cd.cluster.spec.convergence_timeout()) != Convergence::Failed
}

/// Whether an election after `master` failed must stay within its confirmed synchronous standbys: the
/// master DB was configured synchronous and the cluster spec still asks for synchronous replication.
/// (stolon looks only at the DB spec, so disabling synchronous replication could never unblock an
/// election: upstream issue #849.)
pub(crate) fn sync_election(cd: &ClusterData, master: &Db) -> bool {
    master.spec.synchronous_replication && cd.cluster.spec.sync_replication_active()
}

/// Whether `db` lags no more than `maxStandbyLag` behind the master's last reported position.
fn within_lag(cd: &ClusterData, master: &Db, db: &Db) -> bool {
    let lag = master.status.x_log_pos.saturating_sub(db.status.x_log_pos);
    lag <= u64::from(cd.cluster.spec.max_standby_lag())
}

/// Orders DBs most advanced first, then by UID.
pub(crate) fn most_advanced_first(cd: &ClusterData, uids: &mut [String]) {
    let pos = |uid: &String| cd.dbs.get(uid).map_or(0, |d| d.status.x_log_pos);
    uids.sort_by(|a, b| pos(b).cmp(&pos(a)).then_with(|| a.cmp(b)));
}

/// Good, valid standby-type DBs on the master's timeline (and system), most advanced first; with
/// `lag_filter` only those within `maxStandbyLag`.
pub(crate) fn best_standbys(cd: &ClusterData, master: &Db, judge: Judge<'_>, lag_filter: bool) -> Vec<String> {
    let mut out: Vec<String> = cd
        .dbs
        .values()
        .filter(|db| db.uid != master.uid && db_kind(db) == Some(DbKind::Standby))
        .filter(|db| validity(cd, db) == Validity::Valid && judge.status(cd, db) == Status::Good)
        .filter(|db| db.status.timeline_id == master.status.timeline_id)
        .filter(|db| db.status.system_id == master.status.system_id || master.status.system_id.is_empty())
        .filter(|db| !lag_filter || within_lag(cd, master, db))
        .map(|db| db.uid.clone())
        .collect();
    most_advanced_first(cd, &mut out);
    out
}

/// The DBs that may replace the failed `master`, by keeper priority (higher first) then most advanced
/// first: those without a rejection reason ([`rejections`]): good valid standbys and previous masters still
/// alive, on its timeline, within the lag when the election is not synchronous, on keepers allowed to be
/// master.
pub(crate) fn candidates(cd: &ClusterData, master: &Db, judge: Judge<'_>) -> Vec<String> {
    let lag_filter = !sync_election(cd, master);
    let mut out: Vec<String> = rejections(cd, master, judge, lag_filter)
        .into_iter()
        .filter(|(_, r)| r.is_empty())
        .map(|(uid, _)| uid)
        .collect();
    most_advanced_first(cd, &mut out);
    // Keeper priority first (higher preferred), most advanced within a priority (a stable sort keeps it).
    out.sort_by_key(|uid| {
        std::cmp::Reverse(cd.dbs.get(uid).map_or(0, |db| keeper_of(cd, db).map_or(0, |k| k.spec.priority)))
    });
    out
}

/// The new master after `master` failed, if any may be elected.
pub(crate) fn choose_new_master(cd: &ClusterData, master: &Db, judge: Judge<'_>) -> Option<String> {
    let candidates = candidates(cd, master, judge);
    if candidates.is_empty() {
        tracing::error!(master = %master.uid, "{}", m::NO_ELIGIBLE_MASTERS);
        return None;
    }
    if !sync_election(cd, master) {
        return candidates.into_iter().next();
    }
    let confirmed = intersection(master.status.synchronous_standbys(), master.spec.synchronous_standbys());
    let chosen = candidates.into_iter().find(|c| confirmed.contains(c));
    if chosen.is_none() {
        let (reported, spec) = (master.status.synchronous_standbys(), master.spec.synchronous_standbys());
        if confirmed.is_empty() {
            tracing::warn!(reported = ?reported, spec = ?spec, "{}", m::NO_COMMON_SYNC_STANDBYS);
        } else {
            tracing::warn!(reported = ?reported, spec = ?spec, common = ?confirmed, "{}", m::NO_ELECTABLE_SYNC_STANDBY);
        }
        tracing::error!(master = %master.uid, "{}", m::NO_ELIGIBLE_MASTERS);
    }
    chosen
}

/// Applies an election in `newcd`: the old master keeps its role but loses its followers, the new master
/// becomes master (or standby cluster head), proxies are emptied. Under synchronous replication, a failover
/// (`failover` carries the pass's judge) gives the new master real synchronous standbys, none confirmed, and
/// every standby as a follower (see [`super::sync_election`]; stolon listed the failed old master instead); a
/// switchover (`None`) carries the old master's list over with the new master replaced by the old one, which
/// rejoins as its standby.
pub(crate) fn apply_election(newcd: &mut ClusterData, old_uid: &str, new_uid: &str, failover: Option<Judge<'_>>) {
    let spec = newcd.cluster.spec.clone();
    let sync = match (newcd.dbs.get(old_uid), newcd.dbs.get(new_uid), failover) {
        _ if !spec.sync_replication_active() => None,
        (Some(old), Some(new), Some(judge)) => Some(elected_sync(newcd, old, new, judge)),
        _ => Some(carried_over_sync(newcd, old_uid, new_uid)),
    };
    if let Some(old) = newcd.dbs.get_mut(old_uid) {
        old.spec.followers = Some(Vec::new());
    }
    newcd.cluster.status.master = new_uid.to_string();
    if !newcd.proxy.spec.master_db_uid.is_empty() {
        newcd.proxy.spec.master_db_uid.clear();
        newcd.proxy.generation += 1;
    }
    let Some(db) = newcd.dbs.get_mut(new_uid) else { return };
    if spec.role() == ClusterRole::Standby {
        db.spec.role = Some(DbRole::Standby);
        db.spec.follow_config = Some(external_follow_config(&spec));
    } else {
        db.spec.role = Some(DbRole::Master);
        db.spec.follow_config = None;
    }
    if let Some(sync) = sync {
        tracing::info!(db = %new_uid, synchronous_standbys = ?sync.standbys, external = ?sync.external, "synchronous standbys of the new master");
        db.spec.synchronous_replication = true;
        db.spec.synchronous_standbys = Some(sync.standbys);
        db.spec.external_synchronous_standbys = Some(sync.external);
        if failover.is_some() {
            db.status.synchronous_standbys = None;
        }
    } else {
        db.spec.synchronous_replication = false;
        db.spec.synchronous_standbys = None;
        db.spec.external_synchronous_standbys = None;
    }
    if failover.is_some() {
        set_followers(newcd, new_uid);
    }
}
