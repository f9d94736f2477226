//! PostgreSQL major versions in standby placement: physical replication only works between instances of the
//! same major version, so the sentinel never assigns a standby to a keeper whose binaries are of another
//! major than the master's keeper (stolon did, and the standby then failed its base backup forever).

use crate::cluster::ClusterData;

/// The major version keeper `keeper_uid` last reported, `None` when unknown (0, e.g. a keeper that has not
/// published yet or cluster data written by an old stolon).
pub(crate) fn keeper_major(cd: &ClusterData, keeper_uid: &str) -> Option<i64> {
    cd.keepers.get(keeper_uid).map(|k| k.status.postgres_binary_version.maj).filter(|m| *m > 0)
}

/// Whether keeper `keeper_uid` may host a standby of DB `master_uid`: false only when both major versions
/// are known and differ.
pub(crate) fn can_follow(cd: &ClusterData, keeper_uid: &str, master_uid: &str) -> bool {
    let master_keeper = cd.dbs.get(master_uid).map(|db| db.spec.keeper_uid.as_str()).unwrap_or_default();
    match (keeper_major(cd, keeper_uid), keeper_major(cd, master_keeper)) {
        (Some(k), Some(m)) if k != m => {
            tracing::warn!(
                keeper = %keeper_uid,
                keeper_major = k,
                master_keeper = %master_keeper,
                master_major = m,
                "not assigning a standby: the keeper's PostgreSQL major version differs from the master's"
            );
            false
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Db, DbSpec, Keeper, KeeperStatus, PostgresBinaryVersion};

    fn cd(majors: &[(&str, i64)]) -> ClusterData {
        let mut cd = ClusterData::default();
        for (uid, maj) in majors {
            let status = KeeperStatus {
                postgres_binary_version: PostgresBinaryVersion { maj: *maj, min: 1 },
                ..Default::default()
            };
            cd.keepers.insert(uid.to_string(), Keeper { uid: uid.to_string(), status, ..Keeper::default() });
        }
        let spec = DbSpec { keeper_uid: "k1".into(), ..DbSpec::default() };
        cd.dbs.insert("db1".into(), Db { uid: "db1".into(), spec, ..Db::default() });
        cd
    }

    #[test]
    fn same_major_follows_other_major_does_not() {
        let cd = cd(&[("k1", 16), ("k2", 16), ("k3", 17), ("k4", 15)]);
        assert!(can_follow(&cd, "k2", "db1"));
        assert!(!can_follow(&cd, "k3", "db1"));
        assert!(!can_follow(&cd, "k4", "db1"));
    }

    #[test]
    fn unknown_versions_do_not_block() {
        let cd = cd(&[("k1", 16), ("k2", 0)]);
        assert!(can_follow(&cd, "k2", "db1"), "a keeper that reported no version yet");
        assert!(can_follow(&cd, "absent", "db1"), "a keeper missing from the cluster data");
        let cd = self::cd(&[("k1", 0), ("k2", 17)]);
        assert!(can_follow(&cd, "k2", "db1"), "a master keeper of unknown version");
        assert!(can_follow(&cd, "k2", "no-such-db"), "an unknown master DB");
        assert_eq!(keeper_major(&cd, "k1"), None);
        assert_eq!(keeper_major(&cd, "k2"), Some(17));
    }
}
