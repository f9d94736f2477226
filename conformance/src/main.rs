//! `stolon-conformance`: runs the shared store conformance suite against a store you point it at.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use stolon_conformance::kube_runner::{KubeRunnerFactory, RUN_LABEL};
use stolon_conformance::{ConfigFactory, StoreFactory, runner};
use stolon_store::{KubeConfig, StoreBackend, StoreConfig};

// The Go boolean flag syntax of the stolon-rs binaries (one source, shared with stolon-daemons, which this
// crate must not depend on).
#[path = "../../stolon-daemons/src/bool_flags.rs"]
mod bool_flags;

/// Validate a coordination store for stolon-rs: every case of the shared conformance suite, one line each,
/// then `N passed, N failed, N skipped`. Exits non-zero if any case failed. Cases use their own unique
/// cluster names under the prefix and leave only short-lived data behind.
#[derive(Parser, Debug)]
#[command(name = "stolon-conformance", version)]
struct Args {
    /// Store backend: etcdv2 (alias etcd), etcdv3, consul or kubernetes.
    #[arg(long)]
    store_backend: String,
    /// Comma-separated store endpoints (default: the backend's local default).
    #[arg(long, default_value = "")]
    store_endpoints: String,
    /// Store key prefix.
    #[arg(long, default_value = stolon_store::DEFAULT_PREFIX)]
    store_prefix: String,
    /// Per-request store timeout, e.g. 5s or 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    store_timeout: Duration,
    /// Client certificate for TLS.
    #[arg(long)]
    store_cert_file: Option<std::path::PathBuf>,
    /// Client key for TLS.
    #[arg(long)]
    store_key: Option<std::path::PathBuf>,
    /// CA bundle to verify the store.
    #[arg(long)]
    store_ca_file: Option<std::path::PathBuf>,
    /// Do not verify the store's certificate.
    #[arg(long)]
    store_skip_tls_verify: bool,
    /// Run only the cases whose name contains this text.
    #[arg(long)]
    cases: Option<String>,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
    /// How many cases run at the same time.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Kubernetes: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else in-cluster).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Kubernetes: kubeconfig context.
    #[arg(long)]
    kube_context: Option<String>,
    /// Kubernetes: namespace of the cases' ConfigMaps and of the runner's pods (default: the context's).
    #[arg(long)]
    kube_namespace: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or("missing unit (ms, s or m)")?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid number {num:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

fn config(args: &Args) -> Result<StoreConfig, stolon_store::StoreError> {
    let backend: StoreBackend = args.store_backend.parse()?;
    let mut c = StoreConfig::new(backend, "template").with_endpoints(&args.store_endpoints)?;
    c.prefix = args.store_prefix.clone();
    c.timeout = args.store_timeout;
    c.tls.cert_file = args.store_cert_file.clone();
    c.tls.key_file = args.store_key.clone();
    c.tls.ca_file = args.store_ca_file.clone();
    c.tls.skip_verify = args.store_skip_tls_verify;
    c.kube = KubeConfig {
        kubeconfig: args.kubeconfig.clone(),
        context: args.kube_context.clone(),
        namespace: args.kube_namespace.clone(),
        resource_kind: Some("configmap".into()),
        pod_name: None,
    };
    c.validate()?;
    Ok(c)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::from_arg_matches(&bool_flags::get_matches(Args::command())).unwrap_or_else(|e| e.exit());
    let cases = runner::select(args.cases.as_deref());
    if args.list {
        for c in &cases {
            println!("{:<28} {}", c.name, c.about);
        }
        return ExitCode::SUCCESS;
    }
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stolon-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    if cases.is_empty() {
        eprintln!("stolon-conformance: no case matches {:?} (see --list)", args.cases.unwrap_or_default());
        return ExitCode::from(2);
    }
    let (factory, kube): (Arc<dyn StoreFactory>, _) = if config.backend == StoreBackend::Kubernetes {
        match KubeRunnerFactory::new(config.clone()).await {
            Ok(f) => {
                let f = Arc::new(f);
                (f.clone(), Some(f))
            }
            Err(e) => {
                eprintln!("stolon-conformance: {e:#}");
                return ExitCode::from(2);
            }
        }
    } else {
        (Arc::new(ConfigFactory::new(config.clone())), None)
    };
    let target = match &kube {
        Some(k) => format!("namespace {} (pods labelled {RUN_LABEL}={})", k.namespace(), k.run_id()),
        None => endpoints(&config),
    };
    println!("running {} cases against {} at {target}", cases.len(), config.backend);
    let parallel = args.parallel;
    // Listen before the cases start, so that no pod is created before an interrupt can be handled.
    let mut signals = Signals::listen();
    let mut run = tokio::spawn(runner::run(factory, cases, parallel, |r| println!("{}", runner::describe(r))));
    let outcome = tokio::select! {
        joined = &mut run => Some(joined),
        signal = signals.next() => {
            eprintln!("stolon-conformance: {signal}: stopping the cases");
            run.abort();
            let _ = run.await;
            None
        }
    };
    let mut code = match &outcome {
        Some(Ok(summary)) => {
            println!("{}", summary.line());
            if summary.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Some(Err(e)) => {
            eprintln!("stolon-conformance: the run broke off: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::from(130),
    };
    if let Some(kube) = kube {
        match kube.clean_up().await {
            Ok(n) => eprintln!("stolon-conformance: cleaned up {n} objects in namespace {}", kube.namespace()),
            Err(e) => {
                eprintln!(
                    "stolon-conformance: clean-up incomplete: {e:#} (delete them with kubectl delete pods -l \
                     {RUN_LABEL}={})",
                    kube.run_id()
                );
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from [`Signals::listen`] on.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals { interrupt: signal(SignalKind::interrupt()).ok(), terminate: signal(SignalKind::terminate()).ok() }
    }

    /// Resolves on the next signal, naming it.
    async fn next(&mut self) -> &'static str {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.interrupt) => "interrupted",
            _ = recv(&mut self.terminate) => "terminated",
        }
    }
}

fn endpoints(c: &StoreConfig) -> String {
    let eps: Vec<String> = c.effective_endpoints().iter().map(|e| e.url()).collect();
    if eps.is_empty() { "the configured cluster".into() } else { eps.join(",") }
}
