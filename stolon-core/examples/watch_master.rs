//! Watch a stolon-rs (or stolon) cluster's master and print one line every time it changes.
//!
//! ```sh
//! cargo run -p stolon-core --example watch_master -- \
//!     --store-backend etcdv3 --store-endpoints http://127.0.0.1:2379 --cluster-name mycluster
//! ```
//!
//! Each line is `master <keeper uid> <db uid> <host:port>`, or `no master` (no cluster data, or no master
//! elected). `--max-changes N` exits after N lines (for scripts). Uses only stolon-core's public API: the
//! typed store ([`ClusterStore`]), the cluster data model and the store's watch.

mod common;

use futures::StreamExt;
use stolon_core::cluster::ClusterData;
use stolon_core::stolon_store::{self, WatchEvent};
use stolon_core::store::ClusterStore;

const USAGE: &str = "watch_master --cluster-name NAME [--store-backend etcdv3] [--store-endpoints URL,...] \
                     [--store-prefix stolon/cluster] [--max-changes N]";

/// The line printed for a cluster data document (`None`: no cluster data).
fn master_line(data: Option<&ClusterData>) -> String {
    match data.and_then(ClusterData::master_db) {
        Some(db) => format!("master {} {} {}:{}", db.spec.keeper_uid, db.uid, db.status.listen_address, db.status.port),
        None => "no master".to_string(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (config, rest) = common::store_config(USAGE);
    let mut max_changes = u64::MAX;
    for (flag, value) in rest {
        match flag.as_str() {
            "--max-changes" => {
                max_changes = value.parse().unwrap_or_else(|_| common::die(USAGE, "--max-changes: a number"))
            }
            _ => common::die(USAGE, &format!("unknown flag {flag}")),
        }
    }
    let store = match stolon_store::connect(&config).await {
        Ok(s) => ClusterStore::new(s),
        Err(e) => common::die(USAGE, &format!("cannot connect to the store: {e}")),
    };
    let mut printed = 0u64;
    let mut last: Option<String> = None;
    let mut print = |line: String| {
        if last.as_ref() != Some(&line) {
            println!("{line}");
            last = Some(line);
            printed += 1;
        }
        printed >= max_changes
    };
    loop {
        // Read the current document and watch every change after it (no write falls in between, also while
        // there is no document yet); a Reset (history compacted, watch expired) or a broken stream means:
        // read and watch again.
        let (data, mut events) = match store.cluster_data_and_watch().await {
            Ok((data, events)) => (data.map(|v| v.data), events),
            Err(e) => {
                eprintln!("cannot read and watch the cluster data: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if print(master_line(data.as_ref())) {
            return;
        }
        while let Some(event) = events.next().await {
            let line = match event {
                Ok(WatchEvent::Put(doc)) => match ClusterData::from_json(&doc.value) {
                    Ok(data) => master_line(data.as_ref()),
                    Err(e) => {
                        eprintln!("ignoring unreadable cluster data: {e}");
                        continue;
                    }
                },
                Ok(WatchEvent::Deleted { .. }) => master_line(None),
                Ok(WatchEvent::Reset) | Err(_) => break,
            };
            if print(line) {
                return;
            }
        }
    }
}
