//! Read a cluster's status (sentinels, proxies, keepers, master) and print it as JSON: what
//! `stolonctl status --format json` prints, from your own program.
//!
//! ```sh
//! cargo run -p stolon-core --example cluster_status_json -- \
//!     --store-backend etcdv3 --store-endpoints http://127.0.0.1:2379 --cluster-name mycluster
//! ```
//!
//! Uses only stolon-core's public API: [`ctl::gather_status`] returns a typed [`ctl::Status`]
//! (serde-serialisable); the fields of the JSON are documented in docs/stolonctl.md ("JSON status format").

mod common;

use stolon_core::ctl;
use stolon_core::stolon_store;
use stolon_core::store::ClusterStore;

const USAGE: &str = "cluster_status_json --cluster-name NAME [--store-backend etcdv3] [--store-endpoints URL,...] \
                     [--store-prefix stolon/cluster]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let (config, rest) = common::store_config(USAGE);
    if let Some((flag, _)) = rest.first() {
        common::die(USAGE, &format!("unknown flag {flag}"));
    }
    let status = async {
        let store = ClusterStore::new(stolon_store::connect(&config).await.map_err(|e| e.to_string())?);
        ctl::gather_status(&store).await.map_err(|e| e.to_string())
    };
    match status.await {
        Ok(report) => {
            // The typed status: e.g. report.status.cluster.master_keeper_uid.
            println!("{}", serde_json::to_string_pretty(&report.status).unwrap_or_default());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read the cluster status: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
