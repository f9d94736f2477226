//! stolon-sentinel: discovers keepers and proxies and, when elected leader, computes the cluster view.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use stolon_core::cluster::{ClusterSpec, decode_json};
use stolon_core::sentinel::{Sentinel, SentinelConfig, SentinelStats, election_ttl_for};
use stolon_core::store::ClusterStore;
use stolon_daemons::common::{CommonArgs, parse_go_duration};
use stolon_daemons::{env, logging, metrics};

/// The stolon-rs sentinel. Every flag can also be set as STSENTINEL_<FLAG_NAME>.
#[derive(Parser, Debug)]
#[command(name = "stolon-sentinel", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// JSON file with the cluster spec used to create the cluster when the store has no cluster data
    /// (validated at start; ignored once the cluster exists).
    #[arg(long)]
    initial_cluster_spec: Option<PathBuf>,
    /// Deprecated: same as --log-level=debug.
    #[arg(long)]
    debug: bool,
    /// Lease of the sentinel leadership (tests only; default as stolon: 20s, 15s on Kubernetes).
    #[arg(long, hide = true, value_parser = parse_go_duration)]
    election_ttl: Option<Duration>,
}

/// Reads and validates the initial cluster spec; the error names the file, the field and the rule.
fn load_initial_spec(path: &Path) -> Result<ClusterSpec, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read --initial-cluster-spec {}: {e}", path.display()))?;
    let spec: ClusterSpec = decode_json("initial cluster spec", &bytes)
        .map_err(|e| format!("cannot parse --initial-cluster-spec {}: {e}", path.display()))?;
    spec.validate().map_err(|e| {
        format!("invalid --initial-cluster-spec {}: {e} (rule {} of the spec rules)", path.display(), e.rule())
    })?;
    Ok(spec)
}

/// Exposes the sentinel's figures under stolon's metric names, read at scrape time.
#[derive(Debug)]
struct SentinelCollector(Arc<SentinelStats>);

impl Collector for SentinelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let gauges: [(&str, &str, i64); 6] = [
            ("stolon_sentinel_is_leader", "Set to 1 if the sentinel is the leader", i64::from(s.is_leader())),
            (
                "stolon_sentinel_leader_count",
                "Number of times this sentinel acquired the leadership",
                i64::try_from(s.leader_count()).unwrap_or(i64::MAX),
            ),
            (
                "stolon_sentinel_last_cluster_check_success_seconds",
                "Unix time of the last completed cluster check",
                s.last_check_success_seconds(),
            ),
            (
                "stolon_sentinel_cluster_paused",
                "Set to 1 while the cluster is paused (stolonctl pause): no failover or reconfiguration",
                i64::from(s.paused()),
            ),
            (
                "stolon_sentinel_keepers_in_maintenance",
                "Number of keepers in maintenance (stolonctl maintenance): never elected, never synchronous",
                i64::try_from(s.keepers_in_maintenance()).unwrap_or(i64::MAX),
            ),
            (
                "stolon_sentinel_switchover_pending",
                "Set to 1 while a switchover is scheduled or running",
                i64::from(s.switchover_pending()),
            ),
        ];
        for (name, help, value) in gauges {
            encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)?;
        }
        encoder
            .encode_descriptor(
                "stolon_sentinel_cluster_data_writes",
                "Cluster data documents written by this sentinel",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&s.cluster_data_writes(), None)?;
        Ok(())
    }
}

async fn run(cli: Cli, initial_spec: Option<ClusterSpec>) -> Result<(), String> {
    let config = cli.common.daemon_store_config().map_err(|e| e.to_string())?;
    let store = stolon_core::stolon_store::connect(&config).await.map_err(|e| e.to_string())?;
    let mut sentinel_config = SentinelConfig::new(initial_spec);
    sentinel_config.election_ttl = cli.election_ttl.unwrap_or(election_ttl_for(config.backend));
    let sentinel = Sentinel::new(ClusterStore::new(store), sentinel_config);
    let _metrics = match metrics::parse_listen_address(&cli.common.metrics_listen_address)? {
        Some(addr) => {
            let mut registry = Registry::default();
            metrics::register_cluster_identifier(&mut registry, &cli.common.cluster_name, "sentinel");
            stolon_daemons::process_metrics::register_process_metrics(&mut registry);
            registry.register_collector(Box::new(SentinelCollector(sentinel.stats())));
            Some(metrics::serve(addr, Arc::new(registry)).await.map_err(|e| e.to_string())?)
        }
        None => None,
    };
    sentinel.run(stolon_daemons::shutdown_signal()).await;
    Ok(())
}

pub(crate) fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::SENTINEL);
    let level = if cli.debug { logging::LogLevel::Debug } else { cli.common.log_level };
    logging::init(level, cli.common.log_color);
    let initial_spec = match cli.initial_cluster_spec.as_deref().map(load_initial_spec).transpose() {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("stolon-sentinel: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stolon-sentinel: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, initial_spec)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stolon-sentinel: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args = std::iter::once("stolon-sentinel").chain(args.iter().copied());
        stolon_daemons::try_parse_cli_from(env::SENTINEL, args)
    }

    #[test]
    fn boolean_flags_take_go_syntax() {
        let cli = parse(&["--debug=1", "--store-skip-tls-verify=FALSE", "--log-color"]).unwrap();
        assert!(cli.debug && !cli.common.store_skip_tls_verify);
        assert_eq!(cli.common.log_color, Some(true));
        let e = parse(&["--debug", "0"]).unwrap_err().to_string();
        assert!(e.contains("--debug") && e.contains("\"0\""), "{e}");
    }
}
