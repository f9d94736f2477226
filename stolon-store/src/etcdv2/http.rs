//! The HTTP transport of the v2 keys API: one hyper client (rustls with ring, basic auth, timeouts),
//! endpoint failover, and key paths under `/v2/keys`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::errors;
use crate::timeout::bounded;
use crate::tls;
use crate::{StoreConfig, StoreError, StoreResult};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

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
pub(crate) fn etcd_index(resp: &Response<Incoming>) -> Option<u64> {
    resp.headers().get("x-etcd-index")?.to_str().ok()?.parse().ok()
}

/// The HTTP side of an etcd v2 store: shared by every request of one [`super::EtcdV2Store`].
pub(crate) struct Http {
    client: Client<Connector, Full<Bytes>>,
    endpoints: Vec<Url>,
    /// The endpoint that answered last; requests start there.
    current: AtomicUsize,
    /// The bound of every request (`--store-timeout`).
    pub(crate) timeout: Duration,
    /// `Basic <user:password>`, marked sensitive so that it is never printed.
    authorization: Option<HeaderValue>,
}

impl Http {
    /// Builds the client for `config`: connect timeout, TLS material, basic auth.
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
        let tls_config = if config.uses_tls() {
            tls::client_config(&config.tls)?
        } else if config.tls.ca_file.is_some() || config.tls.cert_file.is_some() {
            return Err(StoreError::Config(
                "TLS files were given but --store-endpoints use http; use https:// endpoints".into(),
            ));
        } else {
            tls::plain_config()?
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        let authorization = match &config.username {
            Some(user) => Some(basic_auth(user, config.password.as_deref().unwrap_or(""))?),
            None => None,
        };
        Ok(Http { client, endpoints, current: AtomicUsize::new(0), timeout: config.timeout, authorization })
    }

    /// The endpoints, comma-separated, for error messages.
    pub(crate) fn endpoints_label(&self) -> String {
        self.endpoints.iter().map(|u| u.as_str().trim_end_matches('/')).collect::<Vec<_>>().join(",")
    }

    /// Sends `call` and reads the whole answer (success or etcd error), within the store timeout.
    pub(crate) async fn send(&self, call: Call<'_>) -> StoreResult<Reply> {
        let key = call.key_name();
        bounded(self.timeout, &key, async {
            let (resp, endpoint) = self.open(&call).await?;
            let status = resp.status().as_u16();
            let etcd_index = etcd_index(&resp);
            let body = read_body(resp, &key, &endpoint).await?;
            Ok(Reply { status, etcd_index, body: body.to_vec(), key: key.clone(), endpoint })
        })
        .await
    }

    /// Sends `call` and returns once the response headers arrived (within the store timeout), with the
    /// endpoint that answered; the caller reads (and bounds) the body. Tries the next endpoint when one
    /// cannot be connected to.
    pub(crate) async fn open(&self, call: &Call<'_>) -> StoreResult<(Response<Incoming>, String)> {
        let key = call.key_name();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..self.endpoints.len() {
            let i = (start + step) % self.endpoints.len();
            let endpoint = self.endpoints[i].as_str().trim_end_matches('/').to_string();
            let req = self.request(&self.endpoints[i], call)?;
            match bounded(self.timeout, &key, async { Ok(self.client.request(req).await) }).await? {
                Ok(resp) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok((resp, endpoint));
                }
                // Nothing was sent: another endpoint may serve it.
                Err(e) if e.is_connect() => last = Some(errors::from_transport(&e, &endpoint)),
                Err(e) => return Err(errors::from_transport(&e, &endpoint)),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Unavailable {
            endpoints: self.endpoints_label(),
            reason: "no endpoint configured".into(),
        }))
    }

    fn request(&self, base: &Url, call: &Call<'_>) -> StoreResult<Request<Full<Bytes>>> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|_| StoreError::Config(format!("--store-endpoints {base}: not a base URL")))?
            .clear()
            .push("v2")
            .push("keys")
            .extend(&call.key.segments);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        let mut req = Request::builder().method(call.method.clone()).uri(url.as_str());
        let body = if call.form.is_empty() {
            Bytes::new()
        } else {
            req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            Bytes::from(form_urlencoded::Serializer::new(String::new()).extend_pairs(&call.form).finish())
        };
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req.body(Full::new(body)).map_err(|e| StoreError::Config(format!("request for {}: {e}", call.key_name())))
    }
}

/// Reads a whole response body; a broken connection is an unavailable store.
pub(crate) async fn read_body(resp: Response<Incoming>, key: &str, endpoint: &str) -> StoreResult<Bytes> {
    match resp.into_body().collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(StoreError::Unavailable {
            endpoints: endpoint.to_string(),
            reason: format!("reading the answer for {key}: {}", crate::error::error_chain(&e)),
        }),
    }
}

fn basic_auth(user: &str, password: &str) -> StoreResult<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| StoreError::Config("--store-username: not usable in an HTTP header".into()))?;
    value.set_sensitive(true);
    Ok(value)
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
        let req = http.request(&http.endpoints[0], &Call::get(&key).query("quorum", true)).unwrap();
        let url = req.uri().to_string();
        assert_eq!(url, "http://127.0.0.1:2379/v2/keys/my/prefix/c%201/a%3Fb%23c?quorum=true");
    }

    #[test]
    fn writes_are_forms_and_credentials_are_basic_auth() {
        let mut c = StoreConfig::new(crate::StoreBackend::EtcdV2, "c").with_endpoints("http://127.0.0.1:2379").unwrap();
        c.username = Some("root".into());
        c.password = Some("p@ss".into());
        let http = Http::new(&c).unwrap();
        let key = Key::new("a/b");
        let call = Call::put(&key).query("prevExist", false).form("value", r#"{"x":"a b&c"}"#).form("ttl", 20);
        let req = http.request(&http.endpoints[0], &call).unwrap();
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:2379/v2/keys/a/b?prevExist=false");
        assert_eq!(req.headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");
        let auth = &req.headers()[AUTHORIZATION];
        assert!(auth.is_sensitive());
        assert_eq!(auth, "Basic cm9vdDpwQHNz");
        let body = futures::executor::block_on(req.into_body().collect()).unwrap().to_bytes();
        assert_eq!(&body[..], b"value=%7B%22x%22%3A%22a+b%26c%22%7D&ttl=20");
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
