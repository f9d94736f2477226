//! The keeper tests' harness: real `stolon-keeper` processes on a real etcd and PostgreSQL, and the cluster
//! data the tests write in place of a sentinel.

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

pub const SU: &str = "stolon_su";
pub const SU_PASSWORD: &str = "su'pass";
pub const REPL: &str = "stolon_repl";
pub const REPL_PASSWORD: &str = "repl-pass";
/// Bound of every wait for convergence.
pub const WAIT: Duration = Duration::from_secs(180);
/// The two cluster scenarios run one after the other: each runs two PostgreSQL instances, and CI machines
/// have two cores.
pub static CLUSTER_SCENARIO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub type R<T> = anyhow::Result<T>;

/// A temporary directory PostgreSQL (user `postgres` under root) can traverse.
pub fn test_dir() -> R<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new().prefix("stolon-keeper-test").tempdir()?;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(d)
}

/// A stolon-keeper process; killed (and its postgres stopped) on drop.
pub struct KeeperProc {
    pub uid: String,
    pub data_dir: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    pub metrics_port: u16,
    pub child: Option<Child>,
    pub args: Vec<String>,
}

impl KeeperProc {
    pub fn start(etcd: &EtcdServer, cluster: &str, uid: &str, root: &Path) -> R<KeeperProc> {
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

    pub fn spawn(&mut self) -> R<()> {
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
    pub fn terminate(&mut self) -> R<()> {
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pgdata(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }

    /// Runs SQL as the superuser over TCP; `Err` when postgres is not reachable.
    pub fn psql(&self, sql: &str) -> R<String> {
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

    pub fn metrics(&self) -> R<String> {
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
pub struct Harness {
    pub etcd: EtcdServer,
    pub store: ClusterStore,
    pub name: String,
    pub root: tempfile::TempDir,
}

impl Harness {
    pub async fn new(name: &str) -> R<Harness> {
        let etcd = EtcdServer::start()?;
        let name = format!("{name}-{}", stolon_core::cluster::new_uid());
        let store =
            ClusterStore::new(stolon_core::stolon_store::connect(&etcd.config(StoreBackend::EtcdV3, &name)).await?);
        Ok(Harness { etcd, store, name, root: test_dir()? })
    }

    pub fn keeper(&self, uid: &str) -> R<KeeperProc> {
        KeeperProc::start(&self.etcd, &self.name, uid, self.root.path())
    }

    pub async fn init_cluster(&self, spec: ClusterSpec) -> R<ClusterData> {
        let cd = ClusterData::new_initial("c1", spec, Timestamp::now());
        self.store.put_cluster_data(&cd).await?;
        Ok(cd)
    }

    pub async fn cd(&self) -> R<ClusterData> {
        Ok(self.store.cluster_data().await?.ok_or_else(|| anyhow::anyhow!("no cluster data"))?.data)
    }

    pub async fn put(&self, cd: &ClusterData) -> R<()> {
        self.store.put_cluster_data(cd).await?;
        Ok(())
    }

    pub async fn info(&self, uid: &str) -> R<Option<KeeperInfo>> {
        Ok(self.store.keeper_infos().await?.valid.remove(uid))
    }

    /// Waits for `cond` on the keeper's info.
    pub async fn wait_info(&self, uid: &str, what: &str, cond: impl Fn(&KeeperInfo) -> bool) -> R<KeeperInfo> {
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
    pub async fn wait_converged(&self, k: &KeeperProc, db: &str, generation: i64) -> R<KeeperInfo> {
        self.wait_info(&k.uid, &format!("db {db} converged at generation {generation}"), |i| {
            i.postgres_state.as_ref().is_some_and(|s| s.uid == db && s.generation == generation && s.healthy)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- keeper log tail ---\n{}", tail(&k.log_text(), 60)))
    }

    /// Adds keeper `uid` to cluster data with the bootUUID of its current info (what the sentinel does).
    pub async fn register_keeper(&self, cd: &mut ClusterData, uid: &str) -> R<()> {
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
    pub async fn refresh_status(&self, cd: &mut ClusterData, db: &str) -> R<()> {
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

/// Whether `log` has a line of `level` whose message is exactly `message` (followed by its fields, if any).
pub fn logged(log: &str, level: &str, message: &str) -> bool {
    log.lines().any(|l| {
        l.split_once(&format!(" {level} ")).and_then(|(_, rest)| rest.split_once(": ")).is_some_and(|(_, msg)| {
            msg.strip_prefix(message).is_some_and(|after| after.is_empty() || after.starts_with(' '))
        })
    })
}

/// Waits until keeper `k` logged `message` at `level`.
pub async fn wait_logged(k: &KeeperProc, level: &str, message: &str) -> R<()> {
    let deadline = Instant::now() + WAIT;
    while !logged(&k.log_text(), level, message) {
        if Instant::now() > deadline {
            anyhow::bail!("keeper {} never logged {level} {message:?}\n{}", k.uid, tail(&k.log_text(), 40));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn spec(use_pgrewind: bool) -> ClusterSpec {
    ClusterSpec {
        sleep_interval: Some(GoDuration::from_secs(1)),
        request_timeout: Some(GoDuration::from_secs(5)),
        db_wait_ready_timeout: Some(GoDuration::from_secs(20)),
        init_mode: Some(stolon_core::cluster::ClusterInitMode::New),
        use_pgrewind: Some(use_pgrewind),
        ..Default::default()
    }
}

pub fn master_db(uid: &str, keeper: &str, init: DbInitMode, cd: &ClusterData) -> Db {
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

pub fn standby_db(uid: &str, keeper: &str, follow: &str, cd: &ClusterData) -> Db {
    let mut d = master_db(uid, keeper, DbInitMode::Resync, cd);
    d.spec.role = Some(DbRole::Standby);
    d.spec.follow_config =
        Some(FollowConfig { follow_type: Some(FollowType::Internal), db_uid: follow.into(), ..Default::default() });
    d
}

/// Bumps a DB's generation after a spec change.
pub fn bump(cd: &mut ClusterData, db: &str) -> i64 {
    let d = cd.dbs.get_mut(db).expect("db exists");
    d.generation += 1;
    d.generation
}

pub async fn wait_sql(k: &KeeperProc, sql: &str, want: &str) -> R<()> {
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
pub async fn master_and_standby(h: &Harness, use_pgrewind: bool) -> R<(ClusterData, KeeperProc, KeeperProc)> {
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

pub async fn wait_metric(k: &KeeperProc, line: &str) -> R<()> {
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
