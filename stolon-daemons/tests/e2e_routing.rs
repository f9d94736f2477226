//! Routing through the keeper HTTP API (issue 15; not in stolon): every endpoint's answer on real keepers in
//! every situation, a real HAProxy in front of a cluster across a failover, and the Kubernetes pod role labels
//! across a failover.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use harness::api::KeeperApi;
use harness::haproxy::{HaProxy, Server};
use harness::{Backend, Env, R, Scenario, TestCluster, Variant, WAIT, merged, sql, wait_for};
use serde_json::json;

fn main() {
    let not_kube = "it freezes the store, and the kube-apiserver is shared by the binary's scenarios";
    let kube_only = "pod labels exist on Kubernetes only";
    harness::runner::run(vec![
        Scenario::full("TestKeeperApi", test_keeper_api).not_on(Backend::Kubernetes, not_kube),
        Scenario::full("TestHAProxyFailover", test_haproxy_failover),
        Scenario::core("TestPodRoleLabels", test_pod_role_labels)
            .not_on(Backend::EtcdV3, kube_only)
            .not_on(Backend::EtcdV2, kube_only)
            .not_on(Backend::Consul, kube_only),
    ]);
}

/// Adds a keeper serving its API; returns its uid and API.
async fn add_keeper_with_api(c: &mut TestCluster) -> R<(String, KeeperApi)> {
    let api = KeeperApi::new();
    let flags = api.flags();
    let uid = c.add_keeper_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    Ok((uid, api))
}

/// Waits until the cluster data has a master and every other keeper of `c` runs a converged standby following
/// it, and PostgreSQL agrees; returns (master, standbys). Roles are read once settled, not from the first
/// election (a loaded machine may fail the first master over).
async fn settled(c: &TestCluster) -> R<(String, Vec<String>)> {
    wait_for("a master and converged standbys following it", 2 * WAIT, || async {
        let cd = c.cd().await?;
        let Some(master) = harness::master_keeper(&cd) else { return Ok(None) };
        let master_db = cd.master_db().context("master DB")?.uid.clone();
        let follows = |uid: &str| {
            cd.db_of_keeper(uid).and_then(|db| db.spec.follow_config.as_ref()).is_some_and(|f| f.db_uid == master_db)
        };
        let standbys = c.others(&master);
        if !harness::db_ready(&cd, &master) || !standbys.iter().all(|s| harness::db_ready(&cd, s) && follows(s)) {
            return Ok(None);
        }
        if c.keeper_ref(&master)?.in_recovery().await? {
            return Ok(None);
        }
        for s in &standbys {
            if !c.keeper_ref(s)?.in_recovery().await? {
                return Ok(None);
            }
        }
        Ok(Some((master, standbys)))
    })
    .await
}

/// The role and health checks, with the answers of each kind of member below.
const CHECKS: [&str; 13] = [
    "/primary",
    "/",
    "/master",
    "/read-write",
    "/standby-leader",
    "/leader",
    "/replica",
    "/read-only",
    "/sync",
    "/async",
    "/health",
    "/liveness",
    "/readiness",
];
const MASTER: [u16; 13] = [200, 200, 200, 200, 503, 200, 503, 200, 503, 503, 200, 200, 200];
const SYNC_STANDBY: [u16; 13] = [503, 503, 503, 503, 503, 503, 200, 200, 200, 503, 200, 200, 200];
const ASYNC_STANDBY: [u16; 13] = [503, 503, 503, 503, 503, 503, 200, 200, 503, 200, 200, 200, 200];
const WITHOUT_DB: [u16; 13] = [503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 200, 503];

fn expect(codes: &[u16; 13]) -> Vec<(&'static str, u16)> {
    CHECKS.iter().copied().zip(codes.iter().copied()).collect()
}

/// A master, a synchronous and an asynchronous standby, and a keeper without a DB (maxStandbysPerSender 2):
/// every endpoint's code on each; the asynchronous standby with replay paused while the master writes (the
/// `?lag=` bound); a standby whose PostgreSQL is stopped (its port is taken, so the keeper cannot start it);
/// the master and a standby cut off from the store for longer than proxyTimeout. Also `apiURL` in the keeper
/// infos, `/status`, `/cluster`, and `/metrics` on a listener shared with `--metrics-listen-address` (where
/// `/health` has the API's meaning: 503 without PostgreSQL).
async fn test_keeper_api(env: Env) -> R<()> {
    let patch = json!({ "maxStandbysPerSender": 2, "proxyCheckInterval": "1s", "proxyTimeout": "4s" });
    let mut c = TestCluster::new(&env, &merged(Variant::SyncRepl.ha_spec(), &patch)).await?;
    c.add_sentinel().await?;
    let mut apis = BTreeMap::new();
    for _ in 0..3 {
        let (uid, api) = add_keeper_with_api(&mut c).await?;
        apis.insert(uid, api);
    }
    let (master, _) = settled(&c).await?;
    let cd = c
        .wait_cd("one synchronous standby", WAIT, |cd| {
            cd.master_db().is_some_and(|m| m.status.synchronous_standbys().len() == 1)
        })
        .await?;
    ensure!(
        harness::master_keeper(&cd).as_deref() == Some(master.as_str()),
        "the master moved: {}",
        harness::summary(&cd)
    );
    let sync_db = cd.master_db().context("master")?.status.synchronous_standbys()[0].clone();
    let sync = cd.dbs.get(&sync_db).context("sync standby DB")?.spec.keeper_uid.clone();
    let asynchronous = c.others(&master).into_iter().find(|k| *k != sync).context("async standby")?;
    // This one shares its API listener with its metrics.
    let api = KeeperApi::new();
    let mut flags = api.flags();
    flags.extend(["--metrics-listen-address".to_string(), format!("127.0.0.1:{}", api.port)]);
    let no_db = c.add_keeper_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    apis.insert(no_db.clone(), api);
    c.wait_cd(&format!("{no_db} known and healthy, without a DB"), WAIT, |cd| {
        cd.keepers.get(&no_db).is_some_and(|k| k.status.healthy) && cd.db_of_keeper(&no_db).is_none()
    })
    .await?;

    for (uid, codes) in [(&master, MASTER), (&sync, SYNC_STANDBY), (&asynchronous, ASYNC_STANDBY), (&no_db, WITHOUT_DB)]
    {
        apis[uid].wait_codes(uid, &expect(&codes), WAIT).await?;
    }
    let (_, s) = apis[&asynchronous].get("/status").await?;
    ensure!(s["role"] == "standby" && s["postgres"]["inRecovery"] == true, "async standby status: {s}");
    let master_port = c.keeper_ref(&master)?.pg_port;
    ensure!(s["postgres"]["walReceiver"]["senderPort"] == master_port, "streams from the master: {s}");
    let (_, s) = apis[&no_db].get("/status").await?;
    ensure!(s["dbUid"].is_null() && s["postgres"]["running"] == false, "keeper without a DB: {s}");
    let (code, metrics) = apis[&no_db].get_text("/metrics").await?;
    ensure!(code == 200 && metrics.contains("stolon_keeper_sleep_interval"), "shared /metrics: {code} {metrics}");
    let (code, cluster) = apis[&sync].get("/cluster").await?;
    ensure!(code == 200 && cluster["cluster"]["master_keeper_uid"] == master.as_str(), "/cluster: {cluster}");
    ensure!(cluster["keepers"].as_array().is_some_and(|k| k.len() == 4), "/cluster: {cluster}");
    let infos = c.client.keeper_infos().await?.valid;
    for (uid, api) in &apis {
        let info = infos.values().find(|i| i.uid == *uid).with_context(|| format!("no keeper info of {uid}"))?;
        ensure!(info.api_url == api.url, "{uid} publishes apiURL {:?}, expected {:?}", info.api_url, api.url);
    }

    // Replay paused on the asynchronous standby while the master writes about 2.5 MB.
    sql::exec(&c.connect(&asynchronous).await?, "SELECT pg_wal_replay_pause()").await?;
    let m = c.connect(&master).await?;
    sql::exec(&m, "CREATE TABLE lag_filler (id int, pad text)").await?;
    sql::exec(&m, "INSERT INTO lag_filler SELECT g, repeat('x', 200) FROM generate_series(1, 10000) g").await?;
    let lagging = [
        ("/replica?lag=1MB", 503),
        ("/async?lag=1MB", 503),
        ("/read-only?lag=1MB", 503),
        ("/replica?lag=1GB", 200),
        ("/replica", 200),
        ("/async", 200),
        ("/readiness", 200),
    ];
    let bodies = apis[&asynchronous].wait_codes("the paused standby", &lagging, WAIT).await?;
    let lag = bodies[0]["postgres"]["replayLag"].as_u64().unwrap_or_default();
    ensure!(lag > 1 << 20, "replay lag {lag} reported by the paused standby: {}", bodies[0]);
    apis[&sync].wait_codes(&sync, &[("/replica?lag=1MB", 200), ("/sync?lag=1MB", 200)], WAIT).await?;
    sql::exec(&c.connect(&asynchronous).await?, "SELECT pg_wal_replay_resume()").await?;
    apis[&asynchronous].wait_codes("the resumed standby", &[("/replica?lag=1MB", 200)], WAIT).await?;

    // PostgreSQL stopped under a running keeper: its port is taken, so the keeper cannot start it again.
    c.keeper(&asynchronous)?.stop().await?;
    let taken = std::net::TcpListener::bind(("127.0.0.1", c.keeper_ref(&asynchronous)?.pg_port))?;
    c.keeper(&asynchronous)?.start()?;
    let stopped = [("/health", 503), ("/replica", 503), ("/read-only", 503), ("/readiness", 503), ("/liveness", 200)];
    let bodies = apis[&asynchronous].wait_codes("the standby whose PostgreSQL is stopped", &stopped, WAIT).await?;
    ensure!(bodies[0]["postgres"]["running"] == false, "{}", bodies[0]);
    drop(taken);

    // The store frozen for longer than proxyTimeout: no member attracts traffic, though PostgreSQL runs.
    apis[&master].wait_codes(&master, &[("/primary", 200)], WAIT).await?;
    c.store.freeze(true)?;
    let cut_off = [("/primary", 503), ("/leader", 503), ("/readiness", 503), ("/health", 200), ("/liveness", 200)];
    let frozen = apis[&master].wait_codes("the master cut off from the store", &cut_off, Duration::from_secs(30)).await;
    let standby =
        apis[&sync].wait_codes("a standby cut off from the store", &[("/replica", 503)], Duration::from_secs(10)).await;
    c.store.freeze(false)?;
    let bodies = frozen?;
    standby?;
    let reason = bodies[0]["check"]["reason"].as_str().unwrap_or_default();
    ensure!(reason.contains("proxyTimeout"), "the reason names proxyTimeout: {reason}");
    let now_master = c.wait_master_ready().await?;
    apis[&now_master].wait_codes(&now_master, &[("/primary", 200), ("/readiness", 200)], WAIT).await?;
    Ok(())
}

/// What the writer and the reader saw through HAProxy.
#[derive(Default)]
struct Traffic {
    /// (id, server port) of every acknowledged write, in order.
    writes: Vec<(i32, u16)>,
    /// (time, server port, in recovery) of every read that succeeded.
    reads: Vec<(Instant, u16, bool)>,
}

/// Writes numbered rows through HAProxy's primary frontend (each statement bounded; a timeout is an unknown
/// outcome, not an acknowledgement) and reads through its replicas frontend, on a new connection each time.
fn start_traffic(hap: &HaProxy, stop: Arc<AtomicBool>, t: Arc<Mutex<Traffic>>) -> Vec<tokio::task::JoinHandle<()>> {
    let (primary, replicas) = (hap.primary_port, hap.replicas_port);
    let (stop2, t2) = (stop.clone(), t.clone());
    let writer = tokio::spawn(async move {
        let mut client = None;
        let mut id = 0;
        let start = Instant::now();
        while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(400) {
            let c = match client.take() {
                Some(c) => c,
                None => match sql::connect(primary).await {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            id += 1;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
            let insert =
                c.query_one("INSERT INTO haproxy_writes VALUES ($1) RETURNING current_setting('port')", &params);
            match tokio::time::timeout(Duration::from_secs(3), insert).await {
                Ok(Ok(row)) => {
                    let port = row.get::<_, String>(0).parse().unwrap_or(0);
                    t.lock().expect("traffic").writes.push((id, port));
                    client = Some(c);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let reader = tokio::spawn(async move {
        let start = Instant::now();
        while !stop2.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(400) {
            let read = async {
                let c = sql::connect(replicas).await?;
                let row = c.query_one("SELECT current_setting('port'), pg_is_in_recovery()", &[]).await?;
                anyhow::Ok((row.get::<_, String>(0).parse::<u16>()?, row.get::<_, bool>(1)))
            };
            if let Ok(Ok((port, standby))) = tokio::time::timeout(Duration::from_secs(4), read).await {
                t2.lock().expect("traffic").reads.push((Instant::now(), port, standby));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    vec![writer, reader]
}

/// A real HAProxy running examples/haproxy/haproxy.cfg (checks every 500 ms instead of 1 s) checks the
/// keepers' `/primary` and `/replica?lag=16MB`. Writes go through its primary frontend and reads through its
/// replicas frontend while the master's keeper is killed (SIGKILL of the keeper only: its PostgreSQL keeps
/// running as a writable primary, which only the failed checks of the dead keeper's API keep HAProxy away
/// from). Writes and reads keep working after the failover, and no write was served by a non-master: with
/// asynchronous replication a write acknowledged by the old primary after the standby's promotion would be
/// missing on the new master, so every acknowledged row must be there, and no write may land on the old
/// master's port after one landed on the new master's. (HAProxy marks the dead keeper's server down after
/// `fall` x `inter` = 1 s, long before the sentinel elects a new master after failInterval.) Reads are served
/// by standbys; the old primary never serves one, and the promoted standby may serve some until HAProxy's
/// checks see it leave `/replica`.
async fn test_haproxy_failover(env: Env) -> R<()> {
    let mut c = TestCluster::new(&env, &Variant::Async.ha_spec()).await?;
    c.add_sentinel().await?;
    let mut apis = BTreeMap::new();
    for _ in 0..3 {
        let (uid, api) = add_keeper_with_api(&mut c).await?;
        apis.insert(uid, api);
    }
    settled(&c).await?;
    let servers: Vec<Server> = apis
        .iter()
        .map(|(uid, api)| Ok(Server { pg_port: c.keeper_ref(uid)?.pg_port, api_port: api.port }))
        .collect::<R<_>>()?;
    let hap = HaProxy::start(&env, c.dir(), "500ms", &servers)?;
    let (master, _) = settled(&c).await?;
    // HAProxy starts every server up: until each one's first check, a connection may reach a standby. Wait
    // until every server was checked and the primary section has the master alone up, the replicas the others.
    let master_server = format!("keeper{}", apis.keys().position(|uid| *uid == master).context("master's API")?);
    wait_for("HAProxy's checks: the master alone up for writes, the standbys for reads", WAIT, || async {
        let Some(stats) = hap.checked()? else { return Ok(None) };
        let misplaced: Vec<_> = stats
            .iter()
            .filter(|s| (s.status == "UP") != ((s.listen == "primary") == (s.server == master_server)))
            .collect();
        if misplaced.is_empty() { Ok(Some(())) } else { Err(anyhow::anyhow!("not yet: {misplaced:?}")) }
    })
    .await?;
    let old_port = c.keeper_ref(&master)?.pg_port;
    wait_for("HAProxy's primary frontend reaching the master", WAIT, || async {
        let got = sql::server_port(&sql::connect(hap.primary_port).await?).await?;
        Ok((got == old_port).then_some(()))
    })
    .await?;
    sql::exec(&sql::connect(hap.primary_port).await?, "CREATE TABLE haproxy_writes (id INT PRIMARY KEY)").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let tasks = start_traffic(&hap, stop.clone(), traffic.clone());
    let counts = || {
        let t = traffic.lock().expect("traffic");
        (t.writes.len(), t.reads.len())
    };
    wait_for("writes and reads through HAProxy", WAIT, || async {
        let (w, r) = counts();
        Ok((w >= 10 && r >= 5).then_some(()))
    })
    .await?;

    let cd = c.cd().await?;
    ensure!(
        harness::master_keeper(&cd).as_deref() == Some(master.as_str()),
        "the master moved before the fault: {}",
        harness::summary(&cd)
    );
    let fault = Instant::now();
    let (writes_before, _) = counts();
    c.keeper(&master)?.kill().await?;
    let cd = c.wait_cd("a new master", WAIT, |cd| harness::master_keeper(cd).is_some_and(|m| m != master)).await?;
    let new_master = harness::master_keeper(&cd).context("new master")?;
    let new_port = c.keeper_ref(&new_master)?.pg_port;
    let third = c.others(&master).into_iter().find(|k| *k != new_master).context("the other standby")?;
    c.wait_standby(&third, WAIT).await?;
    wait_for("writes on the new master and reads after the failover", WAIT, || async {
        let t = traffic.lock().expect("traffic");
        let new_writes = t.writes[writes_before..].iter().filter(|(_, p)| *p == new_port).count();
        let reads_after = t.reads.iter().filter(|(at, _, _)| *at > fault).count();
        if new_writes >= 10 && reads_after >= 5 {
            Ok(Some(()))
        } else {
            Err(anyhow::anyhow!("{new_writes} writes on the new master, {reads_after} reads since the fault"))
        }
    })
    .await?;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await?;
    }

    let t = std::mem::take(&mut *traffic.lock().expect("traffic"));
    // A standby promoted by the failover keeps receiving new read connections until HAProxy's checks see it
    // leave /replica (inter x fall): reads there are served by the new master. No other primary ever serves one.
    let wrong_read = |(at, port, standby): &&(Instant, u16, bool)| !standby && (*port != new_port || *at < fault);
    if let Some((at, port, _)) = t.reads.iter().find(wrong_read) {
        let when =
            if *at < fault { "before the fault".to_string() } else { format!("{:?} after the fault", *at - fault) };
        bail!("a read through the replicas frontend was served by the primary on port {port} {when}");
    }
    let first_new = t.writes.iter().position(|(_, p)| *p == new_port).context("no write on the new master")?;
    if let Some((id, port)) = t.writes[first_new..].iter().find(|(_, p)| *p != new_port) {
        bail!("write {id} was served by port {port} after writes reached the new master (port {new_port})");
    }
    if let Some((id, port)) = t.writes.iter().find(|(_, p)| *p != old_port && *p != new_port) {
        bail!("write {id} was served by port {port}, neither the old nor the new master");
    }
    let rows = c.connect(&new_master).await?.query("SELECT id FROM haproxy_writes", &[]).await?;
    let present: std::collections::HashSet<i32> = rows.iter().map(|r| r.get(0)).collect();
    let lost: Vec<i32> = t.writes.iter().map(|(id, _)| *id).filter(|id| !present.contains(id)).collect();
    ensure!(
        lost.is_empty(),
        "{} acknowledged writes are not on the new master: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    Ok(())
}

/// Kubernetes: each keeper labels its pod `stolon-role=master|standby`; after a failover the new master's
/// pod says master. The stopped old master's pod keeps the last label its keeper set while its API, which a
/// readiness probe would check, answers nothing; restarted, it becomes a standby and says so.
async fn test_pod_role_labels(env: Env) -> R<()> {
    let mut c = TestCluster::new(&env, &Variant::Async.ha_spec()).await?;
    c.add_sentinel().await?;
    let mut apis = BTreeMap::new();
    for _ in 0..2 {
        let (uid, api) = add_keeper_with_api(&mut c).await?;
        apis.insert(uid, api);
    }
    let (master, mut standbys) = settled(&c).await?;
    let standby = standbys.pop().context("standby")?;
    let c = &mut c;
    wait_label(c, &master, Some("master")).await?;
    wait_label(c, &standby, Some("standby")).await?;
    apis[&master].wait_codes(&master, &[("/readiness", 200), ("/primary", 200)], WAIT).await?;
    apis[&standby].wait_codes(&standby, &[("/readiness", 200), ("/replica", 200)], WAIT).await?;

    c.keeper(&master)?.stop().await?;
    c.wait_master_is(&standby, WAIT).await?;
    wait_label(c, &standby, Some("master")).await?;
    apis[&standby].wait_codes(&standby, &[("/readiness", 200), ("/primary", 200)], WAIT).await?;
    // The stopped keeper's pod keeps the last label it set (master, unless it saw the new election before it
    // stopped): only its readiness, which its dead API fails, keeps a Service selecting by label away from it.
    ensure!(label(c, &master).await?.as_deref() != Some("standby"), "the stopped keeper's pod was never a standby");
    ensure!(apis[&master].get("/readiness").await.is_err(), "the stopped keeper's API answers nothing");

    c.keeper(&master)?.start()?;
    c.wait_standby(&master, WAIT).await?;
    wait_label(c, &master, Some("standby")).await?;
    apis[&master].wait_codes(&master, &[("/readiness", 200), ("/replica", 200)], WAIT).await?;
    Ok(())
}

async fn label(c: &TestCluster, uid: &str) -> R<Option<String>> {
    let labels = c.store.pod_labels(&format!("{}-{uid}", c.name)).await?;
    Ok(labels.get("stolon-role").cloned())
}

async fn wait_label(c: &TestCluster, uid: &str, want: Option<&str>) -> R<()> {
    wait_for(&format!("{uid}'s pod labelled stolon-role={want:?}"), WAIT, || async move {
        let got = label(c, uid).await?;
        if got.as_deref() == want { Ok(Some(())) } else { Err(anyhow::anyhow!("labelled {got:?}")) }
    })
    .await
}
