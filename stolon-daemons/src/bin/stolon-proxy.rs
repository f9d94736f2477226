//! stolon-proxy: forwards client connections to the current master only, and closes them all whenever the
//! master changes or the store cannot be read for `proxyTimeout`. With `--read-only-port` it also balances
//! read-only connections over the standbys within `--read-only-max-lag`.

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
use stolon_core::byte_size::parse_byte_size;
use stolon_core::cluster::new_uid;
use stolon_core::keeper::api::{ApiClient, BasicAuth, ClientOptions};
use stolon_core::proxy::kernel::{DEFAULT_MODE, Forwarding, ForwardingMode, Selected};
use stolon_core::proxy::{Fallback, Keepalive, ProxyConfig, ProxyStats, ReadOnlyConfig};
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
    /// Port of the read-only listener, which balances connections over the standbys within
    /// --read-only-max-lag (no read-only listener when unset).
    #[arg(long)]
    read_only_port: Option<u16>,
    /// Address of the read-only listener (an IP address or a host name; default: --listen-address).
    #[arg(long)]
    read_only_listen_address: Option<String>,
    /// Largest replay lag of a standby the read-only port uses: bytes, or with a kB, MB, GB or TB suffix
    /// (1024-based).
    #[arg(long, default_value = "16MB", value_parser = |s: &str| parse_byte_size(s).map_err(|e| e.to_string()))]
    read_only_max_lag: u64,
    /// What the read-only port does when no standby qualifies: none (refuse connections) or master
    /// (forward to the master).
    #[arg(long, default_value = "none", value_parser = |s: &str| s.parse::<Fallback>())]
    read_only_fallback: Fallback,
    /// PEM CA bundle verifying the keepers' https APIs, which the proxy asks in failsafe mode during a store
    /// outage (the system's roots when empty).
    #[arg(long, default_value = "")]
    keeper_api_ca_file: String,
    /// File of user:password lines (the keepers' --api-basic-auth-file): its first pair authenticates the
    /// proxy's calls to the keepers' APIs in failsafe mode.
    #[arg(long, default_value = "")]
    keeper_api_basic_auth_file: String,
    /// How established connections are forwarded: kernel (an eBPF sockmap program moves the bytes; a
    /// start-up error when it cannot load), userspace (copied through the proxy), or auto (kernel when it
    /// loads, else userspace).
    #[arg(long, default_value_t = DEFAULT_MODE, value_parser = |s: &str| s.parse::<ForwardingMode>())]
    forwarding: ForwardingMode,
    /// Deprecated: use --log-level=debug.
    #[arg(long, hide = true)]
    debug: bool,
}

/// The forwarding `--forwarding` asks for, its gauges set in `stats`; an error when kernel mode cannot load.
fn forwarding(mode: ForwardingMode, stats: &ProxyStats) -> Result<Forwarding, String> {
    let Selected { forwarding, fallback } =
        Forwarding::select(mode).map_err(|e| format!("--forwarding kernel: {e}"))?;
    if let Some(e) = fallback {
        tracing::warn!(error = %e, "kernel forwarding unavailable: forwarding in userspace");
        stats.kernel_forwarding_fallback.store(1, Ordering::Relaxed);
    }
    stats.kernel_forwarding.store(i64::from(forwarding.is_kernel()), Ordering::Relaxed);
    Ok(forwarding)
}

/// The client of the keepers' APIs (failsafe mode), from --keeper-api-ca-file and
/// --keeper-api-basic-auth-file.
fn keeper_api_client(cli: &Cli) -> Result<ApiClient, String> {
    let basic_auth = match cli.keeper_api_basic_auth_file.as_str() {
        "" => None,
        f => BasicAuth::from_file(std::path::Path::new(f))
            .map_err(|e| e.replace("--api-basic-auth-file", "--keeper-api-basic-auth-file"))?
            .first(),
    };
    let options = ClientOptions {
        ca_file: Some(cli.keeper_api_ca_file.as_str()).filter(|f| !f.is_empty()).map(std::path::PathBuf::from),
        basic_auth,
        timeout: Duration::from_secs(2),
    };
    ApiClient::new(&options).map_err(|e| format!("--keeper-api-ca-file: {e}"))
}

/// Resolves `--listen-address` and `--port` to one socket address.
fn listen_address(host: &str, port: u16) -> Result<SocketAddr, String> {
    resolve_listen("--listen-address", host, port)
}

/// The read-only port's configuration, when `--read-only-port` is set.
fn read_only_config(cli: &Cli, listen: SocketAddr) -> Result<Option<ReadOnlyConfig>, String> {
    let Some(port) = cli.read_only_port else {
        if cli.read_only_listen_address.is_some() {
            return Err("--read-only-listen-address needs --read-only-port".into());
        }
        return Ok(None);
    };
    let address = match &cli.read_only_listen_address {
        Some(host) => resolve_listen("--read-only-listen-address", host, port)?,
        None => SocketAddr::new(listen.ip(), port),
    };
    if address == listen && port != 0 {
        return Err(format!("--read-only-port {port} is the port of the master listener on the same address"));
    }
    Ok(Some(ReadOnlyConfig { listen: address, max_lag: cli.read_only_max_lag, fallback: cli.read_only_fallback }))
}

/// Resolves the listen address given with `flag` and `port` to one socket address.
fn resolve_listen(flag: &str, host: &str, port: u16) -> Result<SocketAddr, String> {
    let bad = |why: String| format!("invalid {flag} {host:?}: {why}");
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
            (
                "stolon_proxy_kernel_forwarding",
                "1 when established connections are forwarded by the kernel (--forwarding)",
                s.kernel_forwarding.load(Ordering::Relaxed),
            ),
            (
                "stolon_proxy_kernel_forwarding_fallback",
                "1 when --forwarding auto fell back to userspace because kernel forwarding could not load",
                s.kernel_forwarding_fallback.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        encode_read_only(s, &mut encoder)
    }
}

/// The read-only port's metrics (all 0 without `--read-only-port`).
fn encode_read_only(s: &ProxyStats, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let r = &s.read_only;
    let f = &r.forward;
    let counters = [
        (
            "stolon_proxy_read_only_connections_accepted",
            "Read-only client connections accepted",
            f.accepted.load(Ordering::Relaxed),
        ),
        (
            "stolon_proxy_read_only_connections_rejected",
            "Read-only client connections closed at once because no standby qualified",
            f.rejected.load(Ordering::Relaxed),
        ),
        (
            "stolon_proxy_read_only_dial_failures",
            "Read-only client connections closed because their standby could not be reached",
            f.dial_failures.load(Ordering::Relaxed),
        ),
        (
            "stolon_proxy_read_only_target_changes",
            "Changes of the read-only target set (each closed the connections of the targets that left it)",
            f.target_changes.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let c = ConstCounter::new(value);
        c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
    }
    let gauges = [
        (
            "stolon_proxy_read_only_connections_active",
            "Read-only connections being forwarded now",
            f.active.load(Ordering::Relaxed),
        ),
        ("stolon_proxy_read_only_standbys", "Standbys the read-only port uses now", r.standbys.load(Ordering::Relaxed)),
        (
            "stolon_proxy_read_only_fallback",
            "1 while the read-only port forwards to the master because no standby qualifies",
            r.fallback.load(Ordering::Relaxed),
        ),
        (
            "stolon_proxy_read_only_listening",
            "1 while the read-only listener is open",
            r.listening.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in gauges {
        let g = ConstGauge::new(value);
        g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
    }
    Ok(())
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

async fn serve(cli: Cli, listen: SocketAddr, read_only: Option<ReadOnlyConfig>) -> ExitCode {
    let config = match cli.common.daemon_store_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stolon-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let stats = Arc::new(ProxyStats::default());
    let forwarding = match forwarding(cli.forwarding, &stats) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("stolon-proxy: {e}");
            return ExitCode::from(1);
        }
    };
    let metrics_task = match metrics::parse_listen_address(&cli.common.metrics_listen_address) {
        Err(e) => {
            eprintln!("stolon-proxy: {e}");
            return ExitCode::from(2);
        }
        Ok(None) => None,
        Ok(Some(addr)) => {
            let mut registry = Registry::default();
            metrics::register_cluster_identifier(&mut registry, &cli.common.cluster_name, "proxy");
            stolon_daemons::process_metrics::register_process_metrics(&mut registry);
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
    let failsafe_client = match keeper_api_client(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stolon-proxy: {e}");
            return ExitCode::from(1);
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
    let proxy = ProxyConfig {
        uid: new_uid(),
        listen,
        stop_listening: cli.stop_listening,
        keepalive: keepalive(&cli),
        read_only,
        failsafe_client: Some(failsafe_client),
        forwarding,
    };
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

pub(crate) fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::PROXY);
    let level = if cli.debug { logging::LogLevel::Debug } else { cli.common.log_level };
    logging::init(level, cli.common.log_color);
    let (listen, read_only) = match listen_address(&cli.listen_address, cli.port)
        .and_then(|listen| Ok((listen, read_only_config(&cli, listen)?)))
    {
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
    runtime.block_on(serve(cli, listen, read_only))
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

    fn cli(args: &[&str]) -> Result<Cli, String> {
        parse(args).map_err(|e| e.to_string())
    }

    fn read_only(args: &[&str]) -> Result<Option<ReadOnlyConfig>, String> {
        let c = cli(args)?;
        let listen = listen_address(&c.listen_address, c.port)?;
        read_only_config(&c, listen)
    }

    #[test]
    fn read_only_port_is_off_by_default_with_documented_defaults() {
        let c = cli(&[]).unwrap();
        assert_eq!(c.read_only_max_lag, 16 * 1024 * 1024);
        assert_eq!(c.read_only_fallback, Fallback::None);
        assert_eq!(read_only(&[]), Ok(None));
    }

    #[test]
    fn read_only_port_listens_on_the_proxy_address_unless_told_otherwise() {
        let ro = read_only(&["--port", "6000", "--read-only-port", "6001"]).unwrap().unwrap();
        assert_eq!(ro.listen, "127.0.0.1:6001".parse().unwrap());
        assert_eq!(ro.max_lag, 16 << 20);
        let args = [
            "--read-only-port",
            "6001",
            "--read-only-listen-address",
            "0.0.0.0",
            "--read-only-max-lag",
            "512kB",
            "--read-only-fallback",
            "master",
        ];
        let ro = read_only(&args).unwrap().unwrap();
        assert_eq!(ro.listen, "0.0.0.0:6001".parse().unwrap());
        assert_eq!(ro.max_lag, 512 * 1024);
        assert_eq!(ro.fallback, Fallback::Master);
    }

    #[test]
    fn bad_read_only_flags_are_clear_errors() {
        let e = cli(&["--read-only-max-lag", "16XB"]).unwrap_err();
        assert!(e.contains("--read-only-max-lag") && e.contains("16XB") && e.contains("unknown unit"), "{e}");
        let e = cli(&["--read-only-max-lag=-1"]).unwrap_err();
        assert!(e.contains("--read-only-max-lag") && e.contains("\"-1\""), "{e}");
        let e = cli(&["--read-only-fallback", "replica"]).unwrap_err();
        assert!(e.contains("--read-only-fallback") && e.contains("master or none"), "{e}");
        let e = read_only(&["--read-only-listen-address", "0.0.0.0"]).unwrap_err();
        assert!(e.contains("needs --read-only-port"), "{e}");
        let e = read_only(&["--port", "6000", "--read-only-port", "6000"]).unwrap_err();
        assert!(e.contains("--read-only-port 6000"), "{e}");
        let e =
            read_only(&["--read-only-port", "6001", "--read-only-listen-address", "no such host.invalid"]).unwrap_err();
        assert!(e.contains("--read-only-listen-address"), "{e}");
    }

    #[test]
    fn forwarding_flag_selects_the_mode() {
        assert_eq!(parse(&[]).unwrap().forwarding, DEFAULT_MODE);
        assert_eq!(parse(&["--forwarding", "kernel"]).unwrap().forwarding, ForwardingMode::Kernel);
        let e = cli(&["--forwarding", "bpf"]).unwrap_err();
        assert!(e.contains("--forwarding") && e.contains("expected auto, kernel or userspace"), "{e}");
        // Tests run as root on a kernel with sockmap: kernel mode loads, and auto does not fall back.
        let stats = ProxyStats::default();
        assert!(forwarding(ForwardingMode::Auto, &stats).unwrap().is_kernel());
        assert_eq!(stats.kernel_forwarding.load(Ordering::Relaxed), 1);
        assert_eq!(stats.kernel_forwarding_fallback.load(Ordering::Relaxed), 0);
    }
}
