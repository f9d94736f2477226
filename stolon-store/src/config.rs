//! Connection settings shared by every backend (the `--store-*` flags).

use std::path::PathBuf;
use std::time::Duration;

use crate::{StoreBackend, StoreError};

/// The default `--store-prefix`.
pub const DEFAULT_PREFIX: &str = "stolon/cluster";
/// The default `--store-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS material for the store connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Client certificate (PEM); used only together with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA bundle (PEM, may hold several certificates) to verify the servers.
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server certificate (testing only).
    pub skip_verify: bool,
}

impl TlsConfig {
    /// Reads a file named by a TLS flag, naming the flag and the path on failure.
    pub fn read(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
        std::fs::read(path).map_err(|e| StoreError::Config(format!("{flag} {}: cannot read: {e}", path.display())))
    }
}

/// Kubernetes-specific settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeConfig {
    /// `--kubeconfig`: path of a kubeconfig file (empty: `$KUBECONFIG` or in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// `--kube-context`.
    pub context: Option<String>,
    /// `--kube-namespace` (empty: the kubeconfig's or the service account's namespace).
    pub namespace: Option<String>,
    /// `--kube-resource-kind` (only `configmap`).
    pub resource_kind: Option<String>,
    /// The pod this process runs in (`POD_NAME`); needed by daemons to publish their member record.
    pub pod_name: Option<String>,
}

/// Everything needed to connect to a store and address one cluster inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Which backend.
    pub backend: StoreBackend,
    /// Parsed endpoints (empty: the backend's default).
    pub endpoints: Vec<Endpoint>,
    /// `--store-prefix`; the cluster lives under `<prefix>/<cluster_name>`.
    pub prefix: String,
    /// `--cluster-name`.
    pub cluster_name: String,
    /// `--store-timeout`: the bound of every single request.
    pub timeout: Duration,
    /// TLS settings (TLS is on when the endpoints use `https`).
    pub tls: TlsConfig,
    /// User name for etcd authentication / HTTP basic auth.
    pub username: Option<String>,
    /// Password for `username`. Never logged.
    pub password: Option<String>,
    /// Consul ACL token. Never logged.
    pub token: Option<String>,
    /// Consul datacenter.
    pub datacenter: Option<String>,
    /// Kubernetes settings.
    pub kube: KubeConfig,
}

impl StoreConfig {
    /// A configuration with stolon's defaults for everything but the backend and cluster name.
    pub fn new(backend: StoreBackend, cluster_name: impl Into<String>) -> Self {
        StoreConfig {
            backend,
            endpoints: Vec::new(),
            prefix: DEFAULT_PREFIX.to_string(),
            cluster_name: cluster_name.into(),
            timeout: DEFAULT_TIMEOUT,
            tls: TlsConfig::default(),
            username: None,
            password: None,
            token: None,
            datacenter: None,
            kube: KubeConfig::default(),
        }
    }

    /// Sets the endpoints from a `--store-endpoints` value.
    pub fn with_endpoints(mut self, list: &str) -> Result<Self, StoreError> {
        self.endpoints = Endpoint::parse_list(list)?;
        Ok(self)
    }

    /// The endpoints to use: the configured ones, or the backend's default.
    pub fn effective_endpoints(&self) -> Vec<Endpoint> {
        if !self.endpoints.is_empty() {
            return self.endpoints.clone();
        }
        self.backend.default_endpoint().and_then(|e| Endpoint::parse(e).ok()).into_iter().collect()
    }

    /// True when the endpoints use `https`.
    pub fn uses_tls(&self) -> bool {
        self.effective_endpoints().iter().any(|e| e.scheme == Scheme::Https)
    }

    /// The cluster's base path, `<prefix>/<cluster_name>`, without a trailing slash.
    pub fn cluster_path(&self) -> String {
        format!("{}/{}", self.prefix.trim_end_matches('/'), self.cluster_name)
    }

    /// Checks what every backend needs: a cluster name, a positive timeout, consistent TLS files.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.cluster_name.is_empty() {
            return Err(StoreError::Config("--cluster-name is required".into()));
        }
        if self.cluster_name.contains('/') {
            return Err(StoreError::Config(format!("--cluster-name {:?} must not contain '/'", self.cluster_name)));
        }
        if self.timeout.is_zero() {
            return Err(StoreError::Config("--store-timeout must be greater than 0".into()));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(StoreError::Config("--store-cert-file and --store-key must be given together".into()));
        }
        Ok(())
    }
}

/// URL scheme of a store endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// One store endpoint, `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port`, `http://host:port` or `https://host:port` (a trailing `/` is allowed).
    pub fn parse(s: &str) -> Result<Endpoint, StoreError> {
        let bad = |why: &str| StoreError::Config(format!("--store-endpoints entry {s:?}: {why}"));
        let s = s.trim();
        let (scheme, rest) = match s.split_once("://") {
            Some(("http", r)) => (Scheme::Http, r),
            Some(("https", r)) => (Scheme::Https, r),
            Some((other, _)) => {
                return Err(bad(&format!("unsupported scheme {other:?}, use http or https")));
            }
            None => (Scheme::Http, s),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(bad("must not contain a path"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, p.strip_prefix(':').ok_or_else(|| bad("missing port"))?)
        } else {
            rest.rsplit_once(':').ok_or_else(|| bad("missing port (host:port)"))?
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = port.parse::<u16>().map_err(|_| bad(&format!("invalid port {port:?}")))?;
        Ok(Endpoint { scheme, host: host.to_string(), port })
    }

    /// Parses a comma-separated `--store-endpoints` list; every entry must use the same scheme.
    pub fn parse_list(list: &str) -> Result<Vec<Endpoint>, StoreError> {
        let eps = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Endpoint::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if eps.windows(2).any(|w| w[0].scheme != w[1].scheme) {
            return Err(StoreError::Config(format!(
                "--store-endpoints {list:?}: all endpoints must use the same scheme"
            )));
        }
        Ok(eps)
    }

    /// The endpoint as a URL, `scheme://host:port`.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_http_and_keep_order() {
        let eps = Endpoint::parse_list("127.0.0.1:2379, http://h2:2380/").unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].url(), "http://127.0.0.1:2379");
        assert_eq!(eps[1].url(), "http://h2:2380");
        assert_eq!(Endpoint::parse("https://[::1]:2379").unwrap().url(), "https://[::1]:2379");
    }

    #[test]
    fn endpoints_reject_mixed_schemes_and_garbage() {
        assert!(Endpoint::parse_list("http://a:1,https://b:2").is_err());
        for bad in ["ftp://a:1", "a", "a:xx", "http://a:1/path", ":80", "a:70000"] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--store-endpoints"), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_and_paths() {
        let c = StoreConfig::new(StoreBackend::EtcdV3, "c1");
        assert_eq!(c.cluster_path(), "stolon/cluster/c1");
        assert_eq!(c.effective_endpoints()[0].url(), "http://127.0.0.1:2379");
        assert!(!c.uses_tls());
        assert!(c.validate().is_ok());
        assert!(StoreConfig::new(StoreBackend::EtcdV3, "").validate().is_err());
    }
}
