//! The pure read-only route: from the cluster data to the standbys the read-only port may forward to, each
//! with its replay lag, and to the final set of targets (standbys, or the master as a fallback).
//!
//! A DB qualifies when, in the cluster data read by this check:
//! - it is not the cluster's master (`cluster.status.master`) nor the proxy's (`proxy.spec.masterDbUid`);
//! - its spec role is `standby` and it follows the cluster's master (`followConfig` internal, `dbuid`);
//! - the sentinel judges it healthy (`status.healthy`: its keeper is healthy and reports a healthy
//!   PostgreSQL);
//! - it is on the master's timeline (a standby still on the timeline before a failover may hold
//!   transactions the new master never had);
//! - it advertises an address and a port;
//! - its replay lag is at most the bound (see [`replay_lag`]).
//!
//! Where the figures come from, and how old they may be: each keeper reads its PostgreSQL every
//! `sleepInterval / 2` and publishes every `sleepInterval`; the leader sentinel copies them into the DB
//! statuses at its next pass (every `sleepInterval`) and the proxy sees that write within milliseconds
//! through its watch. A figure is therefore at most about two and a half `sleepInterval`s old while a
//! sentinel leads.

use std::net::SocketAddr;
use std::str::FromStr;

use super::route::MasterEndpoint;
use crate::byte_size::ByteSize;
use crate::cluster::{ClusterData, Db, DbRole, FollowType};

/// What the read-only port does when no standby qualifies (`--read-only-fallback`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Refuse: new read-only connections are closed at once.
    #[default]
    None,
    /// Forward to the master the master port forwards to (only while it forwards).
    Master,
}

impl FromStr for Fallback {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Fallback::None),
            "master" => Ok(Fallback::Master),
            other => Err(format!("invalid read-only fallback {other:?}: expected master or none")),
        }
    }
}

/// A standby the read-only port may forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// DB UID.
    pub db_uid: String,
    /// Where it listens (to be resolved).
    pub endpoint: MasterEndpoint,
    /// Bytes of WAL the master has and this standby has not replayed, as the cluster data says.
    pub lag: u64,
}

/// Why a DB other than the master does not qualify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// Its spec role is not `standby` (e.g. it is being promoted).
    NotStandby,
    /// It does not follow the cluster's master.
    NotFollowingMaster,
    /// The sentinel judges it unhealthy.
    Unhealthy,
    /// It is on another timeline than the master.
    OtherTimeline {
        /// Its timeline.
        timeline: u64,
        /// The master's.
        master: u64,
    },
    /// It advertises no address or port.
    NoAddress,
    /// It lags more than the bound.
    Lagging {
        /// Its lag in bytes.
        lag: u64,
    },
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exclusion::NotStandby => f.write_str("not a standby"),
            Exclusion::NotFollowingMaster => f.write_str("not following the master"),
            Exclusion::Unhealthy => f.write_str("unhealthy"),
            Exclusion::OtherTimeline { timeline, master } => {
                write!(f, "on timeline {timeline}, the master on {master}")
            }
            Exclusion::NoAddress => f.write_str("no advertised address"),
            Exclusion::Lagging { lag } => write!(f, "lagging {} bytes ({})", lag, ByteSize(*lag)),
        }
    }
}

/// The qualifying standbys of one cluster data, and why the others do not qualify.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eligible {
    /// The standbys within the bound, by DB UID.
    pub standbys: Vec<Standby>,
    /// The other DBs (the master aside) with the reason, by DB UID.
    pub excluded: Vec<(String, Exclusion)>,
}

/// The standbys of `cd` within `max_lag` bytes of the master (see the module documentation).
pub fn eligible_standbys(cd: &ClusterData, max_lag: u64) -> Eligible {
    let mut out = Eligible::default();
    let master_uid = &cd.cluster.status.master;
    let Some(master) = cd.dbs.get(master_uid) else {
        // No master to measure against: nothing qualifies.
        out.excluded = cd.dbs.keys().map(|uid| (uid.clone(), Exclusion::NotFollowingMaster)).collect();
        return out;
    };
    for db in cd.dbs.values() {
        if db.uid == *master_uid || db.uid == cd.proxy.spec.master_db_uid {
            continue;
        }
        match qualify(db, master, max_lag) {
            Ok(standby) => out.standbys.push(standby),
            Err(why) => out.excluded.push((db.uid.clone(), why)),
        }
    }
    out
}

fn qualify(db: &Db, master: &Db, max_lag: u64) -> Result<Standby, Exclusion> {
    if db.spec.role != Some(DbRole::Standby) {
        return Err(Exclusion::NotStandby);
    }
    let follows = db
        .spec
        .follow_config
        .as_ref()
        .is_some_and(|f| f.follow_type == Some(FollowType::Internal) && f.db_uid == master.uid);
    if !follows {
        return Err(Exclusion::NotFollowingMaster);
    }
    if !db.status.healthy {
        return Err(Exclusion::Unhealthy);
    }
    if db.status.timeline_id != master.status.timeline_id {
        return Err(Exclusion::OtherTimeline { timeline: db.status.timeline_id, master: master.status.timeline_id });
    }
    if db.status.listen_address.is_empty() || db.status.port.is_empty() {
        return Err(Exclusion::NoAddress);
    }
    let lag = replay_lag(db, master);
    if lag > max_lag {
        return Err(Exclusion::Lagging { lag });
    }
    Ok(Standby {
        db_uid: db.uid.clone(),
        endpoint: MasterEndpoint { host: db.status.listen_address.clone(), port: db.status.port.clone() },
        lag,
    })
}

/// The bytes of WAL `standby` has not replayed yet, from its status in the cluster data:
/// - while it streams, the WAL end its upstream last reported to it (`upstreamXLogPos`) minus its replayed
///   position (`replayXLogPos`), both read by its keeper in one query: the figure does not depend on when
///   the master's keeper last reported, so a steady write rate does not inflate it;
/// - otherwise (not streaming, or a keeper that does not report these fields, such as stolon's), the
///   master's `xLogPos` minus the standby's replayed position, or its received `xLogPos` when no replayed
///   position is reported. The two keepers' reports may then be up to a `sleepInterval` apart.
///
/// A standby whose position is ahead of the figure it is compared with has no lag.
pub fn replay_lag(standby: &Db, master: &Db) -> u64 {
    let s = &standby.status;
    let replayed = if s.replay_x_log_pos != 0 { s.replay_x_log_pos } else { s.x_log_pos };
    let end = if s.upstream_x_log_pos != 0 { s.upstream_x_log_pos } else { master.status.x_log_pos };
    end.saturating_sub(replayed)
}

/// How a read-only target is used. Part of a target's identity: a DB that goes from master fallback to
/// standby (or back) is a new target, so its connections are closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetRole {
    /// A qualifying standby.
    Standby,
    /// The master, used because no standby qualifies and the fallback is `master`.
    MasterFallback,
}

/// One destination of the read-only port. Connections belong to their target: when it leaves the set,
/// they are closed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The DB forwarded to.
    pub db_uid: String,
    /// Its resolved address.
    pub address: SocketAddr,
    /// Why it is a target.
    pub role: TargetRole,
}

/// The read-only targets: the resolved qualifying `standbys`; when there is none and `fallback` is
/// [`Fallback::Master`], the master the master port forwards to (`master`: its DB UID and address, `None`
/// when the master port forwards nowhere); otherwise none (refuse). Sorted.
pub fn targets(
    standbys: Vec<(String, SocketAddr)>,
    fallback: Fallback,
    master: Option<(String, SocketAddr)>,
) -> Vec<Target> {
    let mut out: Vec<Target> =
        standbys.into_iter().map(|(db_uid, address)| Target { db_uid, address, role: TargetRole::Standby }).collect();
    if out.is_empty()
        && fallback == Fallback::Master
        && let Some((db_uid, address)) = master
    {
        out.push(Target { db_uid, address, role: TargetRole::MasterFallback });
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterInitMode, ClusterSpec, DbSpec, DbStatus, FollowConfig, Proxy, ProxySpec};
    use crate::time::Timestamp;

    const MB: u64 = 1 << 20;

    fn standby_of(uid: &str, master: &str, port: u16, replayed: u64) -> Db {
        Db {
            uid: uid.into(),
            generation: 2,
            spec: DbSpec {
                keeper_uid: format!("k-{uid}"),
                role: Some(DbRole::Standby),
                follow_config: Some(FollowConfig {
                    follow_type: Some(FollowType::Internal),
                    db_uid: master.into(),
                    ..FollowConfig::default()
                }),
                ..DbSpec::default()
            },
            status: DbStatus {
                healthy: true,
                current_generation: 2,
                listen_address: "127.0.0.1".into(),
                port: port.to_string(),
                timeline_id: 1,
                x_log_pos: replayed,
                replay_x_log_pos: replayed,
                ..DbStatus::default()
            },
            ..Db::default()
        }
    }

    /// Master `m` at WAL position 100 MB on timeline 1, standbys `s1` and `s2` fully replayed.
    fn cluster() -> ClusterData {
        let spec = ClusterSpec { init_mode: Some(ClusterInitMode::New), ..ClusterSpec::default() };
        let mut cd = ClusterData::new_initial("c", spec, Timestamp::default());
        let master = Db {
            uid: "m".into(),
            spec: DbSpec { role: Some(DbRole::Master), ..DbSpec::default() },
            status: DbStatus {
                healthy: true,
                listen_address: "127.0.0.1".into(),
                port: "5000".into(),
                timeline_id: 1,
                x_log_pos: 100 * MB,
                ..DbStatus::default()
            },
            ..Db::default()
        };
        cd.dbs.insert("m".into(), master);
        cd.dbs.insert("s1".into(), standby_of("s1", "m", 5001, 100 * MB));
        cd.dbs.insert("s2".into(), standby_of("s2", "m", 5002, 100 * MB));
        cd.cluster.status.master = "m".into();
        cd.proxy = Proxy {
            generation: 3,
            spec: ProxySpec { master_db_uid: "m".into(), enabled_proxies: vec!["p".into()] },
            ..Proxy::default()
        };
        cd
    }

    fn uids(e: &Eligible) -> Vec<&str> {
        e.standbys.iter().map(|s| s.db_uid.as_str()).collect()
    }

    fn why<'a>(e: &'a Eligible, uid: &str) -> Option<&'a Exclusion> {
        e.excluded.iter().find(|(u, _)| u == uid).map(|(_, w)| w)
    }

    #[test]
    fn healthy_caught_up_standbys_qualify_and_the_master_never_does() {
        let e = eligible_standbys(&cluster(), 16 * MB);
        assert_eq!(uids(&e), ["s1", "s2"]);
        assert!(e.excluded.is_empty(), "{e:?}");
        assert_eq!(e.standbys[0].endpoint.host_port(), "127.0.0.1:5001");
        assert_eq!(e.standbys[0].lag, 0);
    }

    #[test]
    fn the_lag_bound_is_inclusive() {
        let mut cd = cluster();
        cd.dbs.get_mut("s1").unwrap().status.replay_x_log_pos = 84 * MB;
        cd.dbs.get_mut("s2").unwrap().status.replay_x_log_pos = 84 * MB - 1;
        let e = eligible_standbys(&cd, 16 * MB);
        assert_eq!(uids(&e), ["s1"]);
        assert_eq!(e.standbys[0].lag, 16 * MB);
        assert_eq!(why(&e, "s2"), Some(&Exclusion::Lagging { lag: 16 * MB + 1 }));
        assert_eq!(uids(&eligible_standbys(&cd, 0)), Vec::<&str>::new());
    }

    #[test]
    fn a_paused_replay_counts_even_when_wal_is_still_received() {
        let mut cd = cluster();
        let s1 = cd.dbs.get_mut("s1").unwrap();
        s1.status.x_log_pos = 100 * MB;
        s1.status.replay_x_log_pos = 50 * MB;
        let e = eligible_standbys(&cd, 16 * MB);
        assert_eq!(uids(&e), ["s2"]);
        assert_eq!(why(&e, "s1"), Some(&Exclusion::Lagging { lag: 50 * MB }));
    }

    #[test]
    fn a_streaming_standby_is_measured_against_what_its_upstream_reported() {
        let mut cd = cluster();
        // The master's last report is far ahead of what s1 saw (the reports were read at different times),
        // but s1 had replayed everything its upstream had sent: no lag.
        cd.dbs.get_mut("m").unwrap().status.x_log_pos = 200 * MB;
        let s1 = cd.dbs.get_mut("s1").unwrap();
        s1.status.upstream_x_log_pos = 100 * MB;
        let e = eligible_standbys(&cd, 16 * MB);
        assert_eq!(uids(&e), ["s1"], "{e:?}");
        assert_eq!(e.standbys[0].lag, 0);
        assert_eq!(why(&e, "s2"), Some(&Exclusion::Lagging { lag: 100 * MB }), "s2 does not stream: master figure");
        // Replay paused while WAL still arrives: the upstream's end moves on, the replayed position does not.
        let s1 = cd.dbs.get_mut("s1").unwrap();
        s1.status.upstream_x_log_pos = 150 * MB;
        s1.status.x_log_pos = 150 * MB;
        assert_eq!(why(&eligible_standbys(&cd, 16 * MB), "s1"), Some(&Exclusion::Lagging { lag: 50 * MB }));
    }

    #[test]
    fn without_a_replayed_position_the_received_one_is_used() {
        let mut cd = cluster();
        let s1 = cd.dbs.get_mut("s1").unwrap();
        s1.status.replay_x_log_pos = 0;
        s1.status.x_log_pos = 90 * MB;
        let e = eligible_standbys(&cd, 16 * MB);
        assert_eq!(e.standbys.iter().find(|s| s.db_uid == "s1").map(|s| s.lag), Some(10 * MB));
        assert_eq!(uids(&eligible_standbys(&cd, 9 * MB)), ["s2"]);
    }

    #[test]
    fn a_standby_ahead_of_the_masters_last_report_has_no_lag() {
        let mut cd = cluster();
        cd.dbs.get_mut("s1").unwrap().status.replay_x_log_pos = 101 * MB;
        let e = eligible_standbys(&cd, 0);
        assert_eq!(uids(&e), ["s1", "s2"]);
    }

    #[test]
    fn unhealthy_standbys_do_not_qualify() {
        let mut cd = cluster();
        cd.dbs.get_mut("s2").unwrap().status.healthy = false;
        let e = eligible_standbys(&cd, 16 * MB);
        assert_eq!(uids(&e), ["s1"]);
        assert_eq!(why(&e, "s2"), Some(&Exclusion::Unhealthy));
    }

    #[test]
    fn a_standby_being_promoted_does_not_qualify() {
        // The sentinel elected s1: it is the cluster's master now, the proxy's master is emptied.
        let mut cd = cluster();
        cd.cluster.status.master = "s1".into();
        cd.proxy.spec.master_db_uid.clear();
        let s1 = cd.dbs.get_mut("s1").unwrap();
        s1.spec.role = Some(DbRole::Master);
        s1.spec.follow_config = None;
        let e = eligible_standbys(&cd, 16 * MB);
        assert!(!uids(&e).contains(&"s1"), "{e:?}");
        // s2 still follows the old master: it does not qualify until it follows s1.
        assert_eq!(why(&e, "s2"), Some(&Exclusion::NotFollowingMaster));
        // The old master, not a standby yet, is excluded as such.
        assert_eq!(why(&e, "m"), Some(&Exclusion::NotStandby));
    }

    #[test]
    fn the_proxys_master_is_never_a_read_only_target() {
        // A cluster data where the proxy still names the old master while the cluster names a new one.
        let mut cd = cluster();
        cd.proxy.spec.master_db_uid = "s2".into();
        let e = eligible_standbys(&cd, 16 * MB);
        assert_eq!(uids(&e), ["s1"]);
        assert!(why(&e, "s2").is_none());
    }

    #[test]
    fn a_standby_following_another_db_or_an_external_primary_does_not_qualify() {
        let mut cd = cluster();
        cd.dbs.get_mut("s1").unwrap().spec.follow_config.as_mut().unwrap().db_uid = "s2".into();
        cd.dbs.get_mut("s2").unwrap().spec.follow_config.as_mut().unwrap().follow_type = Some(FollowType::External);
        let e = eligible_standbys(&cd, 16 * MB);
        assert!(e.standbys.is_empty());
        assert_eq!(why(&e, "s1"), Some(&Exclusion::NotFollowingMaster));
        assert_eq!(why(&e, "s2"), Some(&Exclusion::NotFollowingMaster));
        cd.dbs.get_mut("s1").unwrap().spec.follow_config = None;
        assert_eq!(why(&eligible_standbys(&cd, 16 * MB), "s1"), Some(&Exclusion::NotFollowingMaster));
    }

    #[test]
    fn a_standby_on_another_timeline_does_not_qualify() {
        let mut cd = cluster();
        cd.dbs.get_mut("m").unwrap().status.timeline_id = 2;
        cd.dbs.get_mut("s2").unwrap().status.timeline_id = 2;
        let e = eligible_standbys(&cd, 16 * MB);
        assert_eq!(uids(&e), ["s2"]);
        assert_eq!(why(&e, "s1"), Some(&Exclusion::OtherTimeline { timeline: 1, master: 2 }));
    }

    #[test]
    fn a_standby_without_an_address_does_not_qualify() {
        let mut cd = cluster();
        cd.dbs.get_mut("s1").unwrap().status.port.clear();
        cd.dbs.get_mut("s2").unwrap().status.listen_address.clear();
        let e = eligible_standbys(&cd, 16 * MB);
        assert!(e.standbys.is_empty());
        assert_eq!(why(&e, "s1"), Some(&Exclusion::NoAddress));
        assert_eq!(why(&e, "s2"), Some(&Exclusion::NoAddress));
    }

    #[test]
    fn without_a_master_nothing_qualifies() {
        let mut cd = cluster();
        cd.cluster.status.master.clear();
        let e = eligible_standbys(&cd, u64::MAX);
        assert!(e.standbys.is_empty());
        assert_eq!(e.excluded.len(), 3);
        cd.cluster.status.master = "gone".into();
        assert!(eligible_standbys(&cd, u64::MAX).standbys.is_empty());
    }

    #[test]
    fn a_standby_cluster_serves_reads_from_the_standbys_of_its_head() {
        // In a standby cluster the master DB is itself a standby of an external primary.
        let mut cd = cluster();
        let m = cd.dbs.get_mut("m").unwrap();
        m.spec.role = Some(DbRole::Standby);
        m.spec.follow_config =
            Some(FollowConfig { follow_type: Some(FollowType::External), ..FollowConfig::default() });
        assert_eq!(uids(&eligible_standbys(&cd, 16 * MB)), ["s1", "s2"]);
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn targets_are_the_standbys_and_the_master_only_as_a_fallback() {
        let standbys = vec![("s2".to_string(), addr(2)), ("s1".to_string(), addr(1))];
        let master = Some(("m".to_string(), addr(9)));
        let t = targets(standbys.clone(), Fallback::Master, master.clone());
        assert_eq!(t.iter().map(|t| t.db_uid.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
        assert!(t.iter().all(|t| t.role == TargetRole::Standby));

        let t = targets(Vec::new(), Fallback::Master, master.clone());
        assert_eq!(t, [Target { db_uid: "m".into(), address: addr(9), role: TargetRole::MasterFallback }]);
        assert!(targets(Vec::new(), Fallback::None, master).is_empty(), "fallback none refuses");
        assert!(targets(Vec::new(), Fallback::Master, None).is_empty(), "no master forwarded: refuse");
    }

    #[test]
    fn fallback_values_parse() {
        assert_eq!("none".parse::<Fallback>(), Ok(Fallback::None));
        assert_eq!("master".parse::<Fallback>(), Ok(Fallback::Master));
        let e = "replica".parse::<Fallback>().unwrap_err();
        assert!(e.contains("replica") && e.contains("master or none"), "{e}");
        assert_eq!(Fallback::default(), Fallback::None);
    }

    #[test]
    fn exclusions_read_well_in_logs() {
        assert_eq!(Exclusion::Lagging { lag: 32 * MB }.to_string(), "lagging 33554432 bytes (32MB)");
        assert_eq!(Exclusion::OtherTimeline { timeline: 1, master: 2 }.to_string(), "on timeline 1, the master on 2");
    }
}
