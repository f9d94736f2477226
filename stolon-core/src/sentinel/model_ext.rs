//! Small helpers over the model used by the decision (kept here so the model files stay untouched).

use crate::cluster::{ClusterData, Db, DbRole, FollowType, Keeper};

/// The name of the non-existent standby listed in `synchronous_standby_names` to make the primary block
/// when there are fewer real synchronous standbys than `minSynchronousStandbys`.
pub const FAKE_STANDBY_NAME: &str = "stolonfakestandby";

/// A standby whose reported WAL position did not move for more passes than this is checked for missing
/// WAL on the master (stolon's `DefaultDBNotIncreasingXLogPosTimes`).
pub const NOT_INCREASING_XLOGPOS_LIMIT: u32 = 10;

/// WAL segment size assumed when mapping a WAL position to a segment name (PostgreSQL's default).
const WAL_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// The name of the WAL segment holding `pos`, without its timeline part (16 hex characters), assuming
/// 16 MiB segments.
pub fn wal_segment_name_no_timeline(pos: u64) -> String {
    let log_id = pos >> 32;
    let seg = (pos & 0xffff_ffff) / WAL_SEGMENT_SIZE;
    format!("{log_id:08X}{seg:08X}")
}

/// The timeline-less part of a WAL file name (`TTTTTTTTXXXXXXXXYYYYYYYY`), if it is one.
pub(crate) fn wal_file_name_without_timeline(name: &str) -> Option<String> {
    (name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name[8..].to_ascii_uppercase())
}

/// Whether a DB heads the cluster (master-type) or follows another DB of it (standby-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbKind {
    /// Role master, or role standby following an external primary (standby cluster head).
    Master,
    /// Role standby following an internal DB.
    Standby,
}

/// The kind of `db`; `None` when its role is neither master nor standby.
pub(crate) fn db_kind(db: &Db) -> Option<DbKind> {
    match db.spec.role {
        Some(DbRole::Master) => Some(DbKind::Master),
        Some(DbRole::Standby) => {
            let external = db.spec.follow_config.as_ref().is_some_and(|f| f.follow_type == Some(FollowType::External));
            Some(if external { DbKind::Master } else { DbKind::Standby })
        }
        _ => None,
    }
}

/// Whether the keeper may become master (absent = true; never while in maintenance).
pub(crate) fn keeper_can_be_master(k: Option<&Keeper>) -> bool {
    k.is_none_or(|k| k.status.can_be_master != Some(false) && !k.spec.maintenance)
}

/// Whether the keeper may be a synchronous standby (absent = true; never while in maintenance).
pub(crate) fn keeper_can_be_sync(k: Option<&Keeper>) -> bool {
    k.is_none_or(|k| k.status.can_be_synchronous_replica != Some(false) && !k.spec.maintenance)
}

/// The keeper of a DB.
pub(crate) fn keeper_of<'a>(cd: &'a ClusterData, db: &Db) -> Option<&'a Keeper> {
    cd.keepers.get(&db.spec.keeper_uid)
}

/// Sorted, deduplicated copy.
pub(crate) fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Elements of `a` also in `b`, in `a`'s order.
pub(crate) fn intersection(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

/// Elements of `a` not in `b`, in `a`'s order.
pub(crate) fn difference(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// Whether `a` and `b` hold the same elements, ignoring order and duplicates.
pub(crate) fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_names() {
        assert_eq!(wal_segment_name_no_timeline(0), "0000000000000000");
        assert_eq!(wal_segment_name_no_timeline(0x1_0300_0000), "0000000100000003");
        assert_eq!(wal_file_name_without_timeline("000000020000000100000003"), Some("0000000100000003".to_string()));
        assert_eq!(wal_file_name_without_timeline("bogus"), None);
    }
}
