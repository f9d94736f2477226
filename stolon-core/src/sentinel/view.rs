//! The sentinel's in-memory view of the store: the cluster data and the keeper and proxy records, each kept
//! by a store watch ([`ClusterDataView`], [`MemberView`]), so that a pass reads nothing from the store while
//! the watches run, and the loop learns of a keeper's new record the moment it is written.
//!
//! A copy is used only while its watch is live and, when it holds records, only while the watch keeps
//! delivering: live keepers publish a new record every `sleepInterval` and live proxies every
//! `proxyCheckInterval`, so a copy silent for twice that is not trusted (the pass reads the store). A watch
//! reset therefore costs a direct read, never a keeper declared failed. A decision read from the copies that
//! would fail a keeper or a DB, change the master or change the proxies' routing is not written on their word
//! alone: the pass reads the records from the store and decides again ([`needs_confirmation`]). Each copy is
//! also read anew every [`VIEW_RESYNC`](crate::store::member_view::VIEW_RESYNC).

use stolon_store::MemberKind;
use tokio::sync::watch;

use std::time::Duration;

use super::wake::ProgressSignature;
use crate::cluster::{ClusterData, KeeperInfo, ProxyInfo};
use crate::store::cluster_data_view::{ClusterDataView, LiveDocument};
use crate::store::member_view::{LiveRecords, MemberView};
use crate::store::{
    ClusterStore, ClusterStoreError, Infos, VersionedClusterData, decode_keeper_infos, decode_proxy_infos,
};

/// Where a pass got the member records from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The watch-fed copies.
    View,
    /// A read of the store.
    Store,
}

/// The keeper and proxy infos of one pass.
pub(crate) struct MemberInfos {
    pub(crate) keepers: Infos<KeeperInfo>,
    pub(crate) proxies: Infos<ProxyInfo>,
    pub(crate) source: Source,
}

/// The watch-fed copies a sentinel reads.
pub(crate) struct SentinelView {
    cluster_data: ClusterDataView,
    keepers: MemberView,
    proxies: MemberView,
}

impl SentinelView {
    /// Starts the watches of `store`.
    pub(crate) fn spawn(store: &ClusterStore) -> SentinelView {
        SentinelView {
            cluster_data: ClusterDataView::spawn(store.store().clone()),
            keepers: MemberView::spawn(store.store().clone(), MemberKind::Keeper),
            proxies: MemberView::spawn(store.store().clone(), MemberKind::Proxy),
        }
    }

    /// Woken by every change of the watched cluster data.
    pub(crate) fn cluster_data_changes(&self) -> watch::Receiver<LiveDocument> {
        self.cluster_data.subscribe()
    }

    /// Woken by every change of the watched keeper records.
    pub(crate) fn keeper_changes(&self) -> watch::Receiver<LiveRecords> {
        self.keepers.subscribe()
    }

    /// How long the copies may stay silent before they are not trusted, for the cluster data `cd`.
    pub(crate) fn silences(cd: &ClusterData) -> Silences {
        let spec = &cd.cluster.spec;
        Silences { keepers: spec.sleep_interval() * 2, proxies: spec.proxy_check_interval() * 2 }
    }

    /// The cluster data: from the copy unless `direct` or the copy is not live, else read from the store.
    pub(crate) async fn cluster_data(
        &self,
        store: &ClusterStore,
        direct: bool,
    ) -> Result<Option<VersionedClusterData>, ClusterStoreError> {
        if direct { store.cluster_data().await } else { store.cluster_data_via(&self.cluster_data).await }
    }

    /// The keeper and proxy infos: from the copies when both are usable (see the module) and `direct` is
    /// false, else read from the store.
    pub(crate) async fn member_infos(
        &self,
        store: &ClusterStore,
        direct: bool,
        silences: Silences,
    ) -> Result<MemberInfos, InfosError> {
        let copies =
            (self.keepers.fresh_records(Some(silences.keepers)), self.proxies.fresh_records(Some(silences.proxies)));
        if !direct && let (Some(k), Some(p)) = copies {
            return Ok(MemberInfos {
                keepers: decode_keeper_infos(k),
                proxies: decode_proxy_infos(p),
                source: Source::View,
            });
        }
        let keepers = store.keeper_infos().await.map_err(InfosError::Keepers)?;
        let proxies = store.proxy_infos().await.map_err(InfosError::Proxies)?;
        Ok(MemberInfos { keepers, proxies, source: Source::Store })
    }

    /// Woken by every change of the watched proxy records.
    pub(crate) fn proxy_changes(&self) -> watch::Receiver<LiveRecords> {
        self.proxies.subscribe()
    }

    /// Whether the keeper and proxy records are both watched now (else a caller must poll the store).
    pub(crate) fn members_live(&self) -> bool {
        self.keepers.records().is_some() && self.proxies.records().is_some()
    }

    /// The content of the keeper and proxy records that can move a waiting cluster on, from the copies when
    /// live, else from the store; `None` when the store cannot be read.
    pub(crate) async fn progress_signature(&self, store: &ClusterStore) -> Option<ProgressSignature> {
        let keepers = match self.keepers.records() {
            Some(records) => decode_keeper_infos(records),
            None => store.keeper_infos().await.ok()?,
        };
        let proxies = match self.proxies.records() {
            Some(records) => decode_proxy_infos(records),
            None => store.proxy_infos().await.ok()?,
        };
        Some(ProgressSignature::of(&keepers.valid, &proxies.valid))
    }
}

/// Which member records could not be read from the store.
#[derive(Debug)]
pub(crate) enum InfosError {
    /// The keeper infos.
    Keepers(ClusterStoreError),
    /// The proxy infos.
    Proxies(ClusterStoreError),
}

/// How long each copy may stay silent and still be used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Silences {
    keepers: Duration,
    proxies: Duration,
}

/// Whether going from `old` to `new` must be confirmed by records read from the store: a keeper or DB that
/// was healthy is failed or removed, the master changes, or the proxies' routing changes. Nothing else a
/// stale copy could cause does harm (it can only hide changes, never invent them).
pub(crate) fn needs_confirmation(old: &ClusterData, new: &ClusterData) -> bool {
    let keeper_failed =
        old.keepers.iter().any(|(uid, k)| k.status.healthy && new.keepers.get(uid).is_none_or(|n| !n.status.healthy));
    let db_failed =
        old.dbs.iter().any(|(uid, d)| d.status.healthy && new.dbs.get(uid).is_none_or(|n| !n.status.healthy));
    keeper_failed
        || db_failed
        || old.cluster.status.master != new.cluster.status.master
        || old.proxy.spec != new.proxy.spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Db, DbStatus, Keeper, KeeperStatus};
    use crate::time::Timestamp;

    fn cluster() -> ClusterData {
        let mut cd = ClusterData::new_initial("c", Default::default(), Timestamp::now());
        cd.cluster.status.master = "db1".into();
        let status = KeeperStatus { healthy: true, ..KeeperStatus::default() };
        cd.keepers.insert("k1".into(), Keeper { uid: "k1".into(), status, ..Keeper::default() });
        let status = DbStatus { healthy: true, ..DbStatus::default() };
        cd.dbs.insert("db1".into(), Db { uid: "db1".into(), status, ..Db::default() });
        cd.proxy.spec.master_db_uid = "db1".into();
        cd
    }

    #[test]
    fn routine_writes_need_no_confirmation() {
        let old = cluster();
        let mut new = old.clone();
        new.change_time = Timestamp::now();
        if let Some(k) = new.keepers.get_mut("k1") {
            k.status.last_healthy_time = Timestamp::now();
        }
        if let Some(d) = new.dbs.get_mut("db1") {
            d.status.x_log_pos = 42;
        }
        assert!(!needs_confirmation(&old, &new));
    }

    #[test]
    fn failures_elections_and_routing_need_confirmation() {
        let old = cluster();
        let mut keeper_failed = old.clone();
        if let Some(k) = keeper_failed.keepers.get_mut("k1") {
            k.status.healthy = false;
        }
        let mut keeper_removed = old.clone();
        keeper_removed.keepers.clear();
        let mut db_failed = old.clone();
        if let Some(d) = db_failed.dbs.get_mut("db1") {
            d.status.healthy = false;
        }
        let mut new_master = old.clone();
        new_master.cluster.status.master = "db2".into();
        let mut rerouted = old.clone();
        rerouted.proxy.spec.master_db_uid = String::new();
        for (what, new) in [
            ("keeper failed", keeper_failed),
            ("keeper removed", keeper_removed),
            ("db failed", db_failed),
            ("new master", new_master),
            ("rerouted", rerouted),
        ] {
            assert!(needs_confirmation(&old, &new), "{what}");
        }
    }
}
