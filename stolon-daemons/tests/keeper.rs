//! stolon-keeper against a real PostgreSQL and a real etcd: the tests play the sentinel by writing cluster
//! data by hand and drive real `stolon-keeper` processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stolon_conformance::servers::{EtcdServer, free_port, postgres_bin_dir};
use stolon_core::cluster::{
    ClusterData, ClusterSpec, Db, DbInitMode, DbRole, DbSpec, FollowConfig, FollowType, Keeper, KeeperInfo,
    KeeperStatus,
};
use stolon_core::duration::GoDuration;
use stolon_core::stolon_store::StoreBackend;
use stolon_core::store::ClusterStore;
use stolon_core::time::Timestamp;

const SU: &str = "stolon_su";
const SU_PASSWORD: &str = "su'pass";
const REPL: &str = "stolon_repl";
const REPL_PASSWORD: &str = "repl-pass";
/// Bound of every wait for convergence.
const WAIT: Duration = Duration::from_secs(180);
/// The two cluster scenarios run one after the other: each runs two PostgreSQL instances, and CI machines
/// have two cores.
static CLUSTER_SCENARIO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type R<T> = anyhow::Result<T>;

/// A temporary directory PostgreSQL (user `postgres` under root) can traverse.
fn test_dir() -> R<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new().prefix("stolon-keeper-test").tempdir()?;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(d)
}

/// A stolon-keeper process; killed (and its postgres stopped) on drop.
struct KeeperProc {
    uid: String,
    data_dir: PathBuf,
    port: u16,
    log: PathBuf,
    metrics_port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl KeeperProc {
    fn start(etcd: &EtcdServer, cluster: &str, uid: &str, root: &Path) -> R<KeeperProc> {
        let data_dir = root.join(uid);
        let port = free_port();
        let metrics_port = free_port();
        let args: Vec<String> = [
            "--cluster-name",
            cluster,
            "--store-backend",
            "etcdv3",
            "--store-endpoints",
            &etcd.endpoint(),
            "--uid",
            uid,
            "--data-dir",
            &data_dir.to_string_lossy(),
            "--pg-listen-address",
            "127.0.0.1",
            "--pg-port",
            &port.to_string(),
            "--pg-bin-path",
            &postgres_bin_dir()?.to_string_lossy(),
            "--pg-su-username",
            SU,
            "--pg-su-password",
            SU_PASSWORD,
            "--pg-repl-username",
            REPL,
            "--pg-repl-password",
            REPL_PASSWORD,
            "--metrics-listen-address",
            &format!("127.0.0.1:{metrics_port}"),
            "--log-level",
            "debug",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut k = KeeperProc {
            uid: uid.into(),
            data_dir,
            port,
            log: root.join(format!("{uid}.log")),
            metrics_port,
            child: None,
            args,
        };
        k.spawn()?;
        Ok(k)
    }

    fn spawn(&mut self) -> R<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_stolon-keeper"))
            .args(&self.args)
            .env("RUST_LOG", "debug,tokio_postgres=info,h2=info,tower=info,hyper=info,hyper_util=info,tonic=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM and wait for the exit (the keeper fast-stops postgres first).
    fn terminate(&mut self) -> R<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    anyhow::bail!("keeper {} did not exit after SIGTERM", self.uid);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pgdata(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }

    /// Runs SQL as the superuser over TCP; `Err` when postgres is not reachable.
    fn psql(&self, sql: &str) -> R<String> {
        let out = Command::new(postgres_bin_dir()?.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SU,
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", SU_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "3")
            .output()?;
        if !out.status.success() {
            anyhow::bail!("psql on {}: {}", self.uid, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn metrics(&self) -> R<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    }
}

impl Drop for KeeperProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The postmaster outlives a killed keeper: stop it so no test leaves servers behind.
        if let Ok(bin) = postgres_bin_dir() {
            let mut cmd = Command::new(bin.join("pg_ctl"));
            cmd.args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(self.pgdata())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if unsafe { libc::geteuid() } == 0 {
                use std::os::unix::process::CommandExt;
                if let Ok(u) = stolon_core::postgres::OsUser::lookup("postgres") {
                    cmd.uid(u.uid).gid(u.gid);
                }
            }
            let _ = cmd.status();
        }
    }
}

/// The test's cluster: etcd, typed store, temp dir.
struct Harness {
    etcd: EtcdServer,
    store: ClusterStore,
    name: String,
    root: tempfile::TempDir,
}

impl Harness {
    async fn new(name: &str) -> R<Harness> {
        let etcd = EtcdServer::start()?;
        let name = format!("{name}-{}", stolon_core::cluster::new_uid());
        let store =
            ClusterStore::new(stolon_core::stolon_store::connect(&etcd.config(StoreBackend::EtcdV3, &name)).await?);
        Ok(Harness { etcd, store, name, root: test_dir()? })
    }

    fn keeper(&self, uid: &str) -> R<KeeperProc> {
        KeeperProc::start(&self.etcd, &self.name, uid, self.root.path())
    }

    async fn init_cluster(&self, spec: ClusterSpec) -> R<ClusterData> {
        let cd = ClusterData::new_initial("c1", spec, Timestamp::now());
        self.store.put_cluster_data(&cd).await?;
        Ok(cd)
    }

    async fn cd(&self) -> R<ClusterData> {
        Ok(self.store.cluster_data().await?.ok_or_else(|| anyhow::anyhow!("no cluster data"))?.data)
    }

    async fn put(&self, cd: &ClusterData) -> R<()> {
        self.store.put_cluster_data(cd).await?;
        Ok(())
    }

    async fn info(&self, uid: &str) -> R<Option<KeeperInfo>> {
        Ok(self.store.keeper_infos().await?.valid.remove(uid))
    }

    /// Waits for `cond` on the keeper's info.
    async fn wait_info(&self, uid: &str, what: &str, cond: impl Fn(&KeeperInfo) -> bool) -> R<KeeperInfo> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.info(uid).await? {
                if cond(&i) {
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!("timed out waiting for keeper {uid}: {what}; last info: {:?}", self.info(uid).await?);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the keeper reports DB `db` converged at `generation` and healthy.
    async fn wait_converged(&self, k: &KeeperProc, db: &str, generation: i64) -> R<KeeperInfo> {
        self.wait_info(&k.uid, &format!("db {db} converged at generation {generation}"), |i| {
            i.postgres_state.as_ref().is_some_and(|s| s.uid == db && s.generation == generation && s.healthy)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- keeper log tail ---\n{}", tail(&k.log_text(), 60)))
    }

    /// Adds keeper `uid` to cluster data with the bootUUID of its current info (what the sentinel does).
    async fn register_keeper(&self, cd: &mut ClusterData, uid: &str) -> R<()> {
        let info = self.wait_info(uid, "first keeper info", |_| true).await?;
        cd.keepers.insert(
            uid.into(),
            Keeper {
                uid: uid.into(),
                generation: 1,
                status: KeeperStatus { healthy: true, boot_uuid: info.boot_uuid, ..Default::default() },
                ..Default::default()
            },
        );
        Ok(())
    }

    /// Copies a keeper's reported state into its DB status (what the sentinel does).
    async fn refresh_status(&self, cd: &mut ClusterData, db: &str) -> R<()> {
        let keeper = cd.dbs.get(db).map(|d| d.spec.keeper_uid.clone()).unwrap_or_default();
        if let Some(st) = self.info(&keeper).await?.and_then(|i| i.postgres_state) {
            let s = &mut cd.dbs.get_mut(db).ok_or_else(|| anyhow::anyhow!("no db {db}"))?.status;
            s.listen_address = st.listen_address;
            s.port = st.port;
            if st.healthy {
                s.healthy = true;
                s.system_id = st.system_id;
                s.timeline_id = st.timeline_id;
                s.x_log_pos = st.x_log_pos;
                s.timelines_history = st.timelines_history;
                s.current_generation = st.generation;
            }
        }
        Ok(())
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn spec(use_pgrewind: bool) -> ClusterSpec {
    ClusterSpec {
        sleep_interval: Some(GoDuration::from_secs(1)),
        request_timeout: Some(GoDuration::from_secs(5)),
        db_wait_ready_timeout: Some(GoDuration::from_secs(20)),
        init_mode: Some(stolon_core::cluster::ClusterInitMode::New),
        use_pgrewind: Some(use_pgrewind),
        ..Default::default()
    }
}

fn master_db(uid: &str, keeper: &str, init: DbInitMode, cd: &ClusterData) -> Db {
    let s = cd.cluster.spec.with_defaults();
    Db {
        uid: uid.into(),
        generation: 1,
        spec: DbSpec {
            keeper_uid: keeper.into(),
            max_standbys: s.max_standbys(),
            additional_wal_senders: s.additional_wal_senders(),
            use_pgrewind: s.use_pgrewind(),
            init_mode: Some(init),
            role: Some(DbRole::Master),
            followers: Some(vec![]),
            synchronous_standbys: Some(vec![]),
            external_synchronous_standbys: Some(vec![]),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn standby_db(uid: &str, keeper: &str, follow: &str, cd: &ClusterData) -> Db {
    let mut d = master_db(uid, keeper, DbInitMode::Resync, cd);
    d.spec.role = Some(DbRole::Standby);
    d.spec.follow_config =
        Some(FollowConfig { follow_type: Some(FollowType::Internal), db_uid: follow.into(), ..Default::default() });
    d
}

/// Bumps a DB's generation after a spec change.
fn bump(cd: &mut ClusterData, db: &str) -> i64 {
    let d = cd.dbs.get_mut(db).expect("db exists");
    d.generation += 1;
    d.generation
}

async fn wait_sql(k: &KeeperProc, sql: &str, want: &str) -> R<()> {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match k.psql(sql) {
            Ok(v) if v == want => return Ok(()),
            Ok(v) => last = v,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!("{sql} on {} never returned {want:?} (last: {last})\n{}", k.uid, tail(&k.log_text(), 40))
}

/// Sets up a master (k1/d1) and a streaming standby (k2/d2) of it.
async fn master_and_standby(h: &Harness, use_pgrewind: bool) -> R<(ClusterData, KeeperProc, KeeperProc)> {
    let mut cd = h.init_cluster(spec(use_pgrewind)).await?;
    let k1 = h.keeper("k1")?;
    h.register_keeper(&mut cd, "k1").await?;
    cd.dbs.insert("d1".into(), master_db("d1", "k1", DbInitMode::New, &cd));
    cd.cluster.status.master = "d1".into();
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", 1).await?;
    // A new master accepts its superuser with the password over TCP, and runs the requested PostgreSQL.
    assert_eq!(k1.psql("select current_user")?, SU);
    stolon_conformance::servers::check_server_major("k1's postgres", &k1.psql("select version()")?)?;
    h.refresh_status(&mut cd, "d1").await?;

    let k2 = h.keeper("k2")?;
    h.register_keeper(&mut cd, "k2").await?;
    cd.dbs.insert("d2".into(), standby_db("d2", "k2", "d1", &cd));
    cd.dbs.get_mut("d1").expect("d1").spec.followers = Some(vec!["d2".into()]);
    let g1 = bump(&mut cd, "d1");
    let assigned = Instant::now();
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    h.wait_converged(&k2, "d2", 1).await?;
    wait_sql(&k1, "select count(*) from pg_stat_replication where state = 'streaming'", "1").await?;
    assert!(k1.log_text().contains(": setting roles"), "{}", tail(&k1.log_text(), 40));
    // Figures for docs/benchmarks.md (printed, never asserted).
    eprintln!("figure: standby assigned -> streaming: {:?}", assigned.elapsed());
    if let Some(pid) = k1.child.as_ref().map(|c| c.id()) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status.lines().find(|l| l.starts_with("VmRSS")).unwrap_or("VmRSS: ?");
        eprintln!("figure: keeper (master) {rss}");
    }
    h.refresh_status(&mut cd, "d2").await?;
    Ok((cd, k1, k2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_streams_promotes_and_old_master_rejoins_by_rewind_then_base_backup() -> R<()> {
    let _serial = CLUSTER_SCENARIO.lock().await;
    let h = Harness::new("keeper-failover").await?;
    let (mut cd, mut k1, mut k2) = master_and_standby(&h, true).await?;

    // Streaming through the slot: rows written on the master appear on the standby.
    assert_eq!(k1.psql("select slot_name from pg_replication_slots")?, "stolon_d2");
    k1.psql("create table t(v int); insert into t values (1)")?;
    wait_sql(&k2, "select count(*) from t", "1").await?;
    assert_eq!(k2.psql("select pg_is_in_recovery()")?, "t");
    wait_sql(&k1, "select application_name || ' ' || state from pg_stat_replication", "stolon_d2 streaming").await?;

    // The standby reports its replayed position apart from its received one: with replay paused, WAL written
    // on the master is received (xLogPos moves on, and so does the master's WAL end its WAL receiver was
    // told, upstreamXLogPos) but not replayed (replayXLogPos stays behind).
    k2.psql("select pg_wal_replay_pause()")?;
    k1.psql("create table pad as select generate_series(1, 10000) as g")?;
    let paused = |i: &KeeperInfo| {
        i.postgres_state.as_ref().is_some_and(|s| {
            s.replay_x_log_pos > 0 && s.x_log_pos > s.replay_x_log_pos && s.upstream_x_log_pos > s.replay_x_log_pos
        })
    };
    let info = h.wait_info("k2", "received WAL ahead of the replayed WAL", paused).await?;
    let received = info.postgres_state.map_or(0, |s| s.x_log_pos);
    k2.psql("select pg_wal_replay_resume()")?;
    let caught_up = |i: &KeeperInfo| i.postgres_state.as_ref().is_some_and(|s| s.replay_x_log_pos >= received);
    h.wait_info("k2", "replay caught up with what was received while paused", caught_up).await?;
    wait_sql(&k2, "select count(*) from pad", "10000").await?;

    // Promote d2: the old master loses its DB (and is stopped), d2 becomes master on a new timeline.
    cd.dbs.remove("d1");
    {
        let d2 = cd.dbs.get_mut("d2").expect("d2");
        d2.spec.role = Some(DbRole::Master);
        d2.spec.follow_config = None;
        d2.spec.init_mode = Some(DbInitMode::None);
    }
    let g2 = bump(&mut cd, "d2");
    cd.cluster.status.master = "d2".into();
    h.put(&cd).await?;
    let info = h.wait_converged(&k2, "d2", g2).await?;
    assert_eq!(info.postgres_state.as_ref().map(|s| s.timeline_id), Some(2));
    assert!(k2.log_text().contains(": promoting database"), "{}", tail(&k2.log_text(), 40));
    k2.psql("insert into t values (2)")?;
    assert_eq!(k2.psql("select pg_is_in_recovery()")?, "f");
    h.wait_info("k1", "old master stopped", |i| i.postgres_state.as_ref().is_some_and(|s| !s.healthy)).await?;
    assert!(k1.psql("select 1").is_err(), "a keeper without DB keeps postgres stopped");
    h.refresh_status(&mut cd, "d2").await?;

    // The old master comes back as a standby of d2 through pg_rewind.
    cd.dbs.insert("d3".into(), standby_db("d3", "k1", "d2", &cd));
    cd.dbs.get_mut("d2").expect("d2").spec.followers = Some(vec!["d3".into()]);
    let g2 = bump(&mut cd, "d2");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d3", 1).await?;
    h.wait_converged(&k2, "d2", g2).await?;
    wait_sql(&k1, "select count(*) from t", "2").await?;
    let log = k1.log_text();
    assert!(log.contains("running pg_rewind"), "pg_rewind was not used:\n{}", tail(&log, 40));
    assert!(log.contains(": syncing using pg_rewind"), "{}", tail(&log, 40));
    let rewind_lines: Vec<&str> = log.lines().filter(|l| l.contains("rewind")).collect();
    assert!(!log.contains("running pg_basebackup"), "fell back to a base backup:\n{}", rewind_lines.join("\n"));
    assert!(!log.contains("error syncing with pg_rewind"), "pg_rewind failed:\n{}", tail(&log, 60));

    // Fail over back to k1 (d3), then k2 rejoins without pg_rewind: a base backup.
    h.refresh_status(&mut cd, "d3").await?;
    cd.dbs.remove("d2");
    {
        let d3 = cd.dbs.get_mut("d3").expect("d3");
        d3.spec.role = Some(DbRole::Master);
        d3.spec.follow_config = None;
        d3.spec.init_mode = Some(DbInitMode::None);
        d3.spec.use_pgrewind = false;
    }
    let g3 = bump(&mut cd, "d3");
    cd.cluster.status.master = "d3".into();
    h.put(&cd).await?;
    let info = h.wait_converged(&k1, "d3", g3).await?;
    assert_eq!(info.postgres_state.as_ref().map(|s| s.timeline_id), Some(3));
    k1.psql("insert into t values (3)")?;
    h.refresh_status(&mut cd, "d3").await?;
    let mut d4 = standby_db("d4", "k2", "d3", &cd);
    d4.spec.use_pgrewind = false;
    cd.dbs.insert("d4".into(), d4);
    cd.dbs.get_mut("d3").expect("d3").spec.followers = Some(vec!["d4".into()]);
    let g3 = bump(&mut cd, "d3");
    h.put(&cd).await?;
    h.wait_converged(&k2, "d4", 1).await?;
    h.wait_converged(&k1, "d3", g3).await?;
    wait_sql(&k2, "select count(*) from t", "3").await?;
    assert!(k2.log_text().contains("running pg_basebackup"));
    // d2's slot is gone from the new master, d4's exists.
    assert_eq!(k1.psql("select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots")?, "stolon_d4");

    k1.terminate()?;
    k2.terminate()?;
    assert!(k1.psql("select 1").is_err(), "SIGTERM stops postgres");
    Ok(())
}

async fn wait_metric(k: &KeeperProc, line: &str) -> R<()> {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match k.metrics() {
            Ok(m) if m.lines().any(|l| l == line) => return Ok(()),
            Ok(m) => last = m,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!("metric line {line:?} never seen on {}; last scrape:\n{last}", k.uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_sync_standbys_slots_and_boot_uuid_follow_cluster_data() -> R<()> {
    let _serial = CLUSTER_SCENARIO.lock().await;
    let h = Harness::new("keeper-params").await?;
    let (mut cd, mut k1, mut k2) = master_and_standby(&h, false).await?;
    wait_metric(&k1, "stolon_keeper_local_role{role=\"master\"} 1").await?;
    wait_metric(&k2, "stolon_keeper_target_role{role=\"standby\"} 1").await?;

    // A reloadable parameter is applied by a reload.
    let pid_before = k1.psql("select pg_postmaster_start_time()")?;
    for db in ["d1", "d2"] {
        cd.dbs.get_mut(db).expect("db").spec.pg_parameters.insert("work_mem".into(), "7MB".into());
    }
    let g1 = bump(&mut cd, "d1");
    let g2 = bump(&mut cd, "d2");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    h.wait_converged(&k2, "d2", g2).await?;
    wait_sql(&k1, "show work_mem", "7MB").await?;
    wait_sql(&k2, "show work_mem", "7MB").await?;
    assert_eq!(k1.psql("select pg_postmaster_start_time()")?, pid_before, "a reload, not a restart");
    let info = h.info("k1").await?.and_then(|i| i.postgres_state).expect("state");
    assert_eq!(info.pg_parameters.get("work_mem").map(String::as_str), Some("7MB"));

    // A restart-only parameter is reported pending and applied only with automaticPgRestart.
    cd.dbs.get_mut("d1").expect("d1").spec.pg_parameters.insert("shared_buffers".into(), "32MB".into());
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_metric(&k1, "stolon_keeper_needs_restart 1").await?;
    assert_eq!(k1.psql("show shared_buffers")?, "128MB");
    cd.cluster.spec.automatic_pg_restart = Some(true);
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_sql(&k1, "show shared_buffers", "32MB").await?;
    wait_metric(&k1, "stolon_keeper_needs_restart 0").await?;

    // Synchronous standby names follow cluster data and the standby is reported in sync.
    {
        let d1 = cd.dbs.get_mut("d1").expect("d1");
        d1.spec.synchronous_replication = true;
        d1.spec.synchronous_standbys = Some(vec!["d2".into()]);
    }
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_sql(&k1, "show synchronous_standby_names", "stolon_d2").await?;
    h.wait_info("k1", "d2 reported in sync", |i| {
        i.postgres_state.as_ref().and_then(|s| s.synchronous_standbys.clone()) == Some(vec!["d2".to_string()])
    })
    .await?;
    k1.psql("set statement_timeout = '20s'; create table s(v int); insert into s values (1)")?;
    wait_sql(&k2, "select count(*) from s", "1").await?;

    // Removing the standby drops its slot; additional slots are created; other slots are left alone.
    k1.psql("select pg_create_physical_replication_slot('foreign_slot')")?;
    k2.terminate()?;
    cd.dbs.remove("d2");
    {
        let d1 = cd.dbs.get_mut("d1").expect("d1");
        d1.spec.followers = Some(vec![]);
        d1.spec.synchronous_standbys = Some(vec![]);
        d1.spec.additional_replication_slots = Some(vec!["extra".into()]);
    }
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_sql(
        &k1,
        "select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots",
        "foreign_slot,stolon_extra",
    )
    .await?;
    assert!(k1.log_text().contains(": dropping replication slot slot=stolon_d2"), "{}", tail(&k1.log_text(), 40));
    wait_sql(&k1, "show synchronous_standby_names", "").await?;

    // A restarted keeper keeps postgres stopped until cluster data carries its new bootUUID.
    let old_boot = h.info("k1").await?.map(|i| i.boot_uuid).unwrap_or_default();
    k1.terminate()?;
    assert!(k1.psql("select 1").is_err(), "SIGTERM stops postgres");
    k1.spawn()?;
    let info = h.wait_info("k1", "new boot UUID", |i| i.boot_uuid != old_boot).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(k1.psql("select 1").is_err(), "postgres must stay stopped until cluster data has the new bootUUID");
    assert!(
        k1.log_text()
            .contains(": our db boot UID is different than the cluster data one, waiting for it to be updated")
    );
    cd.keepers.get_mut("k1").expect("k1").status.boot_uuid = info.boot_uuid;
    h.put(&cd).await?;
    wait_sql(&k1, "select count(*) from s", "1").await?;
    h.wait_converged(&k1, "d1", g1).await?;
    k1.terminate()?;
    assert!(h.cd().await?.dbs.contains_key("d1"));
    Ok(())
}

/// Runs the keeper with `extra` arguments and expects a fast failure whose output contains `expect`.
fn expect_failure(etcd: &EtcdServer, data_dir: &Path, extra: &[&str], expect: &str) -> R<()> {
    let mut args: Vec<String> = [
        "--cluster-name",
        "bad-input",
        "--store-backend",
        "etcdv3",
        "--store-endpoints",
        &etcd.endpoint(),
        "--data-dir",
        &data_dir.to_string_lossy(),
        "--pg-listen-address",
        "127.0.0.1",
        "--pg-port",
        &free_port().to_string(),
        "--pg-bin-path",
        &postgres_bin_dir()?.to_string_lossy(),
        "--pg-su-username",
        SU,
        "--pg-repl-username",
        REPL,
        "--pg-repl-password",
        REPL_PASSWORD,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.iter().any(|a| a.starts_with("--pg-su-password")) {
        args.extend(["--pg-su-password".to_string(), SU_PASSWORD.to_string()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_stolon-keeper"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("keeper with {extra:?} did not fail (expected {expect:?})");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)?;
    assert!(!status.success(), "{extra:?} must fail");
    assert!(stderr.contains(expect), "{extra:?}: expected {expect:?} in:\n{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_naming_the_flag_or_path() -> R<()> {
    let etcd = EtcdServer::start()?;
    let root = test_dir()?;
    let dir = |n: &str| root.path().join(n);
    expect_failure(&etcd, &dir("a"), &["--pg-bin-path", "/nonexistent/bin"], "--pg-bin-path")?;
    expect_failure(
        &etcd,
        &dir("b"),
        &["--pg-su-passwordfile", "/nonexistent/pw"],
        "password from file /nonexistent/pw",
    )?;
    expect_failure(&etcd, &dir("c"), &["--uid", "Bad-Uid"], "keeper uid \"Bad-Uid\" not valid")?;
    std::fs::create_dir_all(dir("d"))?;
    std::fs::write(dir("d").join("keeperstate"), "{corrupt")?;
    expect_failure(&etcd, &dir("d"), &[], "keeperstate")?;
    // A PGDATA that PostgreSQL's user does not own, then one of another major version.
    std::fs::create_dir_all(dir("e").join("postgres"))?;
    if unsafe { libc::geteuid() } == 0 {
        expect_failure(&etcd, &dir("e"), &[], "owned by uid")?;
        let u = stolon_core::postgres::OsUser::lookup("postgres")?;
        u.chown(&dir("e").join("postgres"))?;
    }
    std::fs::write(dir("e").join("postgres").join("PG_VERSION"), "11\n")?;
    expect_failure(&etcd, &dir("e"), &[], "PostgreSQL 11")?;
    // A data dir locked by a running keeper.
    let mut first = KeeperProc::start(&etcd, "bad-input-lock", "lk", root.path())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !first.log_text().contains("exclusive lock on data dir taken") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_failure(&etcd, &first.data_dir.clone(), &[], "cannot take exclusive lock")?;
    first.terminate()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_pg_port_is_a_clear_error_retried_without_deleting_anything() -> R<()> {
    let h = Harness::new("busy-port").await?;
    let mut cd = h.init_cluster(spec(false)).await?;
    let mut k = h.keeper("kp")?;
    // Something else listens on the keeper's --pg-port before the keeper is assigned a DB.
    let _busy = std::net::TcpListener::bind(("127.0.0.1", k.port))?;
    h.register_keeper(&mut cd, "kp").await?;
    cd.dbs.insert("dp".into(), master_db("dp", "kp", DbInitMode::New, &cd));
    cd.cluster.status.master = "dp".into();
    h.put(&cd).await?;
    let want = format!("PostgreSQL could not listen on 127.0.0.1:{} (--pg-port): address already in use", k.port);
    // Logged on every pass (sleepInterval 1s): wait for two occurrences.
    let deadline = Instant::now() + Duration::from_secs(20);
    while k.log_text().matches(&want).count() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = k.log_text();
    assert!(log.matches(&want).count() >= 2, "expected {want:?} on each pass in:\n{}", tail(&log, 40));
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
    let child = k.child.as_mut().ok_or_else(|| anyhow::anyhow!("keeper not started"))?;
    assert!(child.try_wait()?.is_none(), "the keeper must keep running");
    assert!(k.data_dir.join("keeperstate").exists(), "data dir {} was deleted", k.data_dir.display());
    k.terminate()?;
    Ok(())
}
