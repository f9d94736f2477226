//! The cluster under test: a store, keepers, sentinels and proxies as processes in one temporary directory,
//! the harness's own store client, and the waits stolon's scenarios are written with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use stolon_conformance::servers::free_port;
use stolon_core::cluster::{ClusterData, ClusterPhase};
use stolon_core::store::ClusterStore;
use tokio_postgres::Client;

use super::R;
use super::keeper::{Keeper, keeper_flags};
use super::process::Process;
use super::scenario::Env;
use super::sql;
use super::store::TestStore;
use super::wait::wait_for;

/// The default bound of the waits (a loaded 2-core machine is slow at initdb and base backups).
pub const WAIT: Duration = Duration::from_secs(90);

/// The daemons cargo built with the tests.
pub const KEEPER_BIN: &str = env!("CARGO_BIN_EXE_stolon-keeper");
pub const SENTINEL_BIN: &str = env!("CARGO_BIN_EXE_stolon-sentinel");
pub const PROXY_BIN: &str = env!("CARGO_BIN_EXE_stolon-proxy");
const STOLONCTL_BIN: &str = env!("CARGO_BIN_EXE_stolonctl");
/// The daemons' `RUST_LOG`.
pub const RUST_LOG: &str = "debug,tokio_postgres=info,h2=info,tower=info,hyper=info,hyper_util=info,tonic=info,kube=info,\
                        rustls=info,reqwest=info";

/// A proxy of the cluster.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    /// The proxy process.
    pub proc: Process,
}

impl Proxy {
    /// A superuser connection through this proxy.
    pub async fn connect(&self) -> R<Client> {
        sql::connect(self.port).await
    }
}

/// The cluster under test.
pub struct TestCluster {
    /// The scenario's environment.
    pub env: Env,
    /// The cluster name (unique in the run).
    pub name: String,
    /// The store.
    pub store: TestStore,
    /// The harness's own client of the store.
    pub client: ClusterStore,
    /// Keepers by uid.
    pub keepers: BTreeMap<String, Keeper>,
    /// Sentinels in creation order.
    pub sentinels: Vec<Process>,
    /// Proxies in creation order.
    pub proxies: Vec<Proxy>,
    spec_path: PathBuf,
    dir: tempfile::TempDir,
    next_keeper: usize,
}

impl TestCluster {
    /// Starts the store and writes `spec` as the initial cluster spec of the first sentinel. Nothing else
    /// runs yet.
    pub async fn new(env: &Env, spec: &Value) -> R<TestCluster> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("stolon-e2e-").tempdir()?;
        // PostgreSQL runs as `postgres` and must reach the keepers' data directories below this one.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let store = TestStore::start(env.backend).await?;
        if let Some(log) = store.log_path() {
            env.register_log("store", &log);
        }
        let name = format!("e2e-{}", stolon_core::cluster::new_uid());
        let raw = stolon_core::stolon_store::connect(&store.client_config(&name)).await?;
        let spec_path = dir.path().join("initial-cluster-spec.json");
        std::fs::write(&spec_path, serde_json::to_vec_pretty(spec)?)?;
        Ok(TestCluster {
            env: env.clone(),
            name,
            store,
            client: ClusterStore::new(raw),
            keepers: BTreeMap::new(),
            sentinels: Vec::new(),
            proxies: Vec::new(),
            spec_path,
            dir,
            next_keeper: 0,
        })
    }

    /// [`TestCluster::new`], then `keepers` keepers, `sentinels` sentinels and `proxies` proxies.
    pub async fn start(env: &Env, spec: &Value, keepers: usize, sentinels: usize, proxies: usize) -> R<TestCluster> {
        let mut c = TestCluster::new(env, spec).await?;
        for _ in 0..sentinels {
            c.add_sentinel().await?;
        }
        for _ in 0..keepers {
            c.add_keeper().await?;
        }
        for _ in 0..proxies {
            c.add_proxy().await?;
        }
        Ok(c)
    }

    /// The temporary directory of this cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the initial cluster spec the first sentinel reads at its next start (to initialise the cluster
    /// again, e.g. in pitr mode, after the cluster data was removed).
    pub fn set_initial_spec(&self, spec: &Value) -> R<()> {
        std::fs::write(&self.spec_path, serde_json::to_vec_pretty(spec)?)?;
        Ok(())
    }

    /// Adds and starts keeper `keeper<N>`; returns its uid.
    pub async fn add_keeper(&mut self) -> R<String> {
        self.add_keeper_with(&[]).await
    }

    /// Adds and starts a keeper with extra flags; returns its uid.
    pub async fn add_keeper_with(&mut self, extra: &[&str]) -> R<String> {
        let uid = self.new_keeper(extra).await?;
        self.keeper(&uid)?.start()?;
        Ok(uid)
    }

    /// Adds keeper `keeper<N>` without starting it (to start it later, or to change its flags first).
    pub async fn new_keeper(&mut self, extra: &[&str]) -> R<String> {
        let uid = format!("keeper{}", self.next_keeper);
        self.next_keeper += 1;
        let data_dir = self.dir.path().join(&uid);
        let pg_port = free_port();
        let mut args = self.store.flags(&self.name);
        args.extend(keeper_flags(&uid, &data_dir, "127.0.0.1", pg_port)?);
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = self.process(&uid, "stolon-keeper", KEEPER_BIN, args).await?;
        self.keepers.insert(
            uid.clone(),
            Keeper { uid: uid.clone(), pg_port, data_dir, proc, version_checked: Default::default() },
        );
        Ok(uid)
    }

    /// Adds and starts a sentinel (the first one carries the initial cluster spec); returns its index.
    pub async fn add_sentinel(&mut self) -> R<usize> {
        let i = self.sentinels.len();
        let mut args = self.store.flags(&self.name);
        args.extend(["--log-level", "debug"].map(String::from));
        if i == 0 {
            args.extend(["--initial-cluster-spec".to_string(), self.spec_path.to_string_lossy().into_owned()]);
        }
        let mut proc = self.process(&format!("sentinel{i}"), "stolon-sentinel", SENTINEL_BIN, args).await?;
        proc.start()?;
        self.sentinels.push(proc);
        Ok(i)
    }

    /// Adds and starts a proxy on a free port; returns its index.
    pub async fn add_proxy(&mut self) -> R<usize> {
        self.add_proxy_with(&[]).await
    }

    /// Adds and starts a proxy on a free port with extra flags (e.g. `--read-only-port`); returns its index.
    pub async fn add_proxy_with(&mut self, extra: &[&str]) -> R<usize> {
        let i = self.proxies.len();
        let port = free_port();
        let mut args = self.store.flags(&self.name);
        args.extend(
            ["--listen-address", "127.0.0.1", "--port", &port.to_string(), "--log-level", "debug"].map(String::from),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut proc = self.process(&format!("proxy{i}"), "stolon-proxy", PROXY_BIN, args).await?;
        proc.start()?;
        self.proxies.push(Proxy { port, proc });
        Ok(i)
    }

    async fn process(&self, name: &str, component: &str, bin: &str, args: Vec<String>) -> R<Process> {
        let pod = format!("{}-{name}", self.name);
        self.store.prepare_component(&self.name, &pod, component).await?;
        let mut env = self.store.env(&pod);
        env.push(("RUST_LOG".to_string(), RUST_LOG.to_string()));
        let log = self.env.logs_dir().join(format!("{name}.log"));
        self.env.register_log(name, &log);
        Ok(Process::new(name, Path::new(bin), args, env, log))
    }

    /// The keeper `uid`.
    pub fn keeper(&mut self, uid: &str) -> R<&mut Keeper> {
        self.keepers.get_mut(uid).with_context(|| format!("no keeper {uid:?} in this cluster"))
    }

    /// The keeper `uid` (shared).
    pub fn keeper_ref(&self, uid: &str) -> R<&Keeper> {
        self.keepers.get(uid).with_context(|| format!("no keeper {uid:?} in this cluster"))
    }

    /// Runs stolonctl against this cluster's store.
    pub async fn stolonctl(&self, args: &[&str]) -> R<Output> {
        let mut cmd = tokio::process::Command::new(STOLONCTL_BIN);
        cmd.args(self.store.flags(&self.name)).args(args).stdin(std::process::Stdio::null());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STOLONCTL_")) {
            cmd.env_remove(k);
        }
        for (k, v) in self.store.env(&format!("{}-stolonctl", self.name)) {
            if k != "POD_NAME" {
                cmd.env(k, v);
            }
        }
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .context("stolonctl did not finish within 60 s")??;
        Ok(out)
    }

    /// Runs stolonctl and fails unless it exits 0; returns its stdout.
    pub async fn stolonctl_ok(&self, args: &[&str]) -> R<String> {
        let out = self.stolonctl(args).await?;
        if !out.status.success() {
            bail!(
                "stolonctl {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The cluster data as stored now.
    pub async fn cd(&self) -> R<ClusterData> {
        Ok(self.client.cluster_data().await?.context("no cluster data in the store")?.data)
    }

    /// Waits until the cluster data satisfies `pred`; returns it.
    pub async fn wait_cd(&self, what: &str, limit: Duration, pred: impl Fn(&ClusterData) -> bool) -> R<ClusterData> {
        let pred = &pred;
        wait_for(what, limit, || async move {
            let cd = self.cd().await?;
            if pred(&cd) { Ok(Some(cd)) } else { Err(anyhow::anyhow!("cluster data: {}", summary(&cd))) }
        })
        .await
    }

    /// Waits for phase normal with a master DB; returns the master's keeper uid.
    pub async fn wait_master(&self) -> R<String> {
        let cd = self
            .wait_cd("a master", WAIT, |cd| {
                cd.cluster.status.phase == Some(ClusterPhase::Normal) && cd.master_db().is_some()
            })
            .await?;
        Ok(cd.master_db().map(|db| db.spec.keeper_uid.clone()).unwrap_or_default())
    }

    /// Waits until the cluster data names keeper `uid`'s DB as master.
    pub async fn wait_master_is(&self, uid: &str, limit: Duration) -> R<()> {
        self.wait_cd(&format!("{uid} elected master"), limit, |cd| master_keeper(cd).as_deref() == Some(uid)).await?;
        Ok(())
    }

    /// Waits until keeper `uid`'s PostgreSQL accepts connections as a primary (`false`) or standby (`true`).
    pub async fn wait_in_recovery(&self, uid: &str, standby: bool, limit: Duration) -> R<()> {
        let k = self.keeper_ref(uid)?;
        let role = if standby { "standby" } else { "primary" };
        wait_for(&format!("{uid}'s postgres running as {role}"), limit, || async move {
            Ok((k.in_recovery().await? == standby).then_some(()))
        })
        .await
    }

    /// Waits until the master is elected in the cluster data and runs as a primary; returns its uid.
    pub async fn wait_master_ready(&self) -> R<String> {
        let uid = self.wait_master().await?;
        self.wait_in_recovery(&uid, false, WAIT).await?;
        Ok(uid)
    }

    /// Waits until keeper `uid` has a healthy DB that converged to its spec (`currentGeneration` ≥ 1 and
    /// equal to the DB's generation).
    pub async fn wait_db_ready(&self, uid: &str, limit: Duration) -> R<()> {
        self.wait_cd(&format!("{uid}'s DB healthy and converged"), limit, |cd| db_ready(cd, uid)).await?;
        Ok(())
    }

    /// Waits until keeper `uid` runs a standby of the master in the cluster data and the data says so.
    pub async fn wait_standby(&self, uid: &str, limit: Duration) -> R<()> {
        self.wait_db_ready(uid, limit).await?;
        self.wait_in_recovery(uid, true, limit).await
    }

    /// Waits for exactly `n` DBs in the cluster data.
    pub async fn wait_num_dbs(&self, n: usize, limit: Duration) -> R<ClusterData> {
        self.wait_cd(&format!("{n} DBs"), limit, |cd| cd.dbs.len() == n).await
    }

    /// Waits until the cluster data holds exactly the keepers `uids`.
    pub async fn wait_keepers(&self, uids: &[&str], limit: Duration) -> R<()> {
        let want: BTreeSet<&str> = uids.iter().copied().collect();
        self.wait_cd(&format!("keepers {uids:?}"), limit, |cd| {
            cd.keepers.keys().map(String::as_str).collect::<BTreeSet<_>>() == want
        })
        .await?;
        Ok(())
    }

    /// Waits until the master's synchronous standbys, in spec and status, are the DBs of keepers `uids`.
    pub async fn wait_sync_standbys(&self, uids: &[&str], limit: Duration) -> R<()> {
        let want: BTreeSet<&str> = uids.iter().copied().collect();
        self.wait_cd(&format!("synchronous standbys {uids:?}"), limit, |cd| {
            let Some(master) = cd.master_db() else { return false };
            let keepers_of = |dbs: &[String]| -> BTreeSet<&str> {
                dbs.iter().filter_map(|d| cd.dbs.get(d)).map(|db| db.spec.keeper_uid.as_str()).collect()
            };
            let spec = master.spec.synchronous_standbys.as_deref().unwrap_or_default();
            let status = master.status.synchronous_standbys.as_deref().unwrap_or_default();
            spec.len() == want.len() && keepers_of(spec) == want && keepers_of(status) == want
        })
        .await?;
        Ok(())
    }

    /// Waits until every DB of keepers `uids` reports the same WAL position, at least `min`.
    pub async fn wait_synced_xlog(&self, uids: &[&str], min: u64, limit: Duration) -> R<()> {
        self.wait_cd(&format!("{uids:?} at the same WAL position"), limit, |cd| {
            let pos: Vec<u64> = uids.iter().filter_map(|u| cd.db_of_keeper(u)).map(|db| db.status.x_log_pos).collect();
            pos.len() == uids.len() && pos.iter().all(|p| *p == pos[0] && *p >= min)
        })
        .await?;
        Ok(())
    }

    /// Waits until `proxies.len()` == `n` proxies are enabled in the cluster data.
    pub async fn wait_enabled_proxies(&self, n: usize, limit: Duration) -> R<()> {
        self.wait_cd(&format!("{n} enabled proxies"), limit, |cd| cd.proxy.spec.enabled_proxies.len() == n).await?;
        Ok(())
    }

    /// Waits until a connection through proxy `i` lands on keeper `uid`'s PostgreSQL.
    pub async fn wait_proxy_routes_to(&self, i: usize, uid: &str, limit: Duration) -> R<()> {
        let port = self.keeper_ref(uid)?.pg_port;
        let proxy = self.proxies.get(i).context("no such proxy")?;
        wait_for(&format!("proxy{i} routing to {uid}"), limit, || async move {
            let got = sql::server_port(&proxy.connect().await?).await?;
            if got == port { Ok(Some(())) } else { Err(anyhow::anyhow!("routed to port {got}")) }
        })
        .await
    }

    /// Waits until keeper `uid` has exactly the rows `ids` in the test table.
    pub async fn wait_rows(&self, uid: &str, ids: &[i32], limit: Duration) -> R<()> {
        let k = self.keeper_ref(uid)?;
        wait_for(&format!("rows {ids:?} on {uid}"), limit, || async move {
            let got = k.row_ids().await?;
            if got == ids { Ok(Some(())) } else { Err(anyhow::anyhow!("rows {got:?}")) }
        })
        .await
    }

    /// A superuser connection to keeper `uid`.
    pub async fn connect(&self, uid: &str) -> R<Client> {
        self.keeper_ref(uid)?.connect().await
    }

    /// The keepers other than `uid`.
    pub fn others(&self, uid: &str) -> Vec<String> {
        self.keepers.keys().filter(|k| *k != uid).cloned().collect()
    }
}

/// The keeper uid of the master DB in `cd`.
pub fn master_keeper(cd: &ClusterData) -> Option<String> {
    cd.master_db().map(|db| db.spec.keeper_uid.clone())
}

/// Whether keeper `uid` has a healthy DB in `cd` that converged to its spec (`currentGeneration` ≥ 1 and
/// equal to the DB's generation).
pub fn db_ready(cd: &ClusterData, uid: &str) -> bool {
    cd.db_of_keeper(uid).is_some_and(|db| {
        db.status.healthy && db.status.current_generation >= 1 && db.status.current_generation == db.generation
    })
}

/// One line describing the cluster data, for timeout messages.
pub fn summary(cd: &ClusterData) -> String {
    let dbs: Vec<String> = cd
        .dbs
        .values()
        .map(|db| {
            let role = db.spec.role.as_ref().map(|r| r.to_string()).unwrap_or_default();
            format!(
                "{}@{}:{role}{}{} gen {}/{} xlog {}",
                db.uid,
                db.spec.keeper_uid,
                if db.status.healthy { "" } else { ":unhealthy" },
                if db.uid == cd.cluster.status.master { ":MASTER" } else { "" },
                db.status.current_generation,
                db.generation,
                db.status.x_log_pos
            )
        })
        .collect();
    let keepers: Vec<String> = cd
        .keepers
        .values()
        .map(|k| format!("{}{}", k.uid, if k.status.healthy { "" } else { "(unhealthy)" }))
        .collect();
    format!(
        "phase {:?}, keepers [{}], dbs [{}], proxies {:?}",
        cd.cluster.status.phase.as_ref().map(|p| p.to_string()),
        keepers.join(", "),
        dbs.join("; "),
        cd.proxy.spec.enabled_proxies
    )
}
