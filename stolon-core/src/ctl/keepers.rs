//! `stolonctl failkeeper` and `stolonctl removekeeper`. Both retry on concurrent changes (stolon did not).

use super::error::CtlError;
use super::retry::{Decision, MAX_ATTEMPTS, Modified, modify_cluster_data};
use crate::cluster;
use crate::store::ClusterStore;
use crate::time::Timestamp;

/// Marks the keeper as failed for one sentinel pass (`forceFail`): if it hosts the master and a standby can
/// take over, the sentinel fails over at once.
pub async fn fail_keeper(store: &ClusterStore, keeper_uid: &str) -> Result<Modified<()>, CtlError> {
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        let keeper = cd.keepers.get_mut(keeper_uid).ok_or_else(|| CtlError::KeeperNotFound(keeper_uid.to_string()))?;
        keeper.status.force_fail = true;
        Ok(Decision::Write(()))
    })
    .await
}

/// What [`remove_keeper`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedKeeper {
    /// The UID of the DB the keeper hosted, removed with it.
    pub db_uid: Option<String>,
}

/// Removes the keeper and its DB from the cluster data. Refuses when its DB is the current master.
/// Followers lists that still name the DB are cleaned by the sentinel. The keeper is marked removed in
/// `cluster.status.removedKeepers` with the boot UUID of its process: the sentinel adds it back only when
/// it publishes another boot UUID (its process restarted), and then gives it a fresh DB.
pub async fn remove_keeper(store: &ClusterStore, keeper_uid: &str) -> Result<Modified<RemovedKeeper>, CtlError> {
    // The boot UUID the keeper publishes, for a keeper the cluster data knows without one.
    let published_boot = match store.keeper_infos().await {
        Ok(infos) => infos.valid.get(keeper_uid).map(|ki| ki.boot_uuid.clone()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        if !cd.keepers.contains_key(keeper_uid) {
            return Err(CtlError::KeeperNotFound(keeper_uid.to_string()));
        }
        let db_uid = cd.db_of_keeper(keeper_uid).map(|db| db.uid.clone());
        if let Some(db) = &db_uid
            && *db == cd.cluster.status.master
        {
            return Err(CtlError::KeeperHostsMaster { keeper: keeper_uid.to_string(), db: db.clone() });
        }
        let removed = cd.keepers.remove(keeper_uid);
        let boot_uuid = removed.map(|k| k.status.boot_uuid).filter(|b| !b.is_empty()).unwrap_or(published_boot.clone());
        let mark = cluster::RemovedKeeper { boot_uuid, remove_time: Timestamp::now() };
        cd.cluster.status.removed_keepers.insert(keeper_uid.to_string(), mark);
        if let Some(db) = &db_uid {
            cd.dbs.remove(db);
        }
        Ok(Decision::Write(RemovedKeeper { db_uid }))
    })
    .await
}
