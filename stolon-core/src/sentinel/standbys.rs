//! Standby placement once the master is healthy and converged (reference §4.5 step 3): removal of old
//! masters, invalid and stuck DBs, excess removal, creation on free keepers, and repointing.

use super::assess::{Judge, Status, Validity, validity};
use super::entropy::Entropy;
use super::messages as m;
use super::model_ext::{DbKind, db_kind};
use crate::cluster::{ClusterData, Db, DbInitMode, DbRole, DbSpec, FollowConfig, FollowType, INITIAL_GENERATION};

/// Deletes every master-type DB other than `master_uid` (old masters are never demoted in place).
pub(crate) fn remove_old_masters(newcd: &mut ClusterData, master_uid: &str) {
    newcd.dbs.retain(|uid, db| {
        let keep = uid == master_uid || db_kind(db) != Some(DbKind::Master);
        if !keep {
            tracing::info!(db = %uid, keeper = %db.spec.keeper_uid, "{}", m::REMOVING_OLD_MASTER_DB);
        }
        keep
    });
}

/// Deletes DBs on another system or timeline branch than the master.
pub(crate) fn remove_invalid(newcd: &mut ClusterData, master_uid: &str) {
    let invalid: Vec<String> = newcd
        .dbs
        .values()
        .filter(|db| db.uid != master_uid && validity(newcd, db) == Validity::Invalid)
        .map(|db| db.uid.clone())
        .collect();
    for uid in invalid {
        tracing::info!(db = %uid, "{}", m::REMOVING_INVALID_DB);
        newcd.dbs.remove(&uid);
    }
}

/// Deletes standbys that can no longer sync because the master recycled the WAL they need, judged on the
/// input cluster data `cd`.
pub(crate) fn remove_cannot_sync(newcd: &mut ClusterData, cd: &ClusterData, judge: Judge<'_>) {
    let stuck: Vec<String> =
        newcd.dbs.keys().filter(|uid| cd.dbs.get(*uid).is_some_and(|db| !judge.can_sync(cd, db))).cloned().collect();
    for uid in stuck {
        tracing::info!(db = %uid, "{}", m::REMOVING_DB_THAT_CANNOT_SYNC);
        newcd.dbs.remove(&uid);
    }
}

/// The standby counts of a pass.
pub(crate) struct StandbyCounts {
    /// Good valid standbys, by UID.
    pub good: Vec<String>,
    /// Valid standbys still converging, plus standbys of unknown validity (still resyncing) that have
    /// not failed: stolon forgot the latter and over-provisioned during long base backups.
    pub converging: usize,
}

/// Classifies the standbys of `newcd`.
pub(crate) fn count(newcd: &ClusterData, judge: Judge<'_>) -> StandbyCounts {
    let good = judge.valid_by_status(newcd, DbKind::Standby, Status::Good);
    let converging = newcd
        .dbs
        .values()
        .filter(|db| db_kind(db) == Some(DbKind::Standby))
        .filter(|db| match validity(newcd, db) {
            Validity::Valid => judge.status(newcd, db) == Status::Converging,
            Validity::Unknown => judge.status(newcd, db) != Status::Failed,
            Validity::Invalid => false,
        })
        .count();
    StandbyCounts { good, converging }
}

/// Removes standbys beyond `maxStandbysPerSender` (never configured synchronous standbys), or creates new
/// ones on free keepers when below it.
pub(crate) fn balance(newcd: &mut ClusterData, master_uid: &str, counts: &StandbyCounts, entropy: &mut dyn Entropy) {
    let max = usize::from(newcd.cluster.spec.max_standbys_per_sender());
    let sync_list: Vec<String> =
        newcd.dbs.get(master_uid).map(|m| m.spec.synchronous_standbys().to_vec()).unwrap_or_default();
    if counts.good.len() >= max {
        let not_good: Vec<String> = newcd
            .dbs
            .values()
            .filter(|db| db_kind(db) == Some(DbKind::Standby))
            .filter(|db| !sync_list.contains(&db.uid) && !counts.good.contains(&db.uid))
            .map(|db| db.uid.clone())
            .collect();
        // Excess good standbys: the least advanced go first (stolon removed arbitrary ones).
        let mut removable: Vec<String> = counts.good.iter().filter(|u| !sync_list.contains(u)).cloned().collect();
        super::election::most_advanced_first(newcd, &mut removable);
        removable.reverse();
        let excess = counts.good.len() - max;
        for uid in not_good {
            tracing::info!(db = %uid, "{}", m::REMOVING_NON_GOOD_STANDBY);
            newcd.dbs.remove(&uid);
        }
        for uid in removable.into_iter().take(excess) {
            tracing::info!(db = %uid, "{}", m::REMOVING_GOOD_STANDBY_IN_EXCESS);
            newcd.dbs.remove(&uid);
        }
        return;
    }
    // Saturating: stolon computed this in uint16 and wrapped around when the maximum was lowered.
    let wanted = max.saturating_sub(counts.good.len() + counts.converging);
    let hosting: std::collections::BTreeSet<&String> = newcd.dbs.values().map(|db| &db.spec.keeper_uid).collect();
    let free: Vec<String> = newcd
        .keepers
        .values()
        .filter(|k| k.status.healthy && !hosting.contains(&k.uid))
        .filter(|k| super::major::can_follow(newcd, &k.uid, master_uid))
        .map(|k| k.uid.clone())
        .take(wanted)
        .collect();
    for keeper_uid in free {
        let db = Db {
            uid: entropy.new_uid(),
            generation: INITIAL_GENERATION,
            spec: DbSpec {
                keeper_uid: keeper_uid.clone(),
                init_mode: Some(DbInitMode::Resync),
                role: Some(DbRole::Standby),
                followers: Some(Vec::new()),
                follow_config: Some(internal_follow(master_uid)),
                ..DbSpec::default()
            },
            ..Db::default()
        };
        tracing::info!(db = %db.uid, keeper = %keeper_uid, "{}", m::ADDED_NEW_STANDBY_DB);
        newcd.dbs.insert(db.uid.clone(), db);
    }
}

fn internal_follow(master_uid: &str) -> FollowConfig {
    FollowConfig { follow_type: Some(FollowType::Internal), db_uid: master_uid.to_string(), ..FollowConfig::default() }
}

/// Points every standby-type DB at the master, with no followers and no synchronous configuration.
pub(crate) fn repoint(newcd: &mut ClusterData, master_uid: &str) {
    for db in newcd.dbs.values_mut().filter(|db| db_kind(db) == Some(DbKind::Standby)) {
        db.spec.role = Some(DbRole::Standby);
        db.spec.followers = Some(Vec::new());
        db.spec.follow_config = Some(internal_follow(master_uid));
        db.spec.synchronous_replication = false;
        db.spec.synchronous_standbys = None;
        db.spec.external_synchronous_standbys = None;
    }
}

/// Sets the master's followers: every standby-type DB, sorted. They all follow the master, or will once it
/// converged (right after an election they still follow the previous master): listing them at once lets the
/// new master's keeper create their replication slots while promoting, before they are pointed at it (stolon
/// listed only the DBs already following it, so a standby could ask for its slot before it existed).
pub(crate) fn set_followers(newcd: &mut ClusterData, master_uid: &str) {
    let mut followers: Vec<String> = newcd
        .dbs
        .values()
        .filter(|db| db.uid != master_uid && db_kind(db) == Some(DbKind::Standby))
        .map(|db| db.uid.clone())
        .collect();
    followers.sort();
    if let Some(master) = newcd.dbs.get_mut(master_uid) {
        master.spec.followers = Some(followers);
    }
}
