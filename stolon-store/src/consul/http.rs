//! The connection to one Consul agent: a single hyper client (TLS through rustls with ring) shared by
//! rs-consul, which does the KV requests, and by the raw requests this backend needs and rs-consul lacks
//! (sessions, the index of a missing key). Also the ACL token, the datacenter and the request bound.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rs_consul::{Consul, ConsulBuilder, HttpsClient};
use tokio::time::Instant;

use super::errors::{self, Fail};
use crate::tls;
use crate::{Scheme, StoreConfig, StoreError, StoreResult};

/// The environment variable Consul's own tools read the ACL token from.
pub const TOKEN_ENV: &str = "CONSUL_HTTP_TOKEN";

/// How long to wait between attempts while Consul reports that it has no leader.
const NO_LEADER_RETRY: Duration = Duration::from_millis(200);
/// The longest part of a request's bound kept to ask the agent whether it has a leader.
const LEADER_PROBE: Duration = Duration::from_millis(500);

/// One Consul agent: both request paths, the token, the datacenter and the request bound.
pub(crate) struct Conn {
    /// rs-consul, for KV reads, writes, deletes and blocking reads.
    pub(crate) kv: Consul,
    /// The same hyper client rs-consul uses, for raw requests.
    http: HttpsClient,
    /// `scheme://host:port` of the agent.
    pub(crate) base: String,
    token: Option<String>,
    /// The datacenter (empty: the agent's own).
    pub(crate) datacenter: String,
    /// `--store-timeout`: the bound of every single request.
    pub(crate) timeout: Duration,
}

/// An answer to a raw request.
pub(crate) struct RawReply {
    /// The HTTP status.
    pub(crate) status: u16,
    /// `X-Consul-Index`, when present.
    pub(crate) index: Option<u64>,
    /// The body.
    pub(crate) body: Bytes,
}

impl Conn {
    /// Builds the client for the single endpoint of `config`.
    pub(crate) fn new(config: &StoreConfig) -> StoreResult<Arc<Conn>> {
        let endpoints = config.effective_endpoints();
        let endpoint = match endpoints.as_slice() {
            [one] => one.clone(),
            [] => return Err(StoreError::Config("--store-endpoints: no Consul endpoint".into())),
            _ => {
                return Err(StoreError::Config(format!(
                    "--store-endpoints: the consul backend talks to one agent (usually the local one), got {}",
                    endpoints.len()
                )));
            }
        };
        let tls_config = match endpoint.scheme {
            Scheme::Https => tls::client_config(&config.tls)?,
            Scheme::Http => {
                if config.tls.ca_file.is_some() || config.tls.cert_file.is_some() {
                    return Err(StoreError::Config(
                        "TLS files were given but --store-endpoints uses http; use an https:// endpoint".into(),
                    ));
                }
                tls::plain_config()?
            }
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http()
            .enable_http1()
            .build();
        // Unlike rs-consul's own default, keep idle connections: blocking reads and renewals reuse them.
        let http: HttpsClient =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        let token = config.token.clone().or_else(|| std::env::var(TOKEN_ENV).ok()).filter(|t| !t.is_empty());
        let base = endpoint.url();
        let kv_config = rs_consul::Config { address: base.clone(), token: token.clone(), ..Default::default() };
        let kv = ConsulBuilder::new(kv_config).with_https_client(http.clone()).build();
        Ok(Arc::new(Conn {
            kv,
            http,
            base,
            token,
            datacenter: config.datacenter.clone().unwrap_or_default(),
            timeout: config.timeout,
        }))
    }

    /// True when an ACL token is configured (for error messages; the token itself is never shown).
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Runs one operation bounded by the store timeout; see [`Conn::call_within`].
    pub(crate) async fn call<T, F, Fut>(&self, key: &str, op: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Fail>>,
    {
        self.call_within(key, self.timeout, op).await
    }

    /// Runs `op` until it succeeds or fails for good, all within `limit`. While Consul answers that it has no
    /// leader (an election is under way) the operation is retried; if the bound runs out meanwhile, the error
    /// says that Consul has no leader. Consul servers may also hold a request while they wait for a leader,
    /// so when `op` runs out of time, the last moments of the bound ask the agent whether it knows a leader.
    pub(crate) async fn call_within<T, F, Fut>(&self, key: &str, limit: Duration, mut op: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Fail>>,
    {
        let probe = (limit / 4).min(LEADER_PROBE);
        let op_deadline = Instant::now() + limit - probe;
        let mut no_leader = false;
        loop {
            match tokio::time::timeout_at(op_deadline, op()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(Fail::Store(e))) => return Err(e),
                Ok(Err(Fail::NoLeader)) => {
                    no_leader = true;
                    if Instant::now() + NO_LEADER_RETRY >= op_deadline {
                        return Err(errors::no_leader(&self.base, limit));
                    }
                    tokio::time::sleep(NO_LEADER_RETRY).await;
                }
                Err(_) if no_leader || self.knows_no_leader(probe).await => {
                    return Err(errors::no_leader(&self.base, limit));
                }
                Err(_) => return Err(StoreError::Timeout { key: key.to_string(), timeout: limit }),
            }
        }
    }

    /// True when the agent answers, within `limit`, that its servers have no leader.
    async fn knows_no_leader(&self, limit: Duration) -> bool {
        let probe = self.raw(Method::GET, self.url("/v1/status/leader", &[]), None);
        match tokio::time::timeout(limit, probe).await {
            Ok(Ok(reply)) => reply.status == 200 && reply.body.as_ref().trim_ascii() == b"\"\"",
            _ => false,
        }
    }

    /// The URL of an API path (already percent-encoded) with query parameters; adds `dc` when configured.
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}{path}", self.base);
        let dc = (!self.datacenter.is_empty()).then_some(("dc", self.datacenter.as_str()));
        for (i, (name, value)) in query.iter().copied().chain(dc).enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            if !value.is_empty() {
                url.push('=');
                url.push_str(&super::keys::encode_query_value(value));
            }
        }
        url
    }

    /// Sends one raw request (no bound: callers run it inside [`Conn::call`]). Transport failures become
    /// [`StoreError::Unavailable`]; the HTTP status is left to the caller.
    pub(crate) async fn raw(&self, method: Method, url: String, body: Option<Vec<u8>>) -> Result<RawReply, Fail> {
        let mut req = Request::builder().method(method).uri(url);
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token.as_str());
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default())).boxed();
        let req = req.body(body).map_err(|e| {
            Fail::Store(StoreError::Config(format!("cannot build a request for Consul at {}: {e}", self.base)))
        })?;
        let resp = self.http.request(req).await.map_err(|e| Fail::Store(errors::transport(&self.base, &e)))?;
        let status = resp.status().as_u16();
        let index =
            resp.headers().get("x-consul-index").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let body =
            resp.into_body().collect().await.map_err(|e| Fail::Store(errors::transport(&self.base, &e)))?.to_bytes();
        Ok(RawReply { status, index, body })
    }
}
