//! Synchronous standby set maintenance (reference §4.6): a standby is electable only once it is both
//! configured on the master and confirmed in sync, and the set changes only through a union step so that a
//! confirmed member is always kept.

use super::assess::{Judge, Status};
use super::election::best_standbys;
use super::messages as m;
use super::model_ext::{
    DbKind, FAKE_STANDBY_NAME, difference, intersection, keeper_can_be_sync, keeper_of, same_set, sorted,
};
use super::sync_election::sync_bounds;
use crate::cluster::ClusterData;

/// Updates the master's synchronous standby spec and status in `newcd`. `good` lists the good valid
/// standbys of this pass.
pub(crate) fn maintain(newcd: &mut ClusterData, master_uid: &str, good: &[String], judge: Judge<'_>) {
    let Some(master) = newcd.dbs.get(master_uid) else { return };
    let (min, max, merge) = sync_bounds(newcd, master);
    // Candidates to fill the set, computed before the master entry is borrowed mutably.
    let fill: Vec<String> = best_standbys(newcd, master, judge, false)
        .into_iter()
        .filter(|uid| newcd.dbs.get(uid).is_some_and(|db| keeper_can_be_sync(keeper_of(newcd, db))))
        .collect();
    let existing: Vec<String> = newcd.dbs.keys().cloned().collect();
    let pos: std::collections::BTreeMap<String, u64> =
        newcd.dbs.values().map(|db| (db.uid.clone(), db.status.x_log_pos)).collect();
    // Keepers in maintenance leave the set (through the union step, like any replaced member).
    let maintenance: Vec<String> = newcd
        .dbs
        .values()
        .filter(|db| crate::ops::candidate::in_maintenance(keeper_of(newcd, db)))
        .map(|db| db.uid.clone())
        .collect();
    let exists = |uid: &String| existing.contains(uid);
    let converging = judge.valid_by_status(newcd, DbKind::Standby, Status::Converging);

    let Some(master) = newcd.dbs.get_mut(master_uid) else { return };
    let mut spec_list = master.spec.synchronous_standbys().to_vec();
    let mut status_list = master.status.synchronous_standbys().to_vec();

    // Step A: reconcile the confirmed set with this pass's report.
    if !same_set(&status_list, &spec_list) {
        status_list = intersection(&status_list, &spec_list);
        let reported = intersection(&master.status.cur_synchronous_standbys, &spec_list);
        status_list.extend(difference(&reported, &status_list));
        let unconfirmed = difference(&spec_list, &status_list);
        // A standby still converging (e.g. just pointed at a new master) is waited for while the confirmed
        // ones are fewer than the minimum and no good standby could replace it: falling back would then only
        // list the fake standby, which blocks commits just the same, and longer.
        let wait_converging = status_list.len() < min && fill.iter().all(|u| spec_list.contains(u));
        let dropped =
            |uid: &String| !exists(uid) || !(good.contains(uid) || (wait_converging && converging.contains(uid)));
        if unconfirmed.iter().any(dropped) {
            tracing::info!(master = %master_uid, "{}", m::SYNC_STANDBYS_BACK_TO_CONFIRMED);
            spec_list = sorted(status_list.clone());
        }
    }

    // Step B: change the set only once the configured set is confirmed.
    if !same_set(&status_list, &spec_list) {
        tracing::info!(in_sync = ?status_list, configured = ?spec_list, "{}", m::WAITING_FOR_SYNC_STANDBYS);
        master.spec.synchronous_standbys = Some(spec_list);
        master.status.synchronous_standbys = Some(sorted(status_list));
        return;
    }
    let prev = spec_list.clone();
    let mut set: Vec<String> =
        prev.iter().filter(|u| exists(u) && good.contains(u) && !maintenance.contains(u)).cloned().collect();
    if set.len() > max {
        // Keep the most advanced members.
        let at = |uid: &String| pos.get(uid).copied().unwrap_or(0);
        set.sort_by(|a, b| at(b).cmp(&at(a)).then_with(|| a.cmp(b)));
        set.truncate(max);
    }
    for uid in &fill {
        if set.len() >= max {
            break;
        }
        if !set.contains(uid) {
            set.push(uid.clone());
        }
    }
    for uid in &prev {
        if set.len() >= min {
            break;
        }
        if exists(uid) && !set.contains(uid) && !maintenance.contains(uid) {
            set.push(uid.clone());
        }
    }
    if merge && set.iter().any(|u| !prev.contains(u)) {
        for uid in &prev {
            if exists(uid) && !set.contains(uid) {
                set.push(uid.clone());
            }
        }
    }
    let set = sorted(set);
    let external = if set.len() < min { vec![FAKE_STANDBY_NAME.to_string()] } else { Vec::new() };
    if set != sorted(prev.clone()) {
        tracing::info!(master = %master_uid, previous = ?prev, synchronous_standbys = ?set, "{}", m::SYNC_STANDBYS_CHANGED);
    }
    if !external.is_empty() {
        tracing::info!(master = %master_uid, required = min, "{}", m::USING_FAKE_SYNC_STANDBY);
    }
    master.spec.synchronous_replication = true;
    master.status.synchronous_standbys = Some(sorted(intersection(&status_list, &set)));
    master.spec.synchronous_standbys = Some(set);
    master.spec.external_synchronous_standbys = Some(external);
}

/// Clears synchronous replication on the master (not in effect).
pub(crate) fn disable(newcd: &mut ClusterData, master_uid: &str) {
    if let Some(master) = newcd.dbs.get_mut(master_uid) {
        master.spec.synchronous_replication = false;
        master.spec.synchronous_standbys = None;
        master.spec.external_synchronous_standbys = None;
        master.status.synchronous_standbys = None;
    }
}
