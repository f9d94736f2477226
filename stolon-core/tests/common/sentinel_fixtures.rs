//! Fixtures shared by the sentinel's decision tests (`sentinel_table`, `sentinel_log_messages`), after
//! stolon's table tests: a fixed wall clock, healthy converged keepers and DBs, and a normal-phase cluster.

use std::time::Duration;

use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::time::Timestamp;

pub const HOUR: Duration = Duration::from_secs(3600);

pub fn wall() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00Z").expect("valid timestamp")
}

pub fn base_spec() -> ClusterSpec {
    ClusterSpec {
        init_mode: Some(ClusterInitMode::New),
        max_standbys_per_sender: Some(1),
        sync_timeout: Some(GoDuration::from_mins(30)),
        ..ClusterSpec::default()
    }
}

pub fn keeper(uid: &str, healthy: bool) -> Keeper {
    Keeper {
        uid: uid.into(),
        generation: 1,
        status: KeeperStatus { healthy, last_healthy_time: wall(), ..KeeperStatus::default() },
        ..Keeper::default()
    }
}

/// A DB with its spec already carrying the cluster-wide defaults, converged and healthy on timeline 1.
pub fn db(uid: &str, keeper: &str, master: Option<&str>) -> Db {
    let (role, follow) = match master {
        None => (DbRole::Master, None),
        Some(m) => (
            DbRole::Standby,
            Some(FollowConfig { follow_type: Some(FollowType::Internal), db_uid: m.into(), ..FollowConfig::default() }),
        ),
    };
    Db {
        uid: uid.into(),
        generation: 1,
        spec: DbSpec {
            keeper_uid: keeper.into(),
            request_timeout: defaults::REQUEST_TIMEOUT,
            max_standbys: defaults::MAX_STANDBYS,
            additional_wal_senders: defaults::ADDITIONAL_WAL_SENDERS,
            init_mode: Some(DbInitMode::None),
            role: Some(role),
            follow_config: follow,
            followers: Some(vec![]),
            ..DbSpec::default()
        },
        status: DbStatus { healthy: true, current_generation: 1, timeline_id: 1, ..DbStatus::default() },
        ..Db::default()
    }
}

/// A normal-phase cluster: keeper1..keeperN healthy, db1 master on keeper1 with `standbys` (db2 on keeper2,
/// db3 on keeper3...) following it, proxies routed to db1.
pub fn normal(keepers: usize, standbys: usize) -> ClusterData {
    let mut cd = ClusterData::new_initial("cluster1", base_spec(), wall());
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "db1".into();
    for i in 1..=keepers {
        let k = format!("keeper{i}");
        cd.keepers.insert(k.clone(), keeper(&k, true));
    }
    cd.dbs.insert("db1".into(), db("db1", "keeper1", None));
    let mut followers = vec![];
    for i in 2..=standbys + 1 {
        let uid = format!("db{i}");
        cd.dbs.insert(uid.clone(), db(&uid, &format!("keeper{i}"), Some("db1")));
        followers.push(uid);
    }
    cd.dbs.get_mut("db1").unwrap().spec.followers = Some(followers);
    cd.proxy.generation = 1;
    cd.proxy.spec.master_db_uid = "db1".into();
    cd
}

pub fn sick_keeper(cd: &mut ClusterData, keeper_uid: &str) {
    cd.keepers.get_mut(keeper_uid).unwrap().status.healthy = false;
    for db in cd.dbs.values_mut().filter(|d| d.spec.keeper_uid == keeper_uid) {
        db.status.healthy = false;
    }
}
