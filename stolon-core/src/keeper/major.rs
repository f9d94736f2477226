//! The keeper's guard on PostgreSQL major versions: physical replication (base backup, pg_rewind,
//! streaming) only works between instances of the same major version, so a keeper refuses to follow a master
//! whose keeper reports another major version, whatever the cluster data asks (a stolon sentinel, or a
//! keeper's binaries changed since the DB was assigned). Pure: reads the cluster data only.

use super::plan::KeeperSettings;
use crate::cluster::{ClusterData, Db, DbRole, FollowType};

/// Why this keeper must not follow the DB `db` follows, or `None` when it may (same major, or a major
/// version unknown on either side, or `db` is no internal standby).
pub fn follow_refusal(s: &KeeperSettings, cd: &ClusterData, db: &Db) -> Option<String> {
    if db.spec.role != Some(DbRole::Standby) {
        return None;
    }
    let fc = db.spec.follow_config.as_ref()?;
    if fc.follow_type == Some(FollowType::External) {
        return None;
    }
    let own = s.pg_major?;
    let followed = cd.dbs.get(&fc.db_uid)?;
    let keeper = cd.keepers.get(&followed.spec.keeper_uid)?;
    let theirs = keeper.status.postgres_binary_version.maj;
    if theirs <= 0 || theirs == i64::from(own) {
        return None;
    }
    Some(format!(
        "refusing to follow db {:?} on keeper {:?}: it runs PostgreSQL {theirs} and this keeper's binaries are \
         PostgreSQL {own}; a standby needs the master's major version",
        followed.uid, keeper.uid
    ))
}
