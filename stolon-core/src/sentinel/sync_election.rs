//! The synchronous standbys a newly elected master starts with, and when the leader should look again at
//! the synchronous set (issue 14 item 5: failover under synchronous replication without idle seconds).
//!
//! stolon gives the new master the old master's list with the new master replaced by the old master. The old
//! master has failed and its DB is always removed once the new master converges (its keeper resyncs under a
//! new DB), so that entry can never acknowledge anything: it only blocks every commit until a later pass
//! replaces it, and the replacement had to wait for the remaining standby to report itself on the new
//! timeline first (two more sentinel passes). Here the new master starts with real standbys instead: the old
//! master's other synchronous standbys first, then the most advanced good standbys, up to
//! `maxSynchronousStandbys`, padded with the fake standby below `minSynchronousStandbys`. They stream from
//! the new master once it converged (the usual repointing), and from that moment commits are acknowledged.
//!
//! Strict synchronous replication is kept: the new master never acknowledges a commit that no listed standby
//! flushed (it lists at least `minSynchronousStandbys` names, real or fake, from its promotion on), and none of
//! its standbys counts as confirmed (electable) before the new master's keeper reports it in sync.

use super::assess::Judge;
use super::election::best_standbys;
use super::model_ext::{FAKE_STANDBY_NAME, keeper_can_be_sync, keeper_of, sorted};
use crate::cluster::{ClusterData, Db};

/// `minSynchronousStandbys`, `maxSynchronousStandbys` and whether replacements may go through a union step,
/// for a master on `master`'s keeper: PostgreSQL 9.5 and older can only wait for one named standby.
pub(crate) fn sync_bounds(cd: &ClusterData, master: &Db) -> (usize, usize, bool) {
    let spec = &cd.cluster.spec;
    let version = keeper_of(cd, master).map(|k| k.status.postgres_binary_version).unwrap_or_default();
    if version.maj == 9 && version.min <= 5 {
        return (1, 1, false);
    }
    (usize::from(spec.min_synchronous_standbys()), usize::from(spec.max_synchronous_standbys()), true)
}

/// The synchronous configuration a newly elected master starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElectedSync {
    /// DB UIDs for `synchronousStandbys`, sorted.
    pub standbys: Vec<String>,
    /// `externalSynchronousStandbys`: the fake standby when fewer than `minSynchronousStandbys` were found.
    pub external: Vec<String>,
}

/// The synchronous standbys of `new_master`, elected after `old_master` failed, in `cd` as the election
/// pass sees it (the old master still designated). Candidates are good, valid standbys on the old master's
/// timeline whose keeper may be a synchronous replica, other than the new master, and not reported ahead of
/// it (such a standby holds WAL the new master never had and is resynced, not streamed to).
pub(crate) fn elected_sync(cd: &ClusterData, old_master: &Db, new_master: &Db, judge: Judge<'_>) -> ElectedSync {
    let (min, max, _) = sync_bounds(cd, new_master);
    let mut candidates: Vec<String> = best_standbys(cd, old_master, judge, false)
        .into_iter()
        .filter(|uid| *uid != new_master.uid)
        .filter(|uid| {
            cd.dbs.get(uid).is_some_and(|db| {
                keeper_can_be_sync(keeper_of(cd, db)) && db.status.x_log_pos <= new_master.status.x_log_pos
            })
        })
        .collect();
    // The old master's other synchronous standbys first (a stable sort keeps the most advanced first).
    let was_sync = |uid: &String| old_master.spec.synchronous_standbys().contains(uid);
    candidates.sort_by_key(|uid| !was_sync(uid));
    candidates.truncate(max);
    let external = if candidates.len() < min { vec![FAKE_STANDBY_NAME.to_string()] } else { Vec::new() };
    ElectedSync { standbys: sorted(candidates), external }
}

/// The synchronous configuration a new master promoted by a switchover starts with (stolon's rule): the old
/// master's list with the new master replaced by the old one, which rejoins as its standby from a clean
/// shutdown; the fake standby when that list is empty and `minSynchronousStandbys` is above 0.
pub(crate) fn carried_over_sync(cd: &ClusterData, old_uid: &str, new_uid: &str) -> ElectedSync {
    let old_sync = cd.dbs.get(old_uid).map(|db| db.spec.synchronous_standbys().to_vec()).unwrap_or_default();
    let list: Vec<String> =
        old_sync.iter().map(|u| if u == new_uid { old_uid.to_string() } else { u.clone() }).collect();
    let external = if list.is_empty() && cd.cluster.spec.min_synchronous_standbys() > 0 {
        vec![FAKE_STANDBY_NAME.to_string()]
    } else {
        Vec::new()
    };
    ElectedSync { standbys: sorted(list), external }
}

/// Whether the master of `cd` waits for a synchronous standby: it has configured synchronous standbys that
/// are not confirmed yet, or it lists the fake standby (commits wait) while a standby of a healthy keeper that
/// may become synchronous is still converging (e.g. re-cloned after a divergence). Then the leader runs a pass as soon
/// as a keeper publishes news, so the standby is listed and confirmed within a fraction of a second rather
/// than at the next regular pass. A standby that has converged and still is not listed, or whose keeper is
/// failed, does not keep the leader waiting (no pass storm in a lasting degraded state).
pub fn awaiting_sync_confirmation(cd: &ClusterData) -> bool {
    cd.cluster.spec.sync_replication_active()
        && cd.master_db().is_some_and(|m| {
            m.spec.synchronous_replication
                && (m.spec.synchronous_standbys().iter().any(|u| !m.status.synchronous_standbys().contains(u))
                    || (m.spec.external_synchronous_standbys().iter().any(|u| u == FAKE_STANDBY_NAME)
                        && cd.dbs.values().any(|db| {
                            db.uid != m.uid
                                && db.status.current_generation != db.generation
                                && keeper_of(cd, db).is_some_and(|k| k.status.healthy)
                                && keeper_can_be_sync(keeper_of(cd, db))
                        })))
        })
}
