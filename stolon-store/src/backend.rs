//! Which store backend to use, as chosen by `--store-backend`.

use std::fmt;
use std::str::FromStr;

use crate::StoreError;

/// A coordination store backend, with stolon's `--store-backend` spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreBackend {
    /// etcd's v2 HTTP keys API (`etcdv2`, and stolon's legacy alias `etcd`).
    EtcdV2,
    /// etcd's v3 gRPC API (`etcdv3`).
    EtcdV3,
    /// Consul's KV and session API (`consul`).
    Consul,
    /// Kubernetes ConfigMap and pod annotations (`kubernetes`).
    Kubernetes,
}

impl StoreBackend {
    /// Every backend, in documentation order.
    pub const ALL: [StoreBackend; 4] =
        [StoreBackend::EtcdV2, StoreBackend::EtcdV3, StoreBackend::Consul, StoreBackend::Kubernetes];

    /// The canonical flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreBackend::EtcdV2 => "etcdv2",
            StoreBackend::EtcdV3 => "etcdv3",
            StoreBackend::Consul => "consul",
            StoreBackend::Kubernetes => "kubernetes",
        }
    }

    /// The endpoint used when `--store-endpoints` is empty (none for Kubernetes, which uses kubeconfig).
    pub fn default_endpoint(self) -> Option<&'static str> {
        match self {
            StoreBackend::EtcdV2 | StoreBackend::EtcdV3 => Some("http://127.0.0.1:2379"),
            StoreBackend::Consul => Some("http://127.0.0.1:8500"),
            StoreBackend::Kubernetes => None,
        }
    }
}

impl fmt::Display for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreBackend {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "etcdv2" | "etcd" => Ok(StoreBackend::EtcdV2),
            "etcdv3" => Ok(StoreBackend::EtcdV3),
            "consul" => Ok(StoreBackend::Consul),
            "kubernetes" => Ok(StoreBackend::Kubernetes),
            "" => Err(StoreError::Config("--store-backend is required (etcdv2, etcdv3, consul or kubernetes)".into())),
            other => Err(StoreError::Config(format!(
                "unknown --store-backend {other:?}: expected etcdv2 (alias etcd), etcdv3, consul or kubernetes"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stolon_spellings() {
        assert_eq!("etcd".parse::<StoreBackend>().unwrap(), StoreBackend::EtcdV2);
        for b in StoreBackend::ALL {
            assert_eq!(b.as_str().parse::<StoreBackend>().unwrap(), b);
        }
    }

    #[test]
    fn rejects_unknown_and_empty() {
        let e = "zookeeper".parse::<StoreBackend>().unwrap_err().to_string();
        assert!(e.contains("zookeeper") && e.contains("--store-backend"), "{e}");
        let e = "".parse::<StoreBackend>().unwrap_err().to_string();
        assert!(e.contains("required"), "{e}");
    }
}
