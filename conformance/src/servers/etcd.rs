//! A real etcd server (Debian's `etcd-server`, 3.4+) with both the v3 and the v2 API enabled.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use stolon_store::{Store, StoreBackend, StoreConfig, StoreResult};

use super::BlockingControl;
use super::free_port;
use super::process::{find_binary, log_tail, spawn_logged};
use crate::{ConfigFactory, PrivateServer, StoreFactory};

/// A single-member etcd on loopback, stopped when dropped.
pub struct EtcdServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Mutex<Option<Child>>,
}

impl EtcdServer {
    /// Starts etcd on free ports in a new temporary directory and waits until it is healthy.
    pub fn start() -> anyhow::Result<EtcdServer> {
        let binary = find_binary(
            "etcd",
            "ETCD_BIN",
            &["/usr/bin", "/usr/local/bin"],
            "install it with `apt-get install etcd-server` (or run scripts/install-test-deps)",
        )?;
        let dir = tempfile::Builder::new().prefix("stolon-etcd-").tempdir()?;
        let server =
            EtcdServer { binary, dir, client_port: free_port(), peer_port: free_port(), child: Mutex::new(None) };
        server.spawn()?;
        Ok(server)
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The server's pid while it runs (to freeze it with SIGSTOP).
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().expect("etcd child lock").as_ref().map(|c| c.id())
    }

    fn spawn(&self) -> anyhow::Result<()> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--name", "stolon-test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("stolon-test={peer}")])
            .args(["--enable-v2=true", "--log-level", "warn"])
            // A test store needs no durability against a machine crash (a killed etcd keeps what the page
            // cache holds), and its WAL fsyncs on a disk shared with builds took seconds under load: raft
            // requests timed out until the store was unusable for a whole scenario.
            .arg("--unsafe-no-fsync");
        let child = spawn_logged(cmd, &self.log_path())?;
        *self.child.lock().expect("etcd child lock") = Some(child);
        self.wait_healthy(Duration::from_secs(30))
    }

    fn wait_healthy(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if self.healthy() {
                return Ok(());
            }
            if let Some(child) = self.child.lock().expect("etcd child lock").as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("etcd exited with {status} during start-up:\n{}", log_tail(&self.log_path(), 20));
            }
            if start.elapsed() > limit {
                bail!("etcd not healthy after {limit:?}:\n{}", log_tail(&self.log_path(), 20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        let probe = || -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", self.client_port))?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        probe().is_ok_and(|r| r.contains("\"health\":\"true\""))
    }

    /// Stops the server (SIGKILL, as a crash would); its data is kept for [`EtcdServer::restart`].
    pub fn stop(&self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.lock().expect("etcd child lock").take() {
            child.kill().context("killing etcd")?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again with the same ports and data.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// A store configuration for this server.
    pub fn config(&self, backend: StoreBackend, cluster: &str) -> StoreConfig {
        let mut c = StoreConfig::new(backend, cluster);
        c.endpoints = stolon_store::Endpoint::parse_list(&self.endpoint()).expect("own endpoint parses");
        c
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A [`StoreFactory`] for an etcd server (v3 or v2 API), able to start private servers for outage cases.
pub struct EtcdFactory {
    inner: ConfigFactory,
    backend: StoreBackend,
    timeout: Duration,
    _server: Option<Arc<EtcdServer>>,
}

impl EtcdFactory {
    /// A factory for `backend` stores on `server`, with a store timeout of `timeout`.
    pub fn new(server: Arc<EtcdServer>, backend: StoreBackend, timeout: Duration) -> Self {
        let mut template = server.config(backend, "template");
        template.timeout = timeout;
        EtcdFactory { inner: ConfigFactory::new(template), backend, timeout, _server: Some(server) }
    }
}

#[async_trait]
impl StoreFactory for EtcdFactory {
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
        let (backend, timeout) = (self.backend, self.timeout);
        let started = tokio::task::spawn_blocking(EtcdServer::start).await;
        Some(match started {
            Ok(Ok(server)) => {
                let server = Arc::new(server);
                Ok(PrivateServer {
                    control: Box::new(BlockingControl {
                        server: server.clone(),
                        stop: EtcdServer::stop,
                        start: EtcdServer::restart,
                    }),
                    factory: Arc::new(EtcdFactory::new(server, backend, timeout)),
                })
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        })
    }
}
