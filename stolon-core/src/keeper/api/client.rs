//! A small client of the keeper API (the `apiURL` of a keeper info), with the API's TLS and basic
//! authentication: for tests, tools, and components that ask a keeper what it sees.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::auth::BasicAuth;
use super::tls::client_config;

/// The largest response body read.
const MAX_BODY: usize = 4 << 20;

/// How to reach keeper APIs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// CA bundle verifying `https` APIs (`None`: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Basic authentication sent with every request (user, password).
    pub basic_auth: Option<(String, String)>,
    /// Bound of one request, connection included.
    pub timeout: Duration,
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    /// The client could not be set up (unreadable CA bundle, ...).
    #[error("keeper API client: {0}")]
    Config(String),
    /// The URL is not an http(s) URL.
    #[error("keeper API URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The request failed (connection, TLS, protocol).
    #[error("keeper API request to {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("keeper API request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The bound.
        timeout: Duration,
    },
}

/// A response: its status code, headers and body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The status code (200: the check passed).
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body (JSON, except `/metrics`).
    pub body: Bytes,
}

impl ApiResponse {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not JSON: {e}"))
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A keeper API client; cheap to clone, connections are pooled. Its `Debug` shows no credentials.
#[derive(Clone)]
pub struct ApiClient {
    client: Client<Connector, Full<Bytes>>,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client; `https` URLs are verified with `ca_file` (or the system's roots).
    pub fn new(options: &ClientOptions) -> Result<ApiClient, ApiClientError> {
        let tls = match &options.ca_file {
            Some(ca) => client_config("CA file", Some(ca)),
            // Plain http needs no roots: an https URL then fails verification with a clear error.
            None => client_config("CA file", None).or_else(|_| empty_roots()),
        }
        .map_err(ApiClientError::Config)?;
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        let authorization = match &options.basic_auth {
            Some((u, p)) => Some(
                HeaderValue::from_str(&BasicAuth::header_value(u, p))
                    .map_err(|_| ApiClientError::Config("the basic auth user or password is not valid".into()))?,
            ),
            None => None,
        };
        Ok(ApiClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            authorization,
            timeout: options.timeout,
        })
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<ApiResponse, ApiClientError> {
        self.request(hyper::Method::GET, url).await
    }

    /// Sends a bodiless request with `method` to `url`.
    pub async fn request(&self, method: hyper::Method, url: &str) -> Result<ApiResponse, ApiClientError> {
        let bad_url = |reason: String| ApiClientError::Url { url: url.to_string(), reason };
        let uri: hyper::Uri = url.parse().map_err(|e| bad_url(format!("{e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(bad_url("expected an http:// or https:// URL".into()));
        }
        let mut req = hyper::Request::builder().method(method).uri(uri);
        if let Some(a) = &self.authorization {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = req.body(Full::new(Bytes::new())).map_err(|e| bad_url(e.to_string()))?;
        let failed = |reason: String| ApiClientError::Request { url: url.to_string(), reason };
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| failed(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| failed(e.to_string()))?;
            Ok(ApiResponse { status, headers, body: body.to_bytes() })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ApiClientError::Timeout { url: url.to_string(), timeout: self.timeout })?
    }
}

fn empty_roots() -> Result<rustls::ClientConfig, String> {
    Ok(rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
