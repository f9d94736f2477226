//! The HTTP transport of the v2 keys API: one reqwest client (TLS, basic auth, timeouts), endpoint failover,
//! and key paths under `/v2/keys`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Certificate, Identity, Method, Response, Url};

use super::errors;
use crate::timeout::bounded;
use crate::{StoreConfig, StoreError, StoreResult, TlsConfig};

/// A key of the v2 keyspace, kept as path segments; etcd v2 implies a leading `/` and ignores empty
/// segments, so `stolon/cluster` and `/stolon//cluster/` are the same directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    segments: Vec<String>,
}

impl Key {
    /// The key of the path `path` (segments separated by `/`).
    pub(crate) fn new(path: &str) -> Key {
        Key { segments: path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect() }
    }

    /// This key with one more segment.
    pub(crate) fn child(&self, segment: &str) -> Key {
        let mut segments = self.segments.clone();
        segments.push(segment.to_string());
        Key { segments }
    }

    /// The key as etcd names it, with a leading `/`.
    pub(crate) fn name(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// One request of the keys API: method, key, URL query and form body.
pub(crate) struct Call<'a> {
    method: Method,
    key: &'a Key,
    query: Vec<(&'static str, String)>,
    form: Vec<(&'static str, String)>,
}

impl<'a> Call<'a> {
    /// A GET of `key`.
    pub(crate) fn get(key: &'a Key) -> Self {
        Call { method: Method::GET, key, query: Vec::new(), form: Vec::new() }
    }

    /// A PUT on `key`.
    pub(crate) fn put(key: &'a Key) -> Self {
        Call { method: Method::PUT, key, query: Vec::new(), form: Vec::new() }
    }

    /// A DELETE of `key`.
    pub(crate) fn delete(key: &'a Key) -> Self {
        Call { method: Method::DELETE, key, query: Vec::new(), form: Vec::new() }
    }

    /// Adds a query parameter (conditions, `quorum`, `wait`, ...).
    pub(crate) fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    /// Adds a form field (`value`, `ttl`).
    pub(crate) fn form(mut self, name: &'static str, value: impl ToString) -> Self {
        self.form.push((name, value.to_string()));
        self
    }

    /// The key, as etcd names it.
    pub(crate) fn key_name(&self) -> String {
        self.key.name()
    }
}

/// An answer of etcd: HTTP status, the `X-Etcd-Index` header and the body, with what is needed to name
/// the key and the endpoint in errors.
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The etcd index when the request was served (`X-Etcd-Index`).
    pub etcd_index: Option<u64>,
    /// The body (JSON when etcd answered).
    pub body: Vec<u8>,
    /// The key, as etcd names it.
    pub key: String,
    /// The endpoint that answered.
    pub endpoint: String,
}

impl Reply {
    /// True for 2xx answers.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer when it is a success, else the store error for etcd's error body.
    pub(crate) fn into_result(self) -> StoreResult<Reply> {
        if self.is_success() {
            return Ok(self);
        }
        Err(errors::from_response(self.status, &self.body, &self.key, &self.endpoint))
    }

    /// etcd's error body, when this answer is an etcd error.
    pub(crate) fn etcd_error(&self) -> Option<errors::EtcdError> {
        if self.is_success() { None } else { errors::EtcdError::parse(&self.body) }
    }
}

/// The `X-Etcd-Index` header of a response.
pub(crate) fn etcd_index(resp: &Response) -> Option<u64> {
    resp.headers().get("x-etcd-index")?.to_str().ok()?.parse().ok()
}

/// The HTTP side of an etcd v2 store: shared by every request of one [`super::EtcdV2Store`].
pub(crate) struct Http {
    client: reqwest::Client,
    endpoints: Vec<Url>,
    /// The endpoint that answered last; requests start there.
    current: AtomicUsize,
    /// The bound of every request (`--store-timeout`).
    pub(crate) timeout: Duration,
    username: Option<String>,
    password: Option<String>,
}

impl Http {
    /// Builds the client for `config`: request and connect timeouts, TLS material, basic auth.
    pub(crate) fn new(config: &StoreConfig) -> StoreResult<Http> {
        let endpoints = config
            .effective_endpoints()
            .iter()
            .map(|e| {
                Url::parse(&e.url()).map_err(|err| StoreError::Config(format!("--store-endpoints {}: {err}", e.url())))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(StoreError::Config("--store-endpoints is empty".into()));
        }
        ensure_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy();
        if config.uses_tls() {
            builder = with_tls(builder, &config.tls)?;
        } else if config.tls.ca_file.is_some() || config.tls.cert_file.is_some() {
            return Err(StoreError::Config(
                "TLS files were given but --store-endpoints use http; use https:// endpoints".into(),
            ));
        }
        let client =
            builder.build().map_err(|e| StoreError::Config(format!("cannot build the etcd v2 HTTP client: {e}")))?;
        Ok(Http {
            client,
            endpoints,
            current: AtomicUsize::new(0),
            timeout: config.timeout,
            username: config.username.clone(),
            password: config.password.clone(),
        })
    }

    /// The endpoints, comma-separated, for error messages.
    pub(crate) fn endpoints_label(&self) -> String {
        self.endpoints.iter().map(|u| u.as_str().trim_end_matches('/')).collect::<Vec<_>>().join(",")
    }

    /// Sends `call` and reads the whole answer (success or etcd error), within the store timeout.
    pub(crate) async fn send(&self, call: Call<'_>) -> StoreResult<Reply> {
        let key = call.key_name();
        bounded(self.timeout, &key, async {
            let (resp, endpoint) = self.open(&call, None).await?;
            let status = resp.status().as_u16();
            let etcd_index = etcd_index(&resp);
            let body = resp.bytes().await.map_err(|e| errors::from_transport(&e, &key, &endpoint, self.timeout))?;
            Ok(Reply { status, etcd_index, body: body.to_vec(), key: key.clone(), endpoint })
        })
        .await
    }

    /// Sends `call` and returns once the response headers arrived (within the store timeout), with the
    /// endpoint that answered. `total` replaces the store timeout as the bound of the whole exchange
    /// (long polls). Tries the next endpoint when one refuses the connection.
    pub(crate) async fn open(&self, call: &Call<'_>, total: Option<Duration>) -> StoreResult<(Response, String)> {
        let key = call.key_name();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..self.endpoints.len() {
            let i = (start + step) % self.endpoints.len();
            let endpoint = self.endpoints[i].as_str().trim_end_matches('/').to_string();
            let req = self.request(&self.endpoints[i], call, total)?;
            match bounded(self.timeout, &key, async { Ok(req.send().await) }).await? {
                Ok(resp) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok((resp, endpoint));
                }
                // Nothing was sent: another endpoint may serve it.
                Err(e) if e.is_connect() => last = Some(errors::from_transport(&e, &key, &endpoint, self.timeout)),
                Err(e) => return Err(errors::from_transport(&e, &key, &endpoint, self.timeout)),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Unavailable {
            endpoints: self.endpoints_label(),
            reason: "no endpoint configured".into(),
        }))
    }

    fn request(&self, base: &Url, call: &Call<'_>, total: Option<Duration>) -> StoreResult<reqwest::RequestBuilder> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|_| StoreError::Config(format!("--store-endpoints {base}: not a base URL")))?
            .clear()
            .push("v2")
            .push("keys")
            .extend(&call.key.segments);
        let mut req = self.client.request(call.method.clone(), url);
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if !call.form.is_empty() {
            req = req.form(&call.form);
        }
        if let Some(user) = &self.username {
            req = req.basic_auth(user, Some(self.password.as_deref().unwrap_or("")));
        }
        if let Some(total) = total {
            req = req.timeout(total);
        }
        Ok(req)
    }
}

/// Installs rustls' ring crypto provider as the process default unless a provider is installed already.
///
/// reqwest's rustls support (enabled in the whole build by this crate) panics when a client is built
/// without a process-wide provider; call this before building any `reqwest::Client` elsewhere in the
/// program. The etcd v2 backend calls it itself.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn with_tls(mut builder: reqwest::ClientBuilder, tls: &TlsConfig) -> StoreResult<reqwest::ClientBuilder> {
    if let Some(ca) = &tls.ca_file {
        let pem = TlsConfig::read("--store-ca-file", ca)?;
        let certs = Certificate::from_pem_bundle(&pem)
            .map_err(|e| StoreError::Config(format!("--store-ca-file {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(StoreError::Config(format!("--store-ca-file {}: no certificate found", ca.display())));
        }
        // Like etcd's own clients: the given CA replaces the system roots.
        builder = builder.tls_certs_only(certs);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = TlsConfig::read("--store-cert-file", cert)?;
        pem.push(b'\n');
        pem.extend(TlsConfig::read("--store-key", key)?);
        let identity = Identity::from_pem(&pem).map_err(|e| {
            StoreError::Config(format!("--store-cert-file {} / --store-key {}: {e}", cert.display(), key.display()))
        })?;
        builder = builder.identity(identity);
    }
    if tls.skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalised_like_etcd_v2() {
        let k = Key::new("/stolon//cluster/");
        assert_eq!(k, Key::new("stolon/cluster"));
        assert_eq!(k.child("c1").child("clusterdata").name(), "/stolon/cluster/c1/clusterdata");
    }

    #[test]
    fn urls_encode_each_segment() {
        let mut c =
            StoreConfig::new(crate::StoreBackend::EtcdV2, "c 1").with_endpoints("http://127.0.0.1:2379").unwrap();
        c.prefix = "/my/prefix".into();
        let http = Http::new(&c).unwrap();
        let key = Key::new(&c.cluster_path()).child("a?b#c");
        let req = http.request(&http.endpoints[0], &Call::get(&key).query("quorum", true), None).unwrap();
        let url = req.build().unwrap().url().to_string();
        assert_eq!(url, "http://127.0.0.1:2379/v2/keys/my/prefix/c%201/a%3Fb%23c?quorum=true");
    }

    #[test]
    fn tls_files_need_https() {
        let mut c = StoreConfig::new(crate::StoreBackend::EtcdV2, "c").with_endpoints("http://127.0.0.1:2379").unwrap();
        c.tls.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(Http::new(&c), Err(StoreError::Config(_))));
        let mut c = c.with_endpoints("https://127.0.0.1:2379").unwrap();
        c.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let e = Http::new(&c).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("--store-ca-file") && e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
