//! stolon-proxy: forwards client connections to the current master only, and closes them all whenever the
//! master changes or the store cannot be read for `proxyTimeout`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use stolon_core::cluster::new_uid;
use stolon_core::proxy::{Keepalive, ProxyConfig, ProxyStats};
use stolon_core::stolon_store;
use stolon_core::store::ClusterStore;
use stolon_daemons::{common::CommonArgs, env, logging, metrics};

/// The stolon-rs proxy. Every flag can also be set as STPROXY_<FLAG_NAME>.
#[derive(Parser, Debug)]
#[command(name = "stolon-proxy", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on for clients (an IP address or a host name).
    #[arg(long, default_value = "127.0.0.1")]
    listen_address: String,
    /// Port to listen on for clients.
    #[arg(long, default_value_t = 5432)]
    port: u16,
    /// Also close the listening socket (not only the connections) when no check succeeded for proxyTimeout.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    stop_listening: bool,
    /// TCP keepalive idle time of client connections, in seconds (0: kernel default).
    #[arg(long, default_value_t = 0)]
    tcp_keepalive_idle: u32,
    /// TCP keepalive probe count of client connections (0: kernel default).
    #[arg(long, default_value_t = 0)]
    tcp_keepalive_count: u32,
    /// TCP keepalive probe interval of client connections, in seconds (0: kernel default).
    #[arg(long, default_value_t = 0)]
    tcp_keepalive_interval: u32,
    /// Deprecated: use --log-level=debug.
    #[arg(long, hide = true)]
    debug: bool,
}

/// Resolves `--listen-address` and `--port` to one socket address.
fn listen_address(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bad = |why: String| format!("invalid --listen-address {host:?}: {why}");
    if host.is_empty() {
        return Err(bad("empty".into()));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port).to_socket_addrs().map_err(|e| bad(e.to_string()))?.next().ok_or_else(|| bad("no address".into()))
}

fn keepalive(cli: &Cli) -> Keepalive {
    let secs = |s: u32| (s > 0).then(|| Duration::from_secs(u64::from(s)));
    Keepalive {
        idle: secs(cli.tcp_keepalive_idle),
        interval: secs(cli.tcp_keepalive_interval),
        count: (cli.tcp_keepalive_count > 0).then_some(cli.tcp_keepalive_count),
    }
}

/// Exports the proxy's counters at scrape time.
#[derive(Debug)]
struct ProxyCollector(Arc<ProxyStats>);

impl Collector for ProxyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let f = &s.forward;
        let counters = [
            ("stolon_proxy_connections_accepted", "Client connections accepted", f.accepted.load(Ordering::Relaxed)),
            (
                "stolon_proxy_connections_rejected",
                "Client connections closed at once because there was no master to forward to",
                f.rejected.load(Ordering::Relaxed),
            ),
            (
                "stolon_proxy_dial_failures",
                "Client connections closed because the master could not be reached",
                f.dial_failures.load(Ordering::Relaxed),
            ),
            (
                "stolon_proxy_target_changes",
                "Forwarding target changes (each closed every forwarded connection)",
                f.target_changes.load(Ordering::Relaxed),
            ),
            ("stolon_proxy_checks_succeeded", "Cluster checks that succeeded", s.checks_ok.load(Ordering::Relaxed)),
            ("stolon_proxy_checks_failed", "Cluster checks that failed", s.checks_failed.load(Ordering::Relaxed)),
            (
                "stolon_proxy_check_timeouts",
                "Times no check succeeded for proxyTimeout (connections dropped)",
                s.watchdog_fired.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let gauges = [
            ("stolon_proxy_connections_active", "Connections being forwarded now", f.active.load(Ordering::Relaxed)),
            ("stolon_proxy_generation", "Proxy generation last published", s.generation.load(Ordering::Relaxed)),
            (
                "stolon_proxy_last_check_success_seconds",
                "Unix time of the last successful cluster check",
                s.last_check_success_seconds.load(Ordering::Relaxed),
            ),
            ("stolon_proxy_listening", "1 while the client listener is open", s.listening.load(Ordering::Relaxed)),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
    tracing::info!("termination signal received");
}

async fn serve(cli: Cli, listen: SocketAddr) -> ExitCode {
    let config = match cli.common.daemon_store_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stolon-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let stats = Arc::new(ProxyStats::default());
    let metrics_task = match metrics::parse_listen_address(&cli.common.metrics_listen_address) {
        Err(e) => {
            eprintln!("stolon-proxy: {e}");
            return ExitCode::from(2);
        }
        Ok(None) => None,
        Ok(Some(addr)) => {
            let mut registry = Registry::default();
            metrics::register_cluster_identifier(&mut registry, &cli.common.cluster_name, "proxy");
            registry.register_collector(Box::new(ProxyCollector(stats.clone())));
            match metrics::serve(addr, Arc::new(registry)).await {
                Ok(task) => Some(task),
                Err(e) => {
                    eprintln!("stolon-proxy: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let store = loop {
        match stolon_store::connect(&config).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to the store; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown_signal() => return ExitCode::SUCCESS,
                }
            }
        }
    };
    let proxy = ProxyConfig { uid: new_uid(), listen, stop_listening: cli.stop_listening, keepalive: keepalive(&cli) };
    stolon_core::proxy::run(ClusterStore::new(store), proxy, stats, shutdown_signal()).await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    ExitCode::SUCCESS
}

/// Raises the soft limit of open files to the hard limit: every forwarded connection holds two.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("cannot raise the open files limit");
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::PROXY);
    let level = if cli.debug { logging::LogLevel::Debug } else { cli.common.log_level };
    logging::init(level, cli.common.log_color);
    let listen = match listen_address(&cli.listen_address, cli.port) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stolon-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    // One thread: the proxy's work is many short wake-ups, and on small machines a second runtime thread
    // competes with PostgreSQL and the clients for the CPU.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stolon-proxy: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(cli, listen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        stolon_daemons::try_parse_cli_from(env::PROXY, std::iter::once("stolon-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn boolean_flags_take_go_syntax() {
        let cli = parse(&[]).unwrap();
        assert!(cli.stop_listening && !cli.debug && !cli.common.store_skip_tls_verify);
        let cli = parse(&["--stop-listening=f", "--debug=t", "--store-skip-tls-verify=True"]).unwrap();
        assert!(!cli.stop_listening && cli.debug && cli.common.store_skip_tls_verify);
        let e = parse(&["--stop-listening", "FALSE"]).unwrap_err().to_string();
        assert!(e.contains("--stop-listening") && e.contains("\"FALSE\""), "{e}");
    }
}
