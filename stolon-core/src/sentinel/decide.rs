//! The pure entry points: [`decide`] (a whole leader pass) and [`update_cluster`] (the cluster-view update
//! once health is known, stolon's `updateCluster`).

use std::collections::BTreeMap;

use super::assess::Judge;
use super::candidacy::{Rejection, election_rejections};
use super::clock::Now;
use super::election::{apply_election, choose_new_master, master_ok};
use super::entropy::Entropy;
use super::error::DecideError;
use super::health::{Convergence, Histories, update_keepers_status};
use super::messages as m;
use super::model_ext::{DbKind, db_kind};
use super::proxies::{active_proxies, gate};
use super::removed::screen_keeper_infos;
use super::{init, standbys, sync};
use crate::cluster::{
    CURRENT_FORMAT_VERSION, ClusterData, ClusterPhase, ClusterRole, DbRole, FollowType, KeeperInfo, ProxyInfo,
};
use crate::ops;

/// The result of one leader pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The cluster data to write (equal to the input when `write` is false).
    pub cluster_data: ClusterData,
    /// The leader's memory after this pass; keep it only if the write succeeded (or nothing was written).
    pub histories: Histories,
    /// Whether `cluster_data` must be written (compare-and-swap on the revision that was read).
    pub write: bool,
    /// When this pass looked for a new master: every other DB with the reasons it could not be elected
    /// (empty: eligible). `None` when the master is fine or the pass only observed.
    pub election: Option<BTreeMap<String, Vec<Rejection>>>,
}

/// One leader pass (reference §4.1 steps 6 to 10), without IO.
///
/// The first pass of a leadership term (`histories.observed == false`) only records what it sees and asks
/// for no write: stolon decided on the previous leader's persisted health flags in that pass, which may
/// be arbitrarily old. Later passes update keeper and DB health, compute the active proxies, run
/// [`update_cluster`] and stamp change times. Every pass ignores the infos of keepers removed with
/// `stolonctl removekeeper` until their process restarts ([`screen_keeper_infos`]).
pub fn decide(
    cd: &ClusterData,
    keeper_infos: &BTreeMap<String, KeeperInfo>,
    proxy_infos: &BTreeMap<String, ProxyInfo>,
    histories: &Histories,
    now: Now,
    entropy: &mut dyn Entropy,
) -> Result<Decision, DecideError> {
    check_readable(cd)?;
    let mut hist = histories.clone();
    let proxy_timeout = cd.cluster.spec.proxy_timeout();
    let screened = screen_keeper_infos(cd, keeper_infos, now.wall, cd.cluster.spec.dead_keeper_removal_interval());
    let keeper_infos = &screened.admitted;
    if !hist.observed {
        hist.observe_first(cd, keeper_infos, now);
        active_proxies(proxy_infos, &mut hist, proxy_timeout, now.mono);
        return Ok(Decision { cluster_data: cd.clone(), histories: hist, write: false, election: None });
    }
    hist.refresh_convergence(cd, now.mono);
    let with_health = update_keepers_status(cd, keeper_infos, &mut hist, now);
    let active = active_proxies(proxy_infos, &mut hist, proxy_timeout, now.mono);
    let mut staged = with_health.clone();
    let control = ops::before(&mut staged, keeper_infos, now.wall);
    let mut newcd = match control {
        ops::Control::Normal => update_cluster(&staged, &active, &hist, now, entropy)?,
        ops::Control::Hold => {
            // Paused: no decision, but proxies that appear are still enabled on the current target.
            let master = staged.cluster.status.master.clone();
            gate(&mut staged, &master, false, &active);
            staged
        }
        ops::Control::Operate => staged,
    };
    ops::after(&mut newcd, now.wall);
    bump_changed_generations(&with_health, &mut newcd);
    let election = match with_health.cluster.status.phase {
        Some(ClusterPhase::Normal) if control == ops::Control::Normal => {
            election_rejections(&with_health, Judge { hist: &hist, now: now.mono })
        }
        _ => None,
    };
    newcd.cluster.status.removed_keepers = screened.removed;
    update_change_times(cd, &mut newcd, now);
    hist.refresh_convergence(&newcd, now.mono);
    Ok(Decision { cluster_data: newcd, histories: hist, write: true, election })
}

/// Refuses cluster data this version must not act on: another format version or an invalid spec.
pub fn check_readable(cd: &ClusterData) -> Result<(), DecideError> {
    if cd.format_version != CURRENT_FORMAT_VERSION {
        return Err(DecideError::UnsupportedFormatVersion(cd.format_version));
    }
    cd.cluster.spec.validate()?;
    Ok(())
}

/// Computes the new cluster view from cluster data whose keeper and DB health is up to date (reference
/// §4.3 to §4.7): initialization, master check and election, proxy gating, standby placement, synchronous
/// standbys, DB spec propagation and generation bumps. `active` are the active proxies; `hist` gives the
/// convergence timers.
pub fn update_cluster(
    cd: &ClusterData,
    active: &BTreeMap<String, ProxyInfo>,
    hist: &Histories,
    now: Now,
    entropy: &mut dyn Entropy,
) -> Result<ClusterData, DecideError> {
    let judge = Judge { hist, now: now.mono };
    let mut newcd = cd.clone();
    match &cd.cluster.status.phase {
        Some(ClusterPhase::Initializing) => init::initialize(&mut newcd, judge, entropy)?,
        Some(ClusterPhase::Normal) => normal(cd, &mut newcd, active, judge, now, entropy)?,
        Some(ClusterPhase::Unknown(p)) => return Err(DecideError::UnknownPhase(p.clone())),
        None => return Err(DecideError::UnknownPhase(String::new())),
    }
    set_db_specs_from_cluster_spec(&mut newcd);
    for (uid, db) in newcd.dbs.iter_mut() {
        if cd.dbs.get(uid).is_some_and(|prev| prev.spec != db.spec) {
            db.generation += 1;
        }
    }
    Ok(newcd)
}

fn normal(
    cd: &ClusterData,
    newcd: &mut ClusterData,
    active: &BTreeMap<String, ProxyInfo>,
    judge: Judge<'_>,
    now: Now,
    entropy: &mut dyn Entropy,
) -> Result<(), DecideError> {
    for db in cd.dbs.values() {
        if db_kind(db).is_none() {
            let role = db.spec.role.as_ref().map(|r| r.to_string()).unwrap_or_default();
            return Err(DecideError::InvalidDbRole { db: db.uid.clone(), role });
        }
    }
    remove_dead_keepers(cd, newcd, now);

    let cur_uid = cd.cluster.status.master.clone();
    let cur = cd.dbs.get(&cur_uid).ok_or_else(|| DecideError::MasterDbMissing(cur_uid.clone()))?;
    let mut wanted_uid = cur_uid.clone();
    if !master_ok(cd, cur, judge) {
        tracing::info!(db = %cur_uid, keeper = %cur.spec.keeper_uid, "{}", m::MASTER_DB_FAILED);
        tracing::info!("{}", m::TRYING_TO_FIND_NEW_MASTER);
        if let Some(new_uid) = choose_new_master(newcd, cur, judge) {
            let keeper = newcd.dbs.get(&new_uid).map(|db| db.spec.keeper_uid.clone()).unwrap_or_default();
            tracing::info!(db = %new_uid, keeper = %keeper, "{}", m::ELECTING_NEW_MASTER);
            wanted_uid = new_uid;
        }
    }

    if wanted_uid != cur_uid {
        apply_election(newcd, &cur_uid, &wanted_uid, Some(judge));
    } else {
        steady_state(cd, newcd, &cur_uid, active, judge, entropy);
    }
    standbys::set_followers(newcd, &cur_uid);
    Ok(())
}

/// Reference §4.5: the master stays; gate proxies and, once the master is healthy and converged, place
/// standbys and maintain the synchronous set.
fn steady_state(
    cd: &ClusterData,
    newcd: &mut ClusterData,
    master_uid: &str,
    active: &BTreeMap<String, ProxyInfo>,
    judge: Judge<'_>,
    entropy: &mut dyn Entropy,
) {
    let spec = newcd.cluster.spec.clone();
    let ready = newcd.dbs.get(master_uid).is_some_and(|m| {
        m.status.healthy && judge.convergence(m, spec.convergence_timeout()) == Convergence::Converged
    });
    gate(newcd, master_uid, ready, active);
    if spec.role() == ClusterRole::Master
        && let Some(m) = newcd.dbs.get_mut(master_uid)
    {
        m.spec.role = Some(DbRole::Master);
        m.spec.follow_config = None;
    }
    if !ready {
        return;
    }
    standbys::remove_old_masters(newcd, master_uid);
    standbys::remove_invalid(newcd, master_uid);
    standbys::remove_cannot_sync(newcd, cd, judge);
    let counts = standbys::count(newcd, judge);
    for uid in &counts.good {
        if let Some(db) = newcd.dbs.get_mut(uid) {
            db.spec.init_mode = Some(crate::cluster::DbInitMode::None);
        }
    }
    if spec.sync_replication_active() {
        sync::maintain(newcd, master_uid, &counts.good, judge);
    } else {
        sync::disable(newcd, master_uid);
    }
    standbys::balance(newcd, master_uid, &counts, entropy);
    standbys::repoint(newcd, master_uid);
}

/// Deletes keepers without a DB that have not been healthy for `deadKeeperRemovalInterval`.
fn remove_dead_keepers(cd: &ClusterData, newcd: &mut ClusterData, now: Now) {
    let interval = cd.cluster.spec.dead_keeper_removal_interval();
    let Ok(interval) = chrono::Duration::from_std(interval) else { return };
    let now_wall = now.wall.as_datetime();
    let hosting: std::collections::BTreeSet<&String> = cd.dbs.values().map(|db| &db.spec.keeper_uid).collect();
    newcd.keepers.retain(|uid, k| {
        if hosting.contains(uid) {
            return true;
        }
        let dead = k.status.last_healthy_time.as_datetime().checked_add_signed(interval).is_some_and(|t| now_wall > t);
        if dead {
            tracing::info!(keeper = %uid, "{}", m::REMOVING_OLD_DEAD_KEEPER);
        }
        !dead
    });
}

/// Copies the cluster-wide settings into every DB spec (reference §4.5 step 5).
fn set_db_specs_from_cluster_spec(newcd: &mut ClusterData) {
    let spec = newcd.cluster.spec.clone();
    let standby = spec.standby_config.clone().unwrap_or_default();
    let request_timeout = spec.request_timeout.unwrap_or(crate::cluster::defaults::REQUEST_TIMEOUT);
    for db in newcd.dbs.values_mut() {
        let kind = db_kind(db);
        db.spec.request_timeout = request_timeout;
        db.spec.max_standbys = spec.max_standbys();
        db.spec.use_pgrewind = spec.use_pgrewind();
        db.spec.pg_parameters = spec.pg_parameters();
        db.spec.pg_hba = spec.pg_hba.clone();
        if let Some(fc) = db.spec.follow_config.as_mut().filter(|f| f.follow_type == Some(FollowType::External)) {
            fc.standby_settings = standby.standby_settings.clone();
            fc.archive_recovery_settings = standby.archive_recovery_settings.clone();
        }
        db.spec.additional_wal_senders = spec.additional_wal_senders();
        match kind {
            Some(DbKind::Master) => {
                db.spec.additional_replication_slots = spec.additional_master_replication_slots.clone()
            }
            _ => db.spec.additional_replication_slots = None,
        }
    }
}

/// Bumps the generation of every DB whose spec differs from `before` and was not bumped yet (operations
/// change DB specs outside [`update_cluster`]).
fn bump_changed_generations(before: &ClusterData, newcd: &mut ClusterData) {
    for (uid, db) in newcd.dbs.iter_mut() {
        if let Some(prev) = before.dbs.get(uid)
            && prev.spec != db.spec
            && prev.generation == db.generation
        {
            db.generation += 1;
        }
    }
}

/// Stamps change times: the document always, and every object that changed (or is new).
fn update_change_times(cd: &ClusterData, newcd: &mut ClusterData, now: Now) {
    newcd.change_time = now.wall;
    if newcd.cluster != cd.cluster {
        newcd.cluster.change_time = now.wall;
    }
    for (uid, db) in newcd.dbs.iter_mut() {
        if cd.dbs.get(uid) != Some(db) {
            db.change_time = now.wall;
        }
    }
    for (uid, k) in newcd.keepers.iter_mut() {
        if cd.keepers.get(uid) != Some(k) {
            k.change_time = now.wall;
        }
    }
    if newcd.proxy != cd.proxy {
        newcd.proxy.change_time = now.wall;
    }
}
