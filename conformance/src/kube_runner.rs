//! The runner's [`StoreFactory`] on a user's Kubernetes cluster, with only a kubeconfig (or the in-cluster
//! service account): member records live on pods, so the factory creates its own member-owner pods in the
//! store's namespace, pods that are never scheduled (a scheduling gate holds them), and deletes them (and
//! the cases' ConfigMaps) in [`KubeRunnerFactory::clean_up`], which the runner calls after the cases, also
//! on failure or interrupt.
//!
//! Every object it creates carries the label [`RUN_LABEL`] with the run's id, so that leftovers of a run
//! that was killed can be found: `kubectl delete pods -l stolon-conformance-run`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use stolon_store::{MemberKind, Store, StoreConfig, StoreError, StoreResult};
use tokio::sync::Mutex;

use crate::StoreFactory;

/// The label on every pod the runner creates; its value is the run's id.
pub const RUN_LABEL: &str = "stolon-conformance-run";

/// The scheduling gate that keeps the runner's pods from ever being scheduled.
pub const SCHEDULING_GATE: &str = "stolon-rs.io/conformance-never-scheduled";

/// The image named by the runner's pods; never pulled, since the pods are never scheduled.
const IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Opens Kubernetes stores from a configuration template, in pods this factory creates.
pub struct KubeRunnerFactory {
    template: StoreConfig,
    client: Client,
    namespace: String,
    run_id: String,
    /// Client pods already created, per cluster.
    client_pods: Mutex<BTreeSet<String>>,
    /// The clusters the cases used (their ConfigMaps are deleted at the end).
    clusters: Mutex<BTreeSet<String>>,
    /// A directory for the unreachable-endpoint kubeconfigs.
    scratch: tempfile::TempDir,
}

impl KubeRunnerFactory {
    /// Resolves the client and namespace of `template` as the store does.
    pub async fn new(template: StoreConfig) -> anyhow::Result<KubeRunnerFactory> {
        let (client, namespace) = stolon_store::kubernetes::client(&template).await?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let run_id = format!("{}-{nanos:x}", std::process::id());
        let scratch = tempfile::Builder::new().prefix("stolon-conformance-").tempdir()?;
        Ok(KubeRunnerFactory {
            template,
            client,
            namespace,
            run_id,
            client_pods: Mutex::default(),
            clusters: Mutex::default(),
            scratch,
        })
    }

    /// The namespace of the stores and pods.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// This run's value of [`RUN_LABEL`].
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn config(&self, cluster: &str, pod: Option<&str>) -> StoreConfig {
        let mut c = self.template.clone();
        c.cluster_name = cluster.to_string();
        c.kube.namespace = Some(self.namespace.clone());
        c.kube.pod_name = pod.map(str::to_string);
        c
    }

    async fn connect(&self, cluster: &str, pod: Option<&str>) -> StoreResult<Arc<dyn Store>> {
        self.clusters.lock().await.insert(cluster.to_string());
        stolon_store::connect(&self.config(cluster, pod)).await
    }

    /// Creates pod `name` with `labels` (plus [`RUN_LABEL`]), gated so that it is never scheduled. A pod of
    /// that name left by an earlier run of the runner is replaced.
    async fn create_pod(&self, name: &str, mut labels: serde_json::Map<String, serde_json::Value>) -> StoreResult<()> {
        labels.insert(RUN_LABEL.into(), self.run_id.clone().into());
        let pod: Pod = serde_json::from_value(pod_manifest(name, labels)).map_err(|e| harness_err(name, e))?;
        let created = match self.pods().create(&PostParams::default(), &pod).await {
            Ok(created) => created,
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let old = self.pods().get(name).await.map_err(|e| harness_err(name, e))?;
                if !old.metadata.labels.unwrap_or_default().contains_key(RUN_LABEL) {
                    return Err(harness_err(name, "a pod of that name exists and was not made by the runner"));
                }
                self.delete_pod(name).await?;
                self.pods().create(&PostParams::default(), &pod).await.map_err(|e| harness_err(name, e))?
            }
            Err(e) => return Err(harness_err(name, e)),
        };
        if !is_gated(&created) {
            // An API server without scheduling gates (before Kubernetes 1.27) drops the field: the pod would
            // be scheduled and run.
            self.delete_pod(name).await?;
            return Err(harness_err(
                name,
                "the API server dropped the pod's scheduling gate (Kubernetes 1.27+ needed)",
            ));
        }
        Ok(())
    }

    /// Deletes pod `name` at once and waits (up to 30 s) until it is gone.
    async fn delete_pod(&self, name: &str) -> StoreResult<()> {
        match self.pods().delete(name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(e) => return Err(harness_err(name, e)),
        }
        for _ in 0..300 {
            match self.pods().get_opt(name).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return Err(harness_err(name, e)),
            }
        }
        Err(harness_err(name, "still present 30 s after its deletion"))
    }

    /// Deletes every pod of this run and the ConfigMaps of the clusters the cases used. Returns how many
    /// objects it deleted, or what it could not delete.
    pub async fn clean_up(&self) -> anyhow::Result<usize> {
        let mut deleted = 0;
        let mut failures = Vec::new();
        let selector = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run_id));
        match self.pods().list(&selector).await {
            Ok(pods) => {
                for name in pods.items.into_iter().filter_map(|p| p.metadata.name) {
                    match self.delete_pod(&name).await {
                        Ok(()) => deleted += 1,
                        Err(e) => failures.push(format!("pod {name}: {e}")),
                    }
                }
            }
            Err(e) => failures.push(format!("listing the run's pods: {e}")),
        }
        let configmaps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        for cluster in self.clusters.lock().await.iter() {
            let name = stolon_store::kubernetes::resource_name(cluster);
            match configmaps.delete(&name, &DeleteParams::default()).await {
                Ok(_) => deleted += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => failures.push(format!("configmap {name}: {e}")),
            }
        }
        if failures.is_empty() {
            Ok(deleted)
        } else {
            anyhow::bail!("in namespace {}: {}", self.namespace, failures.join("; "))
        }
    }
}

/// A pod that never runs: gated, with the restricted Pod Security profile and tiny resources, so that the
/// namespaces' admission policies accept it.
fn pod_manifest(name: &str, labels: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "schedulingGates": [{ "name": SCHEDULING_GATE }],
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65535,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "containers": [{
                "name": "member-owner",
                "image": IMAGE,
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } },
                "resources": {
                    "requests": { "cpu": "1m", "memory": "8Mi" },
                    "limits": { "cpu": "1m", "memory": "8Mi" },
                },
            }],
        },
    })
}

/// Whether `pod` carries the runner's scheduling gate.
fn is_gated(pod: &Pod) -> bool {
    let gates = pod.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref());
    gates.is_some_and(|g| g.iter().any(|g| g.name == SCHEDULING_GATE))
}

fn harness_err(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { key: format!("pods/{key}"), reason: format!("conformance runner: {e}") }
}

#[async_trait]
impl StoreFactory for KubeRunnerFactory {
    /// A client running in a pod of its own (`<cluster>-client`, without component labels, so never listed).
    async fn open(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        let pod = format!("{cluster}-client");
        let mut created = self.client_pods.lock().await;
        if !created.contains(&pod) {
            self.create_pod(&pod, serde_json::Map::new()).await?;
            created.insert(pod.clone());
        }
        drop(created);
        self.connect(cluster, Some(&pod)).await
    }

    async fn open_member(&self, cluster: &str, kind: MemberKind, id: &str) -> StoreResult<Arc<dyn Store>> {
        let mut labels = serde_json::Map::new();
        labels.insert(stolon_store::kubernetes::COMPONENT_LABEL.into(), kind.component_label().into());
        labels.insert(stolon_store::kubernetes::CLUSTER_LABEL.into(), cluster.into());
        self.create_pod(id, labels).await?;
        self.connect(cluster, Some(id)).await
    }

    async fn end_member_owner(&self, _cluster: &str, _kind: MemberKind, id: &str) -> StoreResult<()> {
        self.delete_pod(id).await
    }

    /// A store whose API server refuses connections: a kubeconfig naming a closed local port.
    async fn open_unreachable(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        let path = self.scratch.path().join(format!("unreachable-{cluster}.kubeconfig"));
        let server = format!("https://127.0.0.1:{}", crate::servers::closed_port());
        std::fs::write(&path, unreachable_kubeconfig(&server)).map_err(|e| harness_err("kubeconfig", e))?;
        let mut c = self.config(cluster, Some("unreachable"));
        c.kube.kubeconfig = Some(path);
        c.kube.context = None;
        stolon_store::connect(&c).await
    }

    fn timeout(&self) -> Duration {
        self.template.timeout
    }
}

/// A kubeconfig whose only cluster is `server` (nothing else is needed: the connection is refused first).
fn unreachable_kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: unreachable\n  cluster:\n    server: {server}\n\
         users:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: unreachable\n  context: {{cluster: unreachable, \
         user: nobody}}\ncurrent-context: unreachable\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_gated_labelled_and_restricted() {
        let mut labels = serde_json::Map::new();
        labels.insert(RUN_LABEL.into(), "r1".into());
        let pod: Pod = serde_json::from_value(pod_manifest("k1", labels)).unwrap();
        assert!(is_gated(&pod));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.scheduling_gates.unwrap()[0].name, SCHEDULING_GATE);
        assert_eq!(pod.metadata.labels.unwrap()[RUN_LABEL], "r1");
        assert_eq!(spec.security_context.unwrap().run_as_non_root, Some(true));
    }

    #[test]
    fn the_unreachable_kubeconfig_parses() {
        let kc = kube::config::Kubeconfig::from_yaml(&unreachable_kubeconfig("https://127.0.0.1:1")).unwrap();
        assert_eq!(kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(), Some("https://127.0.0.1:1"));
    }
}
