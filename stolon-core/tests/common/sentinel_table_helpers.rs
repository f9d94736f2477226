//! Helpers of the sentinel's table tests (`sentinel_table*.rs`): the decision run with aged convergence
//! timers and `db<N+1>` UIDs, fixture edits, and a readable comparison of cluster data. Each test binary
//! uses a subset of them.
#![allow(dead_code)]

use std::collections::BTreeMap;

use stolon_core::cluster::*;
use stolon_core::sentinel::*;

use super::sentinel_fixtures::*;

pub fn now() -> Now {
    Now { mono: MonoTime::from_duration(1000 * HOUR), wall: wall() }
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn dbm<'a>(cd: &'a mut ClusterData, uid: &str) -> &'a mut Db {
    cd.dbs.get_mut(uid).expect("db in fixture")
}

pub fn sync_on(cd: &mut ClusterData, min: u16, max: u16) {
    cd.cluster.spec.synchronous_replication = Some(true);
    cd.cluster.spec.min_synchronous_standbys = Some(min);
    cd.cluster.spec.max_synchronous_standbys = Some(max);
}

pub fn master_sync(cd: &mut ClusterData, spec: &[&str], status: &[&str]) {
    let m = dbm(cd, "db1");
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(s(spec));
    m.spec.external_synchronous_standbys = Some(vec![]);
    m.status.synchronous_standbys = Some(s(status));
}

/// Runs the decision with aged convergence timers and `db<N+1>` UIDs.
pub fn run(cd: &ClusterData) -> Result<ClusterData, DecideError> {
    run_with_proxies(cd, &BTreeMap::new())
}

pub fn run_with_proxies(cd: &ClusterData, proxies: &BTreeMap<String, ProxyInfo>) -> Result<ClusterData, DecideError> {
    let mut hist = Histories::new_term();
    hist.refresh_convergence(cd, MonoTime::ZERO);
    let mut uids = SequentialUids::after(cd.dbs.len() as u64);
    update_cluster(cd, proxies, &hist, now(), &mut uids)
}

/// Asserts equality with a readable diff of the JSON forms.
pub fn assert_cd(got: &ClusterData, want: &ClusterData) {
    if got != want {
        let g = serde_json::to_string_pretty(got).unwrap();
        let w = serde_json::to_string_pretty(want).unwrap();
        panic!("cluster data differs\n--- got\n{g}\n--- want\n{w}");
    }
}

pub fn init_cluster(keepers: &[&str]) -> ClusterData {
    let mut cd = ClusterData::new_initial("cluster1", base_spec(), wall());
    for k in keepers {
        cd.keepers.insert(k.to_string(), keeper(k, true));
    }
    cd
}

/// The state right after t05, with the new master converged and the old keeper back.
pub fn after_failover() -> ClusterData {
    let mut cd = normal(2, 1);
    cd.cluster.status.master = "db2".into();
    dbm(&mut cd, "db1").spec.followers = Some(vec![]);
    let d2 = dbm(&mut cd, "db2");
    d2.spec.role = Some(DbRole::Master);
    d2.spec.follow_config = None;
    cd.proxy.spec.master_db_uid.clear();
    cd.proxy.generation = 2;
    cd
}
