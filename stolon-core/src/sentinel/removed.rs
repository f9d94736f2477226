//! Removed keepers stay removed: `stolonctl removekeeper` records the keeper's boot UUID in
//! `cluster.status.removedKeepers`, and the sentinel ignores the info records of that keeper process. A
//! keeper process that starts again publishes a new boot UUID: it is added back and its mark is dropped.
//!
//! stolon 0.17 had no such mark: a keeper whose info record had not expired yet (its TTL is at least 20 s)
//! was added back by the next sentinel pass that found the info fresh, which our watch-driven sentinel runs
//! within milliseconds of the removal.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cluster::{ClusterData, KeeperInfo, RemovedKeeper};
use crate::time::Timestamp;

/// The keeper infos a pass may use, and the removal marks to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screened {
    /// The infos of keepers that were not removed, or that restarted since (a new boot UUID).
    pub admitted: BTreeMap<String, KeeperInfo>,
    /// The marks still in force, to write back in `cluster.status.removedKeepers`.
    pub removed: BTreeMap<String, RemovedKeeper>,
}

/// Whether `info` comes from the keeper process that was running when the keeper was removed.
pub fn same_process(mark: &RemovedKeeper, info: &KeeperInfo) -> bool {
    info.boot_uuid == mark.boot_uuid
}

/// Splits `infos` into the admitted ones and the ignored ones, and decides which marks of `cd` stay:
/// - an info of a removed keeper from the same process (same boot UUID) is ignored and the mark stays;
/// - an info with another boot UUID (the keeper restarted) is admitted and the mark is dropped;
/// - a mark whose keeper is back in the cluster data is dropped (nothing left to guard);
/// - a mark whose keeper publishes nothing is dropped once `forget_after` (the spec's
///   `deadKeeperRemovalInterval`) has passed since the removal, so marks of keepers that never come back
///   do not pile up.
pub fn screen_keeper_infos(
    cd: &ClusterData,
    infos: &BTreeMap<String, KeeperInfo>,
    now: Timestamp,
    forget_after: Duration,
) -> Screened {
    let mut removed = cd.cluster.status.removed_keepers.clone();
    removed.retain(|uid, mark| {
        if cd.keepers.contains_key(uid) {
            return false;
        }
        match infos.get(uid) {
            Some(info) => same_process(mark, info),
            None => !expired(mark, now, forget_after),
        }
    });
    let admitted = infos
        .iter()
        .filter(|(uid, info)| removed.get(*uid).is_none_or(|mark| !same_process(mark, info)))
        .map(|(uid, info)| (uid.clone(), info.clone()))
        .collect();
    Screened { admitted, removed }
}

fn expired(mark: &RemovedKeeper, now: Timestamp, forget_after: Duration) -> bool {
    let Ok(after) = chrono::Duration::from_std(forget_after) else { return false };
    mark.remove_time.as_datetime().checked_add_signed(after).is_some_and(|t| now.as_datetime() > t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterSpec, Keeper};

    const HOUR: Duration = Duration::from_secs(3600);

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).expect("test timestamp")
    }

    fn info(uid: &str, boot: &str) -> (String, KeeperInfo) {
        let ki = KeeperInfo { uid: uid.into(), boot_uuid: boot.into(), info_uid: "i".into(), ..Default::default() };
        (uid.to_string(), ki)
    }

    fn cluster(marks: &[(&str, &str)]) -> ClusterData {
        let mut cd = ClusterData::new_initial("c", ClusterSpec::default(), ts("2026-12-06T10:00:00Z"));
        cd.keepers.insert("k0".into(), Keeper { uid: "k0".into(), ..Default::default() });
        for (uid, boot) in marks {
            let mark = RemovedKeeper { boot_uuid: boot.to_string(), remove_time: ts("2026-12-06T10:00:00Z") };
            cd.cluster.status.removed_keepers.insert(uid.to_string(), mark);
        }
        cd
    }

    #[test]
    fn the_removed_process_is_ignored_and_its_mark_kept() {
        let cd = cluster(&[("k1", "boot-a")]);
        let infos = BTreeMap::from([info("k0", "b0"), info("k1", "boot-a")]);
        let s = screen_keeper_infos(&cd, &infos, ts("2026-12-06T10:00:01Z"), 48 * HOUR);
        assert_eq!(s.admitted.keys().collect::<Vec<_>>(), ["k0"]);
        assert_eq!(s.removed, cd.cluster.status.removed_keepers);
    }

    #[test]
    fn a_restarted_keeper_is_admitted_and_its_mark_dropped() {
        let cd = cluster(&[("k1", "boot-a")]);
        let infos = BTreeMap::from([info("k0", "b0"), info("k1", "boot-b")]);
        let s = screen_keeper_infos(&cd, &infos, ts("2026-12-06T10:00:01Z"), 48 * HOUR);
        assert_eq!(s.admitted, infos);
        assert!(s.removed.is_empty());
    }

    #[test]
    fn a_mark_stays_while_its_keeper_is_silent_until_forgotten() {
        let cd = cluster(&[("k1", "boot-a")]);
        let infos = BTreeMap::from([info("k0", "b0")]);
        let s = screen_keeper_infos(&cd, &infos, ts("2026-12-08T09:59:59Z"), 48 * HOUR);
        assert_eq!(s.removed.len(), 1, "within deadKeeperRemovalInterval");
        let s = screen_keeper_infos(&cd, &infos, ts("2026-12-08T10:00:01Z"), 48 * HOUR);
        assert!(s.removed.is_empty(), "forgotten deadKeeperRemovalInterval after the removal");
        let late = BTreeMap::from([info("k0", "b0"), info("k1", "boot-a")]);
        let s = screen_keeper_infos(&cd, &late, ts("2026-12-20T10:00:00Z"), 48 * HOUR);
        assert_eq!(s.removed.len(), 1, "never forgotten while the same process still publishes");
        assert!(!s.admitted.contains_key("k1"));
    }

    #[test]
    fn a_mark_of_a_keeper_back_in_the_cluster_data_is_dropped() {
        let cd = cluster(&[("k0", "b0")]);
        let infos = BTreeMap::from([info("k0", "b0")]);
        let s = screen_keeper_infos(&cd, &infos, ts("2026-12-06T10:00:01Z"), 48 * HOUR);
        assert!(s.removed.is_empty());
        assert_eq!(s.admitted, infos);
    }

    #[test]
    fn a_mark_without_boot_uuid_admits_any_process_that_has_one() {
        let cd = cluster(&[("k1", "")]);
        let s = screen_keeper_infos(&cd, &BTreeMap::from([info("k1", "")]), Timestamp::now(), 48 * HOUR);
        assert!(s.admitted.is_empty());
        let s = screen_keeper_infos(&cd, &BTreeMap::from([info("k1", "boot-b")]), Timestamp::now(), 48 * HOUR);
        assert_eq!(s.admitted.len(), 1);
    }
}
