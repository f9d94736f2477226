//! The sentinel's decision log lines, verbatim as stolon 0.17 logs them (docs/log-messages.md), captured from
//! the real decision code (`update_cluster`) over stolon's table-test fixtures: initialization, failure
//! detection, elections, standbys, synchronous standbys and proxies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use stolon_core::cluster::*;
use stolon_core::sentinel::*;
use stolon_core::time::Timestamp;

#[path = "common/sentinel_fixtures.rs"]
mod sentinel_fixtures;
use sentinel_fixtures::*;

/// Runs the decision (convergence timers aged by 1000 hours, `db<N+1>` UIDs) and returns the messages it
/// logged, one `LEVEL message` per line (target and fields removed).
fn logged(cd: &ClusterData, proxies: &BTreeMap<String, ProxyInfo>) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber =
        tracing_subscriber::fmt().with_ansi(false).without_time().with_writer(move || out.clone()).finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut hist = Histories::new_term();
        hist.refresh_convergence(cd, MonoTime::ZERO);
        let now = Now { mono: MonoTime::from_duration(1000 * HOUR), wall: wall() };
        let _ = update_cluster(cd, proxies, &hist, now, &mut SequentialUids::after(cd.dbs.len() as u64));
    });
    let text = String::from_utf8(buf.0.lock().expect("log buffer").clone()).expect("utf-8");
    text.lines()
        .map(|l| {
            let (level, rest) = l.trim_start().split_once(' ').unwrap_or(("", l));
            let msg = rest.split_once(": ").map_or(rest, |(_, m)| m);
            // Fields follow the message after a space and `name=`.
            let end = msg.match_indices(' ').map(|(i, _)| i).find(|i| {
                msg[i + 1..]
                    .split_once('=')
                    .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            });
            format!("{level} {}", &msg[..end.unwrap_or(msg.len())])
        })
        .collect()
}

fn no_proxies() -> BTreeMap<String, ProxyInfo> {
    BTreeMap::new()
}

#[test]
fn initialization() {
    let mut cd = ClusterData::new_initial("cluster1", base_spec(), wall());
    cd.keepers.insert("keeper1".into(), keeper("keeper1", true));
    assert_eq!(logged(&cd, &no_proxies()), ["INFO trying to find initial master", "INFO initializing cluster"]);
    let mut initial = db("db1", "keeper1", None);
    initial.spec.init_mode = Some(DbInitMode::New);
    cd.dbs.insert("db1".into(), initial);
    cd.cluster.status.master = "db1".into();
    assert_eq!(logged(&cd, &no_proxies()), ["INFO db initialized"]);
    cd.dbs.get_mut("db1").expect("db1").generation = 2;
    assert_eq!(logged(&cd, &no_proxies()), ["INFO db failed to initialize"]);
    cd.cluster.spec.init_mode = Some(ClusterInitMode::Existing);
    cd.cluster.spec.existing_config = Some(ExistingConfig { keeper_uid: "keeper1".into() });
    assert_eq!(logged(&cd, &no_proxies()), ["INFO waiting for db"]);
    cd.dbs.clear();
    cd.cluster.status.master.clear();
    assert_eq!(
        logged(&cd, &no_proxies()),
        [
            "INFO trying to use keeper as initial master",
            "INFO initializing cluster using selected keeper as master db owner"
        ]
    );
}

#[test]
fn failover() {
    let mut cd = normal(2, 1);
    sick_keeper(&mut cd, "keeper1");
    assert_eq!(
        logged(&cd, &no_proxies()),
        [
            "INFO master db is failed",
            "INFO trying to find a new master to replace failed master",
            "INFO electing db as the new master"
        ]
    );
    sick_keeper(&mut cd, "keeper2");
    assert_eq!(
        logged(&cd, &no_proxies()),
        [
            "INFO master db is failed",
            "INFO trying to find a new master to replace failed master",
            "ERROR no eligible masters"
        ]
    );
}

#[test]
fn synchronous_elections_that_cannot_happen() {
    let mut cd = normal(3, 2);
    cd.cluster.spec.synchronous_replication = Some(true);
    let m = cd.dbs.get_mut("db1").expect("db1");
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(vec!["db2".into()]);
    m.status.synchronous_standbys = Some(vec![]);
    sick_keeper(&mut cd, "keeper1");
    let lines = logged(&cd, &no_proxies());
    assert_eq!(
        lines[2..],
        [
            "WARN cannot choose synchronous standby since there are no common elements between the latest master \
             reported synchronous standbys and the db spec ones",
            "ERROR no eligible masters"
        ]
    );
    let m = cd.dbs.get_mut("db1").expect("db1");
    m.status.synchronous_standbys = Some(vec!["db2".into()]);
    sick_keeper(&mut cd, "keeper2");
    let lines = logged(&cd, &no_proxies());
    assert_eq!(
        lines[2..],
        [
            "WARN cannot choose synchronous standby since there's not match between the possible masters and the \
             usable synchronousStandbys",
            "ERROR no eligible masters"
        ]
    );
}

#[test]
fn standbys_and_dead_keepers() {
    let mut cd = normal(2, 0);
    assert_eq!(logged(&cd, &no_proxies()), ["INFO added new standby db"]);
    cd.keepers.insert("keeper3".into(), Keeper { uid: "keeper3".into(), ..keeper("keeper3", true) });
    let k3 = cd.keepers.get_mut("keeper3").expect("keeper3");
    k3.status.healthy = false;
    k3.status.last_healthy_time = Timestamp::parse("2025-01-01T00:00:00Z").expect("timestamp");
    assert_eq!(logged(&cd, &no_proxies()), ["INFO removing old dead keeper", "INFO added new standby db"]);

    // An old master whose successor is healthy and converged goes.
    let mut cd = normal(2, 1);
    cd.cluster.status.master = "db2".into();
    let d2 = cd.dbs.get_mut("db2").expect("db2");
    d2.spec.role = Some(DbRole::Master);
    d2.spec.follow_config = None;
    cd.proxy.spec.master_db_uid = "db2".into();
    assert_eq!(logged(&cd, &no_proxies())[0], "INFO removing old master db");

    // Two good standbys with maxStandbysPerSender 1: the excess one goes; a failed one goes first.
    let mut cd = normal(3, 2);
    assert_eq!(logged(&cd, &no_proxies()), ["INFO removing good standby in excess"]);
    sick_keeper(&mut cd, "keeper3");
    assert_eq!(logged(&cd, &no_proxies()), ["INFO removing non good standby"]);
    let mut cd = normal(2, 1);
    cd.dbs.get_mut("db2").expect("db2").status.system_id = "other".into();
    cd.dbs.get_mut("db1").expect("db1").status.system_id = "mine".into();
    assert_eq!(logged(&cd, &no_proxies()), ["INFO removing invalid db", "INFO added new standby db"]);
}

#[test]
fn synchronous_standbys_and_proxies() {
    let mut cd = normal(2, 1);
    cd.cluster.spec.synchronous_replication = Some(true);
    cd.cluster.spec.min_synchronous_standbys = Some(1);
    cd.cluster.spec.max_synchronous_standbys = Some(1);
    assert_eq!(logged(&cd, &no_proxies()), ["INFO synchronousStandbys changed"]);
    sick_keeper(&mut cd, "keeper2");
    let m = cd.dbs.get_mut("db1").expect("db1");
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(vec!["db2".into()]);
    m.status.synchronous_standbys = Some(vec![]);
    assert_eq!(
        logged(&cd, &no_proxies()),
        [
            "INFO setting the expected sync-standbys to the current known in sync sync-standbys",
            "INFO using a fake synchronous standby since there are not enough real standbys available"
        ]
    );
    let mut cd = normal(3, 2);
    cd.cluster.spec.synchronous_replication = Some(true);
    cd.cluster.spec.max_standbys_per_sender = Some(2);
    cd.cluster.spec.max_synchronous_standbys = Some(2);
    let m = cd.dbs.get_mut("db1").expect("db1");
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(vec!["db2".into(), "db3".into()]);
    m.status.synchronous_standbys = Some(vec!["db2".into()]);
    assert_eq!(logged(&cd, &no_proxies()), ["INFO waiting for new defined synchronous standbys to be in sync"]);

    // After an election the proxies must all acknowledge the empty target before the new master is routed.
    let mut cd = normal(2, 1);
    cd.proxy.spec.master_db_uid.clear();
    cd.proxy.generation = 2;
    let lagging = ProxyInfo { uid: "p1".into(), info_uid: "i".into(), generation: 1, ..ProxyInfo::default() };
    let proxies = BTreeMap::from([("p1".to_string(), lagging)]);
    assert_eq!(logged(&cd, &proxies), ["INFO waiting for proxies to be converged to the current generation"]);
}
