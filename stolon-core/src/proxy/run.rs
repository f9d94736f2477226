//! The proxy's loop: a check on every cluster-data change (via a store watch) and every
//! `proxyCheckInterval` as a safety net, the ProxyInfo heartbeat, and the watchdog that drops every
//! connection (and with `stop_listening` closes the listeners) when no check succeeded for `proxyTimeout`.
//! Each check routes the master port and, when enabled, the read-only port. A check takes the cluster data
//! from the watch-fed copy while it is live and the store answered within proxyTimeout, and its ProxyInfo
//! publish is then what proves the store reachable; the watchdog's deadline counts from the store's latest
//! answer ([`super::store_contact`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stolon_store::MemberKind;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::forward::{ForwardStats, Forwarder, Keepalive};
use super::listener::Listener;
use super::messages as m;
use super::read_only_port::{ReadOnlyConfig, ReadOnlyPort, ReadOnlyStats};
use super::route::{MasterEndpoint, Observation, Plan, Timing, plan};
use super::store_contact::{
    DataSource, PublishFailure, PublishStep, document_from_copy, on_publish_failure, watchdog_deadline,
};
use crate::cluster::{ProxyInfo, new_uid};
use crate::duration::GoDuration;
use crate::failsafe::FailsafeProxy;
use crate::store::cluster_data_view::{ClusterDataView, LiveDocument};
use crate::store::{ClusterStore, ClusterStoreError, VersionedClusterData, proxy_info_ttl};

/// What the proxy is told at start.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This process's proxy UID (random per process).
    pub uid: String,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Close the listening socket too when the watchdog fires.
    pub stop_listening: bool,
    /// TCP keepalive overrides for client sockets.
    pub keepalive: Keepalive,
    /// The read-only port, when enabled (`--read-only-port`).
    pub read_only: Option<ReadOnlyConfig>,
    /// The client of the keepers' APIs for failsafe mode (`None`: never used).
    pub failsafe_client: Option<crate::keeper::api::ApiClient>,
    /// How both ports forward established connections (`--forwarding`).
    pub forwarding: super::kernel::Forwarding,
}

/// Everything the proxy counts, for metrics.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Forwarding counters.
    pub forward: Arc<ForwardStats>,
    /// Proxy generation last published.
    pub generation: AtomicI64,
    /// Checks that succeeded.
    pub checks_ok: AtomicU64,
    /// Checks that failed.
    pub checks_failed: AtomicU64,
    /// Unix time (seconds) of the last successful check; 0 before the first.
    pub last_check_success_seconds: AtomicI64,
    /// Times the watchdog fired.
    pub watchdog_fired: AtomicU64,
    /// 1 while the listening socket is open.
    pub listening: AtomicI64,
    /// The read-only port's counters.
    pub read_only: Arc<ReadOnlyStats>,
    /// 1 when connections are forwarded by the kernel.
    pub kernel_forwarding: AtomicI64,
    /// 1 when `--forwarding auto` fell back to userspace.
    pub kernel_forwarding_fallback: AtomicI64,
}

/// State shared by the loop and its check tasks.
struct Shared {
    config: ProxyConfig,
    store: ClusterStore,
    forwarder: Forwarder,
    listener: tokio::sync::Mutex<Listener>,
    read_only: ReadOnlyPort,
    timing: Mutex<Timing>,
    stats: Arc<ProxyStats>,
    failsafe: FailsafeProxy,
    cd_view: ClusterDataView,
    /// When the store last answered a request of this proxy (a read or a publish); `None` before the first.
    heard_at: Mutex<Option<Instant>>,
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// The check succeeded: forwarding may go on for proxyTimeout after the store's latest answer, then.
    Ok(Instant),
    /// The check failed.
    Failed,
    /// The store could not be read but the master's keeper confirmed it (failsafe mode) until then.
    Trusted(std::time::Instant),
}

/// The result of the route steps of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routed {
    /// The check succeeded.
    Ok,
    /// The check failed.
    Failed,
    /// The check's only store request, its publish, was not answered: a store outage.
    StoreOutage,
}

impl Shared {
    fn timing(&self) -> Timing {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that the store just answered a request.
    fn heard(&self) {
        *self.heard_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn heard_at(&self) -> Option<Instant> {
        *self.heard_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn adopt(&self, timing: Timing) {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner()) = timing;
    }

    async fn set_target(&self, target: Option<SocketAddr>, why: &str) {
        let before = self.forwarder.target();
        if self.forwarder.set_target(target).await {
            match target {
                Some(t) => tracing::info!(target = %t, previous = ?before, "forwarding to the master ({why})"),
                None => tracing::info!(previous = ?before, "forwarding nowhere: connections closed ({why})"),
            }
        }
    }

    async fn publish(&self, generation: i64, timeout: Duration) -> Result<(), ClusterStoreError> {
        // A fresh infoUID on every publish: the sentinel's heartbeat, and what makes each publish a write that
        // reaches the store (the store outage check of a check taken from the watch-fed copy).
        let info = ProxyInfo {
            info_uid: new_uid(),
            uid: self.config.uid.clone(),
            generation,
            proxy_timeout: GoDuration::from_std(timeout),
        };
        self.store.set_proxy_info(&info, proxy_info_ttl(timeout)).await?;
        self.heard();
        self.stats.generation.store(generation, Ordering::Relaxed);
        Ok(())
    }

    /// One check, and failsafe mode's answer when the store cannot be reached.
    async fn check(&self) -> Checked {
        let copy = document_from_copy(self.cd_view.document(), self.heard_at(), Instant::now(), self.timing().timeout);
        let (read, source) = match copy {
            Some(doc) => (self.store.decode_cluster_data(Some(doc)), DataSource::Watch),
            None => {
                let read = self.store.cluster_data().await;
                if !matches!(read, Err(ClusterStoreError::Store(_))) {
                    self.heard();
                }
                (read, DataSource::Store)
            }
        };
        if let Err(ClusterStoreError::Store(e)) = &read {
            tracing::warn!(error = %e, "{}", m::CHECK_FUNCTION_ERROR);
            return self.outage(None).await;
        }
        let cd = match &read {
            Ok(Some(v)) => Some(&v.data),
            _ => None,
        };
        match self.check_read(&read, source).await {
            Routed::Ok => {
                self.failsafe.remember(&self.store, cd, self.forwarder.target()).await;
                // Set by the read or the publish of this check, or (a copy-fed check that published nothing)
                // less than proxyTimeout before it started.
                match self.heard_at() {
                    Some(at) => Checked::Ok(at),
                    None => Checked::Failed,
                }
            }
            Routed::Failed => Checked::Failed,
            Routed::StoreOutage => {
                let master = cd.map(|cd| cd.proxy.spec.master_db_uid.as_str());
                self.outage(Some(master.unwrap_or_default())).await
            }
        }
    }

    /// A store outage noticed by a check whose cluster data names `current` as master (`None`: none read):
    /// failsafe mode's answer, else a failed check.
    async fn outage(&self, current: Option<&str>) -> Checked {
        match self.failsafe.ask(current).await {
            Some(trust) if trust.until > std::time::Instant::now() => {
                self.set_target(Some(trust.target), "failsafe mode: the master's keeper confirms it").await;
                Checked::Trusted(trust.until)
            }
            _ => Checked::Failed,
        }
    }

    /// One check of what was read, from `source` (reference section 6).
    async fn check_read(
        &self,
        read: &Result<Option<VersionedClusterData>, ClusterStoreError>,
        source: DataSource,
    ) -> Routed {
        {
            let mut listener = self.listener.lock().await;
            if listener.local_addr().is_none() {
                tracing::info!("{}", m::STARTING_PROXYING);
            }
            if let Err(e) = listener.ensure_started() {
                tracing::error!(address = %self.config.listen, error = %e, "check failed: cannot listen");
                return Routed::Failed;
            }
            self.stats.listening.store(1, Ordering::Relaxed);
        }
        self.read_only.ensure_listening().await;
        let cd = match read {
            Ok(Some(v)) => Some(&v.data),
            _ => None,
        };
        let observed = match read {
            Ok(Some(v)) => Observation::Data(&v.data),
            Ok(None) => Observation::Absent,
            Err(e) => {
                tracing::error!(error = %e, "cluster data unusable");
                Observation::Unreadable
            }
        };
        match plan(observed, &self.config.uid, self.timing()) {
            Plan::KeepAndFail { reason } => {
                tracing::warn!(error = %reason, "{}", m::CHECK_FUNCTION_ERROR);
                Routed::Failed
            }
            Plan::Drop { check_ok, reason } => {
                if check_ok {
                    tracing::info!("{reason}");
                } else {
                    tracing::warn!(error = %reason, "{}", m::CHECK_FUNCTION_ERROR);
                }
                self.set_target(None, &reason).await;
                self.read_only.apply(&[]).await;
                if check_ok { Routed::Ok } else { Routed::Failed }
            }
            Plan::DropThenAnnounce { generation, advertised_timeout, timing, reason } => {
                let db = cd.map(|cd| cd.proxy.spec.master_db_uid.as_str()).unwrap_or_default();
                tracing::info!(db, "{reason}");
                self.set_target(None, &reason).await;
                self.read_only.apply(&self.read_only.plan(cd, None).await).await;
                match self.publish(generation, advertised_timeout).await {
                    Ok(()) => self.adopt(timing),
                    Err(e) => {
                        tracing::error!(error = %e, "{}", m::FAILED_TO_UPDATE_PROXY_INFO);
                        return publish_failed(source, PublishStep::Announce, &e);
                    }
                }
                Routed::Ok
            }
            Plan::AnnounceThenRoute { generation, advertised_timeout, timing, master, enabled } => {
                let Some(address) = resolve(&master).await else {
                    self.set_target(None, "cannot resolve the master address").await;
                    self.read_only.apply(&self.read_only.plan(cd, None).await).await;
                    return Routed::Ok;
                };
                tracing::info!(address = %address, "{}", m::MASTER_ADDRESS);
                let target = enabled.then_some(address);
                // Never report a generation while still forwarding somewhere else.
                if self.forwarder.target().is_some() && self.forwarder.target() != target {
                    self.set_target(None, "the route changes").await;
                }
                let master_uid = cd.map(|cd| cd.proxy.spec.master_db_uid.clone()).unwrap_or_default();
                let read_only = self.read_only.plan(cd, target.map(|t| (master_uid, t))).await;
                self.read_only.fence(&read_only).await;
                if let Err(e) = self.publish(generation, advertised_timeout).await {
                    tracing::warn!(error = %m::proxy_info_not_updated(&e), "{}", m::CHECK_FUNCTION_ERROR);
                    return publish_failed(source, PublishStep::Route, &e);
                }
                self.adopt(timing);
                if enabled {
                    tracing::info!(address = %address, "{}", m::PROXYING_TO_MASTER);
                } else {
                    tracing::info!(address = %address, "{}", m::NOT_PROXYING);
                }
                let why = if enabled { "enabled by the sentinel" } else { "not in the enabled proxies yet" };
                self.set_target(target, why).await;
                self.read_only.apply(&read_only).await;
                Routed::Ok
            }
        }
    }

    /// Drops every connection and, with `stop_listening`, closes the listener.
    async fn fence(&self) {
        tracing::warn!(timeout = ?self.timing().timeout, "{}", m::CHECK_TIMEOUT);
        self.stats.watchdog_fired.fetch_add(1, Ordering::Relaxed);
        self.set_target(None, "check timeout").await;
        self.read_only.apply(&[]).await;
        if self.config.stop_listening {
            tracing::info!("{}", m::STOPPING_LISTENING);
            self.listener.lock().await.stop().await;
            self.stats.listening.store(0, Ordering::Relaxed);
            self.read_only.stop_listening().await;
        }
    }
}

/// Resolves the master's advertised endpoint to its first address.
async fn resolve(master: &MasterEndpoint) -> Option<SocketAddr> {
    let host_port = master.host_port();
    match tokio::net::lookup_host(host_port.as_str()).await {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            tracing::error!(address = %host_port, error = %e, "{}", m::CANNOT_RESOLVE_DB_ADDRESS);
            None
        }
    }
}

/// What a failed publish at `step` makes of a check whose data came from `source`.
fn publish_failed(source: DataSource, step: PublishStep, e: &ClusterStoreError) -> Routed {
    match on_publish_failure(source, step, matches!(e, ClusterStoreError::Store(_))) {
        PublishFailure::Ignore => Routed::Ok,
        PublishFailure::FailCheck => Routed::Failed,
        PublishFailure::StoreOutage => Routed::StoreOutage,
    }
}

/// Wakes the loop on every change of the watch-fed copy (a new document, or the copy becoming live or not:
/// then the check reads the store).
async fn wake_on_changes(mut changes: watch::Receiver<LiveDocument>, wake: Arc<Notify>) {
    while changes.changed().await.is_ok() {
        wake.notify_one();
    }
}

/// The result of the running check task (a panicked task counts as failed); pending when none runs.
async fn check_result(running: &mut Option<tokio::task::JoinHandle<Checked>>) -> Checked {
    match running.as_mut() {
        Some(task) => task.await.unwrap_or(Checked::Failed),
        None => std::future::pending().await,
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Runs the proxy until `shutdown` completes, then closes the listener and every connection and removes
/// its ProxyInfo.
pub async fn run(store: ClusterStore, config: ProxyConfig, stats: Arc<ProxyStats>, shutdown: impl Future<Output = ()>) {
    let forwarder = Forwarder::new(config.keepalive, stats.forward.clone(), config.forwarding.clone());
    let shared = Arc::new(Shared {
        listener: tokio::sync::Mutex::new(Listener::new(config.listen, forwarder.clone())),
        read_only: ReadOnlyPort::new(
            config.read_only.clone(),
            config.keepalive,
            config.forwarding.clone(),
            stats.read_only.clone(),
        ),
        failsafe: FailsafeProxy::new(config.failsafe_client.clone()),
        cd_view: ClusterDataView::spawn(store.store().clone()),
        heard_at: Mutex::new(None),
        config,
        store,
        forwarder,
        timing: Mutex::new(Timing::default()),
        stats,
    });
    tracing::info!(uid = %shared.config.uid, "{}", m::PROXY_UID);
    let wake = Arc::new(Notify::new());
    let watcher = tokio::spawn(wake_on_changes(shared.cd_view.subscribe(), wake.clone()));

    tokio::pin!(shutdown);
    let mut running: Option<tokio::task::JoinHandle<Checked>> = None;
    let mut rerun = false;
    let mut next_check = Instant::now();
    let mut deadline = Instant::now() + shared.timing().timeout;
    let mut fenced = false;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            checked = check_result(&mut running) => {
                running = None;
                let timing = shared.timing();
                match checked {
                    Checked::Ok(heard_at) => {
                        shared.stats.checks_ok.fetch_add(1, Ordering::Relaxed);
                        shared.stats.last_check_success_seconds.store(unix_now(), Ordering::Relaxed);
                        deadline = watchdog_deadline(heard_at, timing.timeout);
                        fenced = false;
                    }
                    Checked::Trusted(until) => {
                        shared.stats.checks_failed.fetch_add(1, Ordering::Relaxed);
                        // Never beyond what the keeper allowed, counted from when this proxy asked.
                        deadline = deadline.max(Instant::from_std(until));
                        // The check set the target: the watchdog must be armed again, even when the trust
                        // ended meanwhile (then it fences at once instead of leaving the target set).
                        fenced = false;
                    }
                    Checked::Failed => {
                        shared.stats.checks_failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                next_check = if std::mem::take(&mut rerun) { Instant::now() } else { Instant::now() + timing.check_interval };
            }
            () = tokio::time::sleep_until(next_check), if running.is_none() => {
                let s = shared.clone();
                running = Some(tokio::spawn(async move { s.check().await }));
            }
            () = wake.notified() => {
                if running.is_some() { rerun = true } else { next_check = Instant::now() }
            }
            () = tokio::time::sleep_until(deadline), if !fenced => {
                fenced = true;
                shared.fence().await;
            }
        }
    }

    tracing::info!("proxy shutting down");
    watcher.abort();
    if let Some(task) = running {
        task.abort();
    }
    shared.listener.lock().await.stop().await;
    shared.stats.listening.store(0, Ordering::Relaxed);
    shared.read_only.stop_listening().await;
    shared.forwarder.set_target(None).await;
    shared.read_only.apply(&[]).await;
    // The connections are closed: the sentinel need not wait for this proxy any more.
    if let Err(e) = shared.store.store().delete_member(MemberKind::Proxy, &shared.config.uid).await {
        tracing::debug!(error = %e, "cannot remove the proxy info");
    }
}
