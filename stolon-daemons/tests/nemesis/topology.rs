//! The cluster under the nemesis: a 3-member etcd, keepers with their PostgreSQL, sentinels and proxies, each
//! in its own network namespace ([`super::netns`]), started as processes with the e2e harness's [`Process`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use stolon_core::cluster::{ClusterData, ClusterPhase};
use stolon_core::stolon_store::{Endpoint, StoreBackend, StoreConfig};
use stolon_core::store::ClusterStore;
use tokio_postgres::Client;

use super::R;
use super::netns::Net;
use crate::harness::cluster::{KEEPER_BIN, PROXY_BIN, RUST_LOG, SENTINEL_BIN};
use crate::harness::keeper::{keeper_flags, postmaster_pid};
use crate::harness::process::{Process, alive, send_signal};
use crate::harness::sql;

/// The daemon `name` (`stolon-keeper`...): from `NEMESIS_BIN_DIR` when set (a long run started from copies
/// of the binaries is not disturbed by later builds), else the one cargo built with this test.
fn daemon(name: &str, built: &str) -> String {
    match std::env::var_os("NEMESIS_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(name).to_string_lossy().into_owned(),
        None => built.to_string(),
    }
}

/// PostgreSQL's port on keeper node 0 is `NEMESIS_PG_PORT`, or derived from the process id so that two runs
/// at once differ; keeper `i` uses the next ones (the namespaces share the file system: equal ports would
/// collide on the Unix socket in /tmp).
fn pg_port_base() -> u16 {
    static BASE: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        std::env::var("NEMESIS_PG_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(20000 + (std::process::id() % 2000) as u16 * 5)
    })
}
/// The keeper API's port on every keeper node.
pub const API_PORT: u16 = 8008;
/// The proxies' port.
pub const PROXY_PORT: u16 = 25432;
/// The daemons' `--store-timeout`.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// PostgreSQL's port of keeper `i`.
pub fn pg_port(i: usize) -> u16 {
    pg_port_base() + i as u16
}

/// How many of each component.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub etcd: usize,
    pub keepers: usize,
    pub sentinels: usize,
    pub proxies: usize,
}

/// A component the nemesis can kill or pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd(usize),
    Keeper(usize),
    Sentinel(usize),
    Proxy(usize),
}

/// The cluster in its namespaces. Dropping it kills every process and removes the namespaces of its nodes.
pub struct Topology {
    net: Arc<Mutex<Net>>,
    /// The cluster name.
    pub cluster: String,
    /// Node names: etcd members, keepers, sentinels, proxies.
    pub etcd: Vec<String>,
    pub keepers: Vec<String>,
    pub sentinels: Vec<String>,
    pub proxies: Vec<String>,
    procs: Vec<(Component, Process)>,
    /// The harness's store client (from the client namespace).
    pub store: ClusterStore,
    dir: tempfile::TempDir,
    logs: PathBuf,
}

impl Topology {
    /// Creates the nodes and starts etcd, the sentinels (the first with `spec`), the keepers (with their API
    /// on) and the proxies. `extra_keeper_flags` is appended to every keeper's flags.
    pub async fn start(
        net: Arc<Mutex<Net>>,
        prefix: &str,
        shape: Shape,
        spec: &Value,
        logs: &Path,
        extra_keeper_flags: &[&str],
    ) -> R<Topology> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("stolon-nemesis-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let names = |kind: &str, n: usize| (0..n).map(|i| format!("{prefix}{kind}{i}")).collect::<Vec<_>>();
        let (etcd, keepers) = (names("etcd", shape.etcd), names("keeper", shape.keepers));
        let (sentinels, proxies) = (names("sentinel", shape.sentinels), names("proxy", shape.proxies));
        {
            let mut n = net.lock().expect("net");
            for name in etcd.iter().chain(&keepers).chain(&sentinels).chain(&proxies) {
                n.add_node(name)?;
            }
        }
        let cluster = format!("nemesis-{}", stolon_core::cluster::new_uid());
        let endpoints = {
            let n = net.lock().expect("net");
            etcd.iter().map(|e| Ok(format!("http://{}:2379", n.node(e)?.ip))).collect::<R<Vec<_>>>()?.join(",")
        };
        let mut config = StoreConfig::new(StoreBackend::EtcdV3, &cluster);
        config.endpoints = Endpoint::parse_list(&endpoints)?;
        config.timeout = STORE_TIMEOUT;
        let mut t = Topology {
            net,
            cluster,
            etcd,
            keepers,
            sentinels,
            proxies,
            procs: Vec::new(),
            store: ClusterStore::new(stolon_core::stolon_store::connect(&config).await?),
            dir,
            logs: logs.to_path_buf(),
        };
        t.start_etcd()?;
        t.wait_etcd(Duration::from_secs(60)).await?;
        let spec_path = t.dir.path().join("initial-cluster-spec.json");
        std::fs::write(&spec_path, serde_json::to_vec_pretty(spec)?)?;
        let store_flags = t.store_flags(&endpoints);
        for i in 0..t.sentinels.len() {
            let mut args = store_flags.clone();
            args.extend(["--log-level", "debug"].map(String::from));
            if i == 0 {
                args.extend(["--initial-cluster-spec".to_string(), spec_path.to_string_lossy().into_owned()]);
            }
            t.spawn(Component::Sentinel(i), &daemon("stolon-sentinel", SENTINEL_BIN), args)?;
        }
        for i in 0..t.keepers.len() {
            let args = t.keeper_args(i, &store_flags, extra_keeper_flags)?;
            t.spawn(Component::Keeper(i), &daemon("stolon-keeper", KEEPER_BIN), args)?;
        }
        for i in 0..t.proxies.len() {
            let ip = t.ip(&t.proxies[i])?;
            let mut args = store_flags.clone();
            args.extend(
                ["--listen-address", &ip, "--port", &PROXY_PORT.to_string(), "--log-level", "debug"].map(String::from),
            );
            t.spawn(Component::Proxy(i), &daemon("stolon-proxy", PROXY_BIN), args)?;
        }
        Ok(t)
    }

    fn store_flags(&self, endpoints: &str) -> Vec<String> {
        [
            "--cluster-name",
            &self.cluster,
            "--store-backend",
            "etcdv3",
            "--store-endpoints",
            endpoints,
            "--store-timeout",
            &format!("{}s", STORE_TIMEOUT.as_secs()),
        ]
        .map(String::from)
        .to_vec()
    }

    fn keeper_args(&self, i: usize, store_flags: &[String], extra: &[&str]) -> R<Vec<String>> {
        let uid = format!("keeper{i}");
        let ip = self.ip(&self.keepers[i])?;
        let mut args = store_flags.to_vec();
        args.extend(keeper_flags(&uid, &self.dir.path().join(&uid), &ip, pg_port(i))?);
        args.extend(["--api-listen-address".to_string(), format!("{ip}:{API_PORT}")]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Ok(args)
    }

    fn start_etcd(&mut self) -> R<()> {
        let binary = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("etcd not found (apt-get install etcd-server)")?;
        let peers = self
            .etcd
            .iter()
            .enumerate()
            .map(|(i, e)| Ok(format!("e{i}=http://{}:2380", self.ip(e)?)))
            .collect::<R<Vec<_>>>()?
            .join(",");
        for i in 0..self.etcd.len() {
            let ip = self.ip(&self.etcd[i])?;
            let (client, peer) = (format!("http://{ip}:2379"), format!("http://{ip}:2380"));
            let args = [
                "--name",
                &format!("e{i}"),
                "--data-dir",
                &self.dir.path().join(format!("etcd{i}")).to_string_lossy(),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &peers,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                &self.cluster,
                // A loaded 2-core machine misses etcd's default 100 ms heartbeats: fewer spurious elections.
                "--heartbeat-interval",
                "250",
                "--election-timeout",
                "2500",
                "--log-level",
                "warn",
            ]
            .map(String::from)
            .to_vec();
            self.spawn(Component::Etcd(i), binary, args)?;
        }
        Ok(())
    }

    async fn wait_etcd(&self, limit: Duration) -> R<()> {
        crate::harness::wait_for("the etcd cluster", limit, || async {
            self.store.cluster_data().await?;
            Ok(Some(()))
        })
        .await
    }

    /// Spawns `bin args` inside the component's namespace, logging to `<logs>/<node>.log`.
    fn spawn(&mut self, c: Component, bin: &str, args: Vec<String>) -> R<()> {
        let node = self.node_of(c).to_string();
        let mut full = self.net.lock().expect("net").exec_prefix(&node)?;
        full.push(bin.to_string());
        full.extend(args);
        let env = vec![("RUST_LOG".to_string(), RUST_LOG.to_string())];
        let mut p = Process::new(&node, Path::new("/usr/sbin/ip"), full, env, self.logs.join(format!("{node}.log")));
        p.start()?;
        self.procs.push((c, p));
        Ok(())
    }

    /// The node name of component `c`.
    pub fn node_of(&self, c: Component) -> &str {
        match c {
            Component::Etcd(i) => &self.etcd[i],
            Component::Keeper(i) => &self.keepers[i],
            Component::Sentinel(i) => &self.sentinels[i],
            Component::Proxy(i) => &self.proxies[i],
        }
    }

    /// The address of node `name`.
    pub fn ip(&self, name: &str) -> R<String> {
        Ok(self.net.lock().expect("net").node(name)?.ip.to_string())
    }

    /// The shared namespaces.
    pub fn net(&self) -> &Arc<Mutex<Net>> {
        &self.net
    }

    fn proc(&mut self, c: Component) -> R<&mut Process> {
        self.procs.iter_mut().find(|(k, _)| *k == c).map(|(_, p)| p).with_context(|| format!("no process {c:?}"))
    }

    fn pgdata(&self, keeper: usize) -> PathBuf {
        self.dir.path().join(format!("keeper{keeper}")).join("postgres")
    }

    /// SIGKILL of a component (a keeper with its postmaster: the whole node crashes).
    pub async fn kill(&mut self, c: Component) -> R<()> {
        let pm = match c {
            Component::Keeper(i) => postmaster_pid(&self.pgdata(i)),
            _ => None,
        };
        self.proc(c)?.kill().await?;
        if let Some(pm) = pm {
            send_signal(pm, libc::SIGCONT);
            send_signal(pm, libc::SIGKILL);
            let start = std::time::Instant::now();
            while alive(pm) && start.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Starts a killed component again.
    pub fn restart(&mut self, c: Component) -> R<()> {
        let p = self.proc(c)?;
        if p.is_running() {
            bail!("{c:?} is running");
        }
        p.start()
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) of a component (and a keeper's postmaster).
    pub fn pause(&mut self, c: Component, stop: bool) -> R<()> {
        let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
        if let Component::Keeper(i) = c
            && let Some(pm) = postmaster_pid(&self.pgdata(i))
        {
            send_signal(pm, sig);
        }
        let p = self.proc(c)?;
        if stop {
            p.freeze()
        } else {
            p.thaw()
        }
        Ok(())
    }

    /// SIGKILL of keeper `i`'s postmaster only (its keeper starts it again).
    pub fn kill_postmaster(&self, i: usize) -> bool {
        postmaster_pid(&self.pgdata(i)).is_some_and(|pm| send_signal(pm, libc::SIGKILL))
    }

    /// The cluster data as stored now.
    pub async fn cd(&self) -> R<ClusterData> {
        Ok(self.store.cluster_data().await?.context("no cluster data in the store")?.data)
    }

    /// The index of the master's keeper in the cluster data.
    pub async fn master(&self) -> R<Option<usize>> {
        let cd = self.cd().await?;
        Ok(cd.master_db().and_then(|db| db.spec.keeper_uid.strip_prefix("keeper")?.parse().ok()))
    }

    /// True when the cluster data shows a healthy, converged cluster with a synchronous standby when `sync`.
    pub fn healthy(&self, cd: &ClusterData, sync: bool) -> Result<(), String> {
        if cd.cluster.status.phase != Some(ClusterPhase::Normal) {
            return Err("phase not normal".into());
        }
        let Some(master) = cd.master_db() else { return Err("no master".into()) };
        if cd.dbs.len() != self.keepers.len() {
            return Err(format!("{} DBs", cd.dbs.len()));
        }
        for db in cd.dbs.values() {
            if !db.status.healthy || db.status.current_generation != db.generation {
                return Err(format!("{} not healthy and converged", db.spec.keeper_uid));
            }
        }
        if sync && master.status.synchronous_standbys.as_deref().unwrap_or_default().is_empty() {
            return Err("no synchronous standby".into());
        }
        Ok(())
    }

    /// A superuser connection through proxy `i`.
    pub async fn connect_proxy(&self, i: usize) -> R<Client> {
        sql::connect_at(&self.ip(&self.proxies[i])?, PROXY_PORT, sql::SU, sql::SU_PASSWORD).await
    }

    /// A superuser connection straight to keeper `i`'s PostgreSQL.
    pub async fn connect_keeper(&self, i: usize) -> R<Client> {
        sql::connect_at(&self.ip(&self.keepers[i])?, pg_port(i), sql::SU, sql::SU_PASSWORD).await
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for (_, p) in self.procs.iter_mut() {
            let _ = p.kill_now();
        }
        let mut net = self.net.lock().unwrap_or_else(|e| e.into_inner());
        for name in self.etcd.iter().chain(&self.keepers).chain(&self.sentinels).chain(&self.proxies) {
            net.remove_node(name);
        }
    }
}
