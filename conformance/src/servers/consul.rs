//! A real Consul agent (1.15.4, MPL-2.0, built from Go modules by `scripts/build-consul`) started by
//! `scripts/start-consul` on free loopback ports, and stopped with the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use stolon_store::{Store, StoreBackend, StoreConfig, StoreResult};

use super::BlockingControl;
use crate::{ConfigFactory, PrivateServer, StoreFactory};

/// The repository's `scripts/` directory.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// The Consul binary: `CONSUL_BIN`, else the one `scripts/build-consul` builds or finds in its cache.
pub fn consul_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CONSUL_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let script = scripts_dir().join("build-consul");
    let out = Command::new(&script).output().with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed (it needs Go >= 1.20 and the Go module proxy):\n{}",
            script.display(),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        );
    }
    let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    anyhow::ensure!(!path.is_empty(), "{} printed no binary path", script.display());
    Ok(PathBuf::from(path))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How the agent runs.
#[derive(Debug, Clone, Default)]
struct Mode {
    /// A single-node server keeping its data across restarts (else `-dev`, in memory).
    persistent: bool,
    /// Extra agent configuration (`--hcl`).
    hcl: Vec<String>,
    /// The token the start-up probes use (with ACLs).
    token: Option<String>,
}

/// A single Consul agent on loopback, stopped (SIGKILL) when dropped.
pub struct ConsulServer {
    dir: tempfile::TempDir,
    mode: Mode,
    endpoint: Mutex<String>,
    pid: Mutex<Option<i32>>,
}

impl ConsulServer {
    /// Starts a dev agent (in-memory state) and waits until it has a leader and a healthy node.
    pub fn start() -> anyhow::Result<ConsulServer> {
        Self::launch_new(Mode::default())
    }

    /// Starts a single-node server whose data survives [`ConsulServer::restart`].
    pub fn start_persistent() -> anyhow::Result<ConsulServer> {
        Self::launch_new(Mode { persistent: true, ..Mode::default() })
    }

    /// Starts a dev agent with ACLs on (default deny) and `management_token` as the management token.
    pub fn start_with_acl(management_token: &str) -> anyhow::Result<ConsulServer> {
        Self::launch_new(Self::acl_mode(management_token))
    }

    fn acl_mode(management_token: &str) -> Mode {
        let acl = format!(
            "acl {{ enabled = true, default_policy = \"deny\", tokens {{ initial_management = \"{management_token}\", \
             agent = \"{management_token}\" }} }}"
        );
        Mode { hcl: vec![acl], token: Some(management_token.to_string()), ..Mode::default() }
    }

    /// Starts a dev agent with ACLs on, `management_token` as the management token, and extra agent
    /// configuration (HCL).
    pub fn start_with_acl_and_hcl(management_token: &str, hcl: &[String]) -> anyhow::Result<ConsulServer> {
        let mut mode = Self::acl_mode(management_token);
        mode.hcl.extend_from_slice(hcl);
        Self::launch_new(mode)
    }

    /// Starts a dev agent that also serves HTTPS with the server certificate of `pki` and requires client
    /// certificates signed by its CA. Returns the agent and its `https://127.0.0.1:<port>` endpoint (the
    /// plain HTTP one stays at [`ConsulServer::endpoint`]).
    pub fn start_https(pki: &super::TestPki) -> anyhow::Result<(ConsulServer, String)> {
        let https_port = super::free_port();
        let hcl = vec![
            format!("ports {{ https = {https_port} }}"),
            format!(
                "tls {{ https {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\", verify_incoming = true }} }}",
                pki.ca().display(),
                pki.server_cert().display(),
                pki.server_key().display()
            ),
        ];
        Ok((Self::start_with_hcl(&hcl)?, format!("https://127.0.0.1:{https_port}")))
    }

    /// Starts a dev agent with extra agent configuration (HCL), e.g. a TLS listener.
    pub fn start_with_hcl(hcl: &[String]) -> anyhow::Result<ConsulServer> {
        Self::launch_new(Mode { hcl: hcl.to_vec(), ..Mode::default() })
    }

    fn launch_new(mode: Mode) -> anyhow::Result<ConsulServer> {
        let dir = tempfile::Builder::new().prefix("stolon-consul-").tempdir()?;
        let server = ConsulServer { dir, mode, endpoint: Mutex::new(String::new()), pid: Mutex::new(None) };
        server.launch()?;
        Ok(server)
    }

    fn launch(&self) -> anyhow::Result<()> {
        let script = scripts_dir().join("start-consul");
        let mut cmd = Command::new(&script);
        if self.mode.persistent {
            cmd.arg("--persistent");
        }
        cmd.args(["--owner-pid", &std::process::id().to_string()]);
        for hcl in &self.mode.hcl {
            cmd.args(["--hcl", hcl]);
        }
        cmd.arg(self.dir.path());
        match &self.mode.token {
            Some(t) => cmd.env("CONSUL_HTTP_TOKEN", t),
            None => cmd.env_remove("CONSUL_HTTP_TOKEN"),
        };
        let out = cmd.output().with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!("{} failed:\n{}", script.display(), tail(&String::from_utf8_lossy(&out.stderr), 30));
        }
        let read = |name: &str| -> anyhow::Result<String> {
            let p = self.dir.path().join(name);
            Ok(std::fs::read_to_string(&p).with_context(|| format!("{}", p.display()))?.trim().to_string())
        };
        let pid: i32 = read("pid")?.parse().context("start-consul wrote an invalid pid")?;
        *self.pid.lock().expect("consul pid lock") = Some(pid);
        *self.endpoint.lock().expect("consul endpoint lock") = read("http_addr")?;
        Ok(())
    }

    /// The HTTP API URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.endpoint.lock().expect("consul endpoint lock").clone()
    }

    /// The agent's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("consul.log")
    }

    /// The agent's pid while it runs (to freeze it with SIGSTOP).
    pub fn pid(&self) -> Option<i32> {
        *self.pid.lock().expect("consul pid lock")
    }

    /// Stops the agent with SIGKILL, as a crash would, and waits until it is gone.
    pub fn stop(&self) -> anyhow::Result<()> {
        let Some(pid) = self.pid.lock().expect("consul pid lock").take() else {
            return Ok(());
        };
        // SAFETY: kill(2) with a pid this server started; no memory is shared.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let start = Instant::now();
        while running(pid) {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("consul (pid {pid}) still running 10 s after SIGKILL");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the agent and starts it again in the same directory (same ports). Only a persistent server
    /// keeps its data.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch()
    }

    /// A store configuration for this agent.
    pub fn config(&self, cluster: &str) -> StoreConfig {
        let mut c = StoreConfig::new(StoreBackend::Consul, cluster);
        c.endpoints = stolon_store::Endpoint::parse_list(&self.endpoint()).expect("own endpoint parses");
        c
    }
}

/// True while `pid` exists and is not a zombie.
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').next()).unwrap_or("");
    !state.is_empty() && state != "Z"
}

impl Drop for ConsulServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A Consul server that never gets a leader (it waits for a second server that never comes): every request
/// that needs the servers is answered "No cluster leader". Killed when dropped.
pub struct LeaderlessConsul {
    _dir: tempfile::TempDir,
    child: std::process::Child,
    http_port: u16,
}

impl LeaderlessConsul {
    /// Starts it and waits until its HTTP API answers.
    pub fn start() -> anyhow::Result<LeaderlessConsul> {
        let binary = consul_binary()?;
        let dir = tempfile::Builder::new().prefix("stolon-consul-noleader-").tempdir()?;
        let ports: Vec<u16> = (0..4).map(|_| super::free_port()).collect();
        let mut cmd = Command::new(binary);
        cmd.args(["agent", "-server", "-bootstrap-expect=2", "-node=stolon-noleader"])
            .args(["-bind=127.0.0.1", "-client=127.0.0.1", "-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1"])
            .arg(format!("-data-dir={}", dir.path().join("data").display()))
            .arg(format!("-http-port={}", ports[0]))
            .arg(format!("-serf-lan-port={}", ports[1]))
            .arg(format!("-serf-wan-port={}", ports[2]))
            .arg(format!("-server-port={}", ports[3]));
        let log = dir.path().join("consul.log");
        let child = super::process::spawn_logged(cmd, &log)?;
        let server = LeaderlessConsul { _dir: dir, child, http_port: ports[0] };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", server.http_port)).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("leaderless consul did not serve HTTP in 30 s:\n{}", super::process::log_tail(&log, 20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The HTTP API URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

impl Drop for LeaderlessConsul {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A [`StoreFactory`] for a Consul agent, able to start private persistent servers for outage cases.
pub struct ConsulFactory {
    inner: ConfigFactory,
    timeout: Duration,
    _server: Arc<ConsulServer>,
}

impl ConsulFactory {
    /// A factory for stores on `server`, with a store timeout of `timeout`.
    pub fn new(server: Arc<ConsulServer>, timeout: Duration) -> Self {
        let mut template = server.config("template");
        template.timeout = timeout;
        ConsulFactory { inner: ConfigFactory::new(template), timeout, _server: server }
    }
}

#[async_trait]
impl StoreFactory for ConsulFactory {
    async fn open(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        self.inner.open(cluster).await
    }

    async fn open_unreachable(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        self.inner.open_unreachable(cluster).await
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn private_server(&self) -> Option<anyhow::Result<PrivateServer>> {
        let timeout = self.timeout;
        let started = tokio::task::spawn_blocking(ConsulServer::start_persistent).await;
        Some(match started {
            Ok(Ok(server)) => {
                let server = Arc::new(server);
                Ok(PrivateServer {
                    control: Box::new(BlockingControl {
                        server: server.clone(),
                        stop: ConsulServer::stop,
                        start: ConsulServer::restart,
                    }),
                    factory: Arc::new(ConsulFactory::new(server, timeout)),
                })
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        })
    }
}
