//! The store of one scenario: a private etcd (v3 or v2 API) or Consul server, or a namespace on the run's
//! shared kube-apiserver; how the daemons are pointed at it; and faults on the store itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use stolon_conformance::servers::{ConsulServer, EtcdServer, KubeApiServer, KubeFactory};
use stolon_core::stolon_store::{StoreBackend, StoreConfig};

use super::R;
use super::process::send_signal;

/// The timeout of the harness's own store requests and of the daemons' (`--store-timeout`).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The backends a scenario can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    EtcdV3,
    EtcdV2,
    Consul,
    Kubernetes,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 4] = [Backend::EtcdV3, Backend::EtcdV2, Backend::Consul, Backend::Kubernetes];

    /// The `--store-backend` value.
    pub fn flag(self) -> &'static str {
        match self {
            Backend::EtcdV3 => "etcdv3",
            Backend::EtcdV2 => "etcdv2",
            Backend::Consul => "consul",
            Backend::Kubernetes => "kubernetes",
        }
    }

    /// Parses a `STOLON_TEST_STORE_BACKEND` value (`etcd` is etcd v2, as in stolon).
    pub fn parse(s: &str) -> R<Backend> {
        Ok(match s {
            "etcdv3" => Backend::EtcdV3,
            "etcdv2" | "etcd" => Backend::EtcdV2,
            "consul" => Backend::Consul,
            "kubernetes" => Backend::Kubernetes,
            other => bail!("STOLON_TEST_STORE_BACKEND={other:?}: expected etcdv2, etcdv3, consul or kubernetes"),
        })
    }
}

/// The run's kube-apiserver and the namespace every Kubernetes scenario uses (clusters have unique names, so
/// they share it). Started on first use: a control plane takes seconds.
pub struct KubeShared {
    factory: KubeFactory,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

/// The run's control plane, started on first use and stopped by [`shutdown_shared_servers`].
static KUBE: tokio::sync::Mutex<Option<Arc<KubeShared>>> = tokio::sync::Mutex::const_new(None);

/// Stops the servers shared by a binary's scenarios (the kube-apiserver and its etcd) and removes their
/// directories. Called by the runner once every scenario has finished.
pub async fn shutdown_shared_servers() {
    KUBE.lock().await.take();
}

impl KubeShared {
    async fn get() -> R<Arc<KubeShared>> {
        let mut shared = KUBE.lock().await;
        if let Some(k) = shared.as_ref() {
            return Ok(k.clone());
        }
        let started = Self::start().await?;
        *shared = Some(started.clone());
        Ok(started)
    }

    async fn start() -> R<Arc<KubeShared>> {
        // Its processes are watched by a reaper tied to this test process, not to a thread.
        let server = tokio::task::spawn_blocking(KubeApiServer::start).await??;
        let factory = KubeFactory::new(Arc::new(server), STORE_TIMEOUT).await?;
        // The daemons find their namespace in the kubeconfig's context, as they would in a pod.
        let dir = tempfile::Builder::new().prefix("stolon-e2e-kube").tempdir()?;
        let text = std::fs::read_to_string(factory.server().stolon_kubeconfig())?;
        anyhow::ensure!(text.contains("  context:\n"), "unexpected kubeconfig layout");
        let text = text.replace("  context:\n", &format!("  context:\n    namespace: {}\n", factory.namespace()));
        let kubeconfig = dir.path().join("stolon.kubeconfig");
        std::fs::write(&kubeconfig, text)?;
        Ok(Arc::new(KubeShared { factory, kubeconfig, _dir: dir }))
    }
}

enum Server {
    Etcd(Arc<EtcdServer>),
    Consul(Arc<ConsulServer>),
    Kube(Arc<KubeShared>),
}

/// A running store for one cluster.
pub struct TestStore {
    backend: Backend,
    server: Server,
}

impl TestStore {
    /// Starts the store (blocking work runs off the async threads).
    pub async fn start(backend: Backend) -> R<TestStore> {
        let server = match backend {
            // Started on this thread, not on tokio's blocking pool: the servers die with the thread that
            // spawned them (PR_SET_PDEATHSIG), and pool threads exit when idle.
            Backend::EtcdV3 | Backend::EtcdV2 => {
                Server::Etcd(Arc::new(EtcdServer::start().context("starting etcd (etcd-server package)")?))
            }
            Backend::Consul => Server::Consul(Arc::new(
                ConsulServer::start_persistent().context("starting consul (scripts/build-consul)")?,
            )),
            Backend::Kubernetes => Server::Kube(KubeShared::get().await.context("starting kube-apiserver")?),
        };
        Ok(TestStore { backend, server })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The flags pointing a daemon or stolonctl at this store for `cluster`.
    pub fn flags(&self, cluster: &str) -> Vec<String> {
        let mut f = vec!["--cluster-name".to_string(), cluster.to_string()];
        f.extend(["--store-backend".to_string(), self.backend.flag().to_string()]);
        f.extend(["--store-timeout".to_string(), format!("{}s", STORE_TIMEOUT.as_secs())]);
        match &self.server {
            Server::Etcd(s) => f.extend(["--store-endpoints".to_string(), s.endpoint()]),
            Server::Consul(s) => f.extend(["--store-endpoints".to_string(), s.endpoint()]),
            Server::Kube(_) => f.extend(["--kube-resource-kind".to_string(), "configmap".to_string()]),
        }
        f
    }

    /// The environment of a component running in pod `pod` (Kubernetes only).
    pub fn env(&self, pod: &str) -> Vec<(String, String)> {
        match &self.server {
            Server::Kube(k) => vec![
                ("KUBECONFIG".to_string(), k.kubeconfig.to_string_lossy().into_owned()),
                ("POD_NAME".to_string(), pod.to_string()),
            ],
            _ => Vec::new(),
        }
    }

    /// Prepares what a component needs before it starts: on Kubernetes its pod, as an API object labelled
    /// with the cluster and the component (`stolon-keeper`, `stolon-sentinel`, `stolon-proxy`).
    pub async fn prepare_component(&self, cluster: &str, pod: &str, component: &str) -> R<()> {
        if let Server::Kube(k) = &self.server {
            let labels = serde_json::json!({ "stolon-cluster": cluster, "component": component });
            k.factory.create_pod(pod, labels).await.with_context(|| format!("creating pod {pod}"))?;
        }
        Ok(())
    }

    /// The labels of pod `pod` (Kubernetes only: the other stores have no pods).
    pub async fn pod_labels(&self, pod: &str) -> R<std::collections::BTreeMap<String, String>> {
        match &self.server {
            Server::Kube(k) => k.factory.pod_labels(pod).await,
            _ => bail!("pod labels exist on Kubernetes only"),
        }
    }

    /// The configuration of the harness's own client.
    pub fn client_config(&self, cluster: &str) -> StoreConfig {
        let mut c = match &self.server {
            Server::Etcd(s) => {
                let backend = if self.backend == Backend::EtcdV2 { StoreBackend::EtcdV2 } else { StoreBackend::EtcdV3 };
                s.config(backend, cluster)
            }
            Server::Consul(s) => s.config(cluster),
            Server::Kube(k) => k.factory.config(cluster, None),
        };
        c.timeout = STORE_TIMEOUT;
        c
    }

    /// The store server's log, when it has its own.
    pub fn log_path(&self) -> Option<PathBuf> {
        match &self.server {
            Server::Etcd(s) => Some(s.log_path()),
            Server::Consul(s) => Some(s.log_path()),
            Server::Kube(_) => None,
        }
    }

    /// Stops the store server (its data is kept). On Kubernetes the shared API server is stopped: only
    /// scenarios that own their cluster's store should do that, so it is refused there.
    pub async fn stop(&self) -> R<()> {
        match &self.server {
            Server::Etcd(s) => s.stop(),
            Server::Consul(s) => s.stop(),
            Server::Kube(_) => bail!("the kube-apiserver is shared by the run's scenarios and cannot be stopped"),
        }
    }

    /// Starts the store server again after [`TestStore::stop`].
    pub async fn start_again(&self) -> R<()> {
        match &self.server {
            // On this thread, for the same reason as in `start`.
            Server::Etcd(s) => s.restart(),
            Server::Consul(s) => s.restart(),
            Server::Kube(_) => bail!("the kube-apiserver is shared by the run's scenarios and cannot be restarted"),
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) the store server.
    pub fn freeze(&self, frozen: bool) -> R<()> {
        let pid = match &self.server {
            Server::Etcd(s) => s.pid().map(|p| p as i32),
            Server::Consul(s) => s.pid(),
            Server::Kube(_) => bail!("the kube-apiserver is shared by the run's scenarios and cannot be frozen"),
        };
        let pid = pid.context("the store server is not running")?;
        send_signal(pid, if frozen { libc::SIGSTOP } else { libc::SIGCONT });
        Ok(())
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        // A store left frozen by a failed scenario would hang its own shutdown.
        let _ = self.freeze(false);
    }
}
