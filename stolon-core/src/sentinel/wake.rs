//! When the leader runs a pass before its regular `sleepInterval`: while the cluster waits for news that a
//! member's next record can bring (a new master converging, its routing, a synchronous standby's
//! confirmation, a switchover step), the leader wakes on member records, but only on records whose content
//! changed. A record that only renews a heartbeat (a new `infoUID`) never wakes it: every pass writes the
//! cluster data, every write makes keepers and proxies publish again, and waking on those publishes would be
//! a pass and a write every few milliseconds for as long as the wait lasts.

use std::collections::BTreeMap;

use crate::cluster::{ClusterData, KeeperInfo, ProxyInfo};

use super::sync_election::awaiting_sync_confirmation;

/// The content of the member records that can move a waiting cluster on: each keeper's info without its
/// heartbeat `infoUID`, and the proxy generation each proxy acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProgressSignature {
    keepers: BTreeMap<String, KeeperInfo>,
    proxies: BTreeMap<String, i64>,
}

impl ProgressSignature {
    /// The signature of `keepers` and `proxies` (valid records, by UID).
    pub(crate) fn of(keepers: &BTreeMap<String, KeeperInfo>, proxies: &BTreeMap<String, ProxyInfo>) -> Self {
        let keepers = keepers
            .iter()
            .map(|(uid, info)| (uid.clone(), KeeperInfo { info_uid: String::new(), ..info.clone() }))
            .collect();
        let proxies = proxies.iter().map(|(uid, info)| (uid.clone(), info.generation)).collect();
        ProgressSignature { keepers, proxies }
    }
}

/// Why the leader waits for member records after a pass over `cd`, or `None` when only its regular
/// `sleepInterval` (and the failure timers) are due. A master that is failed waits for nothing here: its
/// keeper's return, or a standby becoming electable, is news for the regular pass (a failed master with no
/// replacement is a lasting state, and waking on it would run passes back to back).
pub(crate) fn awaiting(cd: &ClusterData) -> Option<Awaiting> {
    if crate::ops::switchover_running(cd) {
        return Some(Awaiting::Switchover);
    }
    let master = cd.master_db().filter(|m| m.status.healthy)?;
    if master.status.current_generation != master.generation {
        return Some(Awaiting::MasterConvergence);
    }
    if cd.proxy.spec.master_db_uid != master.uid {
        return Some(Awaiting::Routing);
    }
    awaiting_sync_confirmation(cd).then_some(Awaiting::SyncConfirmation)
}

/// What the cluster waits for (see [`awaiting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// A switchover step: each waits on a keeper's report.
    Switchover,
    /// The master's keeper reporting that it converged to the master's generation.
    MasterConvergence,
    /// The proxies acknowledging the generation that fenced the previous master, so the new one is routed.
    Routing,
    /// The master's keeper reporting its synchronous standbys in place.
    SyncConfirmation,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Db, DbStatus, PostgresState};
    use crate::time::Timestamp;

    fn cluster() -> ClusterData {
        let mut cd = ClusterData::new_initial("c", Default::default(), Timestamp::now());
        cd.cluster.status.master = "db1".into();
        let status = DbStatus { healthy: true, current_generation: 2, ..DbStatus::default() };
        cd.dbs.insert("db1".into(), Db { uid: "db1".into(), generation: 2, status, ..Db::default() });
        cd.proxy.spec.master_db_uid = "db1".into();
        cd
    }

    #[test]
    fn a_converged_routed_master_waits_for_nothing() {
        assert_eq!(awaiting(&cluster()), None);
    }

    #[test]
    fn a_healthy_master_waits_for_its_convergence_then_its_routing() {
        let mut cd = cluster();
        cd.proxy.spec.master_db_uid = String::new();
        assert_eq!(awaiting(&cd), Some(Awaiting::Routing));
        cd.dbs.get_mut("db1").unwrap().generation = 3;
        assert_eq!(awaiting(&cd), Some(Awaiting::MasterConvergence));
    }

    #[test]
    fn a_failed_master_waits_for_nothing_even_unconverged_and_unrouted() {
        let mut cd = cluster();
        cd.proxy.spec.master_db_uid = String::new();
        let db = cd.dbs.get_mut("db1").unwrap();
        db.generation = 3;
        db.status.healthy = false;
        assert_eq!(awaiting(&cd), None);
    }

    #[test]
    fn no_master_waits_for_nothing() {
        let mut cd = cluster();
        cd.cluster.status.master = String::new();
        assert_eq!(awaiting(&cd), None);
    }

    fn keeper(info_uid: &str, pos: u64) -> KeeperInfo {
        let state = PostgresState { uid: "db1".into(), generation: 2, x_log_pos: pos, ..PostgresState::default() };
        KeeperInfo { info_uid: info_uid.into(), uid: "k1".into(), postgres_state: Some(state), ..KeeperInfo::default() }
    }

    fn proxy(info_uid: &str, generation: i64) -> ProxyInfo {
        ProxyInfo { info_uid: info_uid.into(), uid: "p1".into(), generation, ..ProxyInfo::default() }
    }

    fn signature(k: KeeperInfo, p: ProxyInfo) -> ProgressSignature {
        ProgressSignature::of(&BTreeMap::from([("k1".into(), k)]), &BTreeMap::from([("p1".into(), p)]))
    }

    #[test]
    fn a_heartbeat_alone_changes_no_signature() {
        assert_eq!(signature(keeper("a", 7), proxy("x", 4)), signature(keeper("b", 7), proxy("y", 4)));
    }

    #[test]
    fn a_keeper_report_or_a_proxy_acknowledgement_changes_the_signature() {
        let before = signature(keeper("a", 7), proxy("x", 4));
        assert_ne!(before, signature(keeper("b", 8), proxy("y", 4)), "a keeper's new WAL position");
        assert_ne!(before, signature(keeper("b", 7), proxy("y", 5)), "a proxy's new generation");
        let gone = ProgressSignature::of(&BTreeMap::new(), &BTreeMap::from([("p1".into(), proxy("x", 4))]));
        assert_ne!(before, gone, "a keeper's record expired");
    }
}
