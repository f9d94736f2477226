//! The Prometheus endpoint of the daemons (`--metrics-listen-address`): `GET /metrics` in the text
//! exposition format, and `GET /health` for probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Labels of `stolon_cluster_identifier`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster_name: String,
    component: String,
}

/// Registers `stolon_cluster_identifier{cluster_name, component} 1`, exported by every daemon.
pub fn register_cluster_identifier(registry: &mut Registry, cluster_name: &str, component: &str) {
    let family = Family::<ClusterLabels, Gauge>::default();
    family.get_or_create(&ClusterLabels { cluster_name: cluster_name.into(), component: component.into() }).set(1);
    // prometheus-client prefixes nothing: the full name is given here.
    registry.register("stolon_cluster_identifier", "Set to 1, labelled with the cluster name and component", family);
}

/// Parses `--metrics-listen-address` (`host:port`, `:port` meaning all interfaces); empty means disabled.
pub fn parse_listen_address(s: &str) -> Result<Option<SocketAddr>, String> {
    parse_address("--metrics-listen-address", s)
}

/// Parses a listen address flag named `flag` (`host:port`, `:port` meaning all interfaces); empty means
/// disabled.
pub fn parse_address(flag: &str, s: &str) -> Result<Option<SocketAddr>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_string() };
    full.parse::<SocketAddr>()
        .map(Some)
        .map_err(|e| format!("{flag} {s:?}: expected host:port with an IP address ({e})"))
}

/// The registry in the text exposition format.
pub fn render(registry: &Registry) -> Result<String, String> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry).map_err(|e| e.to_string())?;
    Ok(body)
}

/// Binds `addr` and serves the registry until the returned task is aborted. Binding errors are returned
/// at once, naming the address.
pub async fn serve(addr: SocketAddr, registry: Arc<Registry>) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener on {addr}: {e}")))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let registry = registry.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &registry)).await;
            });
        }
    }))
}

/// Reads one request (headers bounded to 8 KiB) and answers it.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request_line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => match render(registry) {
            Ok(body) => ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", body),
            Err(e) => ("500 Internal Server Error", "text/plain", format!("encoding metrics: {e}\n")),
        },
        ("GET", "/health") => ("200 OK", "text/plain", "ok\n".to_string()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_health_and_404() {
        let mut registry = Registry::default();
        register_cluster_identifier(&mut registry, "c1", "sentinel");
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let task = serve(addr, Arc::new(registry)).await.unwrap();
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics.contains(r#"stolon_cluster_identifier{cluster_name="c1",component="sentinel"} 1"#),
            "{metrics}"
        );
        assert!(get(addr, "/health").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        task.abort();
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen_address("").unwrap(), None);
        assert_eq!(parse_listen_address(":9090").unwrap().unwrap().port(), 9090);
        assert!(parse_listen_address("localhost:x").unwrap_err().contains("--metrics-listen-address"));
    }
}
