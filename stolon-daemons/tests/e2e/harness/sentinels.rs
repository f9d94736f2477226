//! Sentinel passes and leadership as seen from the store: which sentinel process leads, and a check run on
//! the cluster data of each of the next N leader passes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stolon_core::cluster::ClusterData;

use super::R;
use super::cluster::{TestCluster, summary};

impl TestCluster {
    /// The index of the sentinel process that leads now (its UID, the election value, appears in its log).
    pub async fn leader_sentinel(&self) -> R<usize> {
        let uid = self.client.leader().await?.context("no sentinel leads")?;
        self.sentinels
            .iter()
            .position(|s| s.log_text().contains(&uid))
            .with_context(|| format!("the leader {uid:?} is none of this cluster's sentinel processes"))
    }

    /// Waits until a sentinel other than `old` leads; returns its index.
    pub async fn wait_new_leader_sentinel(&self, old: usize, limit: Duration) -> R<usize> {
        super::wait_for(&format!("a sentinel other than sentinel{old} leading"), limit, || async move {
            Ok(self.leader_sentinel().await.ok().filter(|i| *i != old))
        })
        .await
    }

    /// Reads the cluster data until `passes` leader passes wrote it (each pass stamps a new `changeTime`),
    /// and runs `check` on every version read, the first one included; fails on the first `check` error.
    /// Returns the last cluster data read.
    pub async fn check_passes(
        &self,
        passes: usize,
        limit: Duration,
        check: impl Fn(&ClusterData) -> R<()>,
    ) -> R<ClusterData> {
        let start = Instant::now();
        let mut seen = BTreeSet::new();
        let first = self.cd().await?;
        check(&first).with_context(|| format!("before the passes: {}", summary(&first)))?;
        let mut last = first.change_time;
        loop {
            let cd = self.cd().await?;
            check(&cd).with_context(|| format!("after {} passes: {}", seen.len(), summary(&cd)))?;
            if cd.change_time != last {
                last = cd.change_time;
                seen.insert(cd.change_time.to_string());
                if seen.len() >= passes {
                    return Ok(cd);
                }
            }
            if start.elapsed() > limit {
                bail!("only {} of {passes} sentinel passes within {limit:?}: {}", seen.len(), summary(&cd));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
