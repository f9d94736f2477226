//! The sentinel's IO loop: leader election through [`stolon_store::Election`], SentinelInfo publication,
//! reading infos, and compare-and-swap writes of the pure [`decide`](super::decide()) result.
//!
//! Every sentinel publishes its info and can create the very first cluster data from an initial spec
//! (create-only put, or a compare-and-swap replacing a `null` document); only the leader decides and writes,
//! always with a compare-and-swap on the revision it read, and it checks that it still leads immediately
//! before each write. A pass reads the cluster data and the keeper and proxy infos from the sentinel's
//! watch-fed [view](super::view) (no store request while the watches run); a pass whose decision would
//! write reads the infos from the store and decides again first, the pass after a lost compare-and-swap
//! runs at once and reads everything from the store, and a pass whose copy of the cluster data still holds
//! the revision that our last write replaced (its watch event has not arrived yet) reads it from the store.
//! A pass runs when leadership is acquired, when the cluster data changes in the store (watch; our own
//! writes are ignored), when a failure
//! timer of the last pass expires (so a keeper is failed `failInterval` after its error started, not up to a
//! `sleepInterval` later), while a healthy newly elected master is not yet converged and routed, the master
//! has synchronous standbys not confirmed yet or a switchover runs, the moment a keeper or proxy record
//! changes in content (a keeper's report, a proxy's acknowledged generation; never a heartbeat alone: see
//! [`wake`](super::wake)) (seen by the member watches; polled every [`INFO_POLL`] while one is broken), and
//! otherwise every `sleepInterval`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use stolon_store::{MemberKind, Revision, StoreBackend};
use tokio::sync::watch;
use tokio::time::Instant;

use super::candidacy::{Rejection, changed_rejections, describe};
use super::clock::MonoClock;
use super::decide::{Decision, check_readable, decide};
use super::entropy::OsEntropy;
use super::error::DecideError;
use super::health::Histories;
use super::messages as m;
use super::view::{InfosError, MemberInfos, SentinelView, Source, needs_confirmation};
use super::wake::{Awaiting, ProgressSignature, awaiting};
use crate::cluster::{ClusterData, ClusterSpec, SentinelInfo, defaults, new_uid};
use crate::store::{ClusterStore, sentinel_info_ttl};
use crate::time::Timestamp;

/// The lease of the sentinel leadership on the KV stores (stolon's `MinTTL`, 20 s).
pub const ELECTION_TTL: Duration = Duration::from_secs(20);

/// The lease of the sentinel leadership on Kubernetes (stolon's client-go election: 15 s lease, 10 s renew
/// deadline, 2 s retry period).
pub const KUBERNETES_ELECTION_TTL: Duration = Duration::from_secs(15);

/// The leadership lease stolon's sentinels use on `backend`, so that a stolon-rs sentinel takes over from a
/// crashed leader, and gives up a leadership it cannot renew, on stolon's schedule.
pub fn election_ttl_for(backend: StoreBackend) -> Duration {
    match backend {
        StoreBackend::Kubernetes => KUBERNETES_ELECTION_TTL,
        _ => ELECTION_TTL,
    }
}

/// Pause before campaigning again after an election error (stolon's 10 s, capped by the election TTL).
const ELECTION_RETRY: Duration = Duration::from_secs(10);

/// How often the leader polls the keeper infos while a newly elected master is not converged and routed yet
/// and the keeper watch is broken (otherwise the watch wakes it): the proxies are pointed at the new master on
/// the first pass that sees its keeper report the promotion.
pub const INFO_POLL: Duration = Duration::from_millis(200);

/// How often the leader polls the keeper infos while a switchover is fencing or promoting: each of its steps
/// waits on a keeper report, and the write gap is the sum of these waits.
pub const OPS_INFO_POLL: Duration = Duration::from_millis(20);

/// How a sentinel runs.
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// This sentinel's UID (published in its SentinelInfo and used as election candidate id).
    pub uid: String,
    /// Spec used to create the cluster when the store has no cluster data.
    pub initial_spec: Option<ClusterSpec>,
    /// Lease of the leadership.
    pub election_ttl: Duration,
}

impl SentinelConfig {
    /// A configuration with a random UID and stolon's election TTL.
    pub fn new(initial_spec: Option<ClusterSpec>) -> Self {
        SentinelConfig { uid: new_uid(), initial_spec, election_ttl: ELECTION_TTL }
    }
}

/// Live figures of a sentinel, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct SentinelStats {
    is_leader: AtomicBool,
    leader_count: AtomicU64,
    last_check_success: AtomicI64,
    paused: AtomicBool,
    keepers_in_maintenance: AtomicU64,
    switchover_pending: AtomicBool,
    cluster_data_writes: AtomicU64,
}

impl SentinelStats {
    /// Whether this sentinel currently leads.
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Relaxed)
    }

    /// How many times leadership was acquired.
    pub fn leader_count(&self) -> u64 {
        self.leader_count.load(Ordering::Relaxed)
    }

    /// Unix time (seconds) of the last completed check, 0 before the first.
    pub fn last_check_success_seconds(&self) -> i64 {
        self.last_check_success.load(Ordering::Relaxed)
    }

    /// Whether the cluster data last read says the cluster is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// How many keepers the cluster data last read has in maintenance.
    pub fn keepers_in_maintenance(&self) -> u64 {
        self.keepers_in_maintenance.load(Ordering::Relaxed)
    }

    /// Whether the cluster data last read records a switchover (scheduled or running).
    pub fn switchover_pending(&self) -> bool {
        self.switchover_pending.load(Ordering::Relaxed)
    }

    /// Cluster data documents this sentinel wrote (successful compare-and-swaps).
    pub fn cluster_data_writes(&self) -> u64 {
        self.cluster_data_writes.load(Ordering::Relaxed)
    }

    fn record_operations(&self, cd: &ClusterData) {
        let now = Timestamp::now();
        self.paused.store(crate::ops::pause::is_paused(cd, now), Ordering::Relaxed);
        let maintenance = crate::ops::keepers_in_maintenance(cd).len() as u64;
        self.keepers_in_maintenance.store(maintenance, Ordering::Relaxed);
        self.switchover_pending.store(cd.operations.switchover.is_some(), Ordering::Relaxed);
    }
}

/// A sentinel bound to one cluster in a store.
pub struct Sentinel {
    store: ClusterStore,
    config: SentinelConfig,
    stats: Arc<SentinelStats>,
    clock: MonoClock,
}

/// What the loop remembers between passes.
struct LoopState {
    term: Option<u64>,
    histories: Histories,
    sleep_interval: Duration,
    last_written: Option<Revision>,
    /// The revision that our last write replaced: a watch-fed copy still holding it has not seen that write
    /// yet, and deciding from it would lose the compare-and-swap.
    replaced: Option<Revision>,
    /// The earliest failure timer of the last pass that has not expired yet.
    next_expiry: Option<Instant>,
    /// The member records' content at the last pass, when the cluster waits for news from them.
    awaited_infos: Option<ProgressSignature>,
    /// The candidates' rejection reasons last logged (empty when no election is under way).
    logged_rejections: BTreeMap<String, Vec<Rejection>>,
    /// Why failsafe mode cannot work, as last logged.
    failsafe_refusal: Option<String>,
    /// The next pass reads the store instead of the view (after a lost compare-and-swap).
    read_store: bool,
    /// How often `awaited_infos` is polled.
    info_poll: Duration,
}

impl Sentinel {
    /// A sentinel for the cluster of `store`.
    pub fn new(store: ClusterStore, config: SentinelConfig) -> Self {
        Sentinel { store, config, stats: Arc::default(), clock: MonoClock::new() }
    }

    /// The live figures (for metrics).
    pub fn stats(&self) -> Arc<SentinelStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` resolves, then resigns leadership and removes its info record.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        tracing::info!(uid = %self.config.uid, "{}", m::SENTINEL_UID);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (term_tx, mut term_rx) = watch::channel::<Option<u64>>(None);
        let election =
            tokio::spawn(election_loop(self.store.clone(), self.config.clone(), self.stats.clone(), term_tx, stop_rx));
        let mut state = LoopState {
            term: None,
            histories: Histories::new_term(),
            sleep_interval: defaults::SLEEP_INTERVAL.to_std_saturating(),
            last_written: None,
            replaced: None,
            next_expiry: None,
            awaited_infos: None,
            logged_rejections: BTreeMap::new(),
            failsafe_refusal: None,
            read_store: false,
            info_poll: INFO_POLL,
        };
        let view = SentinelView::spawn(&self.store);
        let mut cd_changes = view.cluster_data_changes();
        let mut keeper_changes = view.keeper_changes();
        let mut proxy_changes = view.proxy_changes();
        tokio::pin!(shutdown);
        'outer: loop {
            // Changes seen before this pass are read by it.
            cd_changes.borrow_and_update();
            keeper_changes.borrow_and_update();
            proxy_changes.borrow_and_update();
            self.check(&mut state, &term_rx, &view).await;
            let regular = Instant::now() + state.sleep_interval;
            let deadline = state.next_expiry.filter(|t| *t < regular).unwrap_or(regular);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break 'outer,
                    _ = tokio::time::sleep_until(deadline) => break,
                    Ok(()) = keeper_changes.changed(), if state.awaited_infos.is_some() => {
                        if self.member_records_changed(&view, state.awaited_infos.as_ref()).await {
                            break;
                        }
                    }
                    Ok(()) = proxy_changes.changed(), if state.awaited_infos.is_some() => {
                        if self.member_records_changed(&view, state.awaited_infos.as_ref()).await {
                            break;
                        }
                    }
                    _ = tokio::time::sleep(state.info_poll), if state.awaited_infos.is_some() && !view.members_live() => {
                        if self.member_records_changed(&view, state.awaited_infos.as_ref()).await {
                            break;
                        }
                    }
                    changed = term_rx.changed() => {
                        if changed.is_err() { tokio::time::sleep_until(deadline).await; }
                        break;
                    }
                    Ok(()) = cd_changes.changed() => {
                        let written = state.last_written.as_ref();
                        let ours = cd_changes.borrow_and_update().as_ref().is_some_and(|doc| {
                            doc.as_ref().map(|d| &d.revision) == written && written.is_some()
                        });
                        if !ours {
                            break;
                        }
                    }
                }
            }
        }
        tracing::info!(uid = %self.config.uid, "{}", m::STOPPING);
        let _ = stop_tx.send(true);
        let _ = election.await;
        if let Err(e) = self.store.store().delete_member(MemberKind::Sentinel, &self.config.uid).await {
            tracing::warn!(error = %e, "cannot remove the sentinel info");
        }
    }

    /// Whether the member records' content differs from `seen` (a read error counts as no change).
    async fn member_records_changed(&self, view: &SentinelView, seen: Option<&ProgressSignature>) -> bool {
        view.progress_signature(&self.store).await.is_some_and(|now| Some(&now) != seen)
    }

    /// One pass (reference §4.1, "one check"), then what the loop needs to schedule the next one.
    async fn check(&self, state: &mut LoopState, term_rx: &watch::Receiver<Option<u64>>, view: &SentinelView) {
        state.next_expiry = None;
        state.awaited_infos = None;
        self.check_once(state, term_rx, view).await;
    }

    /// Records when the next pass is due besides the regular one: at the earliest unexpired failure timer
    /// of `hist`, and on member records with news while `cd` waits for them ([`awaiting`]).
    fn schedule(&self, state: &mut LoopState, cd: &ClusterData, hist: &Histories, infos: &MemberInfos) {
        let now = self.clock.now().mono;
        let fail = cd.cluster.spec.fail_interval();
        state.next_expiry = hist
            .keeper_errors
            .values()
            .chain(hist.db_errors.values())
            .map(|t| t.after(fail).after(Duration::from_millis(1)))
            .filter(|t| *t > now)
            .min()
            .map(|t| Instant::from_std(self.clock.instant_of(t)));
        if let Some(deadline) = crate::ops::next_deadline(cd) {
            // An operation's time (scheduled switchover, end of a pause, timeout), 1 ms after it.
            let wait = (deadline.as_datetime() - Timestamp::now().as_datetime()).to_std().unwrap_or_default();
            let at = Instant::now() + wait + Duration::from_millis(1);
            state.next_expiry = Some(state.next_expiry.map_or(at, |t| t.min(at)));
        }
        let waiting = awaiting(cd);
        state.awaited_infos = waiting.map(|_| ProgressSignature::of(&infos.keepers.valid, &infos.proxies.valid));
        state.info_poll = if waiting == Some(Awaiting::Switchover) { OPS_INFO_POLL } else { INFO_POLL };
    }

    async fn check_once(&self, state: &mut LoopState, term_rx: &watch::Receiver<Option<u64>>, view: &SentinelView) {
        let read_store = std::mem::take(&mut state.read_store);
        let mut read = view.cluster_data(&self.store, read_store).await;
        if let Ok(Some(copy)) = &read
            && state.replaced.as_ref() == Some(&copy.revision)
        {
            // The copy lags behind our own last write: read the store.
            read = self.store.cluster_data().await;
        }
        let read = match read {
            Ok(read) => read,
            Err(e) if e.is_conflict() => return,
            Err(crate::store::ClusterStoreError::Model {
                source: crate::cluster::ModelError::UnsupportedFormatVersion { found, .. },
                ..
            }) => {
                tracing::error!(version = found, "{}", m::UNSUPPORTED_FORMAT_VERSION);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "{}", m::CANNOT_READ_CLUSTER_DATA);
                return;
            }
        };
        let Some(read) = read else {
            self.create_initial().await;
            return;
        };
        self.stats.record_operations(&read.data);
        if let Err(e) = check_readable(&read.data) {
            match e {
                DecideError::UnsupportedFormatVersion(v) => {
                    tracing::error!(version = v, "{}", m::UNSUPPORTED_FORMAT_VERSION)
                }
                e => tracing::error!(error = %e, "{}", m::CLUSTER_DATA_INVALID),
            }
            return;
        }
        state.sleep_interval = read.data.cluster.spec.sleep_interval();
        let info = SentinelInfo { uid: self.config.uid.clone() };
        if let Err(e) = self.store.set_sentinel_info(&info, sentinel_info_ttl(state.sleep_interval)).await {
            tracing::error!(error = %e, "{}", m::CANNOT_UPDATE_SENTINEL_INFO);
            return;
        }
        let silences = SentinelView::silences(&read.data);
        let mut infos = match view.member_infos(&self.store, read_store, silences).await {
            Ok(infos) => infos,
            Err(e) => {
                log_infos_error(&e);
                return;
            }
        };
        let refusal = crate::failsafe::sentinel_refusal(&read.data, &infos.keepers);
        if refusal != state.failsafe_refusal {
            if let Some(r) = &refusal {
                tracing::error!("{r}");
            }
            state.failsafe_refusal = refusal;
        }
        let Some(term) = *term_rx.borrow() else {
            state.term = None;
            self.finish_check();
            return;
        };
        if state.term != Some(term) {
            tracing::info!(term, "first pass of a new leadership term: observing only");
            state.term = Some(term);
            state.histories = Histories::new_term();
        }
        let mut decision = match self.decide(&read.data, &infos, state) {
            Some(d) => d,
            None => return,
        };
        if decision.write && infos.source == Source::View && needs_confirmation(&read.data, &decision.cluster_data) {
            // Never fail, elect or reroute on the word of the watch-fed copies alone: read and decide again.
            tracing::debug!("confirming the decision with member records read from the store");
            infos = match view.member_infos(&self.store, true, silences).await {
                Ok(infos) => infos,
                Err(e) => {
                    log_infos_error(&e);
                    return;
                }
            };
            decision = match self.decide(&read.data, &infos, state) {
                Some(d) => d,
                None => return,
            };
        }
        log_rejections(&mut state.logged_rejections, decision.election.as_ref(), &decision.cluster_data);
        if !decision.write {
            self.schedule(state, &read.data, &decision.histories, &infos);
            state.histories = decision.histories;
            self.finish_check();
            return;
        }
        if *term_rx.borrow() != Some(term) {
            tracing::warn!("leadership lost during the pass; not writing");
            return;
        }
        log_changes(&read.data, &decision.cluster_data);
        match self.store.put_cluster_data_cas(&decision.cluster_data, Some(&read.revision)).await {
            Ok(rev) => {
                tracing::debug!(uid = %self.config.uid, revision = %rev, "cluster data written");
                self.stats.cluster_data_writes.fetch_add(1, Ordering::Relaxed);
                state.last_written = Some(rev);
                state.replaced = Some(read.revision.clone());
                self.schedule(state, &decision.cluster_data, &decision.histories, &infos);
                state.histories = decision.histories;
            }
            Err(e) if e.is_conflict() => {
                // Someone wrote in between: decide again at once from the store, not a sleepInterval later.
                state.read_store = true;
                state.next_expiry = Some(Instant::now());
                tracing::error!(error = %e, "{}", m::CANNOT_SAVE_CLUSTER_DATA)
            }
            Err(e) => tracing::error!(error = %e, "{}", m::CANNOT_SAVE_CLUSTER_DATA),
        }
        self.finish_check();
    }

    /// The pure decision for one pass; `None` (logged) when it cannot be computed.
    fn decide(&self, cd: &ClusterData, infos: &MemberInfos, state: &LoopState) -> Option<Decision> {
        let (keepers, proxies) = (&infos.keepers.valid, &infos.proxies.valid);
        match decide(cd, keepers, proxies, &state.histories, self.clock.now(), &mut OsEntropy) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::error!(error = %e, "{}", m::CANNOT_UPDATE_CLUSTER_DATA);
                None
            }
        }
    }

    fn finish_check(&self) {
        self.stats.last_check_success.store(Timestamp::now().as_datetime().timestamp(), Ordering::Relaxed);
    }

    /// Creates the cluster from the initial spec when the store has no cluster data (create-only).
    async fn create_initial(&self) {
        let Some(spec) = &self.config.initial_spec else {
            tracing::info!("{}", m::NO_CLUSTER_DATA);
            return;
        };
        // A `null` document (cluster data cleared without deleting the key) is replaced like a missing one, with
        // a compare-and-swap on its revision: a create-only put would conflict with it forever.
        let expected = match self.store.store().get_cluster_data().await {
            Ok(doc) => null_document_revision(doc.as_ref()),
            Err(e) => {
                tracing::error!(error = %e, "{}", m::CANNOT_READ_CLUSTER_DATA);
                return;
            }
        };
        let cd = ClusterData::new_initial(new_uid(), spec.clone(), Timestamp::now());
        tracing::info!("{}", m::WRITING_INITIAL_CLUSTER_DATA);
        match self.store.put_cluster_data_cas(&cd, expected.as_ref()).await {
            Ok(_) => tracing::info!(cluster_uid = %cd.cluster.uid, "initial cluster data created"),
            Err(e) if e.is_conflict() => tracing::info!("cluster data created concurrently by another component"),
            Err(e) => tracing::error!(error = %e, "{}", m::CANNOT_SAVE_INITIAL_CLUSTER_DATA),
        }
    }
}

/// The revision to replace when creating the initial cluster data: that of a stored `null` document, `None`
/// (create-only) when there is no document or a real one (then the put conflicts, as it should).
fn null_document_revision(doc: Option<&stolon_store::Document>) -> Option<Revision> {
    doc.filter(|d| ClusterData::from_json(&d.value).is_ok_and(|cd| cd.is_none())).map(|d| d.revision.clone())
}

/// Logs a failed read of the member records with stolon's wording for the kind that failed.
fn log_infos_error(e: &InfosError) {
    match e {
        InfosError::Keepers(e) => tracing::error!(error = %e, "{}", m::CANNOT_GET_KEEPERS_INFO),
        InfosError::Proxies(e) => tracing::error!(error = %e, "{}", m::CANNOT_GET_PROXIES_INFO),
    }
}

/// Logs, once per change, why each DB can or cannot replace the failed master; forgets what it logged
/// once no election is under way.
fn log_rejections(
    logged: &mut BTreeMap<String, Vec<Rejection>>,
    election: Option<&BTreeMap<String, Vec<Rejection>>>,
    cd: &ClusterData,
) {
    let Some(election) = election else {
        logged.clear();
        return;
    };
    for (uid, reasons) in changed_rejections(logged, election) {
        let keeper = cd.dbs.get(uid).map(|db| db.spec.keeper_uid.as_str()).unwrap_or_default();
        if reasons.is_empty() {
            tracing::info!(db = %uid, keeper = %keeper, "db eligible as the new master");
        } else {
            let why = describe(reasons);
            tracing::warn!(db = %uid, keeper = %keeper, reasons = %why, "db cannot be elected as the new master");
        }
    }
    *logged = election.clone();
}

/// Logs the decisions that matter (master, phase, DBs, proxy routing) at info level.
fn log_changes(old: &ClusterData, new: &ClusterData) {
    if old.cluster.status.master != new.cluster.status.master {
        tracing::info!(from = %old.cluster.status.master, to = %new.cluster.status.master, "master changed");
    }
    if old.cluster.status.phase != new.cluster.status.phase {
        tracing::info!(phase = ?new.cluster.status.phase, "cluster phase changed");
    }
    if old.dbs.keys().ne(new.dbs.keys()) {
        tracing::info!(dbs = ?new.dbs.keys().collect::<Vec<_>>(), "db set changed");
    }
    if old.proxy.spec != new.proxy.spec {
        tracing::info!(master = %new.proxy.spec.master_db_uid, enabled = ?new.proxy.spec.enabled_proxies, "proxy routing changed");
    }
}

/// Campaigns for leadership until stopped; publishes the current term (None = not leading).
async fn election_loop(
    store: ClusterStore,
    config: SentinelConfig,
    stats: Arc<SentinelStats>,
    term_tx: watch::Sender<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut term = 0u64;
    let retry = ELECTION_RETRY.min(config.election_ttl);
    loop {
        tracing::info!("{}", m::TRYING_TO_ACQUIRE_LEADERSHIP);
        let campaign = store.store().campaign(&config.uid, config.election_ttl);
        let result = tokio::select! {
            r = campaign => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match result {
            Ok(mut leadership) => {
                term += 1;
                stats.leader_count.fetch_add(1, Ordering::Relaxed);
                stats.is_leader.store(true, Ordering::Relaxed);
                tracing::info!(term, "{}", m::LEADERSHIP_ACQUIRED);
                let _ = term_tx.send(Some(term));
                let stopping = tokio::select! {
                    state = leadership.lost() => {
                        tracing::info!(state = ?state, "{}", m::LEADERSHIP_LOST);
                        false
                    }
                    _ = stop.wait_for(|s| *s) => true,
                };
                let _ = term_tx.send(None);
                stats.is_leader.store(false, Ordering::Relaxed);
                if stopping {
                    if let Err(e) = leadership.resign().await {
                        tracing::warn!(error = %e, "cannot resign the leadership");
                    }
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "{}", m::ELECTION_LOOP_ERROR);
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stolon_store::Document;

    fn doc(value: &[u8]) -> Document {
        Document { value: value.to_vec(), revision: Revision::from_index(7) }
    }

    #[test]
    fn election_lease_is_stolons_for_each_backend() {
        assert_eq!(election_ttl_for(StoreBackend::Kubernetes), Duration::from_secs(15));
        for kv in [StoreBackend::EtcdV3, StoreBackend::EtcdV2, StoreBackend::Consul] {
            assert_eq!(election_ttl_for(kv), Duration::from_secs(20));
        }
    }

    #[test]
    fn initial_cluster_data_replaces_a_null_document_only() -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(null_document_revision(None), None);
        assert_eq!(null_document_revision(Some(&doc(b"null"))), Some(Revision::from_index(7)));
        let real = ClusterData::new_initial("c1", ClusterSpec::default(), Timestamp::now()).to_json()?;
        assert_eq!(null_document_revision(Some(&doc(&real))), None);
        assert_eq!(null_document_revision(Some(&doc(b"{not json"))), None);
        Ok(())
    }
}
