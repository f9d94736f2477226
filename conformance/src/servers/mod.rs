//! Real servers for the tests, started on free loopback ports in temporary directories.
//!
//! Binaries are looked up in the environment (`ETCD_BIN`, ...) then in `PATH`; a missing binary is an
//! error that says how to install it: tests never skip silently.

mod consul;
mod etcd;
mod kube;
mod postgres;
mod process;

use std::net::TcpListener;

pub use self::kube::{KubeApiServer, KubeFactory, RBAC_MANIFEST, TEST_USER, shipped_rbac};
pub use consul::{ConsulFactory, ConsulServer, LeaderlessConsul, consul_binary};
pub use etcd::{EtcdFactory, EtcdServer};
pub use postgres::{
    POSTGRES_TEST_PASSWORD, POSTGRES_TEST_USER, PostgresServer, chown_for_postgres, postgres_bin_dir, postgres_command,
    postgres_run_as,
};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
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
