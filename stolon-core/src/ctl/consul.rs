//! The Consul agent HTTP API used by `stolonctl register`: list a catalog service, register and deregister
//! services on the local agent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stolon_store::agent_client::AgentClient;
use stolon_store::{TlsConfig, TlsFlags};

use super::current::usable_cluster_data;
use super::error::CtlError;
use super::register::{
    CHECK_INTERVAL, DesiredServicesError, RegisterOptions, ServiceDiff, ServiceInfo, desired_services, diff_services,
};
use crate::store::ClusterStore;

/// Why talking to Consul failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsulError {
    /// The endpoint flag is not one usable URL.
    #[error("register endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The flag value.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP request failed or Consul answered with an error.
    #[error("consul {operation}: {reason}")]
    Request {
        /// What was being done.
        operation: String,
        /// The cause.
        reason: String,
    },
}

/// The flags of `stolonctl register`'s TLS settings, named in errors and in the skip-verification warning.
pub const REGISTER_TLS_FLAGS: TlsFlags = TlsFlags {
    cert_file: "--register-cert-file",
    key_file: "--register-key",
    ca_file: "--register-ca-file",
    skip_verify: "--register-skip-tls-verify",
    peer: "the register endpoint (Consul)",
};

/// A client of one Consul agent.
#[derive(Clone)]
pub struct ConsulAgent {
    http: AgentClient,
}

impl std::fmt::Debug for ConsulAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulAgent").field("base", &self.http.base()).finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CatalogService {
    #[serde(rename = "ServiceID", default)]
    service_id: String,
    #[serde(default)]
    service_name: String,
    #[serde(default)]
    service_address: String,
    #[serde(default)]
    service_port: u16,
    #[serde(default)]
    service_tags: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentRegistration<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    tags: &'a [String],
    address: &'a str,
    port: u16,
    check: AgentCheck,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentCheck {
    #[serde(rename = "TCP")]
    tcp: String,
    interval: &'static str,
}

impl ConsulAgent {
    /// A client for the agent at `endpoint` (exactly one `http://host:port` or `https://host:port` URL; a
    /// bare `host:port` means http). With https, `tls` holds the `--register-*` TLS settings (CA bundle,
    /// client certificate, skip-verification). Requests time out after `timeout`.
    pub fn new(endpoint: &str, tls: &TlsConfig, timeout: Duration) -> Result<ConsulAgent, ConsulError> {
        let bad = |reason: &str| ConsulError::Endpoint { endpoint: endpoint.to_string(), reason: reason.to_string() };
        let trimmed = endpoint.trim();
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        if trimmed.contains(',') {
            return Err(bad("consul does not support multiple endpoints"));
        }
        let base = match trimmed.split_once("://") {
            Some((scheme @ ("http" | "https"), rest)) if !rest.trim_end_matches('/').is_empty() => {
                format!("{scheme}://{}", rest.trim_end_matches('/'))
            }
            Some(_) => return Err(bad("the scheme must be http or https, followed by host:port")),
            None => format!("http://{}", trimmed.trim_end_matches('/')),
        };
        let http = AgentClient::new(&base, tls, &REGISTER_TLS_FLAGS, timeout)
            .map_err(|e| ConsulError::Request { operation: "client set-up".into(), reason: e.to_string() })?;
        Ok(ConsulAgent { http })
    }

    /// Sends one request and checks its status.
    async fn call(
        &self,
        operation: &str,
        method: &str,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ConsulError> {
        let failed = |reason: String| ConsulError::Request { operation: operation.to_string(), reason };
        let reply = self.http.request(method, path, json).await.map_err(|e| failed(e.to_string()))?;
        if !(200..300).contains(&reply.status) {
            let body = String::from_utf8_lossy(&reply.body);
            return Err(failed(format!("HTTP {}: {}", reply.status, body.trim())));
        }
        Ok(reply.body)
    }

    /// The services registered in the catalog under `name`, keyed by service ID.
    pub async fn services(&self, name: &str) -> Result<BTreeMap<String, ServiceInfo>, ConsulError> {
        let op = format!("list service {name}");
        let body = self.call(&op, "GET", &format!("/v1/catalog/service/{name}"), None).await?;
        let list: Vec<CatalogService> = serde_json::from_slice(&body)
            .map_err(|e| ConsulError::Request { operation: op.clone(), reason: format!("invalid answer: {e}") })?;
        Ok(list
            .into_iter()
            .map(|s| {
                let info = ServiceInfo {
                    name: s.service_name,
                    id: s.service_id.clone(),
                    address: s.service_address,
                    port: s.service_port,
                    tags: s.service_tags.unwrap_or_default(),
                    is_master: false,
                };
                (s.service_id, info)
            })
            .collect())
    }

    /// Registers `info` on the agent with a TCP health check every [`CHECK_INTERVAL`].
    pub async fn register(&self, info: &ServiceInfo) -> Result<(), ConsulError> {
        let op = format!("register {} {}", info.name, info.id);
        let body = AgentRegistration {
            id: &info.id,
            name: &info.name,
            tags: &info.tags,
            address: &info.address,
            port: info.port,
            check: AgentCheck { tcp: info.check_address(), interval: CHECK_INTERVAL },
        };
        let json = serde_json::to_vec(&body)
            .map_err(|e| ConsulError::Request { operation: op.clone(), reason: e.to_string() })?;
        self.call(&op, "PUT", "/v1/agent/service/register", Some(json)).await.map(drop)
    }

    /// Deregisters the service `id` from the agent.
    pub async fn deregister(&self, id: &str) -> Result<(), ConsulError> {
        let op = format!("deregister {id}");
        self.call(&op, "PUT", &format!("/v1/agent/service/deregister/{id}"), None).await.map(drop)
    }
}

/// Why a registration pass failed before changing anything.
#[derive(Debug, thiserror::Error)]
pub enum RegisterPassError {
    /// The cluster data could not be read.
    #[error(transparent)]
    ClusterData(#[from] CtlError),
    /// The wanted services could not be computed.
    #[error(transparent)]
    Desired(#[from] DesiredServicesError),
    /// Consul could not be queried.
    #[error(transparent)]
    Consul(#[from] ConsulError),
}

/// What one registration pass did.
#[derive(Debug, Default)]
pub struct RegisterPass {
    /// The changes that were attempted.
    pub diff: ServiceDiff,
    /// Changes that failed (each is retried on the next pass).
    pub failures: Vec<ConsulError>,
}

/// One pass: reads the cluster data and the registered services, then deregisters and registers what
/// differs. A failing registration does not stop the others.
pub async fn register_pass(
    store: &ClusterStore,
    agent: &ConsulAgent,
    opts: &RegisterOptions,
) -> Result<RegisterPass, RegisterPassError> {
    let registered = agent.services(&opts.service_name).await?;
    let cd = usable_cluster_data(store).await?;
    let wanted = desired_services(&cd.data, opts)?;
    let diff = diff_services(&wanted, &registered);
    let mut failures = Vec::new();
    for info in &diff.deregister {
        if let Err(e) = agent.deregister(&info.id).await {
            failures.push(e);
        }
    }
    for info in &diff.register {
        if let Err(e) = agent.register(info).await {
            failures.push(e);
        }
    }
    Ok(RegisterPass { diff, failures })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rules() {
        let t = Duration::from_secs(1);
        let plain = TlsConfig::default();
        let base = |e: &str| ConsulAgent::new(e, &plain, t).map(|a| a.http.base().to_string());
        assert_eq!(base("http://127.0.0.1:8500/").unwrap(), "http://127.0.0.1:8500");
        assert_eq!(base("127.0.0.1:8500").unwrap(), "http://127.0.0.1:8500");
        assert!(base("http://a:1,http://b:2").unwrap_err().to_string().contains("multiple"));
        assert!(base("ftp://a:1").is_err());
        assert!(base("https://").is_err());
        assert!(base("").is_err());
        let skip = TlsConfig { skip_verify: true, ..TlsConfig::default() };
        assert_eq!(ConsulAgent::new("https://a:1", &skip, t).unwrap().http.base(), "https://a:1");
        let ca = TlsConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..TlsConfig::default() };
        let e = ConsulAgent::new("https://a:1", &ca, t).unwrap_err().to_string();
        assert!(e.contains("--register-ca-file /nonexistent/ca.pem"), "{e}");
        let e = ConsulAgent::new("http://a:1", &ca, t).unwrap_err().to_string();
        assert!(e.contains("--register-ca-file") && e.contains("https"), "{e}");
    }

    #[test]
    fn registration_body_is_consuls() {
        let tags = vec!["slave".to_string()];
        let body = AgentRegistration {
            id: "d1",
            name: "pg",
            tags: &tags,
            address: "10.0.0.1",
            port: 5432,
            check: AgentCheck { tcp: "10.0.0.1:5432".into(), interval: CHECK_INTERVAL },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"ID": "d1", "Name": "pg", "Tags": ["slave"], "Address": "10.0.0.1", "Port": 5432,
                "Check": {"TCP": "10.0.0.1:5432", "Interval": "10s"}})
        );
        let listed: Vec<CatalogService> = serde_json::from_str(
            r#"[{"ServiceID":"d1","ServiceName":"pg","ServiceAddress":"a","ServicePort":1,"ServiceTags":null,"Node":"n"}]"#,
        )
        .unwrap();
        assert_eq!(listed[0].service_id, "d1");
        assert!(listed[0].service_tags.is_none());
    }
}
