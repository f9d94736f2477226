//! When the leader runs passes between its regular `sleepInterval`s, against a real etcd (v3 API). The
//! keepers and the proxy are simulated: the keepers publish a record every `sleepInterval`, the proxy every
//! 500 ms, and all of them again on every change of the cluster data (each record with a fresh `infoUID`;
//! real members republish on fewer changes, this is the worst case). Checked:
//! - a newly elected master that failed before it promoted, with no other electable DB, does not make the
//!   leader write more than about once per `sleepInterval` (it used to run a pass and a write for every
//!   republished record: thousands of writes a minute for as long as no master could be elected);
//! - the leader still acts at once on news: the new master's keeper reporting its promotion, and a proxy
//!   acknowledging the generation that fenced the old master after that report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "common/sentinel_fixtures.rs"]
#[allow(dead_code)]
mod sentinel_fixtures;

use futures::StreamExt;
use stolon_conformance::servers::EtcdServer;
use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::sentinel::{Sentinel, SentinelConfig, SentinelStats};
use stolon_core::store::ClusterStore;
use stolon_store::{MemberKind, Store, StoreBackend};
use tokio::time::Instant;

/// What the simulated members publish.
#[derive(Clone)]
struct Members {
    /// keeper1's PostgreSQL state; `None`: keeper1 publishes nothing (it stopped).
    keeper1: Option<PostgresState>,
    /// The proxy generation the proxy acknowledges; `None`: the one in the current cluster data.
    proxy_ack: Option<i64>,
}

/// A cluster whose master db1 (keeper1) was just elected: generation 2, keeper1 still reported generation 1,
/// the proxies fenced (no routing target). db2 on keeper2 follows it; keeper2 cannot be master.
fn cluster(sleep: Duration, fail: Duration) -> ClusterData {
    let mut cd = sentinel_fixtures::normal(2, 1);
    cd.cluster.spec.sleep_interval = Some(GoDuration::from_std(sleep));
    cd.cluster.spec.fail_interval = Some(GoDuration::from_std(fail));
    for db in cd.dbs.values_mut() {
        db.status.x_log_pos = 0x3000000;
    }
    cd.dbs.get_mut("db1").unwrap().generation = 2;
    cd.proxy.generation = 2;
    cd.proxy.spec.master_db_uid = String::new();
    cd
}

fn state(db: &str, generation: i64) -> PostgresState {
    PostgresState {
        uid: db.into(),
        generation,
        healthy: true,
        timeline_id: 1,
        x_log_pos: 0x3000000,
        ..Default::default()
    }
}

/// Publishes the keepers' records every `every`, on every change of the cluster data, and at once when
/// keeper1's state changes (a real keeper publishes its progress urgently).
async fn publish_keepers(store: Arc<dyn Store>, cluster_uid: String, members: Arc<Mutex<Members>>, every: Duration) {
    let mut changes = store.watch_cluster_data(None).await.expect("watch the cluster data");
    for n in 0u64.. {
        let keeper1 = members.lock().unwrap().keeper1.clone();
        let mut keepers = vec![("keeper2", Some(state("db2", 1)), Some(false))];
        keepers.extend(keeper1.clone().map(|s| ("keeper1", Some(s), None)));
        for (keeper, postgres_state, can_be_master) in keepers {
            let info = KeeperInfo {
                info_uid: format!("{keeper}-{n}"),
                uid: keeper.into(),
                cluster_uid: cluster_uid.clone(),
                boot_uuid: format!("boot-{keeper}"),
                postgres_state,
                can_be_master,
                ..KeeperInfo::default()
            };
            let record = serde_json::to_vec(&info).unwrap();
            let _ = store.set_member(MemberKind::Keeper, keeper, &record, Duration::from_secs(60)).await;
        }
        let progress = async {
            while members.lock().unwrap().keeper1 == keeper1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = changes.next() => {}
            _ = progress => {}
        }
    }
}

/// Publishes the proxy's record every 500 ms and on every change of the cluster data.
async fn publish_proxy(store: Arc<dyn Store>, members: Arc<Mutex<Members>>) {
    let observer = ClusterStore::new(store.clone());
    let mut changes = store.watch_cluster_data(None).await.expect("watch the cluster data");
    for n in 0u64.. {
        let ack = members.lock().unwrap().proxy_ack;
        let generation = match ack {
            Some(g) => g,
            None => observer.cluster_data().await.ok().flatten().map_or(0, |cd| cd.data.proxy.generation),
        };
        let proxy =
            ProxyInfo { info_uid: format!("proxy-{n}"), uid: "proxy1".into(), generation, ..Default::default() };
        let record = serde_json::to_vec(&proxy).unwrap();
        let _ = store.set_member(MemberKind::Proxy, "proxy1", &record, Duration::from_secs(60)).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = changes.next() => {}
        }
    }
}

/// A leading sentinel over `cd`, with the simulated members publishing `members`.
struct Running {
    observer: ClusterStore,
    stats: Arc<SentinelStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _server: EtcdServer,
}

impl Running {
    async fn start(name: &str, cd: &ClusterData, members: Arc<Mutex<Members>>) -> Running {
        let server = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
        let config = server.config(StoreBackend::EtcdV3, name);
        let observer = ClusterStore::new(stolon_store::connect(&config).await.expect("connect"));
        observer.put_cluster_data(cd).await.expect("initial cluster data");
        let publisher = stolon_store::connect(&config).await.expect("connect");
        let every = cd.cluster.spec.sleep_interval();
        let keepers = tokio::spawn(publish_keepers(publisher.clone(), cd.cluster.uid.clone(), members.clone(), every));
        let proxy = tokio::spawn(publish_proxy(publisher, members));
        let store = ClusterStore::new(stolon_store::connect(&config).await.expect("connect"));
        let sentinel = Sentinel::new(store, SentinelConfig::new(None));
        let stats = sentinel.stats();
        let run = tokio::spawn(sentinel.run(std::future::pending()));
        let start = Instant::now();
        while !stats.is_leader() {
            assert!(start.elapsed() < Duration::from_secs(30), "the sentinel never led");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Running { observer, stats, tasks: vec![keepers, proxy, run], _server: server }
    }

    async fn cd(&self) -> ClusterData {
        self.observer.cluster_data().await.expect("readable").expect("present").data
    }

    /// How long until `f` holds on the cluster data, polled every 20 ms for at most `limit`.
    async fn time_until(&self, limit: Duration, f: impl Fn(&ClusterData) -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(&self.cd().await) {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_new_master_with_no_replacement_costs_one_write_per_sleep_interval() {
    let sleep = Duration::from_secs(1);
    let cd = cluster(sleep, Duration::from_secs(3));
    let members = Arc::new(Mutex::new(Members { keeper1: None, proxy_ack: None }));
    let running = Running::start("storm", &cd, members).await;

    // From the leader's first pass, through keeper1's failure (failInterval) to the lasting state.
    let window = Duration::from_secs(8);
    let before = running.stats.cluster_data_writes();
    tokio::time::sleep(window).await;
    let writes = running.stats.cluster_data_writes() - before;
    let now = running.cd().await;
    assert_eq!(now.cluster.status.master, "db1", "no other DB was electable");
    assert!(!now.dbs["db1"].status.healthy, "keeper1 never reported: its new master must be failed by now");
    // One write per sleepInterval, plus the passes at the failure timers (keeper1's and db1's).
    let bound = window.as_secs() + 4;
    assert!(writes >= window.as_secs() / 2, "the leader wrote {writes} times in {window:?}: it stopped running passes");
    assert!(writes <= bound, "the leader wrote {writes} times in {window:?} (at most {bound} expected): a pass storm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_report_and_a_late_proxy_acknowledgement_are_acted_on_at_once() {
    // Regular passes every 5 s: anything faster than that is the leader waking on news.
    let sleep = Duration::from_secs(5);
    let cd = cluster(sleep, Duration::from_secs(30));
    let members = Arc::new(Mutex::new(Members { keeper1: Some(state("db1", 1)), proxy_ack: Some(1) }));
    let running = Running::start("wake", &cd, members.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // keeper1 reports the promotion: recorded at once, routing still waits for the proxy (generation 1 of 2).
    members.lock().unwrap().keeper1 = Some(state("db1", 2));
    let converged = running
        .time_until(Duration::from_secs(3), |cd| cd.dbs["db1"].status.current_generation == 2)
        .await
        .expect("keeper1's promotion report was not recorded within 3 s");
    assert!(converged < Duration::from_secs(2), "recorded after {converged:?}: the leader did not wake on the report");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(running.cd().await.proxy.spec.master_db_uid, "", "routed before the proxy acknowledged the fence");

    // The proxy acknowledges the fencing generation: the new master is routed at once.
    members.lock().unwrap().proxy_ack = None;
    let routed = running
        .time_until(Duration::from_secs(4), |cd| cd.proxy.spec.master_db_uid == "db1")
        .await
        .expect("the new master was not routed within 4 s of the proxy's acknowledgement");
    assert!(routed < Duration::from_secs(2), "routed after {routed:?}: the leader did not wake on the acknowledgement");
}
