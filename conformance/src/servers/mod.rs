//! Real servers for the tests, started on free loopback ports in temporary directories.
//!
//! Binaries are looked up in the environment (`ETCD_BIN`, ...) then in `PATH`; a missing binary is an
//! error that says how to install it: tests never skip silently.

mod consul;
mod etcd;
mod kube;
mod pki;
mod postgres;
mod process;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

pub use self::kube::{KubeApiServer, KubeFactory, RBAC_MANIFEST, TEST_USER, grant_to_test_user};
pub use consul::{ConsulFactory, ConsulServer, LeaderlessConsul, consul_binary};
pub use etcd::{EtcdFactory, EtcdServer};
pub use pki::TestPki;
pub use postgres::{
    DEBIAN_BIN_DIR, POSTGRES_TEST_PASSWORD, POSTGRES_TEST_USER, PostgresServer, check_server_major, chown_for_postgres,
    postgres_bin_dir, postgres_command, postgres_other_bin_dir, postgres_requested_major, postgres_run_as,
};

/// A loopback port that was free a moment ago and that this process has not handed out before: a server
/// often binds its port long after it was chosen (a keeper's PostgreSQL only after its base backup), and the
/// kernel may offer that port again to the next caller in the meantime.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let probe = || TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..1000 {
        let port = probe();
        if port != 0 && handed_out.insert(port) {
            return port;
        }
    }
    probe()
}

/// A loopback port on which nothing listens (connections are refused).
pub fn closed_port() -> u16 {
    free_port()
}

/// Adapts a test server's blocking stop and start functions to [`crate::ServerControl`], running them on
/// tokio's blocking pool.
pub(crate) struct BlockingControl<S> {
    pub(crate) server: std::sync::Arc<S>,
    pub(crate) stop: fn(&S) -> anyhow::Result<()>,
    pub(crate) start: fn(&S) -> anyhow::Result<()>,
}

#[async_trait::async_trait]
impl<S: Send + Sync + 'static> crate::ServerControl for BlockingControl<S> {
    async fn stop(&self) -> anyhow::Result<()> {
        let (server, stop) = (self.server.clone(), self.stop);
        tokio::task::spawn_blocking(move || stop(&server)).await?
    }

    async fn start(&self) -> anyhow::Result<()> {
        let (server, start) = (self.server.clone(), self.start);
        tokio::task::spawn_blocking(move || start(&server)).await?
    }
}
