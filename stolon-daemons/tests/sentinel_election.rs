//! Three real stolon-sentinel processes against a real etcd: exactly one writes; after the leader is
//! SIGKILLed another takes over within the election TTL and carries on from the stored cluster data (no
//! spurious failover), then fails over correctly when the master's keeper really dies; SIGTERM exits
//! cleanly. Keepers are simulated by this test: it publishes their KeeperInfo records through ClusterStore,
//! reporting every assigned DB as converged and healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stolon_conformance::servers::EtcdServer;
use stolon_core::cluster::{ClusterData, ClusterPhase, KeeperInfo, PostgresState};
use stolon_core::stolon_store::{StoreBackend, connect};
use stolon_core::store::ClusterStore;

const ELECTION_TTL: Duration = Duration::from_secs(3);
const SENTINEL: &str = env!("CARGO_BIN_EXE_stolon-sentinel");

/// A sentinel process whose stderr goes to a file; killed on drop.
struct SentinelProc {
    child: Child,
    log: PathBuf,
    metrics_port: u16,
}

impl SentinelProc {
    fn spawn(dir: &std::path::Path, n: usize, endpoint: &str, cluster: &str, spec: &std::path::Path) -> Self {
        let log = dir.join(format!("sentinel{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let metrics_port = stolon_conformance::servers::free_port();
        let child = Command::new(SENTINEL)
            .args(["--cluster-name", cluster, "--store-backend", "etcdv3", "--store-endpoints", endpoint])
            .arg("--initial-cluster-spec")
            .arg(spec)
            .args(["--election-ttl", &format!("{}s", ELECTION_TTL.as_secs())])
            .args(["--metrics-listen-address", &format!("127.0.0.1:{metrics_port}")])
            .env("RUST_LOG", "info,stolon_core::sentinel=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("stolon-sentinel starts");
        SentinelProc { child, log, metrics_port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The UIDs found in this process's "cluster data written" lines, and how many.
    fn writes(&self) -> (BTreeSet<String>, usize) {
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("cluster data written")).collect();
        let uids = lines
            .iter()
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("uid=")).map(str::to_string))
            .collect();
        (uids, lines.len())
    }

    /// The value of an unlabelled metric from the sentinel's /metrics endpoint.
    fn metric(&self, name: &str) -> Option<i64> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
    }

    fn uid(&self) -> Option<String> {
        self.log()
            .lines()
            .find(|l| l.contains(": sentinel uid "))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("uid=")).map(str::to_string))
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes KeeperInfo for the keepers in `alive` every 300 ms, reporting their assigned DB as converged.
fn spawn_keepers(store: ClusterStore, alive: Arc<Mutex<BTreeSet<String>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut beat = 0u64;
        loop {
            beat += 1;
            if let Ok(Some(cd)) = store.cluster_data().await {
                let keepers: Vec<String> = alive.lock().expect("alive set").iter().cloned().collect();
                for k in keepers {
                    let state = cd.data.db_of_keeper(&k).map(|db| PostgresState {
                        uid: db.uid.clone(),
                        generation: db.generation,
                        healthy: true,
                        system_id: "7000000000000000001".into(),
                        timeline_id: 1,
                        x_log_pos: 0x3000000,
                        listen_address: "127.0.0.1".into(),
                        port: "5432".into(),
                        synchronous_standbys: Some(vec![]),
                        ..PostgresState::default()
                    });
                    let info = KeeperInfo {
                        info_uid: format!("{k}-{beat}"),
                        uid: k.clone(),
                        cluster_uid: cd.data.cluster.uid.clone(),
                        boot_uuid: format!("boot-{k}"),
                        postgres_state: state,
                        ..KeeperInfo::default()
                    };
                    let _ = store.set_keeper_info(&info, Duration::from_secs(20)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

async fn wait_for<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read(store: &ClusterStore) -> Option<ClusterData> {
    store.cluster_data().await.ok().flatten().map(|v| v.data)
}

/// A normal-phase cluster with a master and a converged standby routed by proxies.
fn settled(cd: &ClusterData) -> bool {
    let Some(master) = cd.master_db() else { return false };
    cd.cluster.status.phase == Some(ClusterPhase::Normal)
        && cd.dbs.len() == 2
        && master.spec.followers().len() == 1
        && cd.dbs.values().all(|d| d.status.current_generation == d.generation && d.status.healthy)
        && cd.proxy.spec.master_db_uid == master.uid
}

fn writers(procs: &[&SentinelProc]) -> BTreeMap<usize, usize> {
    procs.iter().enumerate().map(|(i, p)| (i, p.writes().1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sentinels_one_writer_takeover_after_sigkill() {
    let etcd = EtcdServer::start().expect("etcd must be installed for this test (apt-get install etcd-server)");
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = format!("sentinel-election-{}", std::process::id());
    let spec = dir.path().join("spec.json");
    std::fs::write(
        &spec,
        r#"{"initMode":"new","sleepInterval":"1s","failInterval":"4s","maxStandbysPerSender":1,"proxyCheckInterval":"1s","proxyTimeout":"3s"}"#,
    )
    .expect("spec file");
    let store = ClusterStore::new(
        connect(&etcd.config(StoreBackend::EtcdV3, &cluster)).await.expect("connect to the test etcd"),
    );
    let mut procs: Vec<Option<SentinelProc>> =
        (0..3).map(|n| Some(SentinelProc::spawn(dir.path(), n, &etcd.endpoint(), &cluster, &spec))).collect();

    let created = wait_for("the initial cluster data", Duration::from_secs(30), async || read(&store).await).await;
    assert_eq!(created.cluster.status.phase, Some(ClusterPhase::Initializing));
    let alive = Arc::new(Mutex::new(BTreeSet::from(["keeper1".to_string(), "keeper2".to_string()])));
    let keepers = spawn_keepers(store.clone(), alive.clone());

    let before =
        wait_for("a settled cluster", Duration::from_secs(60), async || read(&store).await.filter(settled)).await;
    assert_eq!(before.cluster.uid, created.cluster.uid, "the cluster was created once");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Exactly one sentinel writes, and it is the elected leader.
    let live: Vec<&SentinelProc> = procs.iter().flatten().collect();
    let counts = writers(&live);
    let writing: Vec<usize> = counts.iter().filter(|(_, c)| **c > 0).map(|(i, _)| *i).collect();
    assert_eq!(writing.len(), 1, "exactly one writer, got {counts:?}");
    let leader_idx = writing[0];
    let leader_uid = store.leader().await.expect("leader query").expect("a leader");
    let (uids, _) = live[leader_idx].writes();
    assert_eq!(uids, BTreeSet::from([leader_uid.clone()]), "the writer is the elected leader");
    assert_eq!(live[leader_idx].uid().as_deref(), Some(leader_uid.as_str()));
    // The metrics agree: one sentinel reports itself leader, all completed checks.
    for (i, p) in live.iter().enumerate() {
        let expected = i64::from(i == leader_idx);
        assert_eq!(p.metric("stolon_sentinel_is_leader"), Some(expected), "is_leader of sentinel {i}");
        assert_eq!(p.metric("stolon_sentinel_leader_count"), Some(expected), "leader_count of sentinel {i}");
        assert!(p.metric("stolon_sentinel_last_cluster_check_success_seconds").is_some_and(|t| t > 0));
    }

    // SIGKILL the leader: another sentinel is elected within the election TTL.
    let mut killed = procs[leader_idx].take().expect("leader process");
    killed.child.kill().expect("SIGKILL the leader");
    let killed_at = Instant::now();
    let _ = killed.child.wait();
    let new_leader = wait_for("a new leader", ELECTION_TTL + Duration::from_secs(10), async || {
        store.leader().await.ok().flatten().filter(|l| *l != leader_uid)
    })
    .await;
    let elected_after = killed_at.elapsed();
    eprintln!("new leader elected {elected_after:?} after the SIGKILL (election TTL {ELECTION_TTL:?})");
    // etcd expires the lease within its TTL; allow a second of lease-expiry granularity and a watch hop.
    assert!(elected_after <= ELECTION_TTL + Duration::from_secs(2), "new leader after {elected_after:?}");

    // The new leader continues from the stored data: same cluster, same master, same DBs, no failover.
    let survivors: Vec<&SentinelProc> = procs.iter().flatten().collect();
    let at_takeover = writers(&survivors);
    let new_idx =
        survivors.iter().position(|p| p.uid().as_deref() == Some(new_leader.as_str())).expect("new leader is ours");
    wait_for("the new leader's first write", Duration::from_secs(15), async || {
        (survivors[new_idx].writes().1 > at_takeover[&new_idx]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = read(&store).await.expect("cluster data");
    assert_eq!(after.cluster.uid, before.cluster.uid);
    assert_eq!(after.cluster.status.master, before.cluster.status.master, "no failover without a failure");
    assert_eq!(after.dbs.keys().collect::<Vec<_>>(), before.dbs.keys().collect::<Vec<_>>());
    assert!(settled(&after));

    // The master's keeper dies: the new leader fails over to the standby, and still alone writes.
    let master_keeper = before.master_db().expect("master").spec.keeper_uid.clone();
    let standby_uid = before.dbs.keys().find(|u| **u != before.cluster.status.master).cloned().expect("standby");
    alive.lock().expect("alive set").remove(&master_keeper);
    let failed_over = wait_for("a failover to the standby", Duration::from_secs(40), async || {
        read(&store).await.filter(|cd| cd.cluster.status.master == standby_uid)
    })
    .await;
    assert_eq!(failed_over.dbs[&standby_uid].spec.role.as_ref().map(|r| r.to_string()).as_deref(), Some("master"));
    let at_end = writers(&survivors);
    for (i, n) in &at_end {
        if *i != new_idx {
            assert_eq!(*n, at_takeover[i], "only the new leader writes");
        }
    }

    // A store outage: nothing is written blind, and the survivors carry on once etcd is back.
    let settled_again = wait_for("the cluster to settle on the new master", Duration::from_secs(40), async || {
        read(&store)
            .await
            .filter(|cd| cd.cluster.status.master == standby_uid && cd.proxy.spec.master_db_uid == standby_uid)
    })
    .await;
    etcd.stop().expect("stop etcd");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during_outage: usize = writers(&survivors).values().sum();
    etcd.restart().expect("restart etcd");
    wait_for("a write after the outage", Duration::from_secs(40), async || {
        (writers(&survivors).values().sum::<usize>() > during_outage).then_some(())
    })
    .await;
    let after_outage = read(&store).await.expect("cluster data after the outage");
    assert_eq!(after_outage.cluster.uid, settled_again.cluster.uid);
    assert_eq!(after_outage.cluster.status.master, standby_uid, "no decision from the outage itself");
    for p in &survivors {
        assert!(p.log().lines().all(|l| !l.contains("panicked")), "no panic:\n{}", p.log());
    }

    // SIGTERM: the survivors resign and exit cleanly.
    keepers.abort();
    for p in procs.iter_mut().flatten() {
        let pid = p.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(status.success());
    }
    for p in procs.iter_mut().flatten() {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = p.child.try_wait().expect("wait") {
                break s;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "sentinel did not exit after SIGTERM:\n{}", p.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(status.success(), "clean exit, got {status}:\n{}", p.log());
    }
}

#[test]
fn invalid_initial_spec_exits_naming_field_and_rule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, r#"{"initMode":"new","minSynchronousStandbys":3,"maxSynchronousStandbys":2}"#).expect("spec");
    let out = Command::new(SENTINEL)
        .args(["--cluster-name", "c", "--store-backend", "etcdv3", "--store-endpoints", "127.0.0.1:1"])
        .arg("--initial-cluster-spec")
        .arg(&spec)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxSynchronousStandbys") && err.contains("minSynchronousStandbys"), "{err}");
    assert!(err.contains("rule 3"), "{err}");
}
