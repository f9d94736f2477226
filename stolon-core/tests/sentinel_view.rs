//! The sentinel's watch-fed view against a real etcd (v3 API): at steady state a pass reads nothing from the
//! store, and member watch resets are recovered without declaring any keeper failed. The keepers are
//! simulated (their records are published by the test, as a healthy keeper would); the store is the real
//! etcd behind a wrapper that counts reads and can reset every open member watch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use stolon_conformance::servers::EtcdServer;
use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::sentinel::{Sentinel, SentinelConfig};
use stolon_core::store::ClusterStore;
use stolon_core::time::Timestamp;
use stolon_store::{
    Capabilities, Document, Election, Leadership, MemberEvent, MemberKind, MemberRecord, MemberWatch, Revision, Store,
    StoreBackend, StoreResult, WatchStream,
};
use tokio::sync::broadcast;

const SLEEP: Duration = Duration::from_secs(1);

/// A real store that counts direct reads and resets its member watches on demand.
struct Faulty {
    inner: Arc<dyn Store>,
    lists: AtomicU64,
    gets: AtomicU64,
    resets: broadcast::Sender<()>,
}

#[async_trait]
impl Election for Faulty {
    async fn campaign(&self, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
        self.inner.campaign(candidate, ttl).await
    }
    async fn leader(&self) -> StoreResult<Option<String>> {
        self.inner.leader().await
    }
}

#[async_trait]
impl Store for Faulty {
    fn backend(&self) -> StoreBackend {
        self.inner.backend()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get_cluster_data(&self) -> StoreResult<Option<Document>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_cluster_data().await
    }
    async fn put_cluster_data_cas(&self, value: &[u8], expected: Option<&Revision>) -> StoreResult<Revision> {
        self.inner.put_cluster_data_cas(value, expected).await
    }
    async fn put_cluster_data(&self, value: &[u8]) -> StoreResult<Revision> {
        self.inner.put_cluster_data(value).await
    }
    async fn set_member(&self, kind: MemberKind, id: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        self.inner.set_member(kind, id, value, ttl).await
    }
    async fn delete_member(&self, kind: MemberKind, id: &str) -> StoreResult<()> {
        self.inner.delete_member(kind, id).await
    }
    async fn list_members(&self, kind: MemberKind) -> StoreResult<Vec<MemberRecord>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_members(kind).await
    }
    async fn watch_cluster_data(&self, after: Option<&Revision>) -> StoreResult<WatchStream> {
        self.inner.watch_cluster_data(after).await
    }
    async fn watch_members(&self, kind: MemberKind) -> StoreResult<MemberWatch> {
        let w = self.inner.watch_members(kind).await?;
        let resets = self.resets.subscribe();
        // The real events until a reset is asked for; then a Reset ends the stream.
        let events = futures::stream::unfold(Some((w.events, resets)), |state| async move {
            let (mut events, mut resets) = state?;
            tokio::select! {
                _ = resets.recv() => Some((Ok(MemberEvent::Reset), None)),
                ev = events.next() => ev.map(|ev| (ev, Some((events, resets)))),
            }
        });
        Ok(MemberWatch { records: w.records, events: events.boxed() })
    }
}

fn wall() -> Timestamp {
    Timestamp::now()
}

/// A normal-phase cluster: db1 master on keeper1, db2 standby on keeper2, proxies routed to db1.
fn cluster() -> ClusterData {
    let spec = ClusterSpec {
        init_mode: Some(ClusterInitMode::New),
        sleep_interval: Some(GoDuration::from_std(SLEEP)),
        fail_interval: Some(GoDuration::from_std(Duration::from_secs(4))),
        ..ClusterSpec::default()
    };
    let mut cd = ClusterData::new_initial("cluster1", spec, wall());
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "db1".into();
    for k in ["keeper1", "keeper2"] {
        let status = KeeperStatus { healthy: true, last_healthy_time: wall(), ..KeeperStatus::default() };
        cd.keepers.insert(k.into(), Keeper { uid: k.into(), generation: 1, status, ..Keeper::default() });
    }
    for (db, keeper, master) in [("db1", "keeper1", None), ("db2", "keeper2", Some("db1"))] {
        let (role, follow_config) = match master {
            None => (DbRole::Master, None),
            Some(m) => (
                DbRole::Standby,
                Some(FollowConfig { follow_type: Some(FollowType::Internal), db_uid: m.into(), ..Default::default() }),
            ),
        };
        let spec = DbSpec {
            keeper_uid: keeper.into(),
            request_timeout: defaults::REQUEST_TIMEOUT,
            max_standbys: defaults::MAX_STANDBYS,
            additional_wal_senders: defaults::ADDITIONAL_WAL_SENDERS,
            init_mode: Some(DbInitMode::None),
            role: Some(role),
            follow_config,
            followers: Some(if master.is_none() { vec!["db2".into()] } else { vec![] }),
            ..DbSpec::default()
        };
        let status = DbStatus { healthy: true, current_generation: 1, timeline_id: 1, ..DbStatus::default() };
        cd.dbs.insert(db.into(), Db { uid: db.into(), generation: 1, spec, status, ..Db::default() });
    }
    cd.proxy.generation = 1;
    cd.proxy.spec.master_db_uid = "db1".into();
    cd
}

/// Publishes the records of two healthy keepers every sleepInterval, each with a fresh infoUID.
async fn keepers(store: Arc<dyn Store>, cluster_uid: String) {
    let mut n = 0u64;
    loop {
        n += 1;
        for (keeper, db) in [("keeper1", "db1"), ("keeper2", "db2")] {
            let info = KeeperInfo {
                info_uid: format!("{keeper}-{n}"),
                uid: keeper.into(),
                cluster_uid: cluster_uid.clone(),
                boot_uuid: format!("boot-{keeper}"),
                postgres_state: Some(PostgresState {
                    uid: db.into(),
                    generation: 1,
                    healthy: true,
                    timeline_id: 1,
                    x_log_pos: 0x3000000,
                    ..PostgresState::default()
                }),
                ..KeeperInfo::default()
            };
            let _ = store.set_member(MemberKind::Keeper, keeper, &serde_json::to_vec(&info).unwrap(), SLEEP * 20).await;
        }
        tokio::time::sleep(SLEEP).await;
    }
}

async fn current(store: &ClusterStore) -> ClusterData {
    store.cluster_data().await.expect("readable").expect("present").data
}

fn assert_healthy(cd: &ClusterData, when: &str) {
    assert_eq!(cd.cluster.status.master, "db1", "{when}: the master changed");
    for k in cd.keepers.values() {
        assert!(k.status.healthy, "{when}: keeper {} was declared failed", k.uid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_reads_nothing_and_watch_resets_fail_no_keeper() {
    let server = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let config = server.config(StoreBackend::EtcdV3, "view");
    let observer = ClusterStore::new(stolon_store::connect(&config).await.expect("connect"));
    let cd = cluster();
    observer.put_cluster_data(&cd).await.expect("initial cluster data");
    let publisher = stolon_store::connect(&config).await.expect("connect");
    let keepers = tokio::spawn(keepers(publisher, cd.cluster.uid.clone()));

    let (resets, _) = broadcast::channel(4);
    let faulty = Arc::new(Faulty {
        inner: stolon_store::connect(&config).await.expect("connect"),
        lists: AtomicU64::new(0),
        gets: AtomicU64::new(0),
        resets: resets.clone(),
    });
    let sentinel = Sentinel::new(ClusterStore::new(faulty.clone()), SentinelConfig::new(None));
    let stats = sentinel.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(sentinel.run(async move {
        let _ = stopped.await;
    }));

    // Leadership, a first observing pass, then passes that settle the cluster data.
    let start = tokio::time::Instant::now();
    while !stats.is_leader() {
        assert!(start.elapsed() < Duration::from_secs(30), "the sentinel never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(SLEEP * 6).await;
    assert_healthy(&current(&observer).await, "after settling");

    // Steady state: passes every sleepInterval, no store read.
    let (lists, gets) = (faulty.lists.load(Ordering::SeqCst), faulty.gets.load(Ordering::SeqCst));
    let checks = stats.last_check_success_seconds();
    tokio::time::sleep(SLEEP * 6).await;
    assert!(stats.last_check_success_seconds() > checks, "the sentinel kept running passes");
    assert_eq!(faulty.lists.load(Ordering::SeqCst), lists, "steady-state passes listed member records");
    assert_eq!(faulty.gets.load(Ordering::SeqCst), gets, "steady-state passes read the cluster data");

    // Member watch resets for longer than failInterval: every one is recovered, no keeper is failed.
    for i in 0..20 {
        let _ = resets.send(());
        tokio::time::sleep(Duration::from_millis(300)).await;
        if i % 5 == 4 {
            assert_healthy(&current(&observer).await, &format!("after {} resets", i + 1));
        }
    }
    tokio::time::sleep(SLEEP * 3).await;
    assert_healthy(&current(&observer).await, "after the resets");

    let _ = stop.send(());
    run.await.expect("the sentinel stops");
    keepers.abort();
}
