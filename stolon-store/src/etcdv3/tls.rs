//! The gRPC channel to `https` etcd endpoints: TLS through the same rustls configuration as the other
//! backends (`--store-ca-file` or the system roots, `--store-cert-file`/`--store-key`, and
//! `--store-skip-tls-verify`, which the gRPC stack's own TLS settings cannot express).
//!
//! One connection at a time: the connector tries the endpoints in order and keeps the first that completes a
//! TLS handshake; when that connection breaks, the channel reconnects through the list again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::{Endpoint, StoreConfig, StoreError, StoreResult, tls};

/// Builds a lazy channel to the `https` endpoints of `config`, with the connection settings of the plain
/// channel (`keep_alive`: interval of HTTP/2 pings while streams are open).
pub(super) fn channel(config: &StoreConfig, keep_alive: Duration) -> StoreResult<tonic::transport::Channel> {
    let endpoints: Arc<[Endpoint]> = config.effective_endpoints().into();
    let first = endpoints.first().ok_or_else(|| StoreError::Config("--store-endpoints: no etcd endpoint".into()))?;
    let mut rustls_config = tls::client_config(&config.tls)?;
    rustls_config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = Connector {
        endpoints: endpoints.clone(),
        tls: TlsConnector::from(Arc::new(rustls_config)),
        timeout: config.timeout,
    };
    // The connector does TLS: tonic must see a plain URI (it refuses `https` without its own TLS settings).
    let authority = first.url().replacen("https://", "http://", 1);
    let endpoint = tonic::transport::Endpoint::from_shared(authority)
        .map_err(|e| StoreError::Config(format!("--store-endpoints {}: {e}", first.url())))?
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .http2_keep_alive_interval(keep_alive)
        .keep_alive_timeout(config.timeout)
        .keep_alive_while_idle(false);
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// TCP then TLS to the first endpoint that answers.
#[derive(Clone)]
struct Connector {
    endpoints: Arc<[Endpoint]>,
    tls: TlsConnector,
    timeout: Duration,
}

type Connected = TokioIo<TlsStream<TcpStream>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Connected;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Connected, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut failures = Vec::new();
            for ep in this.endpoints.iter() {
                match tokio::time::timeout(this.timeout, this.connect(ep)).await {
                    Ok(Ok(stream)) => return Ok(TokioIo::new(stream)),
                    Ok(Err(e)) => failures.push(format!("{}: {e}", ep.url())),
                    Err(_) => failures.push(format!("{}: no TLS connection within {:?}", ep.url(), this.timeout)),
                }
            }
            Err(std::io::Error::other(failures.join("; ")))
        })
    }
}

impl Connector {
    async fn connect(&self, ep: &Endpoint) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(ep.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("server name: {e}")))?;
        self.tls.connect(name, tcp).await
    }
}
