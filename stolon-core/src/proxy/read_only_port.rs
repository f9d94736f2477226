//! The read-only port's IO around the pure [`read_only`](super::read_only) route: its listener, its
//! [`Balancer`], resolving the standbys' addresses, and the three steps the proxy's check calls in order:
//! [`ReadOnlyPort::plan`], [`ReadOnlyPort::fence`] before the proxy reports a generation, and
//! [`ReadOnlyPort::apply`] after. A proxy started without `--read-only-port` holds a disabled port, whose
//! steps do nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::balance::Balancer;
use super::forward::{ForwardStats, Keepalive};
use super::kernel::Forwarding;
use super::listener::Listener;
use super::read_only::{Exclusion, Fallback, Target, TargetRole, eligible_standbys, targets};
use super::route::MasterEndpoint;
use crate::byte_size::ByteSize;
use crate::cluster::ClusterData;

/// What the read-only port is told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyConfig {
    /// Where read-only clients connect (`--read-only-listen-address`, `--read-only-port`).
    pub listen: SocketAddr,
    /// The largest replay lag of a standby in use, in bytes (`--read-only-max-lag`).
    pub max_lag: u64,
    /// What to do when no standby qualifies (`--read-only-fallback`).
    pub fallback: Fallback,
}

/// Counters of the read-only port, for metrics.
#[derive(Debug, Default)]
pub struct ReadOnlyStats {
    /// Forwarding counters of the read-only port.
    pub forward: Arc<ForwardStats>,
    /// Standbys in use now.
    pub standbys: AtomicI64,
    /// 1 while forwarding to the master because no standby qualifies.
    pub fallback: AtomicI64,
    /// 1 while the read-only listening socket is open.
    pub listening: AtomicI64,
}

struct Enabled {
    config: ReadOnlyConfig,
    balancer: Balancer,
    listener: tokio::sync::Mutex<Listener>,
    /// The last exclusions logged, to log only their changes.
    logged: Mutex<Vec<(String, String)>>,
}

/// The read-only port of one proxy (possibly disabled).
pub struct ReadOnlyPort {
    enabled: Option<Enabled>,
    stats: Arc<ReadOnlyStats>,
}

impl ReadOnlyPort {
    /// The port for `config` (`None`: disabled), tuning client sockets with `keepalive`, forwarding with
    /// `forwarding`.
    pub fn new(
        config: Option<ReadOnlyConfig>,
        keepalive: Keepalive,
        forwarding: Forwarding,
        stats: Arc<ReadOnlyStats>,
    ) -> ReadOnlyPort {
        let enabled = config.map(|config| {
            let balancer = Balancer::new(keepalive, stats.forward.clone(), forwarding);
            Enabled {
                listener: tokio::sync::Mutex::new(Listener::new(config.listen, balancer.clone())),
                balancer,
                config,
                logged: Mutex::new(Vec::new()),
            }
        });
        ReadOnlyPort { enabled, stats }
    }

    /// Starts listening unless it does. A failure is logged and retried at the next check; it does not
    /// fail the check (the master port does not depend on the read-only one).
    pub async fn ensure_listening(&self) {
        let Some(e) = &self.enabled else { return };
        match e.listener.lock().await.ensure_started() {
            Ok(()) => self.stats.listening.store(1, Ordering::Relaxed),
            Err(err) => {
                tracing::error!(address = %e.config.listen, error = %err, "cannot listen on the read-only port")
            }
        }
    }

    /// Closes the read-only listening socket (the watchdog with `--stop-listening`, and shutdown).
    pub async fn stop_listening(&self) {
        let Some(e) = &self.enabled else { return };
        e.listener.lock().await.stop().await;
        self.stats.listening.store(0, Ordering::Relaxed);
    }

    /// The targets for cluster data `cd` (`None`: forward nowhere), given the master the master port will
    /// forward to after this check (`master`: its DB UID and address). Resolves the standbys' addresses; one
    /// that does not resolve is left out.
    pub async fn plan(&self, cd: Option<&ClusterData>, master: Option<(String, SocketAddr)>) -> Vec<Target> {
        let (Some(e), Some(cd)) = (&self.enabled, cd) else { return Vec::new() };
        let eligible = eligible_standbys(cd, e.config.max_lag);
        let mut excluded: Vec<(String, String)> =
            eligible.excluded.iter().map(|(uid, why)| (uid.clone(), why.to_string())).collect();
        let mut resolved = Vec::new();
        for s in &eligible.standbys {
            match resolve(&s.endpoint).await {
                Some(address) => resolved.push((s.db_uid.clone(), address)),
                None => excluded.push((s.db_uid.clone(), "address does not resolve".into())),
            }
        }
        log_exclusions(e, excluded, &eligible.excluded);
        targets(resolved, e.config.fallback, master)
    }

    /// Closes the connections of every current target that is not in `next`, adding none: called before the
    /// proxy reports a generation, so that no read-only connection to a DB the cluster data no longer
    /// allows (an old master above all) survives the report.
    pub async fn fence(&self, next: &[Target]) {
        let Some(e) = &self.enabled else { return };
        let before = e.balancer.targets();
        e.balancer.retain(|t| next.contains(t)).await;
        if e.balancer.targets().len() != before.len() {
            self.log_targets(e, "read-only targets fenced before reporting the generation");
        }
    }

    /// Makes `next` the set of targets (the connections of those leaving it are closed first).
    pub async fn apply(&self, next: &[Target]) {
        let Some(e) = &self.enabled else { return };
        if e.balancer.set_targets(next).await {
            self.log_targets(e, "read-only targets changed");
        }
        let standbys = next.iter().filter(|t| t.role == TargetRole::Standby).count();
        self.stats.standbys.store(standbys as i64, Ordering::Relaxed);
        let fallback = next.iter().any(|t| t.role == TargetRole::MasterFallback);
        self.stats.fallback.store(i64::from(fallback), Ordering::Relaxed);
    }

    fn log_targets(&self, e: &Enabled, what: &str) {
        let now: Vec<String> = e
            .balancer
            .targets()
            .iter()
            .map(|(t, open)| {
                let role = if t.role == TargetRole::MasterFallback { " (master fallback)" } else { "" };
                format!("{} at {}{role}, {open} connections", t.db_uid, t.address)
            })
            .collect();
        if now.is_empty() {
            let refuse = if e.config.fallback == Fallback::Master { "no master to fall back to" } else { "refusing" };
            tracing::info!("{what}: no standby qualifies, {refuse}");
        } else {
            tracing::info!(targets = ?now, max_lag = %ByteSize(e.config.max_lag), "{what}");
        }
    }
}

/// Logs the standbys' exclusions when they change (lag figures aside, which change at every write).
fn log_exclusions(e: &Enabled, excluded: Vec<(String, String)>, raw: &[(String, Exclusion)]) {
    let key: Vec<(String, String)> = excluded
        .iter()
        .map(|(uid, why)| {
            let lagging = raw.iter().any(|(u, w)| u == uid && matches!(w, Exclusion::Lagging { .. }));
            (uid.clone(), if lagging { "lagging".to_string() } else { why.clone() })
        })
        .collect();
    let mut logged = e.logged.lock().unwrap_or_else(|p| p.into_inner());
    if *logged != key {
        for (uid, why) in &excluded {
            tracing::info!(db = %uid, max_lag = %ByteSize(e.config.max_lag), "not a read-only target: {why}");
        }
        *logged = key;
    }
}

/// Resolves an advertised endpoint to its first address.
async fn resolve(endpoint: &MasterEndpoint) -> Option<SocketAddr> {
    let host_port = endpoint.host_port();
    match tokio::net::lookup_host(host_port.as_str()).await {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            tracing::warn!(address = %host_port, error = %e, "cannot resolve a standby's address");
            None
        }
    }
}
