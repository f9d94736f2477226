//! The flags every component shares (store connection, metrics, logging), and their conversion into a
//! [`StoreConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use stolon_core::duration::GoDuration;
use stolon_core::stolon_store::{KubeConfig, StoreBackend, StoreConfig, StoreError};

use crate::logging::LogLevel;

/// Parses a Go duration flag value (`5s`, `1m30s`, `300ms`) into a non-negative duration.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let d = GoDuration::parse(s).map_err(|e| e.to_string())?;
    d.to_std().ok_or_else(|| format!("{s:?} must not be negative"))
}

/// Store, metrics and logging flags shared by keeper, sentinel, proxy and stolonctl.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Cluster name: namespaces every key of this cluster in the store.
    #[arg(long, default_value = "")]
    pub cluster_name: String,
    /// Store backend: etcdv2 (alias etcd), etcdv3, consul or kubernetes.
    #[arg(long, default_value = "")]
    pub store_backend: String,
    /// Comma-separated store endpoints, host:port or http(s)://host:port (default: http://127.0.0.1:2379 for
    /// etcd, http://127.0.0.1:8500 for consul).
    #[arg(long, default_value = "")]
    pub store_endpoints: String,
    /// Timeout of every store request, as a Go duration.
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub store_timeout: Duration,
    /// Store base path; the cluster lives under <prefix>/<cluster-name>.
    #[arg(long, default_value = stolon_core::stolon_store::DEFAULT_PREFIX)]
    pub store_prefix: String,
    /// Client certificate file for TLS to the store (with --store-key).
    #[arg(long)]
    pub store_cert_file: Option<PathBuf>,
    /// Client private key file for TLS to the store.
    #[arg(long)]
    pub store_key: Option<PathBuf>,
    /// CA bundle (PEM) to verify the store servers.
    #[arg(long)]
    pub store_ca_file: Option<PathBuf>,
    /// Do not verify the store servers' certificates (testing only).
    #[arg(long)]
    pub store_skip_tls_verify: bool,
    /// User name for store authentication (etcd users, HTTP basic auth).
    #[arg(long)]
    pub store_username: Option<String>,
    /// Password for --store-username (prefer the environment variable; never logged).
    #[arg(long, hide_env_values = true)]
    pub store_password: Option<String>,
    /// Consul ACL token (default: the CONSUL_HTTP_TOKEN environment variable; never logged).
    #[arg(long, hide_env_values = true)]
    pub store_token: Option<String>,
    /// Consul datacenter (default: the agent's).
    #[arg(long)]
    pub store_datacenter: Option<String>,
    /// Serve Prometheus metrics at http://<address>/metrics.
    #[arg(long, default_value = "")]
    pub metrics_listen_address: String,
    /// Kubernetes resource kind holding the cluster data (only "configmap").
    #[arg(long, default_value = "")]
    pub kube_resource_kind: String,
    /// Log level: error, warn, info or debug.
    #[arg(long, value_enum, default_value = "info")]
    pub log_level: LogLevel,
    /// Colour the logs (default: when stderr is a terminal).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub log_color: Option<bool>,
}

impl CommonArgs {
    /// The store configuration of a daemon (keeper, sentinel, proxy): like [`CommonArgs::store_config`],
    /// with the pod name from `POD_NAME`, which the Kubernetes backend requires (the daemon publishes its
    /// status on its own pod).
    pub fn daemon_store_config(&self) -> Result<StoreConfig, StoreError> {
        let pod_name = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty());
        let config = self.store_config(KubeConfig { pod_name, ..KubeConfig::default() })?;
        if config.backend == StoreBackend::Kubernetes {
            stolon_core::stolon_store::kubernetes::require_pod_name(&config)?;
        }
        Ok(config)
    }

    /// Checks the flags and builds the store configuration. `kube` carries the stolonctl-only Kubernetes
    /// flags and `POD_NAME` for daemons.
    pub fn store_config(&self, kube: KubeConfig) -> Result<StoreConfig, StoreError> {
        let backend: StoreBackend = self.store_backend.parse()?;
        let mut c = StoreConfig::new(backend, self.cluster_name.clone()).with_endpoints(&self.store_endpoints)?;
        c.prefix = self.store_prefix.clone();
        c.timeout = self.store_timeout;
        c.tls.cert_file = self.store_cert_file.clone();
        c.tls.key_file = self.store_key.clone();
        c.tls.ca_file = self.store_ca_file.clone();
        c.tls.skip_verify = self.store_skip_tls_verify;
        c.username = self.store_username.clone();
        c.password = self.store_password.clone();
        c.token =
            self.store_token.clone().or_else(|| std::env::var("CONSUL_HTTP_TOKEN").ok()).filter(|t| !t.is_empty());
        c.datacenter = self.store_datacenter.clone().filter(|d| !d.is_empty());
        if backend == StoreBackend::Kubernetes && self.kube_resource_kind != "configmap" {
            return Err(StoreError::Config(format!(
                "--kube-resource-kind must be \"configmap\" with the kubernetes backend (got {:?})",
                self.kube_resource_kind
            )));
        }
        c.kube = KubeConfig { resource_kind: Some(self.kube_resource_kind.clone()).filter(|k| !k.is_empty()), ..kube };
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_stolon() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.common.store_timeout, Duration::from_secs(5));
        assert_eq!(cli.common.store_prefix, "stolon/cluster");
        assert_eq!(cli.common.log_level, LogLevel::Info);
        assert!(cli.common.log_color.is_none());
    }

    #[test]
    fn go_durations_are_accepted_and_bad_ones_named() {
        let cli = parse(&["--store-timeout", "1m30s"]).unwrap();
        assert_eq!(cli.common.store_timeout, Duration::from_secs(90));
        let err = parse(&["--store-timeout", "5 seconds"]).err().unwrap().to_string();
        assert!(err.contains("--store-timeout"), "{err}");
        assert!(parse(&["--store-timeout", "-1s"]).is_err());
        assert!(parse(&["--log-level", "verbose"]).is_err());
    }

    #[test]
    fn store_config_requires_backend_and_cluster_name() {
        let cli = parse(&["--cluster-name", "c"]).unwrap();
        assert!(cli.common.store_config(KubeConfig::default()).unwrap_err().to_string().contains("--store-backend"));
        let cli = parse(&["--store-backend", "etcdv3"]).unwrap();
        assert!(cli.common.store_config(KubeConfig::default()).unwrap_err().to_string().contains("--cluster-name"));
        let cli = parse(&["--store-backend", "etcd", "--cluster-name", "c", "--store-endpoints", "h:1"]).unwrap();
        let c = cli.common.store_config(KubeConfig::default()).unwrap();
        assert_eq!(c.backend, StoreBackend::EtcdV2);
        assert_eq!(c.cluster_path(), "stolon/cluster/c");
        let cli = parse(&["--store-backend", "kubernetes", "--cluster-name", "c"]).unwrap();
        assert!(
            cli.common.store_config(KubeConfig::default()).unwrap_err().to_string().contains("--kube-resource-kind")
        );
    }
}
