//! Recovery paths: how a restarted keeper got back to streaming, and how long it took (the figures
//! `scripts/bench-recovery` collects into docs/benchmarks.md).

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure};
use stolon_core::keeper::messages;

use super::cluster::TestCluster;
use super::{R, sql, wait_for};

/// How a restarted keeper's DB rejoined, told from its keeper's log since the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejoinPath {
    /// Divergence detected right after pg_rewind, then a base backup.
    DivergenceDetected,
    /// The rewound standby was not ready within dbWaitReadyTimeout, then a base backup (the slow path).
    NotReadyFallback,
    /// The rewound standby started, then was found on another timeline branch (or could not be
    /// identified), then a base backup: the divergence was missed before the start.
    BranchCheckFallback,
    /// pg_rewind failed (for example without wal_log_hints), then a base backup.
    RewindFailed,
    /// pg_rewind, then streaming.
    Rewound,
    /// A base backup without pg_rewind.
    BaseBackup,
    /// Neither pg_rewind nor a base backup: the data was kept (a plain restart).
    Kept,
}

impl RejoinPath {
    /// The path a keeper log (since the restart) shows.
    pub fn from_log(log: &str) -> RejoinPath {
        if log.contains("rewound data diverged from the followed db") {
            RejoinPath::DivergenceDetected
        } else if log.contains(messages::REWOUND_NOT_ACCEPTING) {
            RejoinPath::NotReadyFallback
        } else if log.contains("rewound standby is on another timeline branch")
            || log.contains("cannot identify the rewound standby")
        {
            RejoinPath::BranchCheckFallback
        } else if log.contains(messages::PG_REWIND_FAILED) {
            RejoinPath::RewindFailed
        } else if log.contains("running pg_rewind") {
            RejoinPath::Rewound
        } else if log.contains("running pg_basebackup") {
            RejoinPath::BaseBackup
        } else {
            RejoinPath::Kept
        }
    }
}

/// Waits until keeper `uid`'s PostgreSQL streams WAL from its upstream (`pg_stat_wal_receiver` status
/// `streaming`), then checks that its keeper took `path` since log offset `log_from` and prints the time
/// from `restarted` as a figure line for `scripts/bench-recovery`.
pub async fn wait_rejoined(
    c: &TestCluster,
    uid: &str,
    restarted: Instant,
    log_from: usize,
    path: RejoinPath,
    limit: Duration,
) -> R<Duration> {
    wait_for(&format!("{uid}'s postgres streaming from its upstream"), limit, || async move {
        let q = "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'no wal receiver')";
        let status = sql::query_text(&c.connect(uid).await?, q).await?;
        if status == "streaming" { Ok(Some(())) } else { Err(anyhow!("wal receiver: {status}")) }
    })
    .await?;
    let took = restarted.elapsed();
    let log = c.keeper_ref(uid)?.proc.log_text();
    let taken = RejoinPath::from_log(log.get(log_from..).unwrap_or_default());
    eprintln!("figure: restart to streaming: {taken:?}: {:.1} s", took.as_secs_f64());
    ensure!(taken == path, "{uid} rejoined through {taken:?}, expected {path:?}");
    Ok(took)
}
