//! A small HTTP(S) client for a service agent's API (`stolonctl register` talks to Consul's agent with it),
//! with the TLS rules of the store backends: the same rustls configuration (ring), its errors and warning
//! naming the caller's flags.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::tls::{self, TlsFlags};
use crate::{StoreError, StoreResult, TlsConfig};

/// An HTTP or HTTPS client of one agent.
#[derive(Clone)]
pub struct AgentClient {
    base: String,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl AgentClient {
    /// A client for the agent at `base` (`http://host:port` or `https://host:port`, no path). With `https`,
    /// `tls` sets the CA bundle, the client certificate and skip-verification, and `flags` name them in
    /// errors; with `http`, a CA or certificate file is refused. Every request is bounded by `timeout`.
    pub fn new(base: &str, tls: &TlsConfig, flags: &TlsFlags, timeout: Duration) -> StoreResult<AgentClient> {
        let base = base.trim_end_matches('/').to_string();
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(StoreError::Config(format!(
                "{} and {} must be given together",
                flags.cert_file, flags.key_file
            )));
        }
        let rustls_config = if base.starts_with("https://") {
            tls::client_config_with_flags(tls, flags)?
        } else if base.starts_with("http://") {
            if tls.ca_file.is_some() || tls.cert_file.is_some() {
                return Err(StoreError::Config(format!(
                    "{} or {} given but the endpoint {base} uses http; use an https:// endpoint",
                    flags.ca_file, flags.cert_file
                )));
            }
            tls::plain_config()?
        } else {
            return Err(StoreError::Config(format!("{base}: the scheme must be http or https")));
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls_config)
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(AgentClient { base, http, timeout })
    }

    /// The agent's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method` (`GET`, `PUT`, ...) on `path` (starting with `/`, already percent-encoded) with an optional JSON body, and
    /// reads the whole answer. Transport failures are [`StoreError::Unavailable`] (or
    /// [`StoreError::Auth`] for a TLS failure); the HTTP status is left to the caller.
    pub async fn request(&self, method: &str, path: &str, json: Option<Vec<u8>>) -> StoreResult<AgentReply> {
        let url = format!("{}{path}", self.base);
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| StoreError::Config(format!("HTTP method {method:?}: {e}")))?;
        let mut req = Request::builder().method(method).uri(&url);
        if json.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| StoreError::Config(format!("cannot build a request for {url}: {e}")))?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| self.transport(&e))?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.map_err(|e| self.transport(&e))?.to_bytes().to_vec();
            Ok(AgentReply { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(StoreError::Timeout { key: url, timeout: self.timeout }),
        }
    }

    fn transport(&self, err: &(dyn std::error::Error + 'static)) -> StoreError {
        let reason = crate::error::error_chain(err);
        if crate::error::is_tls_failure(&reason) {
            return StoreError::Auth(format!("TLS failure talking to {}: {reason}", self.base));
        }
        StoreError::Unavailable { endpoints: self.base.clone(), reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: TlsFlags = TlsFlags {
        cert_file: "--x-cert-file",
        key_file: "--x-key",
        ca_file: "--x-ca-file",
        skip_verify: "--x-skip-tls-verify",
        peer: "the x agent",
    };

    #[test]
    fn tls_material_is_checked_against_the_scheme_and_named_by_the_caller_flags() {
        let t = Duration::from_secs(1);
        let ca = TlsConfig { ca_file: Some("/nonexistent/ca.pem".into()), ..TlsConfig::default() };
        let e = AgentClient::new("http://a:1", &ca, &FLAGS, t).err().unwrap().to_string();
        assert!(e.contains("--x-ca-file") && e.contains("https"), "{e}");
        let e = AgentClient::new("https://a:1", &ca, &FLAGS, t).err().unwrap().to_string();
        assert!(e.contains("--x-ca-file /nonexistent/ca.pem"), "{e}");
        let half = TlsConfig { cert_file: Some("/c".into()), skip_verify: true, ..TlsConfig::default() };
        let e = AgentClient::new("https://a:1", &half, &FLAGS, t).err().unwrap().to_string();
        assert!(e.contains("--x-cert-file and --x-key"), "{e}");
        let skip = TlsConfig { skip_verify: true, ..TlsConfig::default() };
        assert_eq!(AgentClient::new("https://a:1/", &skip, &FLAGS, t).unwrap().base(), "https://a:1");
        assert!(AgentClient::new("http://a:1", &skip, &FLAGS, t).is_ok());
        assert!(AgentClient::new("ftp://a:1", &TlsConfig::default(), &FLAGS, t).is_err());
    }
}
