//! Keeper gauges (reference 8), kept as plain atomics so that the daemon can export them with any metrics
//! library at scrape time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::cluster::DbRole;

/// The keeper's observable counters and flags.
#[derive(Debug, Default)]
pub struct KeeperMetrics {
    /// Unix time of the last valid cluster data read.
    pub clusterdata_last_valid_update_seconds: AtomicI64,
    /// Unix time of the last fully successful pass.
    pub last_sync_success_seconds: AtomicI64,
    /// A needed reload has not succeeded yet.
    pub needs_reload: AtomicBool,
    /// postgres reports a pending restart.
    pub needs_restart: AtomicBool,
    /// Current sleepInterval in whole seconds.
    pub sleep_interval_seconds: AtomicI64,
    /// Unix time a termination signal was received (0 = none).
    pub shutdown_seconds: AtomicI64,
    roles: Mutex<(Option<DbRole>, Option<DbRole>)>,
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl KeeperMetrics {
    /// Records the target and local roles of the last pass.
    pub fn set_roles(&self, target: Option<DbRole>, local: Option<DbRole>) {
        if let Ok(mut r) = self.roles.lock() {
            *r = (target, local);
        }
    }

    /// (target role, local role) of the last pass (`None` before the first).
    pub fn roles(&self) -> (Option<DbRole>, Option<DbRole>) {
        self.roles.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Sets a unix-time gauge to now.
    pub fn touch(gauge: &AtomicI64) {
        gauge.store(unix_now(), Ordering::Relaxed);
    }
}
