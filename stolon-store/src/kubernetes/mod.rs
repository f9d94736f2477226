//! The Kubernetes backend, laid out exactly as stolon's `kubernetes` store so that a running stolon cluster
//! can be taken over component by component.
//!
//! In the namespace of `--kube-namespace` (else the kubeconfig's or the service account's):
//! - ConfigMap `stolon-cluster-<cluster>`: the cluster document in its annotation `stolon-clusterdata` (the
//!   revision is the ConfigMap's `resourceVersion`), and the sentinels' leader record in the annotation
//!   `control-plane.alpha.kubernetes.io/leader`, in client-go's leader-election record format;
//! - member records: the annotation `stolon-status` on each component's own pod (`POD_NAME`), listed by the
//!   labels `component=stolon-keeper|stolon-sentinel|stolon-proxy` and `stolon-cluster=<cluster>`. They go away
//!   with the pod; TTLs are ignored.

mod clusterdata;
mod config;
mod configmap;
mod election;
mod errors;
mod member_watch;
mod members;
mod record;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;

pub use clusterdata::CLUSTERDATA_ANNOTATION;
pub use config::{CLUSTER_LABEL, COMPONENT_LABEL, RESOURCE_PREFIX, require_pod_name, resource_name};
pub use members::STATUS_ANNOTATION;
pub use record::{LEADER_ANNOTATION, LeaderRecord};

use crate::timeout::bounded;
use crate::{
    Capabilities, Document, Election, Leadership, MemberExpiry, MemberKind, MemberRecord, MemberWatch, Revision, Store,
    StoreBackend, StoreConfig, StoreResult, WatchDelivery, WatchStream,
};
use errors::Op;

/// The largest cluster document guaranteed to fit: the API server limits all annotations of an object to
/// 256 KiB together, and the ConfigMap also carries the leader record (a few hundred bytes).
pub const MAX_DOCUMENT_SIZE: usize = 252 * 1024;

/// Leader leases are whole seconds, and the renew deadline is two thirds of the lease: below 3 s too little
/// room is left for API server latency. TTLs are rounded up to this.
pub const MIN_TTL: Duration = Duration::from_secs(3);

/// A [`Store`] on the Kubernetes API.
pub struct KubeStore {
    inner: Arc<Inner>,
}

/// What every operation needs: the client, where our objects are, who we are, and the request bound.
pub(crate) struct Inner {
    client: kube::Client,
    namespace: String,
    cluster: String,
    resource: String,
    pod_name: Option<String>,
    timeout: Duration,
    server: String,
    /// What this process last published on its pod.
    published: tokio::sync::Mutex<Option<crate::refresh::Published>>,
}

impl KubeStore {
    /// Builds a client from the kubeconfig or in-cluster configuration. No request is made: an unreachable API
    /// server fails the first operation (within the store timeout), not this call.
    pub async fn connect(config: &StoreConfig) -> StoreResult<Self> {
        config::validate(config)?;
        let resolved = config::resolve(config).await?;
        let server = resolved.client.cluster_url.to_string();
        let client = kube::Client::try_from(resolved.client)
            .map_err(|e| crate::StoreError::Config(format!("building the Kubernetes client for {server}: {e}")))?;
        Ok(KubeStore {
            inner: Arc::new(Inner {
                client,
                namespace: resolved.namespace,
                cluster: config.cluster_name.clone(),
                resource: resource_name(&config.cluster_name),
                pod_name: config.kube.pod_name.clone().filter(|p| !p.is_empty()),
                timeout: config.timeout,
                server,
                published: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The namespace this store works in.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }
}

/// A Kubernetes client and namespace resolved exactly as the store resolves them from `config` (kubeconfig
/// or in-cluster configuration, `--kube-context`, `--kube-namespace`), with the store timeout on connecting.
/// For tools that manage objects next to a cluster's, such as the conformance runner's pods.
pub async fn client(config: &StoreConfig) -> StoreResult<(kube::Client, String)> {
    let resolved = config::resolve(config).await?;
    let server = resolved.client.cluster_url.to_string();
    let client = kube::Client::try_from(resolved.client)
        .map_err(|e| crate::StoreError::Config(format!("building the Kubernetes client for {server}: {e}")))?;
    Ok((client, resolved.namespace))
}

impl Inner {
    fn configmaps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Describes a request for errors.
    fn op<'a>(&'a self, verb: &'static str, resource: &'static str, name: Option<&'a str>) -> Op<'a> {
        Op { verb, resource, name, namespace: &self.namespace }
    }

    /// Runs one API request bounded by the store timeout, mapping its error.
    async fn call<T>(&self, op: Op<'_>, fut: impl Future<Output = Result<T, kube::Error>>) -> StoreResult<T> {
        let key = format!("{} {}", op.verb, op.key());
        bounded(self.timeout, &key, async { fut.await.map_err(|e| errors::map_err(e, op, &self.server)) }).await
    }
}

#[async_trait]
impl Store for KubeStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Kubernetes
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            member_expiry: MemberExpiry::OwnerDeleted,
            min_ttl: MIN_TTL,
            watch: WatchDelivery::EveryChange,
            max_document_size: Some(MAX_DOCUMENT_SIZE),
        }
    }

    async fn get_cluster_data(&self) -> StoreResult<Option<Document>> {
        clusterdata::get(&self.inner).await
    }

    async fn put_cluster_data_cas(&self, value: &[u8], expected: Option<&Revision>) -> StoreResult<Revision> {
        let mode = match expected {
            None => clusterdata::Mode::CreateOnly,
            Some(rev) => clusterdata::Mode::Expect(rev),
        };
        clusterdata::put(&self.inner, value, mode).await
    }

    async fn put_cluster_data(&self, value: &[u8]) -> StoreResult<Revision> {
        clusterdata::put(&self.inner, value, clusterdata::Mode::Always).await
    }

    async fn set_member(&self, kind: MemberKind, id: &str, value: &[u8], _ttl: Duration) -> StoreResult<()> {
        members::set(&self.inner, kind, id, value).await
    }

    async fn delete_member(&self, kind: MemberKind, id: &str) -> StoreResult<()> {
        members::delete(&self.inner, kind, id).await
    }

    async fn list_members(&self, kind: MemberKind) -> StoreResult<Vec<MemberRecord>> {
        members::list(&self.inner, kind).await
    }

    async fn watch_cluster_data(&self, after: Option<&Revision>) -> StoreResult<WatchStream> {
        watch::watch(self.inner.clone(), after).await
    }

    async fn set_member_labels(&self, labels: &[(&str, Option<&str>)]) -> StoreResult<bool> {
        members::set_labels(&self.inner, labels).await.map(|()| true)
    }

    async fn watch_members(&self, kind: MemberKind) -> StoreResult<MemberWatch> {
        member_watch::watch_members(self.inner.clone(), kind).await
    }
}

#[async_trait]
impl Election for KubeStore {
    async fn campaign(&self, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
        election::campaign(self.inner.clone(), candidate, ttl).await
    }

    async fn leader(&self) -> StoreResult<Option<String>> {
        election::leader(&self.inner).await
    }
}
