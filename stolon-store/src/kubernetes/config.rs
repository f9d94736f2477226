//! Where the Kubernetes API is and who we are: kubeconfig or in-cluster configuration, namespace, pod name,
//! and the names stolon gives its objects.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{StoreConfig, StoreError, StoreResult};

/// The prefix of the ConfigMap holding a cluster's data and leader record: `stolon-cluster-<cluster>`.
pub const RESOURCE_PREFIX: &str = "stolon-cluster";
/// The label naming the cluster a pod belongs to.
pub const CLUSTER_LABEL: &str = "stolon-cluster";
/// The label naming the component a pod runs (`stolon-keeper`, `stolon-sentinel`, `stolon-proxy`).
pub const COMPONENT_LABEL: &str = "component";

/// A resolved client configuration.
pub(crate) struct Resolved {
    /// The kube client configuration.
    pub client: kube::Config,
    /// The namespace of every object we touch.
    pub namespace: String,
}

/// The ConfigMap name of `cluster`.
pub fn resource_name(cluster: &str) -> String {
    format!("{RESOURCE_PREFIX}-{cluster}")
}

/// Returns the pod name (`POD_NAME`) a keeper, sentinel or proxy needs on Kubernetes, or a start-up error
/// that says how to set it. Call it when a daemon starts.
pub fn require_pod_name(config: &StoreConfig) -> StoreResult<&str> {
    config.kube.pod_name.as_deref().filter(|p| !p.is_empty()).ok_or_else(missing_pod_name)
}

pub(crate) fn missing_pod_name() -> StoreError {
    StoreError::Config(
        "POD_NAME is not set: with --store-backend kubernetes the keeper, sentinel and proxy publish their \
         status on their own pod; set POD_NAME from the downward API (env valueFrom fieldRef \
         metadata.name)"
            .into(),
    )
}

/// Checks what the Kubernetes backend needs beyond the common checks: the resource kind and names that the
/// API server accepts for the ConfigMap and the cluster label.
pub(crate) fn validate(config: &StoreConfig) -> StoreResult<()> {
    match config.kube.resource_kind.as_deref() {
        None | Some("") | Some("configmap") => {}
        Some(other) => {
            return Err(StoreError::Config(format!(
                "--kube-resource-kind {other:?} is not supported: the only value is \"configmap\""
            )));
        }
    }
    let cluster = &config.cluster_name;
    if !is_label_value(cluster) || !is_dns_subdomain(&resource_name(cluster)) {
        return Err(StoreError::Config(format!(
            "--cluster-name {cluster:?} cannot name Kubernetes objects: use at most 63 lower-case letters, \
             digits, '-' and '.', starting and ending with a letter or digit"
        )));
    }
    if let Some(pod) = config.kube.pod_name.as_deref().filter(|p| !p.is_empty())
        && !is_dns_subdomain(pod)
    {
        return Err(StoreError::Config(format!("POD_NAME {pod:?} is not a valid pod name")));
    }
    Ok(())
}

/// Loads the client configuration: `--kubeconfig`, else `$KUBECONFIG` or `~/.kube/config`, else the in-cluster
/// service account. The namespace is `--kube-namespace`, else the kubeconfig context's (or `default`), else
/// the service account's.
pub(crate) async fn resolve(config: &StoreConfig) -> StoreResult<Resolved> {
    let kube_cfg = &config.kube;
    let options = KubeConfigOptions { context: kube_cfg.context.clone(), ..Default::default() };
    let mut client = if let Some(path) = &kube_cfg.kubeconfig {
        from_file(path, &options).await?
    } else if kubeconfig_available() {
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| StoreError::Config(format!("loading the kubeconfig ($KUBECONFIG or ~/.kube/config): {e}")))?
    } else {
        if let Some(ctx) = &kube_cfg.context {
            return Err(StoreError::Config(format!("--kube-context {ctx:?} given but no kubeconfig was found")));
        }
        kube::Config::incluster().map_err(|e| {
            StoreError::Config(format!(
                "no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and the in-cluster \
                 configuration is not usable: {e}"
            ))
        })?
    };
    // Our own loops retry and every request is bounded by the store timeout; watches must not be cut by a
    // read timeout.
    client.connect_timeout = Some(config.timeout);
    client.write_timeout = Some(config.timeout);
    client.read_timeout = None;
    client.default_retry = false;
    let namespace =
        kube_cfg.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| client.default_namespace.clone());
    if !is_label_value(&namespace) {
        return Err(StoreError::Config(format!("--kube-namespace {namespace:?} is not a valid namespace name")));
    }
    Ok(Resolved { client, namespace })
}

async fn from_file(path: &Path, options: &KubeConfigOptions) -> StoreResult<kube::Config> {
    let kc =
        Kubeconfig::read_from(path).map_err(|e| StoreError::Config(format!("--kubeconfig {}: {e}", path.display())))?;
    kube::Config::from_custom_kubeconfig(kc, options)
        .await
        .map_err(|e| StoreError::Config(format!("--kubeconfig {}: {e}", path.display())))
}

fn kubeconfig_available() -> bool {
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    std::env::var_os("HOME").is_some_and(|h| Path::new(&h).join(".kube/config").is_file())
}

/// A DNS-1123 label-like name also valid as a label value: 1..=63 of `[a-z0-9.-]`, alphanumeric at both ends.
fn is_label_value(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && is_dns_subdomain(s)
}

/// A DNS-1123 subdomain: 1..=253 of `[a-z0-9.-]`, alphanumeric at both ends.
fn is_dns_subdomain(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreBackend;

    fn config(cluster: &str) -> StoreConfig {
        StoreConfig::new(StoreBackend::Kubernetes, cluster)
    }

    #[test]
    fn names_follow_stolon() {
        assert_eq!(resource_name("kube-stolon"), "stolon-cluster-kube-stolon");
    }

    #[test]
    fn cluster_names_must_be_valid_object_names() {
        assert!(validate(&config("kube-stolon")).is_ok());
        for bad in ["Upper", "under_score", "-dash", &"a".repeat(64)] {
            let e = validate(&config(bad)).unwrap_err().to_string();
            assert!(e.contains("--cluster-name"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_configmap_resource_kind() {
        let mut c = config("c");
        c.kube.resource_kind = Some("configmap".into());
        assert!(validate(&c).is_ok());
        c.kube.resource_kind = Some("endpoints".into());
        assert!(validate(&c).unwrap_err().to_string().contains("--kube-resource-kind"));
    }

    #[test]
    fn missing_pod_name_is_a_clear_error() {
        let mut c = config("c");
        let e = require_pod_name(&c).unwrap_err().to_string();
        assert!(e.contains("POD_NAME") && e.contains("fieldRef"), "{e}");
        c.kube.pod_name = Some("keeper-0".into());
        assert_eq!(require_pod_name(&c).unwrap(), "keeper-0");
        c.kube.pod_name = Some("Bad_Pod".into());
        assert!(validate(&c).unwrap_err().to_string().contains("POD_NAME"));
    }

    const TWO_CONTEXTS: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
users:
- name: u
  user:
    token: not-a-secret
contexts:
- name: a
  context: {cluster: c, user: u, namespace: ns-a}
- name: b
  context: {cluster: c, user: u, namespace: ns-b}
- name: plain
  context: {cluster: c, user: u}
current-context: a
";

    #[tokio::test]
    async fn namespace_comes_from_flag_then_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, TWO_CONTEXTS).unwrap();
        let mut c = config("c");
        c.kube.kubeconfig = Some(path);
        let ns = |c: &StoreConfig| {
            let c = c.clone();
            async move { resolve(&c).await.map(|r| r.namespace) }
        };
        assert_eq!(ns(&c).await.unwrap(), "ns-a", "current context");
        c.kube.context = Some("b".into());
        assert_eq!(ns(&c).await.unwrap(), "ns-b", "--kube-context");
        c.kube.context = Some("plain".into());
        assert_eq!(ns(&c).await.unwrap(), "default", "a context without namespace");
        c.kube.namespace = Some("db".into());
        assert_eq!(ns(&c).await.unwrap(), "db", "--kube-namespace wins");
        c.kube.context = Some("missing".into());
        let e = ns(&c).await.unwrap_err().to_string();
        assert!(e.contains("--kubeconfig") && e.contains("missing"), "{e}");
    }

    #[tokio::test]
    async fn unreadable_kubeconfig_names_the_flag() {
        let mut c = config("c");
        c.kube.kubeconfig = Some("/nonexistent/kubeconfig".into());
        let e = resolve(&c).await.err().expect("must fail").to_string();
        assert!(e.contains("--kubeconfig /nonexistent/kubeconfig"), "{e}");
    }
}
