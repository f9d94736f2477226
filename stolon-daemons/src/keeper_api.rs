//! The keeper API flags (`--api-listen-address`, `--api-tls-cert-file`, `--api-tls-key-file`,
//! `--api-basic-auth-file`) and the listener they describe, shared with `--metrics-listen-address` when both
//! name the same address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use prometheus_client::registry::Registry;
use stolon_core::keeper::api::{ApiClient, ApiListener, BasicAuth, ClientOptions, ServeOptions, api_url, tls};

use crate::metrics;

/// The bound of one call to another keeper's API in failsafe mode.
const FAILSAFE_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The keeper API flags.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Serve the keeper HTTP API (role and health checks for load balancers and probes) on host:port
    /// (":port" for every interface); off when empty. The same address as --metrics-listen-address shares
    /// one listener.
    #[arg(long, default_value = "")]
    pub api_listen_address: String,
    /// PEM certificate (chain) of the API: serve it over TLS (with --api-tls-key-file).
    #[arg(long, default_value = "")]
    pub api_tls_cert_file: String,
    /// PEM private key of --api-tls-cert-file.
    #[arg(long, default_value = "")]
    pub api_tls_key_file: String,
    /// File of user:password lines: every API request must authenticate with one of them (HTTP basic).
    #[arg(long, default_value = "")]
    pub api_basic_auth_file: String,
    /// PEM CA bundle verifying the other keepers' https APIs, which the master calls in failsafe mode (the
    /// system's roots when empty); the first pair of --api-basic-auth-file authenticates these calls.
    #[arg(long, default_value = "")]
    pub api_ca_file: String,
}

/// The listeners of a keeper: the API's (serving `/metrics` too when shared) and whether the metrics need
/// their own.
pub struct Listeners {
    /// The API, when enabled.
    pub api: Option<ApiListener>,
    /// The URL published as `apiURL` (empty when the API is off).
    pub api_url: String,
    /// The address of a separate metrics listener, when metrics are enabled and not shared.
    pub separate_metrics: Option<SocketAddr>,
    /// The client of the other keepers' APIs (failsafe mode), when the API is on.
    pub failsafe_client: Option<ApiClient>,
}

/// Checks the API flags and binds the API listener. `registry` (present when `--metrics-listen-address` is
/// set) is served on the API listener when both addresses are equal.
pub async fn bind(
    args: &ApiArgs,
    metrics_address: &str,
    registry: Option<Arc<Registry>>,
    advertise_host: &str,
) -> anyhow::Result<Listeners> {
    let metrics_addr =
        metrics::parse_address("--metrics-listen-address", metrics_address).map_err(anyhow::Error::msg)?;
    let api_addr =
        metrics::parse_address("--api-listen-address", &args.api_listen_address).map_err(anyhow::Error::msg)?;
    let (cert, key, auth) = (&args.api_tls_cert_file, &args.api_tls_key_file, &args.api_basic_auth_file);
    if cert.is_empty() != key.is_empty() {
        bail!("--api-tls-cert-file and --api-tls-key-file must be given together");
    }
    let Some(addr) = api_addr else {
        if !cert.is_empty() || !auth.is_empty() || !args.api_ca_file.is_empty() {
            bail!(
                "--api-tls-cert-file, --api-tls-key-file, --api-basic-auth-file and --api-ca-file need \
                 --api-listen-address"
            );
        }
        return Ok(Listeners {
            api: None,
            api_url: String::new(),
            separate_metrics: metrics_addr,
            failsafe_client: None,
        });
    };
    let mut options = ServeOptions::default();
    if !cert.is_empty() {
        options.tls = Some(tls::server_config(Path::new(cert), Path::new(key)).map_err(anyhow::Error::msg)?);
    }
    if !auth.is_empty() {
        options.auth = Some(BasicAuth::from_file(Path::new(auth)).map_err(anyhow::Error::msg)?);
    }
    let shared = metrics_addr == Some(addr);
    if shared {
        let registry = registry.context("metrics are enabled but no registry was built")?;
        options.metrics = Some(Arc::new(move || metrics::render(&registry)));
    }
    let tls = options.tls.is_some();
    let client_options = ClientOptions {
        ca_file: Some(args.api_ca_file.as_str()).filter(|f| !f.is_empty()).map(PathBuf::from),
        basic_auth: options.auth.as_ref().and_then(BasicAuth::first),
        timeout: FAILSAFE_CALL_TIMEOUT,
    };
    let failsafe_client = ApiClient::new(&client_options).context("--api-ca-file")?;
    let listener = ApiListener::bind(addr, options).await?;
    let bound = listener.local_addr()?;
    Ok(Listeners {
        api: Some(listener),
        api_url: api_url(bound, tls, advertise_host),
        separate_metrics: if shared { None } else { metrics_addr },
        failsafe_client: Some(failsafe_client),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    fn args(a: &[&str]) -> ApiArgs {
        Cli::try_parse_from(std::iter::once("t").chain(a.iter().copied())).unwrap().api
    }

    #[tokio::test]
    async fn flags_are_checked_and_listeners_shared() {
        let none = bind(&args(&[]), "", None, "h").await.unwrap();
        assert!(none.api.is_none() && none.api_url.is_empty() && none.separate_metrics.is_none());
        let e = bind(&args(&["--api-tls-cert-file", "c"]), "", None, "h").await.err().unwrap().to_string();
        assert!(e.contains("together"), "{e}");
        let e = bind(&args(&["--api-basic-auth-file", "f"]), "", None, "h").await.err().unwrap().to_string();
        assert!(e.contains("need --api-listen-address"), "{e}");
        let e = bind(&args(&["--api-listen-address", "nowhere"]), "", None, "h").await.err().unwrap().to_string();
        assert!(e.contains("--api-listen-address"), "{e}");
        let e = bind(
            &args(&["--api-listen-address", "127.0.0.1:0", "--api-basic-auth-file", "/nonexistent"]),
            "",
            None,
            "h",
        )
        .await
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("--api-basic-auth-file"), "{e}");

        let separate = bind(&args(&["--api-listen-address", "127.0.0.1:0"]), "127.0.0.1:9", None, "h").await.unwrap();
        assert!(separate.api.is_some());
        assert!(separate.api_url.starts_with("http://127.0.0.1:"), "{}", separate.api_url);
        assert_eq!(separate.separate_metrics, Some("127.0.0.1:9".parse().unwrap()));

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let shared = bind(&args(&["--api-listen-address", &addr]), &addr, Some(Arc::new(Registry::default())), "h")
            .await
            .unwrap();
        assert!(shared.separate_metrics.is_none(), "one listener serves both");
        assert_eq!(shared.api_url, format!("http://{addr}"));
    }
}
