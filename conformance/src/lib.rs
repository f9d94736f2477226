//! The shared conformance suite of stolon-rs stores.
//!
//! Every backend of `stolon-store` must pass every case here against a real server. The cases check the
//! contract written on [`stolon_store::Store`] and [`stolon_store::Election`]: compare-and-swap, member
//! records that expire, cluster isolation, large values, exclusive elections with prompt hand-over, watches
//! and behaviour during a server outage.
//!
//! Run it against your own store with the `stolon-conformance` binary, or embed it: implement
//! [`StoreFactory`] (or use [`ConfigFactory`]) and call [`runner::run`].

pub mod cases;
pub mod kube_runner;
pub mod runner;
pub mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stolon_store::{MemberKind, Store, StoreConfig, StoreResult};

pub use cases::{Case, Outcome};

/// Opens fresh stores for the cases. Each call must return an independent client (its own connection
/// and leases), so that dropping one behaves like a crashed process.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// Opens a client on cluster `cluster`.
    async fn open(&self, cluster: &str) -> StoreResult<Arc<dyn Store>>;

    /// Opens a client that publishes the member record `id` of `kind` (on Kubernetes: the process running in
    /// pod `id`; the factory creates the pod). TTL backends just open a client.
    async fn open_member(&self, cluster: &str, _kind: MemberKind, _id: &str) -> StoreResult<Arc<dyn Store>> {
        self.open(cluster).await
    }

    /// Ends the owner of a member record the way the platform does (Kubernetes: deletes the pod). TTL
    /// backends need nothing: the owner simply stops refreshing.
    async fn end_member_owner(&self, _cluster: &str, _kind: MemberKind, _id: &str) -> StoreResult<()> {
        Ok(())
    }

    /// Opens a client whose endpoints refuse connections (a closed local port).
    async fn open_unreachable(&self, cluster: &str) -> StoreResult<Arc<dyn Store>>;

    /// The store timeout the clients use.
    fn timeout(&self) -> Duration;

    /// Starts a private server with its own factory for cases that stop and restart the server. `None` when
    /// the suite cannot control the server (the runner against a user's store).
    async fn private_server(&self) -> Option<anyhow::Result<PrivateServer>> {
        None
    }
}

/// Stops and starts a server that the suite owns.
#[async_trait]
pub trait ServerControl: Send + Sync {
    /// Stops the server (its data is kept).
    async fn stop(&self) -> anyhow::Result<()>;
    /// Starts it again on the same address with the same data, returning once it serves.
    async fn start(&self) -> anyhow::Result<()>;
}

/// A server owned by one case, with a factory for stores on it. Dropping it stops the server.
pub struct PrivateServer {
    /// Stops and starts the server.
    pub control: Box<dyn ServerControl>,
    /// Opens stores on it.
    pub factory: Arc<dyn StoreFactory>,
}

/// A factory from a [`StoreConfig`] template: every store is `connect(template with the case's cluster)`.
pub struct ConfigFactory {
    template: StoreConfig,
}

impl ConfigFactory {
    /// A factory for stores like `template` (its cluster name is replaced per case).
    pub fn new(template: StoreConfig) -> Self {
        ConfigFactory { template }
    }

    fn config_for(&self, cluster: &str) -> StoreConfig {
        let mut c = self.template.clone();
        c.cluster_name = cluster.to_string();
        c
    }
}

#[async_trait]
impl StoreFactory for ConfigFactory {
    async fn open(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        stolon_store::connect(&self.config_for(cluster)).await
    }

    async fn open_unreachable(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        let port = servers::closed_port();
        let mut c = self.config_for(cluster);
        c.endpoints = stolon_store::Endpoint::parse_list(&format!("http://127.0.0.1:{port}"))?;
        stolon_store::connect(&c).await
    }

    fn timeout(&self) -> Duration {
        self.template.timeout
    }
}

/// A cluster name unique to this process and call, so that cases never see each other's data.
pub fn unique_cluster_name(case: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("conf-{}-{}-{:x}{:x}", case.replace('_', "-"), std::process::id(), nanos, n)
}
